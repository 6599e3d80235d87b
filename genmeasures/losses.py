"""Per-sample losses: the one home of l(x, y; W) for training, measures and curvature.

A per-sample loss maps (outputs, targets) to one value per sample (reduction='none').
Cross-entropy is the default everywhere; the curvature engine recognizes it by identity
(``loss is cross_entropy_per_sample``) to use the closed-form Hessian in the logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_per_sample(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """l(x, y; W) = -log softmax(f(x; W))_y for each sample (reduction='none')."""
    return nn.functional.cross_entropy(outputs, targets, reduction="none")
