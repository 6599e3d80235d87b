"""A fully connected network (``mlp``) for flattened inputs such as 8x8 digits images.

Module names: ``flatten``, ``layers.0`` (first hidden Linear), ``layers.1`` (its activation),
``layers.2`` (second hidden Linear), ..., and the classification head ``head`` (the last Linear).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from genmeasures.errors import ModelError
from genmeasures.models.activations import activation_class
from genmeasures.models.architecture import Architecture

#: Head ``head``; blocks: the hidden Linear layers (``layers.0``, ``layers.2``, ...) where
#: there are two or more, else ``layers`` as one block (none without hidden layers).
MLP_ARCHITECTURE = Architecture(head="head")


class MLP(nn.Module):
    """Flatten -> [Linear -> activation] * len(hidden) -> Linear head.

    Takes ``(N, d)`` vectors or any ``(N, ...)`` tensor whose trailing dimensions flatten to
    ``in_features`` values (e.g. ``(N, 1, 8, 8)`` images with ``in_features=64``).
    """

    architecture = MLP_ARCHITECTURE
    head_name = MLP_ARCHITECTURE.head

    def __init__(
        self,
        in_features: int = 64,
        hidden: Sequence[int] = (64,),
        num_classes: int = 10,
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        act = activation_class(activation, "mlp")
        widths = [int(in_features), *(int(h) for h in hidden)]
        if any(w < 1 for w in widths) or int(num_classes) < 1:
            raise ModelError(
                f"mlp: in_features, hidden widths and num_classes must be >= 1, "
                f"got in_features={in_features}, hidden={tuple(hidden)}, num_classes={num_classes}"
            )
        self.in_features = widths[0]
        self.num_classes = int(num_classes)
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        for fan_in, fan_out in pairwise(widths):
            layers.append(nn.Linear(fan_in, fan_out, bias=bias))
            layers.append(act())
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], self.num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.flatten(x)))


def mlp(
    *,
    num_classes: int = 10,
    in_features: int = 64,
    hidden: Sequence[int] | int = (64,),
    activation: str = "relu",
    bias: bool = True,
) -> MLP:
    """Factory for :class:`MLP`; ``hidden`` is a width or a sequence of widths (``()``: linear)."""
    if isinstance(hidden, int):
        hidden = (hidden,)
    return MLP(
        in_features=in_features,
        hidden=tuple(hidden),
        num_classes=num_classes,
        activation=activation,
        bias=bias,
    )
