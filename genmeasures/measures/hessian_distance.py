"""The Hessian-based distance and generalization bound of Ju, Li & Zhang (ICML 2022).

Theorem 2.1: with v_i = vec(W_i - W_i^(0)) and H_i^+(x, y) the positive part of the Hessian
block of layer i for one sample's loss,

    calH_i = max_{(x, y) in S} v_i^T H_i^+(x, y) v_i,
    hessian_distance = sum_i sqrt(calH_i),
    hessian_bound    = sqrt(C) * sum_i sqrt(calH_i) / sqrt(n),

C the largest per-sample loss over S and n the training-set size. The options reproduce the
variants people compute; ``preset=published`` is the authors' script
(VirtuosoResearch/Robust-Fine-Tuning, ``compute_hessian_measures.py`` with
``utils/hessian.py``): their layers (a ResNet's Conv2d modules named ``conv*`` plus the head,
so no downsample convolutions; see :func:`~genmeasures.measures.layers.published_layer_names`),
the raw (not positive part) quadratic form of the Hessian over those layers jointly,
<(H v)_i, v_i>, the maximum over mini-batches of 4 of the batch-mean quantity, the new head's
displacement from zero, and C the largest mini-batch mean loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch

from genmeasures.constraints import Positive
from genmeasures.curvature import distributed
from genmeasures.curvature.ggn import convex_in_outputs
from genmeasures.curvature.persample import bilinear_ggn, bilinear_hessian, positive_part_form
from genmeasures.curvature.structure import PROBE_SAMPLES, BlockStructure, probe_blocks
from genmeasures.errors import OptionError
from genmeasures.measures.context import MeasureContext
from genmeasures.measures.curvature_support import (
    CurvatureSetup,
    curvature_setup,
    max_batch_mean_loss,
    max_sample_loss,
)
from genmeasures.measures.distance import LayersOption
from genmeasures.measures.layers import published_layer_names
from genmeasures.measures.registry import register_measure
from genmeasures.measures.results import LayerValue, MeasureResult

PUBLISHED = {
    "curvature": "hessian",
    "blocks": "joint",
    "reduce": "max_batch",
    "batch_size": 4,
    "head_reference": "zero",
    "max_loss": "batch",
}
DEFAULTS = {
    "curvature": "psd",
    "blocks": "layer",
    "reduce": "max_sample",
    "batch_size": 4,
    "head_reference": "init",
    "max_loss": "sample",
}


@dataclass(frozen=True)
class LayerCurvatures:
    """calH_i per layer (in network order), the largest sample loss C, the cost, and each
    layer's route (``affine``: the Gauss-Newton form; ``general``)."""

    values: Mapping[str, float]
    max_loss: float
    n_products: int
    routes: Mapping[str, str]


def layer_curvatures(
    ctx: MeasureContext,
    *,
    curvature: str,
    blocks: str,
    reduce: str,
    batch_size: int,
    head_reference: str,
    max_loss: str,
    layers: Any,
    exact_max_dim: int,
    quadrature_steps: int,
    route: str = "auto",
) -> LayerCurvatures:
    """calH_i for every selected layer, reduced over the sample as ``reduce`` says.

    Per sample j and layer i the quantity is q_ij = v_i^T A_i(x_j) v_i with A the positive
    part of the block Hessian (psd), the block Hessian (hessian) or the block Gauss-Newton
    matrix (ggn); with ``blocks=joint`` it is <(A(x_j) v)_i, v_i> over the whole matrix.
    ``max_sample``: max_j q_ij; ``mean``: mean_j q_ij; ``max_batch``: the maximum over
    consecutive mini-batches of ``batch_size`` of the mini-batch mean of q_ij. C is the
    largest per-sample loss (``max_loss=sample``) or the largest mini-batch mean loss
    (``batch``, mini-batches of ``batch_size``).

    ``route=auto`` with psd blocks: a block in which the outputs are affine (decided by
    :func:`~genmeasures.curvature.structure.probe_blocks`) has H_ii(x) = J_i^T Lambda J_i,
    PSD for a loss convex in the outputs (cross-entropy; any other loss is checked sample by
    sample), so v_i^T H_i^+(x) v_i is the Gauss-Newton form, one forward-mode pass for all
    samples; the other blocks take the Lanczos quadrature (``route=general``
    forces it everywhere).
    """
    if curvature == "psd" and blocks == "joint":
        raise OptionError("curvature=psd is defined per layer block; use blocks=layer")
    if curvature == "psd" and reduce == "max_batch":
        raise OptionError(
            "reduce=max_batch is the reference code's quantity, defined for curvature=hessian "
            "or ggn; with psd use reduce=max_sample or mean"
        )
    if ctx.init is None:
        raise OptionError("hessian_distance needs the init weights")
    with curvature_setup(ctx, layers) as setup:
        direction = _displacements(setup, head_reference)
        structure: dict[str, BlockStructure] = {}
        # The Gauss-Newton form is the positive part only for a loss convex in the outputs
        # (cross-entropy; any other loss is checked on every sample's Lambda).
        if curvature == "psd" and route == "auto":
            fmodel = setup.functional()
            if convex_in_outputs(fmodel, setup.batches):
                structure = probe_blocks(fmodel, setup.batches, direction, seed=ctx.seed)
        affine = {name for name, block in structure.items() if block.affine}
        per_sample, products = _per_sample_forms(
            setup, direction, curvature, blocks, exact_max_dim, quadrature_steps, affine
        )
        # The probe: per block two second-order passes over its first samples (one random
        # direction and v_i), each counted like one product per sample.
        samples = sum(len(targets) for _, targets in setup.batches)
        products += 2 * min(samples, PROBE_SAMPLES) * len(structure)
        values = {name: _reduce(q, reduce, batch_size) for name, q in per_sample.items()}
        largest = (
            max_sample_loss(setup)
            if max_loss == "sample"
            else max_batch_mean_loss(setup, batch_size)
        )
        routes = {n: "affine" if n in affine else "general" for n in setup.names}
        return LayerCurvatures(values, largest, products, routes)


def _displacements(setup: CurvatureSetup, head_reference: str) -> dict[str, torch.Tensor]:
    ctx = setup.ctx
    assert ctx.init is not None  # layer_curvatures refuses a context without it
    init = ctx.init
    head = _head_parameters(setup) if head_reference == "zero" else set()
    return {
        name: (
            ctx.weights[name].to(ctx.device) - (0 if name in head else init[name].to(ctx.device))
        ).to(dict(setup.model.named_parameters())[name].dtype)
        for name in setup.names
    }


def _head_parameters(setup: CurvatureSetup) -> set[str]:
    from genmeasures.models import head_name

    prefix = head_name(setup.model) + "."
    return {name for name in setup.names if name.startswith(prefix)}


def _per_sample_forms(
    setup: CurvatureSetup,
    direction: dict[str, torch.Tensor],
    curvature: str,
    blocks: str,
    exact_max_dim: int,
    quadrature_steps: int,
    affine: set[str],
) -> tuple[dict[str, torch.Tensor], int]:
    names = setup.names
    joint = setup.functional() if blocks == "joint" else None
    singles = {name: setup.functional([name]) for name in names}
    full_direction = tuple(direction[n] for n in names)

    def batch_forms(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[dict, int]:
        """q_ij for every layer i and sample j of one batch, and the products spent."""
        inputs, targets = batch
        forms: dict[str, torch.Tensor] = {}
        products = 0
        for index, name in enumerate(names):
            v = direction[name]
            if curvature == "psd" and name in affine:
                # H_ii(x) is its own Gauss-Newton block, PSD: its positive part is itself.
                values = bilinear_ggn(singles[name], inputs, targets, (v,), (v,))
                products += len(targets)
            elif curvature == "psd":
                values, spent = positive_part_form(
                    singles[name],
                    inputs,
                    targets,
                    (v,),
                    exact_max_dim=exact_max_dim,
                    steps=quadrature_steps,
                )
                products += spent
            else:
                bilinear = bilinear_hessian if curvature == "hessian" else bilinear_ggn
                if joint is None:
                    values = bilinear(singles[name], inputs, targets, (v,), (v,))
                else:
                    only_i = tuple(
                        t if i == index else torch.zeros_like(t)
                        for i, t in enumerate(full_direction)
                    )
                    values = bilinear(joint, inputs, targets, only_i, full_direction)
                products += len(targets)
            forms[name] = values.double()
        return forms, products

    # Per batch, each a pure function of its batch: in a distributed run every rank maps its
    # own batches and the per-sample values are gathered in sample order, so the maximum (or
    # mean) below is taken over the same tensor as in one process.
    per_batch = distributed.map_batches(batch_forms, setup.batches)
    return {name: torch.cat([forms[name] for forms, _ in per_batch]) for name in names}, sum(
        products for _, products in per_batch
    )


def _reduce(values: torch.Tensor, reduce: str, batch_size: int) -> float:
    if reduce == "max_sample":
        return float(values.max())
    if reduce == "mean":
        return float(values.mean())
    means = [float(chunk.mean()) for chunk in values.split(batch_size)]
    return max(means)


def _resolve_preset(preset: str, chosen: Mapping[str, Any]) -> dict[str, Any]:
    if preset == "none":
        return dict(chosen)
    changed = [key for key, value in chosen.items() if value != DEFAULTS[key]]
    if changed:
        raise OptionError(
            f"preset={preset} fixes {', '.join(PUBLISHED)}; do not also set {changed[0]}"
        )
    return dict(PUBLISHED)


DistanceLayersOption = Annotated[
    LayersOption,
    "; 'published': the authors' layers (Conv2d named conv* + head; transformers: every linear "
    "map but the embeddings)",
]
CurvatureOption = Annotated[
    Literal["psd", "hessian", "ggn"],
    "psd: positive part of the per-sample block (paper); hessian: raw quadratic form, clipped "
    "at 0 before the square root (reference code); ggn: Gauss-Newton",
]
BlocksOption = Annotated[
    Literal["layer", "joint"],
    "layer: block-diagonal H_ii (paper); joint: <(H v)_i, v_i> incl. cross-layer terms",
]
ReduceOption = Annotated[
    Literal["max_sample", "max_batch", "mean"],
    "max over samples (paper), max over mini-batches of batch-mean values (reference), mean",
]
HeadOption = Annotated[
    Literal["init", "zero"],
    "displacement of the new head from its init (default) or from zero (reference code)",
]
MaxLossOption = Annotated[
    Literal["sample", "batch"],
    "C: the largest per-sample loss (paper) or the largest mini-batch mean loss (reference)",
]
PresetOption = Annotated[
    Literal["none", "published"],
    "published: the authors' script: curvature=hessian, blocks=joint, reduce=max_batch, "
    "batch_size=4, head_reference=zero, max_loss=batch and their layers (Conv2d named conv* "
    "+ head; transformers: every linear map but the embeddings)",
]


def _make_measure(as_bound: bool):
    """The measure function of hessian_distance (as_bound=False) or hessian_bound (True)."""

    def measure(
        ctx: MeasureContext,
        *,
        curvature: CurvatureOption = "psd",
        blocks: BlocksOption = "layer",
        reduce: ReduceOption = "max_sample",
        batch_size: Annotated[int, Positive(), "mini-batch size for reduce=max_batch"] = 4,
        head_reference: HeadOption = "init",
        max_loss: MaxLossOption = "sample",
        preset: PresetOption = "none",
        exact_max_dim: Annotated[
            int, Positive(), "psd: exact eigendecomposition up to this size"
        ] = 512,
        quadrature_steps: Annotated[int, Positive(), "psd: Lanczos quadrature steps above it"] = 30,
        route: Annotated[
            Literal["auto", "general"],
            "auto: the Gauss-Newton form on blocks the outputs are affine in (probed), "
            "general: Lanczos quadrature on every psd block",
        ] = "auto",
        layers: DistanceLayersOption = None,
    ) -> MeasureResult:
        chosen = {
            "curvature": curvature,
            "blocks": blocks,
            "reduce": reduce,
            "batch_size": batch_size,
            "head_reference": head_reference,
            "max_loss": max_loss,
        }
        resolved = _resolve_preset(preset, chosen)
        if preset == "published":
            if layers is not None:
                raise OptionError("preset=published fixes the layers; do not also set layers")
            layers = "published"
        # The authors' rule, named in the table (a list would differ by architecture and split
        # one measure into several columns); the per-layer rows list the layers.
        layer_names = published_layer_names(ctx.model) if layers == "published" else layers
        settings = {
            **resolved,
            "layers": layer_names,
            "exact_max_dim": exact_max_dim,
            "quadrature_steps": quadrature_steps,
            "route": route,
        }
        # hessian_distance and hessian_bound with the same options share one computation.
        memo_key = ("layer_curvatures", repr(sorted(settings.items())))
        if memo_key not in ctx.memo:
            ctx.memo[memo_key] = layer_curvatures(ctx, **settings)
        curvatures = ctx.memo[memo_key]
        distance = math.fsum(math.sqrt(max(v, 0.0)) for v in curvatures.values.values())
        scale = math.sqrt(curvatures.max_loss / ctx.n_train) if as_bound else 1.0
        extras = {"max_loss": curvatures.max_loss}
        if as_bound:
            extras["hessian_distance"] = distance
        rows = tuple(
            LayerValue(
                name,
                value,
                extras={
                    "sqrt_scaled": scale * math.sqrt(max(value, 0.0)),
                    "affine": float(curvatures.routes[name] == "affine"),
                },
            )
            for name, value in curvatures.values.items()
        )
        # The table's options column shows what was computed, a preset's values included.
        computed = {**resolved, "layers": layers} if preset != "none" else {}
        return MeasureResult(
            value=scale * distance,
            layers=rows,
            extras=extras,
            n_matvecs=curvatures.n_products,
            options=computed,
        )

    return measure


_distance_measure = _make_measure(as_bound=False)
_distance_measure.__doc__ = """The Hessian distance of Ju, Li & Zhang (ICML 2022), Theorem 2.1.

    sum_i sqrt(calH_i). Per-layer rows hold calH_i (extra ``sqrt_scaled`` = sqrt(calH_i)).
    ``n_matvecs`` counts per-sample second-order products: one per sample and layer on the
    hessian/ggn routes and on psd blocks the outputs are affine in (forward mode, all samples
    of a batch at once; plus two per probe sample, at most ``PROBE_SAMPLES`` = 8, and layer
    for the probe that decides it); on other psd blocks the block's dimension per sample (a
    block of at most ``exact_max_dim`` parameters, formed and decomposed) or up to
    ``quadrature_steps`` per sample and layer (the Lanczos quadrature).
    Per-layer rows ``hessian_distance.affine`` say which route each layer took (1: the
    Gauss-Newton form, 0: the quadrature).
    """
hessian_distance = register_measure(
    "hessian_distance",
    summary="sum_i sqrt(max_(x,y) v_i^T H_i^+(x,y) v_i), v_i = W_i - W0_i (Theorem 2.1)",
    paper="Ju, Li & Zhang, ICML 2022",
    needs=("init", "data", "model", "curvature"),
    # 2: affine blocks by the Gauss-Newton form (same value, other cost), routes; 3: the
    # structure probe on 8 samples (same routes, other cost)
    version=3,
)(_distance_measure)

_bound_measure = _make_measure(as_bound=True)
_bound_measure.__doc__ = """sqrt(C) * sum_i sqrt(calH_i) / sqrt(n) (Ju, Li & Zhang, ICML 2022).

    The term the paper compares with the observed generalization gap: C the largest
    per-sample loss over S (``max_loss=sample``, the paper's definition; the authors' scripts
    take the largest mini-batch mean loss, ``max_loss=batch``), n the training-set size. Extras:
    ``hessian_distance`` and ``max_loss``; per-layer rows hold calH_i with extra
    ``sqrt_scaled`` = sqrt(C calH_i / n), the layer's share of the bound.
    """
hessian_bound = register_measure(
    "hessian_bound",
    summary="sqrt(C) sum_i sqrt(calH_i) / sqrt(n): the generalization bound's gap term",
    paper="Ju, Li & Zhang, ICML 2022 (Theorem 2.1)",
    needs=("init", "data", "model", "curvature", "n_train"),
    version=3,  # as hessian_distance
)(_bound_measure)
