"""Hessian spectrum measures: trace, extreme eigenvalues, and the PAC-Bayes trace bound.

H = d^2 L_S / dW^2 over the selected layers, L_S the sample-weighted mean loss over the
evaluation sample, the model in eval mode.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import replace
from typing import Annotated, Literal

import torch

from genmeasures.curvature.ggn import ggn_block_traces
from genmeasures.curvature.lanczos import lanczos_eigenvalues
from genmeasures.curvature.operators import HessianOperator
from genmeasures.curvature.structure import probe_blocks
from genmeasures.curvature.trace import TraceEstimate, exact_trace, hutchinson, hutchpp
from genmeasures.errors import OptionError
from genmeasures.measures.context import MeasureContext, cross_entropy_per_sample
from genmeasures.measures.curvature_support import CurvatureSetup, curvature_setup, max_sample_loss
from genmeasures.measures.distance import LayersOption, displacements
from genmeasures.measures.layers import LayerPattern, select_layers
from genmeasures.measures.registry import register_measure
from genmeasures.measures.results import LayerValue, MeasureResult

CURVATURE_NEEDS = ("data", "model", "curvature")

BackendOption = Annotated[
    Literal["auto", "func", "autograd", "pyhessian"],
    "Hessian-vector products: forward-over-reverse (func), double backward (autograd), the "
    "faster of the two (auto), or PyHessian's own algorithms (pyhessian, whole model only)",
]
Estimator = Literal["auto", "hutchinson", "hutchpp", "exact"]
ESTIMATOR_HELP = (
    "auto: exact Tr(G_ii) = Tr(H_ii) on layers the outputs are affine in (probed; C per-sample "
    "gradient passes, C classes) and Hutchinson on the rest; exact: one product per parameter"
)


def estimate_trace(
    setup: CurvatureSetup,
    batches,
    *,
    estimator: Estimator,
    rtol: float,
    max_matvecs: int,
    backend: str,
) -> TraceEstimate:
    """Tr(H) and per-layer Tr(H_ii) of the mean loss over ``batches``."""
    if estimator == "auto":
        return _auto_trace(setup, batches, rtol=rtol, max_matvecs=max_matvecs, backend=backend)
    op = HessianOperator(
        setup.model, setup.names, batches, setup.ctx.loss, backend=backend, check=False
    )
    if estimator == "exact":
        return exact_trace(op)
    estimate = hutchinson if estimator == "hutchinson" else hutchpp
    return estimate(op, rtol=rtol, max_matvecs=max_matvecs, generator=setup.generator())


def _auto_trace(
    setup: CurvatureSetup, batches, *, rtol: float, max_matvecs: int, backend: str
) -> TraceEstimate:
    """Tr(H) = sum_i Tr(H_ii): exactly, as Tr(G_ii) from per-sample output Jacobians
    (:func:`~genmeasures.curvature.ggn.ggn_block_traces`), on the blocks the outputs are
    affine in (where H_ii = G_ii; probed by
    :func:`~genmeasures.curvature.structure.probe_blocks`), when that is predicted cheaper
    than Hutchinson (C per-sample gradient passes against up to ``max_matvecs`` products of
    about two passes each); Hutchinson on the Hessian of the remaining blocks, whose trace is
    the sum of theirs. Needs cross-entropy (its Lambda); any other loss: Hutchinson alone.

    ``n_matvecs`` counts passes over the data: C for the exact part, two per block for the
    probe, and the Hutchinson products.
    """
    names = setup.names
    exact: dict[str, float] = {}
    cost = 0
    if setup.ctx.loss is cross_entropy_per_sample:
        fmodel = setup.functional()
        with torch.no_grad():
            classes = int(fmodel.outputs(fmodel.params, batches[0][0][:1]).shape[-1])
        if classes <= 2 * max_matvecs:
            structure = probe_blocks(fmodel, batches, seed=setup.ctx.seed)
            cost += 2 * len(names)
            affine = [n for n in names if structure[n].affine]
            if affine:
                traces, _ = ggn_block_traces(setup.functional(affine), batches)
                exact = dict(zip(affine, traces, strict=True))
                cost += classes
    general = [n for n in names if n not in exact]
    estimated: dict[str, tuple[float, float]] = {}
    stderr, samples, converged = 0.0, (), True
    if general:
        op = HessianOperator(setup.model, general, batches, setup.ctx.loss, backend=backend)
        est = hutchinson(op, rtol=rtol, max_matvecs=max_matvecs, generator=setup.generator())
        estimated = dict(zip(general, zip(est.blocks, est.block_stderrs, strict=True), strict=True))
        stderr, converged, cost = est.stderr, est.converged, cost + est.n_matvecs
        offset = math.fsum(exact.values())
        samples = tuple(offset + s for s in est.samples)
    blocks = tuple(exact[n] if n in exact else estimated[n][0] for n in names)
    return TraceEstimate(
        value=math.fsum(blocks),
        stderr=stderr,
        blocks=blocks,
        block_stderrs=tuple(0.0 if n in exact else estimated[n][1] for n in names),
        samples=samples,
        n_matvecs=cost,
        converged=converged,
        method="auto",
        exact_blocks=tuple(n in exact for n in names),
    )


def batch_traces(setup: CurvatureSetup, batch_size: int, **options) -> list[TraceEstimate]:
    """Tr(H^(b)) with per-layer blocks for every consecutive mini-batch b of ``batch_size``."""
    return [estimate_trace(setup, [batch], **options) for batch in setup.regroup(batch_size)]


def _reports_layer_set(function):
    """Add extras ``n_layers`` and ``n_parameters``: the size of the operator, so a table
    says which layer set was used (compare with PyHessian, whose operator is every parameter).
    """

    @functools.wraps(function)
    def measure(ctx: MeasureContext, **options):
        result = function(ctx, **options)
        with warnings.catch_warnings():  # (the measure itself already noted what it left out)
            warnings.simplefilter("ignore")
            names = select_layers(ctx.weights, _layers_for(options["backend"], options["layers"]))
        counts = {
            "n_layers": float(len(names)),
            "n_parameters": float(sum(ctx.weights[n].numel() for n in names)),
        }
        return replace(result, extras={**result.extras, **counts})

    return measure


@register_measure(
    "hessian_trace",
    summary="Tr(H) of the mean loss (Hutchinson/Hutch++/exact) with stderr; per-layer Tr(H_ii)",
    paper="Zhang, Li & Ju, TMLR 2024 (NSO); Hutchinson 1989; Meyer et al. 2021 (Hutch++)",
    needs=CURVATURE_NEEDS,
    stochastic=True,
    version=2,  # 2: estimator=auto by default (exact on affine layers)
)
@_reports_layer_set
def hessian_trace(
    ctx: MeasureContext,
    *,
    estimator: Annotated[Estimator, ESTIMATOR_HELP] = "auto",
    rtol: Annotated[float, "stop at this relative standard error"] = 0.01,
    max_matvecs: Annotated[int, "budget of Hessian-vector products (per batch)"] = 200,
    reduce: Annotated[
        Literal["full", "max_batch", "mean_batch"],
        "full: the whole sample; max_batch/mean_batch: per mini-batch, then max or mean "
        "(the NSO reference script)",
    ] = "full",
    batch_size: Annotated[int, "mini-batch size for reduce=max_batch/mean_batch"] = 32,
    backend: BackendOption = "auto",
    layers: LayersOption = None,
) -> MeasureResult:
    """Trace of the Hessian, Tr(H), and per layer Tr(H_ii) from the same probes.

    Hutchinson: Rademacher probes g, Tr(H) = E[g^T H g], per layer E[g_i^T (Hg)_i]; stops when
    stderr <= rtol * |Tr| or after ``max_matvecs`` products (then warns). Hutch++ deflates a
    sketched top subspace first. ``exact`` sums e_k^T H e_k (stderr NaN).
    ``reduce=max_batch`` is the reference-code variant: the trace of each mini-batch's mean
    loss, maximum over mini-batches (``mean_batch``: their mean).
    """
    _check_positive(max_matvecs=max_matvecs, batch_size=batch_size)
    _check_non_negative(rtol=rtol)
    with curvature_setup(ctx, _layers_for(backend, layers)) as setup:
        if backend == "pyhessian":
            return _pyhessian_trace(setup, rtol=rtol, max_matvecs=max_matvecs, reduce=reduce)
        groups = setup.batches if reduce == "full" else None
        if groups is not None:
            est = estimate_trace(
                setup,
                groups,
                estimator=estimator,
                rtol=rtol,
                max_matvecs=max_matvecs,
                backend=backend,
            )
            return _trace_result(setup, est, est.n_matvecs)
        estimates = batch_traces(
            setup,
            batch_size,
            estimator=estimator,
            rtol=rtol,
            max_matvecs=max_matvecs,
            backend=backend,
        )
        cost = sum(e.n_matvecs for e in estimates)
        if reduce == "max_batch":
            return _trace_result(
                setup,
                max(estimates, key=lambda e: e.value),
                cost,
                blocks=[max(e.blocks[i] for e in estimates) for i in range(len(setup.names))],
            )
        mean = [
            math.fsum(e.blocks[i] for e in estimates) / len(estimates)
            for i in range(len(setup.names))
        ]
        stderr = math.sqrt(math.fsum(e.stderr**2 for e in estimates)) / len(estimates)
        return MeasureResult(
            value=math.fsum(e.value for e in estimates) / len(estimates),
            stderr=stderr,
            layers=tuple(LayerValue(n, v) for n, v in zip(setup.names, mean, strict=True)),
            extras={"n_batches": float(len(estimates))},
            n_matvecs=cost,
        )


def _trace_result(
    setup: CurvatureSetup, est: TraceEstimate, cost: int, blocks: list[float] | None = None
) -> MeasureResult:
    exact = est.exact_blocks or (False,) * len(setup.names)
    rows = tuple(
        LayerValue(
            name,
            value,
            stderr if blocks is None else math.nan,
            extras={"affine": float(is_exact)} if est.method == "auto" else {},
        )
        for name, value, stderr, is_exact in zip(
            setup.names, blocks or est.blocks, est.block_stderrs, exact, strict=True
        )
    )
    return MeasureResult(
        value=est.value,
        stderr=est.stderr,
        layers=rows,
        extras={"converged": float(est.converged)},
        n_matvecs=cost,
    )


def _pyhessian_trace(setup: CurvatureSetup, *, rtol, max_matvecs, reduce) -> MeasureResult:
    from genmeasures.curvature.pyhessian_backend import pyhessian_trace

    if reduce != "full":
        raise OptionError("backend=pyhessian supports reduce=full only")
    est = pyhessian_trace(
        setup.model,
        setup.ctx.loss,
        setup.batches,
        setup.names,
        max_iter=max_matvecs,
        tol=rtol,
        seed=setup.ctx.seed,
    )
    return MeasureResult(value=est.value, stderr=est.stderr, n_matvecs=est.n_matvecs)


@register_measure(
    "hessian_eigenvalue",
    summary="top-k (or bottom-k) eigenvalues of H by Lanczos, with error bounds",
    paper="Lanczos 1950; the NSO paper's sharpness measure (Zhang, Li & Ju, TMLR 2024)",
    needs=CURVATURE_NEEDS,
    stochastic=True,
    # 2: stops on the gap-refined eigenvalue error, not the residual; 3: both error bars carry
    # the rounding floor 32 eps ||H||, which also stops a run whose error has reached it
    version=3,
)
@_reports_layer_set
def hessian_eigenvalue(
    ctx: MeasureContext,
    *,
    k: Annotated[int, "how many eigenvalues"] = 1,
    which: Annotated[Literal["largest", "smallest"], "algebraically largest or smallest"] = (
        "largest"
    ),
    per_layer: Annotated[bool, "also the top eigenvalue of each layer's block H_ii"] = False,
    rtol: Annotated[float, "stop when each eigenvalue's error <= rtol * |eigenvalue|"] = 1e-4,
    max_matvecs: Annotated[int, "budget of Hessian-vector products (per operator)"] = 100,
    stop: Annotated[
        Literal["value", "residual"],
        "error judged by: the gap-refined estimate r^2/gap, or the rigorous residual r",
    ] = "value",
    backend: BackendOption = "auto",
    layers: LayersOption = None,
) -> MeasureResult:
    """Extreme eigenvalues of H (Lanczos with full reorthogonalization).

    The value is the first eigenvalue (largest, or smallest with ``which=smallest``); extras
    ``eigenvalue_2``..``eigenvalue_k`` the next ones. ``stderr`` holds the first value's error
    as judged by ``stop``: the gap-refined estimate min(r, r^2/gap) (Kato-Temple, the Ritz gap
    for the spectral gap) or the residual bound r = ||H y - theta y||, within which an
    eigenvalue of H lies (always in the extra ``residual_bound``), each plus the rounding floor
    32 eps ||H|| (eps of the model's dtype: the products H v are rounded, which r cannot see);
    an error at the floor counts as converged whatever ``rtol`` asks. These are
    eigenvalues of H itself, not of the largest magnitude (power iteration's answer, which can
    be negative). With ``per_layer``, layer rows hold the top eigenvalue of each block H_ii.
    """
    _check_positive(k=k, max_matvecs=max_matvecs)
    _check_non_negative(rtol=rtol)
    with curvature_setup(ctx, _layers_for(backend, layers)) as setup:
        if backend == "pyhessian":
            return _pyhessian_eigenvalues(
                setup, k=k, which=which, per_layer=per_layer, rtol=rtol, max_matvecs=max_matvecs
            )
        op = HessianOperator(
            setup.model, setup.names, setup.batches, ctx.loss, backend=backend, check=False
        )
        est = lanczos_eigenvalues(
            op,
            k,
            which=which,
            rtol=rtol,
            max_matvecs=max_matvecs,
            stop=stop,
            generator=setup.generator(),
        )
        cost = est.n_matvecs
        rows = []
        if per_layer:
            for name in setup.names:
                block = HessianOperator(
                    setup.model, [name], setup.batches, ctx.loss, backend=op.backend, check=False
                )
                layer_est = lanczos_eigenvalues(
                    block,
                    1,
                    which=which,
                    rtol=rtol,
                    max_matvecs=max_matvecs,
                    stop=stop,
                    generator=setup.generator(),
                )
                rows.append(LayerValue(name, layer_est.values[0], _error(layer_est, stop)))
                cost += layer_est.n_matvecs
        extras = {f"eigenvalue_{i + 1}": v for i, v in enumerate(est.values) if i > 0}
        extras["converged"] = float(est.converged)
        extras["residual_bound"] = est.errors[0]
        return MeasureResult(
            value=est.values[0],
            stderr=_error(est, stop),
            layers=tuple(rows),
            extras=extras,
            n_matvecs=cost,
        )


def _error(est, stop: str) -> float:
    return est.value_errors[0] if stop == "value" else est.errors[0]


def _pyhessian_eigenvalues(setup, *, k, which, per_layer, rtol, max_matvecs) -> MeasureResult:
    from genmeasures.curvature.pyhessian_backend import pyhessian_eigenvalues

    if which != "largest" or per_layer:
        raise OptionError("backend=pyhessian supports which=largest without per_layer only")
    est = pyhessian_eigenvalues(
        setup.model,
        setup.ctx.loss,
        setup.batches,
        setup.names,
        top_n=k,
        max_iter=max_matvecs,
        tol=rtol,
        seed=setup.ctx.seed,
    )
    extras = {f"eigenvalue_{i + 1}": v for i, v in enumerate(est.values) if i > 0}
    return MeasureResult(value=est.values[0], extras=extras, n_matvecs=est.n_matvecs)


@register_measure(
    "pacbayes_trace_bound",
    summary="C sqrt(sum_i max_batch Tr(H_ii) * sum_i ||W_i - W0_i||^2 / n) (NSO script)",
    paper="Zhang, Li & Ju, TMLR 2024 (NSO): the PAC-Bayes bound of its reference script",
    needs=(*CURVATURE_NEEDS, "init", "n_train"),
    stochastic=True,
    version=2,  # 2: estimator=auto by default
)
def pacbayes_trace_bound(
    ctx: MeasureContext,
    *,
    batch_size: Annotated[int, "mini-batch size of the per-batch traces"] = 32,
    estimator: Annotated[Estimator, "per-batch trace estimator (see hessian_trace)"] = "auto",
    rtol: Annotated[float, "relative stderr target of each per-batch trace"] = 0.05,
    max_matvecs: Annotated[int, "budget of Hessian-vector products per batch"] = 100,
    backend: Annotated[Literal["auto", "func", "autograd"], "HVP backend"] = "auto",
    layers: LayersOption = None,
) -> MeasureResult:
    """C * sqrt( (sum_i max_b Tr(H_ii^(b))) * (sum_i ||v_i||_F^2) / n ).

    C: the largest per-sample loss over the sample; Tr(H_ii^(b)): the trace of layer i's block
    of the Hessian of mini-batch b's mean loss, maximum over mini-batches for each layer
    separately; v_i = W_i - W_i^(0); n = training-set size. Per-layer rows hold
    max_b Tr(H_ii^(b)). Negative trace sums are clipped at 0 before the square root.
    """
    _check_positive(batch_size=batch_size, max_matvecs=max_matvecs)
    _check_non_negative(rtol=rtol)
    with curvature_setup(ctx, layers) as setup:
        estimates = batch_traces(
            setup,
            batch_size,
            estimator=estimator,
            rtol=rtol,
            max_matvecs=max_matvecs,
            backend=backend,
        )
        worst = [max(e.blocks[i] for e in estimates) for i in range(len(setup.names))]
        squared_distance = math.fsum(
            float((v**2).sum()) for v in displacements(ctx, layers).values()
        )
        c = max_sample_loss(setup)
        trace_sum = math.fsum(worst)
        value = c * math.sqrt(max(trace_sum, 0.0) * squared_distance / ctx.n_train)
        return MeasureResult(
            value=value,
            layers=tuple(LayerValue(n, t) for n, t in zip(setup.names, worst, strict=True)),
            extras={"max_loss": c, "trace_sum": trace_sum, "squared_distance": squared_distance},
            n_matvecs=sum(e.n_matvecs for e in estimates),
        )


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise OptionError(f"option {name!r} must be positive, got {value!r}")


def _check_non_negative(**values: float) -> None:
    """rtol = 0 is allowed: it spends the whole budget (as PyHessian's tol=0)."""
    for name, value in values.items():
        if not value >= 0:
            raise OptionError(f"option {name!r} must not be negative, got {value!r}")


def _layers_for(backend: str, layers: LayerPattern) -> LayerPattern:
    """PyHessian's operator is the Hessian in every parameter of the model: with
    ``backend=pyhessian`` and no ``layers`` the layers are all of them (an explicit subset is
    honoured: the adapted PyHessian differentiates the parameters it is given)."""
    if backend == "pyhessian" and layers is None:
        return "all"
    return layers
