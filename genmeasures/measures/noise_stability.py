"""Noise stability: how much the empirical risk rises under Gaussian weight noise.

Li & Zhang (NeurIPS 2021) and Ju, Li & Zhang (ICML 2022) bound the generalization gap of
fine-tuning through E_U[L_S(W + U)] - L_S(W); for small noise it is about (sigma^2/2) Tr(H).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

import torch

from genmeasures.constraints import AtLeast, Positive
from genmeasures.curvature.functional import FunctionalModel, check_loss, evaluation_mode
from genmeasures.measures.context import MeasureContext
from genmeasures.measures.distance import LayersOption
from genmeasures.measures.layers import select_layers
from genmeasures.measures.registry import register_measure
from genmeasures.measures.results import LayerValue, MeasureResult

Params = tuple[torch.Tensor, ...]


@register_measure(
    "noise_stability",
    summary="E_U[L_S(W+U)] - L_S(W) under Gaussian noise U on the selected layers (R draws)",
    paper="Li & Zhang, NeurIPS 2021; Ju, Li & Zhang, ICML 2022",
    needs=("data", "model"),
    stochastic=True,
)
def noise_stability(
    ctx: MeasureContext,
    *,
    sigma: Annotated[float, Positive(), "noise standard deviation; see scale"] = 0.01,
    draws: Annotated[int, AtLeast(1), "number R of noise draws"] = 20,
    sided: Annotated[
        Literal["one", "two"],
        "one: E[L(W+U)] - L(W); two: E[(L(W+U) + L(W-U))/2] - L(W)",
    ] = "one",
    scale: Annotated[
        Literal["absolute", "relative"],
        "absolute: sigma_i = sigma; relative: sigma_i = sigma * ||W_i||_F / sqrt(numel(W_i))",
    ] = "absolute",
    per_layer: Annotated[
        bool, "also the noise stability of each layer alone (costs L times more passes)"
    ] = False,
    layers: LayersOption = None,
) -> MeasureResult:
    """Noise stability of the empirical risk (Li & Zhang 2021; Ju et al. 2022).

    U = (U_1, ..., U_L) with U_i ~ N(0, sigma_i^2 I) on the selected layers; sigma_i = sigma
    (``scale=absolute``) or sigma * ||W_i||_F / sqrt(d_i) with d_i = numel(W_i)
    (``scale=relative``). L_S is the sample-weighted mean per-sample loss over the whole
    evaluation set, computed with the model in eval mode; perturbed weights are passed
    functionally, so the model's parameters, buffers and train/eval flags are left as found.

    For draw r = 1..R the per-draw difference is d_r = L_S(W + U^(r)) - L_S(W) (one-sided) or
    d_r = (L_S(W + U^(r)) + L_S(W - U^(r)))/2 - L_S(W) (two-sided). The value is mean_r d_r,
    the stderr std(d_r, ddof=1) / sqrt(R) (NaN when R = 1).

    Noise (reproducible given ``ctx.seed``, identical on CPU and GPU): one CPU
    ``g = torch.Generator().manual_seed(ctx.seed)``; for r = 1..R, for each selected layer i in
    network (state-dict) order, ``U_i = sigma_i * torch.randn(W_i.shape, generator=g,
    dtype=W_i.dtype)``, then moved to the parameter's device. The two-sided measure uses the
    same U with a minus sign (no extra draws).

    ``per_layer``: one row per layer i, the noise stability with noise on layer i only, using
    the U_i^(r) of the same joint draws (common random numbers), with its stderr over draws.

    Extras: ``base_loss`` = L_S(W); ``forward_passes``, the number of full-data loss
    evaluations (1 + R * sides * (1 + L if per_layer else 1)). All points of one draw are
    evaluated in the same pass over the data. ``n_matvecs`` is 0. A non-finite loss at the
    checkpoint raises MeasureError; one at a perturbed point (sigma too large) is reported as
    a non-finite value, not raised.
    """
    assert ctx.data is not None
    model = ctx.model
    names = select_layers(ctx.weights, layers, model=model)
    fmodel = FunctionalModel.create(model, names, ctx.loss)
    base = fmodel.params
    sigmas = [_layer_sigma(sigma, p, scale) for p in base]
    signs = (1.0,) if sided == "one" else (1.0, -1.0)
    generator = torch.Generator().manual_seed(ctx.seed)

    with evaluation_mode(model), torch.no_grad():
        (base_total,) = _mean_losses(fmodel, [base], ctx.data.batches(ctx.device), len(ctx.data))
        check_loss(base_total, "noise_stability: L_S(W) on the evaluation data")
        base_loss = float(base_total)
        passes = 1
        joint: list[float] = []
        by_layer: list[list[float]] = [[] for _ in names]
        for _ in range(draws):
            noise = [
                s * torch.randn(p.shape, generator=generator, dtype=p.dtype, device="cpu")
                for s, p in zip(sigmas, base, strict=True)
            ]
            noise = [u.to(p.device) for u, p in zip(noise, base, strict=True)]
            points = [
                tuple(p + sign * u for p, u in zip(base, noise, strict=True)) for sign in signs
            ]
            if per_layer:
                points += [
                    _replace(base, i, base[i] + sign * noise[i])
                    for i in range(len(names))
                    for sign in signs
                ]
            totals = _mean_losses(fmodel, points, ctx.data.batches(ctx.device), len(ctx.data))
            passes += len(points)
            values = [float(t) for t in totals]
            joint.append(_mean(values[: len(signs)]) - base_loss)
            for i in range(len(names) if per_layer else 0):
                start = len(signs) * (1 + i)
                by_layer[i].append(_mean(values[start : start + len(signs)]) - base_loss)

    value, stderr = _mean_and_stderr(joint)
    rows: tuple[LayerValue, ...] = ()
    if per_layer:
        rows = tuple(
            LayerValue(name, *_mean_and_stderr(diffs), extras={"sigma": s})
            for name, diffs, s in zip(names, by_layer, sigmas, strict=True)
        )
    return MeasureResult(
        value=value,
        stderr=stderr,
        layers=rows,
        extras={"base_loss": base_loss, "forward_passes": float(passes)},
        n_matvecs=0,
    )


def _layer_sigma(sigma: float, weight: torch.Tensor, scale: str) -> float:
    if scale == "absolute":
        return sigma
    norm = float(torch.linalg.vector_norm(weight.detach().double()))
    return sigma * norm / math.sqrt(weight.numel())


def _replace(params: Params, index: int, tensor: torch.Tensor) -> Params:
    return (*params[:index], tensor, *params[index + 1 :])


def _mean_losses(
    fmodel: FunctionalModel,
    points: Sequence[Params],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    total: int,
) -> list[torch.Tensor]:
    """L_S at each point, in one pass over the data (float64 sums of per-sample losses / m)."""
    sums: list[torch.Tensor | float] = [0.0] * len(points)
    for inputs, targets in batches:
        for k, params in enumerate(points):
            sums[k] = sums[k] + fmodel.sample_losses(params, inputs, targets).double().sum()
    return [torch.as_tensor(s, dtype=torch.float64) / total for s in sums]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    mean = _mean(values)
    if len(values) < 2:
        return mean, math.nan
    variance = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))
