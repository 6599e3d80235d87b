"""Blocks and depth of a network's parameters: what freezing and depth-scaled radii act on.

Both come from the model's architecture adapter (:func:`genmeasures.models.architecture_of`):
its blocks, in network order and without the classification head, and its stage rule. For the
built-in ResNets the blocks are the stem (conv1, bn1), then every residual block (layer1.0,
layer1.1, ...), and the depth ("stage") that scales the radii of layer-wise constraints and
L2-SP penalties is 0 for the stem and stages 1-2, 1 for stage 3 and 2 for stage 4 (so radii
are D, D, D*gamma, D*gamma^2, as published). For the other built-in models and for models
that declare no architecture, the blocks are the top-level children that hold parameters
(plain containers opened one level, parameters owned by the root first) and a parameter's
depth is its block's index.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from genmeasures.errors import OptionError
from genmeasures.models.architecture import architecture_of


def parameter_blocks(model: nn.Module, head: str | None = None) -> list[list[str]]:
    """Ordered blocks of parameter names, the head's parameters excluded.

    ``head`` (a module name) defaults to the architecture's head.
    """
    architecture = architecture_of(model)
    head_prefix = (architecture.head if head is None else head) + "."
    names = [n for n, _ in model.named_parameters()]
    blocks = []
    for prefixes in architecture.blocks(model):
        members = [
            n
            for n in names
            if not n.startswith(head_prefix)
            and any(n == p or n.startswith(p + ".") for p in prefixes)
        ]
        if members:
            blocks.append(members)
    return blocks


def stage_function(model: nn.Module, head: str | None = None) -> Callable[[str], int]:
    """name -> depth index used by depth-scaled radii and penalties (see module docstring).

    Without a stage rule in the architecture, a parameter's depth is the index of its block
    and the head's (or any parameter outside the blocks) that of the last block.
    """
    architecture = architecture_of(model)
    if architecture.stage is not None:
        return architecture.stage
    index = {n: i for i, block in enumerate(parameter_blocks(model, head)) for n in block}
    last = max(index.values(), default=0)
    return lambda name: index.get(name, last)


def freeze_first_blocks(model: nn.Module, head: str | None, count: int) -> list[str]:
    """Turn off gradients of the first ``count`` blocks; return the frozen parameter names.

    Normalization layers inside frozen blocks are kept in eval mode during training by the
    trainer, so their running statistics do not change either.
    """
    blocks = parameter_blocks(model, head)
    if count > len(blocks):
        raise OptionError(f"train.freeze={count} but the model has only {len(blocks)} blocks")
    frozen = [name for block in blocks[:count] for name in block]
    parameters = dict(model.named_parameters())
    for name in frozen:
        parameters[name].requires_grad_(False)
    return frozen


def frozen_modules(model: nn.Module, frozen: list[str]) -> list[nn.Module]:
    """Modules all of whose own parameters are frozen (kept in eval mode while training)."""
    frozen_set = set(frozen)
    modules = []
    for name, module in model.named_modules():
        own = [f"{name}.{n}" if name else n for n, _ in module.named_parameters(recurse=False)]
        if own and all(n in frozen_set for n in own):
            modules.append(module)
    return modules
