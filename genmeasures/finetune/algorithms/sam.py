"""Sharpness-aware minimization: sam and asam.

Each step takes two passes: the gradient g at W (this pass updates the normalization running
statistics, as plain training would), then the gradient at W + e, the ascent point, inside
:func:`frozen_norm_statistics` (the ascent pass does not update them). W is copied back
bitwise from a saved copy and the optimizer steps with the gradient at W + e. The returned
(logged) loss is the loss at W.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import nn

from genmeasures.constraints import NonNegative, Positive
from genmeasures.finetune.algorithm import Algorithm, AlgorithmOptions, register_algorithm
from genmeasures.finetune.algorithms._norm_stats import frozen_norm_statistics
from genmeasures.finetune.algorithms.perturbation import (
    GradientSum,
    loss_and_gradients,
    shifted,
    snapshot,
    trainable_parameters,
)

EPSILON = 1e-12  # added to the norm in the denominator, as in the reference implementations


def global_norm(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """The Euclidean norm of all tensors together (as one flattened vector)."""
    present = [t.detach() for t in tensors if t is not None]
    if not present:
        return torch.zeros(())
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in present) else torch.float32
    device = present[0].device
    return torch.stack([t.to(dtype).norm().to(device) for t in present]).norm()


@register_algorithm
class SAM(Algorithm):
    """Sharpness-aware minimization (Foret, Kleiner, Mobahi & Neyshabur, ICLR 2021).

    e = rho * g / ||g||, g = grad f(W), the norm taken over all trainable parameters together;
    the step uses grad f(W + e). Two passes per step (see the module docstring for which one
    updates the normalization statistics).
    """

    name = "sam"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        rho: Annotated[float, Positive(), "ascent radius"] = 0.05

    def passes_per_step(self) -> int:
        return 2

    def ascent(
        self, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None]
    ) -> list[torch.Tensor | None]:
        """The perturbation e (``None`` where a parameter has no gradient)."""
        scale = self.options.rho / (global_norm(grads) + EPSILON)
        return [None if g is None else g * scale.to(device=g.device, dtype=g.dtype) for g in grads]

    def compute_gradient(
        self, inputs: torch.Tensor, targets: Any, indices: torch.Tensor
    ) -> torch.Tensor:
        params = trainable_parameters(self)
        loss, grads = loss_and_gradients(self, inputs, targets, indices, params)
        with torch.no_grad():
            e = self.ascent(params, grads)
        saved = snapshot(params)
        with frozen_norm_statistics(self.state.model), shifted(params, saved, e):
            _, ascent_grads = loss_and_gradients(self, inputs, targets, indices, params)
        gradient = GradientSum(params)
        gradient.add(ascent_grads, 1.0)
        gradient.write()
        return loss


@register_algorithm
class ASAM(SAM):
    """Adaptive SAM (Kwon, Kim, Park & Choi, ICML 2021).

    e = rho * T_w^2 g / ||T_w g|| with T_w = |w| + eta elementwise, applied to every trainable
    parameter (biases and normalization parameters included; the authors' code leaves
    parameters whose name lacks "weight" unscaled), the norm over all of them together.
    """

    name = "asam"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        rho: Annotated[float, Positive(), "ascent radius"] = 0.5
        eta: Annotated[float, NonNegative(), "added to |w| in the scaling T_w = |w| + eta"] = 0.01

    def ascent(
        self, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None]
    ) -> list[torch.Tensor | None]:
        scaled = [
            None if g is None else (p.detach().abs() + self.options.eta) * g
            for p, g in zip(params, grads, strict=True)
        ]
        scale = self.options.rho / (global_norm(scaled) + EPSILON)
        return [
            None
            if tg is None
            else (p.detach().abs() + self.options.eta) * tg * scale.to(tg.device, tg.dtype)
            for p, tg in zip(params, scaled, strict=True)
        ]
