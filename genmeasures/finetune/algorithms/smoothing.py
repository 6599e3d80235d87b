"""Loss-side baselines: label_smoothing and mixup (one pass per step each)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import numpy as np
import torch
from torch import nn

from genmeasures.constraints import Interval, Positive
from genmeasures.finetune.algorithm import Algorithm, AlgorithmOptions, register_algorithm


@register_algorithm
class LabelSmoothing(Algorithm):
    """Cross-entropy with label smoothing (Szegedy et al. 2016): the target is
    (1 - smoothing) * onehot(y) + smoothing / K (torch's ``label_smoothing``).
    """

    name = "label_smoothing"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        smoothing: Annotated[
            float, Interval(0, 1, closed="left"), "mass moved to the uniform target"
        ] = 0.1

    def batch_loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, targets, label_smoothing=self.options.smoothing)


class MixedTargets(NamedTuple):
    """What mixup's ``prepare_batch`` hands to ``batch_loss``."""

    targets: torch.Tensor  # y_i
    partners: torch.Tensor  # y_perm(i)
    lam: float


def mix(
    inputs: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, MixedTargets]:
    """x' = lam x + (1 - lam) x[perm], and the two label sets the loss mixes."""
    perm = perm.to(inputs.device)
    mixed = inputs * lam + inputs[perm] * (1 - lam)
    return mixed, MixedTargets(targets, targets[perm.to(targets.device)], lam)


@register_algorithm
class Mixup(Algorithm):
    """Mixup (Zhang, Cisse, Dauphin & Lopez-Paz, ICLR 2018).

    Per batch: lam ~ Beta(alpha, alpha) and a random permutation perm of the batch;
    x'_i = lam x_i + (1 - lam) x_perm(i), loss = lam CE(f(x'), y) + (1 - lam) CE(f(x'), y_perm).

    Both come from ``state.generator`` (so a run is deterministic given the epoch seed): the
    permutation with ``torch.randperm``, then one 62-bit integer that seeds a numpy Generator
    that draws lam (torch's Beta sampler takes no generator).
    """

    name = "mixup"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        alpha: Annotated[float, Positive(), "lam ~ Beta(alpha, alpha)"] = 0.2

    def draw(self, n: int) -> tuple[float, torch.Tensor]:
        """lam and the permutation for a batch of ``n``, from ``state.generator``."""
        generator = self.state.generator
        perm = torch.randperm(n, generator=generator)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        alpha = self.options.alpha
        lam = float(np.random.default_rng(seed).beta(alpha, alpha))
        return lam, perm

    def prepare_batch(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, MixedTargets]:
        lam, perm = self.draw(len(inputs))
        return mix(inputs, targets, lam, perm)

    def batch_loss(self, outputs: torch.Tensor, targets: Any, indices: torch.Tensor):
        if not isinstance(targets, MixedTargets):  # plain labels: ordinary cross-entropy
            return super().batch_loss(outputs, targets, indices)
        ce = nn.functional.cross_entropy
        lam = targets.lam
        return lam * ce(outputs, targets.targets) + (1 - lam) * ce(outputs, targets.partners)
