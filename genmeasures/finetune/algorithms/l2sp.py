"""L2-SP: a penalty towards the starting point (Li, Grandvalet & Davoine, ICML 2018,
"Explicit inductive bias for transfer learning with convolutional networks"), with the
depth-scaled coefficients used by Li & Zhang 2021 and Ju, Li & Zhang 2022.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch

from genmeasures.constraints import NonNegative, Positive
from genmeasures.finetune.algorithm import (
    Algorithm,
    AlgorithmOptions,
    TrainState,
    register_algorithm,
)
from genmeasures.losses import cross_entropy_per_sample


@register_algorithm
class L2SP(Algorithm):
    """Cross-entropy plus an L2 penalty towards the pretrained weights (L2-SP).

    loss = CE + alpha * sum_i s_i * ||W_i - W_i^(0)||_F^2 + beta * sum_h ||W_h||_F^2

    * i runs over the trainable backbone (non-head) parameters: ALL of them, weights, biases
      and normalization parameters alike, as the papers penalize all backbone parameters;
    * h runs over the trainable head parameters (weight and bias): plain weight decay towards
      0, as the head is new;
    * s_i = gamma ** stage_of(name): 1, 1, gamma, gamma^2 for a ResNet's stem/stages 1-2,
      stage 3 and stage 4 (the block index for other models).

    There is no factor 1/2: ``alpha`` here is Li et al.'s alpha / 2 (the gradient of the
    backbone term is ``2 * alpha * s_i * (W_i - W_i^(0))``). The penalty is added in
    :meth:`batch_loss`, so its gradient comes from autograd.

    Options: ``alpha`` (lambda, default 0.01), ``beta`` (lambda_head, 0.01), ``gamma`` (1.0).
    """

    name = "l2sp"

    @dataclass(frozen=True)
    class Options(AlgorithmOptions):
        alpha: Annotated[float, NonNegative(), "lambda: weight of the penalty towards init"] = 0.01
        beta: Annotated[float, NonNegative(), "lambda_head: weight decay of the head"] = 0.01
        gamma: Annotated[float, Positive(), "depth scaling s_i = gamma ** stage"] = 1.0

    def __init__(self, options: Options, state: TrainState) -> None:
        super().__init__(options, state)
        # (parameter, its init or None for the head, coefficient)
        self.terms: list[tuple[str, torch.nn.Parameter, torch.Tensor | None, float]] = []
        for name, param in state.trainable():
            if state.is_head(name):
                self.terms.append((name, param, None, float(options.beta)))
            else:
                scale = float(options.gamma) ** state.stage_of(name)
                self.terms.append((name, param, state.init[name], float(options.alpha) * scale))

    def coefficients(self) -> dict[str, float]:
        """name -> the coefficient multiplying its squared distance (alpha s_i, or beta)."""
        return {name: coefficient for name, _, _, coefficient in self.terms}

    def penalty(self) -> torch.Tensor:
        """alpha * sum_i s_i ||W_i - W_i^(0)||^2 + beta * ||W_head||^2 (differentiable)."""
        total = torch.zeros((), device=self.state.device)
        for _, param, init, coefficient in self.terms:
            if coefficient == 0:
                continue
            delta = param if init is None else param - init
            total = total + coefficient * delta.float().pow(2).sum()
        return total

    def batch_loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        return cross_entropy_per_sample(outputs, targets).mean() + self.penalty()
