"""Gradients averaged over random weight perturbations: nso, wp and rwp.

All three compute a step's gradient as a weighted sum of gradients taken at the current
weights W and at randomly perturbed weights W + U (and W - U), restore W exactly (from a saved
copy, not by subtracting U again, which is not exact in floating point) and leave the step to
the optimizer. The noise is drawn from ``state.generator`` on the CPU (one flat vector over
all trainable parameters, in their order and dtype), then moved to their device, so a resumed
run draws the same perturbations.

Normalization running statistics: exactly one forward pass per step updates them, the pass at
W when it is computed (``lam > 0`` / ``alpha > 0``), else the first perturbed pass (at
W + U_1, so that the statistics still follow training when no clean pass runs); every other
pass runs inside :func:`frozen_norm_statistics`.

The helpers here (saving/restoring weights, taking and summing gradients) are shared with
:mod:`.sam`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import nn

from genmeasures.constraints import Interval, Positive
from genmeasures.finetune.algorithm import (
    Algorithm,
    AlgorithmOptions,
    TrainState,
    register_algorithm,
)
from genmeasures.finetune.algorithms._norm_stats import frozen_norm_statistics

# --- shared helpers (also used by sam.py) ----------------------------------------------------


def trainable_parameters(algorithm: Algorithm) -> list[nn.Parameter]:
    return [p for _, p in algorithm.state.trainable()]


def loss_and_gradients(
    algorithm: Algorithm,
    inputs: torch.Tensor,
    targets: Any,
    indices: torch.Tensor,
    params: Sequence[nn.Parameter],
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """The batch loss at the current weights (detached) and its gradient per parameter.

    ``.grad`` is left as it was; a parameter the loss does not depend on gets ``None``.
    The gradient comes from ``backward(inputs=params)`` into emptied ``.grad`` slots rather
    than from ``torch.autograd.grad``, which measured 2-10% slower per pass on CPU
    (ResNet-18, 32x32 inputs).
    """
    kept = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        loss = algorithm.loss_at_current_weights(inputs, targets, indices)
        loss.backward(inputs=list(params))
        grads = [p.grad for p in params]
    finally:
        for p, grad in zip(params, kept, strict=True):
            p.grad = grad
    return loss.detach(), grads


def norm_statistics_context(model: nn.Module, update: bool) -> contextlib.AbstractContextManager:
    """A no-op when this pass may update the running statistics, else a freeze."""
    return contextlib.nullcontext() if update else frozen_norm_statistics(model)


def snapshot(params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


@contextlib.contextmanager
def shifted(
    params: Sequence[nn.Parameter],
    saved: Sequence[torch.Tensor],
    deltas: Sequence[torch.Tensor | None],
    sign: float = 1.0,
) -> Iterator[None]:
    """Weights W + sign * delta inside the block; W copied back (bitwise) from ``saved``.

    One fused (``_foreach``) call each way: on a ResNet the per-tensor Python calls of a
    loop would cost a visible share of a step.
    """
    moved = [(p, d) for p, d in zip(params, deltas, strict=True) if d is not None]
    with torch.no_grad():
        if moved:
            torch._foreach_add_([p for p, _ in moved], [d for _, d in moved], alpha=sign)
    try:
        yield
    finally:
        with torch.no_grad():
            torch._foreach_copy_(list(params), list(saved))


def _at(tensors: Sequence[torch.Tensor | None], indices: list[int]) -> list[torch.Tensor]:
    """``tensors[i]`` for each of ``indices``, which the caller chose where they are set."""
    return [t for i in indices if (t := tensors[i]) is not None]


class GradientSum:
    """sum_i weight_i * gradient_i per parameter, written into ``.grad`` at the end."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        self.params = list(params)
        self.total: list[torch.Tensor | None] = [None] * len(self.params)

    def add(self, grads: Sequence[torch.Tensor | None], weight: float) -> None:
        """Accumulate ``weight * grads``; the gradients (fresh from autograd, owned by the
        caller) are scaled in place, so no temporaries are made."""
        fresh = [i for i, g in enumerate(grads) if g is not None and self.total[i] is None]
        seen = [i for i, g in enumerate(grads) if g is not None and self.total[i] is not None]
        if fresh:
            torch._foreach_mul_(_at(grads, fresh), weight)
            for i in fresh:
                self.total[i] = grads[i]
        if seen:
            torch._foreach_add_(_at(self.total, seen), _at(grads, seen), alpha=weight)

    def write(self) -> None:
        """Add the sum to ``.grad`` (as ``backward`` would); parameters never reached keep
        ``.grad`` as it was (``None`` after ``zero_grad``), so the optimizer skips them."""
        for p, total in zip(self.params, self.total, strict=True):
            if total is None:
                continue
            total = total.to(p.dtype)
            if p.grad is None:
                p.grad = total
            else:
                p.grad.add_(total)


def isotropic_noise(
    params: Sequence[nn.Parameter], std: float, generator: torch.Generator
) -> list[torch.Tensor]:
    """N(0, std^2 I) noise shaped like ``params``: one flat vector over all of them, in
    order, drawn on the CPU from ``generator`` (so the numbers do not depend on the device)
    in the parameters' dtype, moved to their device in one transfer and split into views.

    One draw instead of one per tensor saves a call per tensor; the numbers themselves are
    a perturbation's main cost beyond its passes (about 2 ms per 0.7M on one CPU core).
    """
    dtypes = {p.dtype for p in params}
    if len(dtypes) != 1 or len({p.device for p in params}) != 1:  # one draw per tensor
        return [
            torch.randn(p.shape, generator=generator, dtype=p.dtype).mul_(std).to(p.device)
            for p in params
        ]
    sizes = [p.numel() for p in params]
    flat = torch.empty(sum(sizes), dtype=dtypes.pop())
    flat.normal_(0.0, std, generator=generator)
    flat = flat.to(params[0].device)
    return [part.view_as(p) for part, p in zip(flat.split(sizes), params, strict=True)]


# --- nso / wp / rwp -----------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseSettings:
    """How a perturbation algorithm combines its passes (see :class:`NSO`)."""

    k: int
    lam: float
    two_sided: bool

    def passes(self) -> int:
        clean = 1 if self.lam > 0 else 0
        perturbed = self.k * (2 if self.two_sided else 1) if self.lam < 1 else 0
        return clean + perturbed


@register_algorithm
class NSO(Algorithm):
    """Noise stability optimization (Zhang, Li & Ju, TMLR 2024).

    Each step draws k perturbations U_j ~ N(0, sigma^2 I) over all trainable parameters and
    steps with

        g = lam * grad f(W) + (1 - lam) / (2k) * sum_j [grad f(W + U_j) + grad f(W - U_j)]

    (two-sided), or ``g = lam * grad f(W) + (1 - lam) / k * sum_j grad f(W + U_j)``
    (one-sided). The clean term is skipped when ``lam == 0`` (and the perturbed ones when
    ``lam == 1``), so a step costs 2k passes two-sided, k one-sided, plus one when
    ``lam > 0``. The returned (logged) loss is the loss at W when that pass runs, else the
    mean of the perturbed losses. Running statistics: see the module docstring.
    """

    name = "nso"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        sigma: Annotated[float, Positive(), "noise standard deviation"] = 0.01
        k: Annotated[int, Positive(), "perturbations per step"] = 1
        lam: Annotated[float, Interval(0, 1), "weight of the clean gradient"] = 0.0
        two_sided: Annotated[bool, "also the gradient at W - U"] = True

    def __init__(self, options: Any, state: TrainState) -> None:
        super().__init__(options, state)
        self.settings = self.noise_settings()

    def noise_settings(self) -> NoiseSettings:
        o = self.options
        return NoiseSettings(k=o.k, lam=o.lam, two_sided=o.two_sided)

    def draw_noise(self, params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
        """One perturbation U over ``params`` (isotropic: N(0, sigma^2 I))."""
        return isotropic_noise(params, self.options.sigma, self.state.generator)

    def passes_per_step(self) -> int:
        return self.settings.passes()

    def compute_gradient(
        self, inputs: torch.Tensor, targets: Any, indices: torch.Tensor
    ) -> torch.Tensor:
        s = self.settings
        model = self.state.model
        params = trainable_parameters(self)
        gradient = GradientSum(params)
        clean_loss = None
        if s.lam > 0:
            clean_loss, grads = loss_and_gradients(self, inputs, targets, indices, params)
            gradient.add(grads, s.lam)
        losses: list[torch.Tensor] = []
        if s.lam < 1:
            signs = (1.0, -1.0) if s.two_sided else (1.0,)
            weight = (1 - s.lam) / (s.k * len(signs))
            saved = snapshot(params)
            for _ in range(s.k):
                noise = self.draw_noise(params)
                for sign in signs:
                    update_stats = clean_loss is None and not losses
                    with (
                        norm_statistics_context(model, update_stats),
                        shifted(params, saved, noise, sign),
                    ):
                        loss, grads = loss_and_gradients(self, inputs, targets, indices, params)
                    gradient.add(grads, weight)
                    losses.append(loss)
        gradient.write()
        if clean_loss is not None:
            return clean_loss
        return torch.stack(losses).mean()


@register_algorithm
class WP(NSO):
    """Weight perturbation (the NSO paper's WP baseline): one-sided NSO with one
    perturbation per step and no clean term, g = grad f(W + U), U ~ N(0, sigma^2 I).

    One pass per step; it updates the normalization running statistics.
    """

    name = "wp"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        sigma: Annotated[float, Positive(), "noise standard deviation"] = 0.01

    def noise_settings(self) -> NoiseSettings:
        return NoiseSettings(k=1, lam=0.0, two_sided=False)


def filterwise_noise(p: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """RWP's noise for one parameter tensor.

    A tensor with >= 2 dimensions gets, in each output filter/row ``p[i]``, N(0, s_i^2) noise
    with s_i = sigma * ||p[i]|| (the row flattened over inputs and kernel). A 1-D (or 0-D)
    tensor (bias, normalization scale) gets N(0, s^2) with one s = sigma * (||p|| + 1e-16)
    for the whole vector, as in the authors' code (the 1e-16 keeps a zero bias perturbable).
    """
    noise = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
    weights = p.detach()
    if p.dim() >= 2:
        rows = weights.reshape(p.shape[0], -1).norm(dim=1)
        std = (sigma * rows).reshape(-1, *([1] * (p.dim() - 1)))
    else:
        std = sigma * (weights.norm() + 1e-16)
    return noise.mul_(std)


@register_algorithm
class RWP(NSO):
    """Random weight perturbation (Li et al. 2022, "Efficient generalization improvement
    guided by random weight perturbation"):

        g = alpha * grad f(W) + (1 - alpha) * grad f(W + U),
        U ~ N(0, sigma^2 diag(||W_filter||^2))

    i.e. each output filter/row of a weight tensor gets noise of std sigma * ||that row||,
    and a 1-D parameter std sigma * ||whole vector|| (see :func:`filterwise_noise`). Both
    gradients are taken on the same batch (the authors' code may split it in two). Two passes
    per step (one when alpha is 0 or 1); the clean pass updates the normalization statistics.
    The returned loss is the clean one (the perturbed one when alpha == 0).
    """

    name = "rwp"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        sigma: Annotated[float, Positive(), "noise std relative to each filter's norm"] = 0.01
        alpha: Annotated[float, Interval(0, 1), "weight of the clean gradient"] = 0.5

    def noise_settings(self) -> NoiseSettings:
        return NoiseSettings(k=1, lam=self.options.alpha, two_sided=False)

    def draw_noise(self, params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
        generator = self.state.generator
        return [filterwise_noise(p, self.options.sigma, generator) for p in params]
