"""Hessian spectrum measures: trace, extreme eigenvalues, and the PAC-Bayes trace bound.

H = d^2 L_S / dW^2 over the selected layers, L_S the sample-weighted mean loss over the
evaluation sample, the model in eval mode.
"""

from __future__ import annotations

import functools
import math
import statistics
import warnings
from dataclasses import replace
from typing import Annotated, Any, Literal

import torch

from genmeasures.constraints import NonNegative, OneOf, Positive
from genmeasures.curvature import distributed
from genmeasures.curvature.ggn import GGNOperator, ggn_block_traces
from genmeasures.curvature.lanczos import lanczos_eigenvalues
from genmeasures.curvature.operators import (
    CURVATURES,
    CurvatureOperator,
    is_transform_gap,
    make_operator,
    warn_unsupported,
)
from genmeasures.curvature.products import PRODUCT_METHODS
from genmeasures.curvature.structure import probe_blocks
from genmeasures.curvature.trace import (
    Deflation,
    Difference,
    TraceEstimate,
    deflate,
    exact_trace,
    hutchinson,
    hutchpp,
)
from genmeasures.curvature.vectors import blockwise_dot, rademacher_like
from genmeasures.errors import OptionError
from genmeasures.measures.context import MeasureContext
from genmeasures.measures.curvature_support import CurvatureSetup, curvature_setup, max_sample_loss
from genmeasures.measures.distance import LayersOption, displacements
from genmeasures.measures.layers import LayerPattern, select_layers
from genmeasures.measures.registry import register_measure
from genmeasures.measures.results import LayerValue, MeasureResult

CURVATURE_NEEDS = ("data", "model", "curvature")


def _product_choices() -> tuple[str, ...]:
    return ("auto", *PRODUCT_METHODS.names())


# Choices read from the registries when a value is checked: a curvature or product method
# registered after this module was imported is a valid choice.
ProductsOption = Annotated[
    str,
    OneOf(_product_choices),
    "how Hessian-vector products are computed: double backward (autograd; auto), "
    "forward-over-reverse (func), torch.func.linearize (linearize)",
]
CurvatureOption = Annotated[
    str,
    OneOf(CURVATURES.names),
    "the matrix: the Hessian H, or the Gauss-Newton matrix G (PSD for a convex loss)",
]
Estimator = Literal["auto", "hutchinson", "hutchpp", "exact", "pyhessian"]
ESTIMATOR_HELP = (
    "auto: exact Tr(G_ii) = Tr(H_ii) on layers the outputs are affine in (probed); on the "
    "rest the estimator a pilot predicts cheapest: exact Tr(G_ii) plus Hutchinson on "
    "H_ii - G_ii, Hutch++'s deflation, or plain Hutchinson; exact: one product per "
    "parameter; pyhessian: PyHessian's own "
    "Hutchinson and stopping rule (all parameters unless layers is given)"
)
PILOT_PROBES = 8  # probes that decide between Hutchinson on H and on H - G


def estimate_trace(
    setup: CurvatureSetup,
    batches,
    *,
    estimator: str,
    rtol: float,
    max_matvecs: int,
    products: str,
    curvature: str = "hessian",
) -> TraceEstimate:
    """Tr(A) and per-layer Tr(A_ii) of the mean loss over ``batches``, A the curvature."""
    if estimator == "auto":
        return _auto_trace(
            setup,
            batches,
            rtol=rtol,
            max_matvecs=max_matvecs,
            products=products,
            curvature=curvature,
        )
    op = make_operator(
        curvature,
        setup.model,
        setup.names,
        batches,
        setup.ctx.loss,
        products=products,
        check=False,
    )
    if estimator == "exact":
        return exact_trace(op)
    estimate = hutchinson if estimator == "hutchinson" else hutchpp
    return estimate(op, rtol=rtol, max_matvecs=max_matvecs, generator=setup.generator())


def _auto_trace(
    setup: CurvatureSetup,
    batches,
    *,
    rtol: float,
    max_matvecs: int,
    products: str,
    curvature: str,
) -> TraceEstimate:
    """Tr(A) = sum_i Tr(A_ii) by the cheapest route for each block.

    Tr(G_ii) is exact for every block from per-sample output Jacobians
    (:func:`~genmeasures.curvature.ggn.ggn_block_traces`, K per-sample gradient passes, K the
    number of classes), and used when K <= 2 * ``max_matvecs`` (else Hutchinson alone: the
    exact route would cost more than the budget). For the Gauss-Newton curvature that is the
    answer. For the Hessian, on blocks the outputs are affine in (probed by
    :func:`~genmeasures.curvature.structure.probe_blocks`) H_ii = G_ii, so Tr(H_ii) is exact
    too; on the other blocks Tr(H_ii) = Tr(G_ii) + Tr(H_ii - G_ii), the second term by
    Hutchinson on H - G (a control variate: near interpolation H - G is small, and so its
    variance) when the pilot's ``PILOT_PROBES`` probes predict fewer products than plain
    Hutchinson on H (each probe of H - G costs two products, H g and G g). The pilot's probes
    are kept by whichever is chosen. The tolerance is relative to the whole trace.

    ``n_matvecs`` counts passes over the data: K for the exact part, two per block for the
    probe, and the products. Extras (in the measure's table) say what auto chose.
    """
    names = setup.names
    fmodel = setup.functional()
    exact: dict[str, float] = {}
    ggn: dict[str, float] = {}
    cost, choice = 0, {}
    forward_mode = True
    with torch.no_grad():
        classes = int(fmodel.outputs(fmodel.params, batches[0][0][:1]).reshape(1, -1).shape[1])
    # The exact Gauss-Newton traces answer for G, and for H on affine blocks; any other
    # registered curvature has no exact route: the estimators run on all of its blocks.
    if curvature in ("hessian", "ggn") and classes <= 2 * max_matvecs:
        affine = set(names)
        if curvature == "hessian":
            structure = probe_blocks(fmodel, batches, seed=setup.ctx.seed)
            cost += 2 * len(names)
            affine = {n for n in names if structure[n].affine}
            # The control variate's G products run forward mode: not where the probe found
            # it missing (the probe has already said so).
            forward_mode = not any(block.failure for block in structure.values())
        try:
            traces, _ = ggn_block_traces(fmodel, batches)
        except (NotImplementedError, RuntimeError) as exc:
            # Per-sample gradients run under torch.func.vmap, which some custom operations
            # refuse: no exact route then, Hutchinson on every block.
            if not is_transform_gap(exc):
                raise
            if forward_mode:  # (else the probe has already said so)
                warn_unsupported(exc, "Hutchinson on every layer", what="torch.func")
            forward_mode = False
        else:
            ggn = dict(zip(names, traces, strict=True))
            cost += classes
            exact = {n: ggn[n] for n in names if n in affine}
    choice["exact_route"] = float(bool(ggn))
    general = [n for n in names if n not in exact]
    estimated: dict[str, tuple[float, float]] = {}
    stderr, converged = 0.0, True
    samples: tuple[float, ...] = ()
    if general:
        generator = setup.generator()
        op = make_operator(
            curvature, setup.model, general, batches, setup.ctx.loss, products=products
        )
        known = math.fsum(exact.values())
        if curvature != "ggn":  # (G's blocks are exact unless its exact route failed)
            est, chosen = _general_blocks_trace(
                setup,
                op,
                [ggn[n] for n in general] if ggn and forward_mode else None,
                known,
                rtol,
                max_matvecs,
                generator,
            )
            choice.update(chosen)
        else:
            est = hutchinson(
                op,
                rtol=rtol,
                max_matvecs=max_matvecs,
                generator=generator,
                known_elsewhere=known,
            )
        estimated = dict(zip(general, zip(est.blocks, est.block_stderrs, strict=True), strict=True))
        stderr, converged, cost = est.stderr, est.converged, cost + est.n_matvecs
        samples = tuple(known + s for s in est.samples)  # each probe's whole trace
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
        choices=choice,
    )


def _general_blocks_trace(
    setup: CurvatureSetup,
    hessian_op: CurvatureOperator,
    ggn_traces: list[float] | None,
    known: float,
    rtol: float,
    max_matvecs: int,
    generator: torch.Generator,
) -> tuple[TraceEstimate, dict[str, float]]:
    """Tr(H) over the operator's blocks by Hutchinson on H, on H - G, or deflated: by a pilot.

    The pilot draws ``PILOT_PROBES`` probes g and computes H g, and G g when the blocks'
    exact Gauss-Newton traces ``ggn_traces`` are given. Three unbiased estimators compete,
    each by its predicted cost, products per probe times the variance per probe:

    * plain Hutchinson on H: s_H^2 (s the sample standard deviation of the probes' g^T A g);
    * the control variate, Tr(G) exact plus Hutchinson on H - G: 2 s_R^2 (two products a
      probe; near interpolation H - G is small);
    * Hutch++'s deflation (:func:`~genmeasures.curvature.trace.deflate`), with the pilot's
      H g as its sketch: Tr(Q^T H Q) exact plus Hutchinson on deflated probes: s_D^2 from
      ``PILOT_PROBES`` deflated probes (when the budget holds four pilots: the sketch's
      k products more and these). Where a few outlying eigenvalues carry the variance (a
      transformer's Hessian), deflation takes them out.

    The cheapest is continued from its own pilot probes (the control variate within half the
    budget). The choice depends on the seed only, never on timing; the pilot's products are
    counted either way. ``known``: the exact trace of the other blocks, for the tolerance.
    """
    count = min(PILOT_PROBES, max_matvecs)
    probes = [rademacher_like(hessian_op.params, generator) for _ in range(count)]
    h_products = hessian_op.matmat(probes)
    plain = [blockwise_dot(g, h) for g, h in zip(probes, h_products, strict=True)]
    operators: list[CurvatureOperator] = [hessian_op]
    costs = {"plain": _spread(plain) ** 2}
    residual = None
    ggn_op = None
    if ggn_traces is not None:
        ggn_op = GGNOperator(
            setup.model, hessian_op.names, hessian_op.batches, setup.ctx.loss, check=False
        )
        operators.append(ggn_op)
        try:
            g_products = ggn_op.matmat(probes)
        except (NotImplementedError, RuntimeError) as exc:
            if not is_transform_gap(exc):
                raise
            warn_unsupported(exc, "no Gauss-Newton control variate")
        else:
            residual = [
                blockwise_dot(g, tuple(a - b for a, b in zip(h, gg, strict=True)))
                for g, h, gg in zip(probes, h_products, g_products, strict=True)
            ]
            costs["control_variate"] = 2 * _spread(residual) ** 2
    deflation: Deflation | None = None
    deflated: list[list[float]] = []
    if 4 * count <= max_matvecs:
        deflation = deflate(hessian_op, h_products)
        fresh = [
            deflation.project(rademacher_like(hessian_op.params, generator)) for _ in range(count)
        ]
        deflated = [
            blockwise_dot(g, h) for g, h in zip(fresh, hessian_op.matmat(fresh), strict=True)
        ]
        costs["deflation"] = _spread(deflated) ** 2
    chosen = min(costs, key=lambda name: (costs[name], name))
    spent = sum(op.n_matvecs for op in operators)
    choice = {"control_variate": float(chosen == "control_variate")}
    choice["deflation"] = 0.0
    run = functools.partial(hutchinson, rtol=rtol, generator=generator, known_elsewhere=known)
    if chosen == "control_variate":
        assert residual is not None and ggn_op is not None and ggn_traces is not None
        est = run(
            Difference(hessian_op, ggn_op),
            max_matvecs=max(count, max_matvecs // 2),
            initial=residual,
            offset=ggn_traces,
        )
    elif chosen == "deflation":
        assert deflation is not None
        choice["deflation"] = float(deflation.n_matvecs)
        est = run(
            hessian_op,
            max_matvecs=max(count, max_matvecs - spent + count),
            initial=deflated,
            deflation=deflation,
            sunk=spent - count,
        )
    else:
        est = run(hessian_op, max_matvecs=max_matvecs, initial=plain)
    return _counted(est, *operators), choice


def _counted(est: TraceEstimate, *operators) -> TraceEstimate:
    """The estimate with ``n_matvecs`` the products the operators actually spent."""
    return replace(est, n_matvecs=sum(op.n_matvecs for op in operators))


def _spread(rows: list[list[float]]) -> float:
    totals = [math.fsum(row) for row in rows]
    return statistics.stdev(totals) if len(totals) > 1 else math.inf


def batch_traces(setup: CurvatureSetup, batch_size: int, **options) -> list[TraceEstimate]:
    """Tr(A^(b)) with per-layer blocks for every consecutive mini-batch b of ``batch_size``.

    Each mini-batch's estimate is a computation of its own (its own operator, probes drawn
    afresh from the seed): in a distributed run each rank estimates its own mini-batches
    (unsharded, :func:`~genmeasures.curvature.distributed.map_batches`), and the estimates
    are gathered in mini-batch order.
    """

    def trace_of(batch) -> TraceEstimate:
        return estimate_trace(setup, [batch], **options)

    return distributed.map_batches(trace_of, setup.regroup(batch_size))


def _reports_layer_set(function):
    """Add extras ``n_layers`` and ``n_parameters``: the size of the operator, so a table
    says which layer set was used (compare with PyHessian, whose operator is every parameter).
    """

    @functools.wraps(function)
    def measure(ctx: MeasureContext, **options):
        result = function(ctx, **options)
        with warnings.catch_warnings():  # (the measure itself already noted what it left out)
            warnings.simplefilter("ignore")
            layers = _layers_for(_uses_pyhessian(options), options["layers"])
            names = select_layers(ctx.weights, layers, model=ctx.model)
        counts = {
            "n_layers": float(len(names)),
            "n_parameters": float(sum(ctx.weights[n].numel() for n in names)),
        }
        return replace(result, extras={**result.extras, **counts})

    return measure


@register_measure(
    "hessian_trace",
    summary="Tr(H) of the mean loss (exact where structure allows, else Hutchinson/Hutch++) "
    "with stderr; per-layer Tr(H_ii)",
    paper="Zhang, Li & Ju, TMLR 2024 (NSO); Hutchinson 1989; Meyer et al. 2021 (Hutch++)",
    needs=CURVATURE_NEEDS,
    stochastic=True,
    # 2: estimator=auto by default (exact on affine layers); 3: the control variate on the
    # other layers, tolerance relative to the whole trace, backend split into products and
    # estimator (pyhessian), curvature=ggn; 4: auto's deflation candidate, the probe on 8
    # samples, Gauss-Newton traces from layer inputs and output gradients (rounding)
    version=4,
)
@_reports_layer_set
def hessian_trace(
    ctx: MeasureContext,
    *,
    curvature: CurvatureOption = "hessian",
    estimator: Annotated[Estimator, ESTIMATOR_HELP] = "auto",
    rtol: Annotated[float, NonNegative(), "stop at this relative standard error"] = 0.01,
    max_matvecs: Annotated[int, Positive(), "budget of Hessian-vector products (per batch)"] = 200,
    reduce: Annotated[
        Literal["full", "max_batch", "mean_batch"],
        "full: the whole sample; max_batch/mean_batch: per mini-batch, then max or mean "
        "(the NSO reference script)",
    ] = "full",
    batch_size: Annotated[int, Positive(), "mini-batch size for reduce=max_batch/mean_batch"] = 32,
    products: ProductsOption = "auto",
    layers: LayersOption = None,
) -> MeasureResult:
    """Trace of the Hessian (or Gauss-Newton matrix), Tr(H), and per layer Tr(H_ii).

    ``estimator=auto`` (see ESTIMATOR_HELP): exact on layers the outputs are affine in, a
    control variate, a deflation or Hutchinson on the rest; extras ``exact_route`` (1: the
    exact Gauss-Newton traces were used), ``control_variate`` (1: Hutchinson ran on H - G)
    and ``deflation`` (the size of the deflated subspace, 0 for none).
    Hutchinson: Rademacher probes g, Tr(H) = E[g^T H g], per layer E[g_i^T (Hg)_i]; stops when
    stderr <= rtol * |Tr| or after ``max_matvecs`` products (then warns). Hutch++ deflates a
    sketched top subspace first. ``exact`` sums e_k^T H e_k (stderr NaN).
    ``reduce=max_batch`` is the reference-code variant: the trace of each mini-batch's mean
    loss, maximum over mini-batches (``mean_batch``: their mean).
    """
    pyhessian = estimator == "pyhessian"
    if pyhessian and (curvature != "hessian" or products != "auto"):
        raise OptionError("estimator=pyhessian runs PyHessian's own products of the Hessian")
    with curvature_setup(ctx, _layers_for(pyhessian, layers)) as setup:
        if pyhessian:
            return _pyhessian_trace(setup, rtol=rtol, max_matvecs=max_matvecs, reduce=reduce)
        options: dict[str, Any] = {
            "estimator": estimator,
            "rtol": rtol,
            "max_matvecs": max_matvecs,
            "products": products,
            "curvature": curvature,
        }
        if reduce == "full":
            est = estimate_trace(setup, setup.batches, **options)
            return _trace_result(setup, est, est.n_matvecs)
        estimates = batch_traces(setup, batch_size, **options)
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
        extras={"converged": float(est.converged), **est.choices},
        n_matvecs=cost,
    )


def _pyhessian():
    """genmeasures.curvature.pyhessian_backend, which needs the optional extra."""
    try:
        from genmeasures.curvature import pyhessian_backend
    except ImportError as exc:
        if getattr(exc, "name", "") not in ("pyhessian", "pyhessian.utils"):
            raise
        raise OptionError(
            "PyHessian's algorithms need the pyhessian package: "
            "pip install 'genmeasures[pyhessian]'"
        ) from None
    return pyhessian_backend


def _pyhessian_trace(setup: CurvatureSetup, *, rtol, max_matvecs, reduce) -> MeasureResult:
    pyhessian_trace = _pyhessian().pyhessian_trace

    if reduce != "full":
        raise OptionError("estimator=pyhessian supports reduce=full only")
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
    # the rounding floor 32 eps ||H||, which also stops a run whose error has reached it;
    # 4: backend split into products and algorithm (pyhessian), curvature=ggn
    version=4,
)
@_reports_layer_set
def hessian_eigenvalue(
    ctx: MeasureContext,
    *,
    curvature: CurvatureOption = "hessian",
    k: Annotated[int, Positive(), "how many eigenvalues"] = 1,
    which: Annotated[Literal["largest", "smallest"], "algebraically largest or smallest"] = (
        "largest"
    ),
    per_layer: Annotated[bool, "also the top eigenvalue of each layer's block H_ii"] = False,
    rtol: Annotated[
        float, NonNegative(), "stop when each eigenvalue's error <= rtol * |eigenvalue|"
    ] = 1e-4,
    max_matvecs: Annotated[
        int, Positive(), "budget of Hessian-vector products (per operator)"
    ] = 100,
    stop: Annotated[
        Literal["value", "residual"],
        "error judged by: the gap-refined estimate r^2/gap, or the rigorous residual r",
    ] = "value",
    algorithm: Annotated[
        Literal["lanczos", "pyhessian"],
        "lanczos (with error bounds), or PyHessian's own power iteration and stopping rule "
        "(all parameters unless layers is given)",
    ] = "lanczos",
    products: ProductsOption = "auto",
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
    pyhessian = algorithm == "pyhessian"
    if pyhessian and (curvature != "hessian" or products != "auto"):
        raise OptionError("algorithm=pyhessian runs PyHessian's own products of the Hessian")
    if pyhessian and stop != "value":
        raise OptionError("algorithm=pyhessian stops by its own rule; stop applies to lanczos")
    with curvature_setup(ctx, _layers_for(pyhessian, layers)) as setup:
        if pyhessian:
            return _pyhessian_eigenvalues(
                setup, k=k, which=which, per_layer=per_layer, rtol=rtol, max_matvecs=max_matvecs
            )

        def lanczos(names, count):
            op = make_operator(
                curvature,
                setup.model,
                names,
                setup.batches,
                ctx.loss,
                products=products,
                check=False,
            )
            return lanczos_eigenvalues(
                op,
                count,
                which=which,
                rtol=rtol,
                max_matvecs=max_matvecs,
                stop=stop,
                generator=setup.generator(),
            )

        est = lanczos(setup.names, k)
        cost = est.n_matvecs
        rows = []
        if per_layer:
            for name in setup.names:
                layer_est = lanczos([name], 1)
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
    pyhessian_eigenvalues = _pyhessian().pyhessian_eigenvalues

    if which != "largest" or per_layer:
        raise OptionError("algorithm=pyhessian supports which=largest without per_layer only")
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
    # 2: estimator=auto by default; 3: auto's control variate, backend -> products; 4: auto's
    # deflation candidate (see hessian_trace)
    version=4,
)
def pacbayes_trace_bound(
    ctx: MeasureContext,
    *,
    batch_size: Annotated[int, Positive(), "mini-batch size of the per-batch traces"] = 32,
    estimator: Annotated[
        Literal["auto", "hutchinson", "hutchpp", "exact"],
        "per-batch trace estimator (see hessian_trace)",
    ] = "auto",
    rtol: Annotated[float, NonNegative(), "relative stderr target of each per-batch trace"] = 0.05,
    max_matvecs: Annotated[int, Positive(), "budget of Hessian-vector products per batch"] = 100,
    products: ProductsOption = "auto",
    layers: LayersOption = None,
) -> MeasureResult:
    """C * sqrt( (sum_i max_b Tr(H_ii^(b))) * (sum_i ||v_i||_F^2) / n ).

    C: the largest per-sample loss over the sample; Tr(H_ii^(b)): the trace of layer i's block
    of the Hessian of mini-batch b's mean loss, maximum over mini-batches for each layer
    separately; v_i = W_i - W_i^(0); n = training-set size. Per-layer rows hold
    max_b Tr(H_ii^(b)). Negative trace sums are clipped at 0 before the square root.
    """
    with curvature_setup(ctx, layers) as setup:
        estimates = batch_traces(
            setup,
            batch_size,
            estimator=estimator,
            rtol=rtol,
            max_matvecs=max_matvecs,
            products=products,
        )
        worst = [max(e.blocks[i] for e in estimates) for i in range(len(setup.names))]
        squared_distance = math.fsum(
            float((v**2).sum()) for v in displacements(ctx, layers).values()
        )
        c = max_sample_loss(setup)
        trace_sum = math.fsum(worst)
        assert ctx.n_train is not None  # in the measure's needs
        value = c * math.sqrt(max(trace_sum, 0.0) * squared_distance / ctx.n_train)
        return MeasureResult(
            value=value,
            layers=tuple(LayerValue(n, t) for n, t in zip(setup.names, worst, strict=True)),
            extras={"max_loss": c, "trace_sum": trace_sum, "squared_distance": squared_distance},
            n_matvecs=sum(e.n_matvecs for e in estimates),
        )


def _uses_pyhessian(options) -> bool:
    return options.get("estimator") == "pyhessian" or options.get("algorithm") == "pyhessian"


def _layers_for(pyhessian: bool, layers: LayerPattern) -> LayerPattern:
    """PyHessian's operator is the Hessian in every parameter of the model: with its
    algorithms and no ``layers`` the layers are all of them (an explicit subset is
    honoured: the adapted PyHessian differentiates the parameters it is given)."""
    if pyhessian and layers is None:
        return "all"
    return layers
