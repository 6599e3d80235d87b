"""Weight-space measures: how far fine-tuning moved each layer from its initialization.

v_i = vec(W_i - W_i^(0)) for the selected layers i = 1..L (see :mod:`.layers`). All sums are
taken in float64.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch

from genmeasures.measures.context import MeasureContext
from genmeasures.measures.layers import LayerPattern, select_layers
from genmeasures.measures.registry import register_measure
from genmeasures.measures.results import LayerValue, MeasureResult

LayersOption = Annotated[
    str | list[str] | None,
    "name glob(s) of the tensors to use, e.g. 'layer4.*.weight'; 'all': every parameter; "
    "default: Conv/Linear weights",
]


def displacements(ctx: MeasureContext, layers: LayerPattern) -> dict[str, torch.Tensor]:
    """W_i - W_i^(0) in float64 for each selected layer, in network order."""
    assert ctx.init is not None
    return {
        name: ctx.weights[name].detach().double().cpu() - ctx.init[name].detach().double().cpu()
        for name in select_layers(ctx.weights, layers)
    }


def frobenius_norm(tensor: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(tensor))


def mars_norm(tensor: torch.Tensor) -> float:
    """Maximum absolute row sum: reshape to (out_units, -1), max over rows of the row's L1 norm.

    The infinity-operator norm used for MARS (Gouk et al., ICLR 2021).
    """
    rows = tensor.reshape(tensor.shape[0] if tensor.ndim else 1, -1)
    return float(rows.abs().sum(dim=1).max())


@register_measure(
    "distance_from_init",
    summary="||W - W0|| over the selected layers (Frobenius, or MARS max-row-L1 per layer)",
    paper="Li & Zhang, NeurIPS 2021; Gouk et al., ICLR 2021 (MARS)",
    needs=("init",),
)
def distance_from_init(
    ctx: MeasureContext,
    *,
    norm: Annotated[
        Literal["frobenius", "mars"],
        "frobenius: sqrt(sum_i ||v_i||_F^2); mars: sum_i max-row-L1(v_i)",
    ] = "frobenius",
    layers: LayersOption = None,
) -> MeasureResult:
    """Distance from initialization.

    Frobenius (default): sqrt(sum_i ||v_i||_F^2), with extra ``sum_layers`` = sum_i ||v_i||_F
    (the form entering layer-wise bounds). MARS: per layer the maximum over output units of the
    row's L1 norm; the whole-model value is their sum, with extra ``max_layer``.
    Per-layer rows carry each layer's norm.
    """
    per_layer = {
        name: (frobenius_norm(v) if norm == "frobenius" else mars_norm(v))
        for name, v in displacements(ctx, layers).items()
    }
    values = list(per_layer.values())
    if norm == "frobenius":
        value = math.sqrt(math.fsum(d * d for d in values))
        extras = {"sum_layers": math.fsum(values)}
    else:
        value = math.fsum(values)
        extras = {"max_layer": max(values)}
    return MeasureResult(
        value=value,
        layers=tuple(LayerValue(name, d) for name, d in per_layer.items()),
        extras=extras,
    )


@register_measure(
    "layerwise_distance",
    summary="per-layer ||W_i - W0_i||_F and relative distance, in network order; depth slope",
    paper="Li & Zhang, NeurIPS 2021",
    needs=("init",),
)
def layerwise_distance(ctx: MeasureContext, *, layers: LayersOption = None) -> MeasureResult:
    """Layer-wise distance from initialization (Li & Zhang, NeurIPS 2021).

    Per layer: ||v_i||_F and (extra ``relative``) ||v_i||_F / ||W_i^(0)||_F, NaN when the init
    layer is zero. Whole model: sum_i ||v_i||_F, with extra ``depth_slope``, the least-squares
    slope of log ||v_i||_F against the layer's position 1..L (layers that did not move are
    left out of the fit; NaN with fewer than two moved layers). Fine-tuning typically moves
    top layers further, giving a positive slope.
    """
    assert ctx.init is not None
    rows = []
    for name, v in displacements(ctx, layers).items():
        distance = frobenius_norm(v)
        init_norm = frobenius_norm(ctx.init[name].double())
        relative = distance / init_norm if init_norm > 0 else math.nan
        rows.append(LayerValue(name, distance, extras={"relative": relative}))
    return MeasureResult(
        value=math.fsum(row.value for row in rows),
        layers=tuple(rows),
        extras={"depth_slope": _log_slope([row.value for row in rows])},
    )


def _log_slope(values: list[float]) -> float:
    points = [(depth, math.log(v)) for depth, v in enumerate(values, start=1) if v > 0]
    if len(points) < 2:
        return math.nan
    mean_x = math.fsum(x for x, _ in points) / len(points)
    mean_y = math.fsum(y for _, y in points) / len(points)
    sxx = math.fsum((x - mean_x) ** 2 for x, _ in points)
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx
