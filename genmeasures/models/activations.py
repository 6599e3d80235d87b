"""The activations a model factory accepts by name (``activation="gelu"``): one table."""

from __future__ import annotations

from torch import nn

from genmeasures.errors import ModelError

#: Name -> module class. ``relu`` is piecewise linear (the curvature engine's affine-block
#: routes apply); ``gelu``, ``silu`` and ``tanh`` are smooth, for claims about smooth losses.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def activation_class(name: str, owner: str) -> type[nn.Module]:
    """The module class of activation ``name``; ``owner`` (a factory name) starts the error."""
    if name not in ACTIVATIONS:
        valid = ", ".join(ACTIVATIONS)
        raise ModelError(f"{owner}: unknown activation {name!r}; valid: {valid}")
    return ACTIVATIONS[name]
