"""What the toolkit needs to know about a network, declared once: its architecture adapter.

Three things depend on a network's layout: which module is the classification head (a new
head for fine-tuning, a head measured from zero), how its parameters group into blocks in
network order (``train.freeze``, depth-scaled radii and penalties) and which tensors the
measures use by default. An :class:`Architecture` states all three. Every built-in model
declares one (the ``architecture`` attribute of its class, registered with its factory in
:mod:`genmeasures.models`); a factory registered with ``register_model(name,
architecture=...)`` has it attached to the models :func:`~genmeasures.models.build_model`
builds; a user can also set ``model.architecture = Architecture(...)`` on a model.

:func:`architecture_of` returns the declared adapter, or else the one fallback for users' own
models (:func:`fallback_architecture`): the head is ``model.head_name`` where that names an
``nn.Linear`` submodule, else the last ``nn.Linear`` in module order; the blocks are the
top-level children (see :func:`child_blocks`); the stage of a parameter is its block's index;
the default layers are the floating weight matrices (:func:`matrix_weight_names`). A model
laid out as torchvision's ResNet gets the ResNet's blocks and stages instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from genmeasures.errors import ModelError

#: ``model -> blocks``: each block a tuple of module-name (or parameter-name) prefixes, in
#: network order. The head's parameters are left out of the blocks wherever they fall.
BlockRule = Callable[[nn.Module], list[tuple[str, ...]]]
#: ``parameter name -> depth index`` (0 for the shallowest) for depth-scaled radii.
StageRule = Callable[[str], int]
#: ``model -> state-dict names`` of the tensors a measure uses when no layers are given.
LayerRule = Callable[[nn.Module], list[str]]

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def child_blocks(model: nn.Module) -> list[tuple[str, ...]]:
    """Blocks as the top-level children that hold parameters, in module order.

    A plain container (``nn.Sequential``, ``nn.ModuleList``) with more than one such child is
    opened one level (each of its children a block); parameters owned directly by the root
    (a ViT's class token) form a block of their own, first.
    """
    blocks: list[tuple[str, ...]] = []
    own = tuple(name for name, _ in model.named_parameters(recurse=False))
    if own:
        blocks.append(own)
    for name, child in model.named_children():
        if not _has_parameters(child):
            continue
        inner = [f"{name}.{sub}" for sub, c in child.named_children() if _has_parameters(c)]
        if isinstance(child, _CONTAINERS) and len(inner) > 1:
            blocks.extend((sub,) for sub in inner)
        else:
            blocks.append((name,))
    return blocks


def matrix_weight_names(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The default layers read off a state dict: floating tensors with ``ndim >= 2`` whose
    name ends with ``weight`` (on every built-in model exactly the Conv/Linear weights and the
    attention's fused ``in_proj_weight``)."""
    return [
        name
        for name, tensor in state.items()
        if tensor.is_floating_point() and tensor.ndim >= 2 and name.endswith("weight")
    ]


def state_matrix_weights(model: nn.Module) -> list[str]:
    """:func:`matrix_weight_names` of ``model``'s state dict (the fallback's default layers)."""
    return matrix_weight_names(model.state_dict())


def conv_linear_weight_names(model: nn.Module) -> list[str]:
    """State-dict names of the weight matrices of ``model``, in module order.

    These are the ``.weight`` of every ``Conv1d``/``Conv2d``/``Conv3d``/``Linear`` and the
    ``in_proj_weight`` of every ``nn.MultiheadAttention`` (a fused q/k/v linear map; its
    ``q/k/v_proj_weight`` when the projections are separate).
    """
    names: list[str] = []
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            if module.weight is not None:
                names.append(f"{prefix}weight")
        elif isinstance(module, nn.MultiheadAttention):
            for attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                if getattr(module, attr, None) is not None:
                    names.append(f"{prefix}{attr}")
    return names


@dataclass(frozen=True)
class Architecture:
    """A network's head, blocks, stages and default measure layers.

    ``head``: dotted module name of the classification head, an ``nn.Linear``.
    ``blocks``: ``model -> [prefixes, ...]``, the blocks in network order (default
    :func:`child_blocks`). ``stage``: ``parameter name -> depth`` for depth-scaled radii;
    None: the index of the parameter's block. ``default_layers``: ``model -> names`` of the
    tensors the measures use by default (default :func:`conv_linear_weight_names`).
    The callables should be module-level functions, so that a model carrying its
    architecture can still be pickled.
    """

    head: str
    blocks: BlockRule = child_blocks
    stage: StageRule | None = None
    default_layers: LayerRule = conv_linear_weight_names

    def __post_init__(self) -> None:
        if not isinstance(self.head, str) or not self.head:
            raise ModelError(f"an architecture's head must be a module name, got {self.head!r}")
        for field_name in ("blocks", "default_layers"):
            if not callable(getattr(self, field_name)):
                raise ModelError(f"an architecture's {field_name} must be callable")
        if self.stage is not None and not callable(self.stage):
            raise ModelError("an architecture's stage must be callable or None")


def fallback_head(model: nn.Module) -> str:
    """The fallback head: ``model.head_name`` where it names an ``nn.Linear`` submodule, else
    the last ``nn.Linear`` in module order. Raises ``ModelError`` when there is none."""
    name = getattr(model, "head_name", None)
    if isinstance(name, str) and name and _is_linear(model, name):
        return name
    last = None
    for mod_name, module in model.named_modules():
        if mod_name and isinstance(module, nn.Linear):
            last = mod_name
    if last is None:
        raise ModelError(
            f"model {type(model).__name__} has no nn.Linear submodule to use as its "
            "classification head; set model.head_name or declare its Architecture"
        )
    return last


def fallback_architecture(model: nn.Module) -> Architecture:
    """The adapter for a model that declares none (see the module docstring).

    A model laid out as torchvision's ResNet (``conv1``, ``bn1``, ``layer1``-``layer4`` and
    an ``fc`` Linear: a user's own class, or torchvision's) gets the ResNet's blocks and
    stages, as the toolkit's own ResNet does: ``conv1`` with ``bn1`` as the first block, one
    block per residual block, stages by ``layerN``. Its default layers stay the fallback's.
    """
    if _is_resnet_shaped(model):
        from genmeasures.models.resnet import resnet_blocks, resnet_stage

        return Architecture(
            head="fc", blocks=resnet_blocks, stage=resnet_stage, default_layers=state_matrix_weights
        )
    return Architecture(
        head=fallback_head(model),
        blocks=child_blocks,
        stage=None,
        default_layers=state_matrix_weights,
    )


def _is_resnet_shaped(model: nn.Module) -> bool:
    names = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
    return all(hasattr(model, name) for name in names) and _is_linear(model, "fc")


def declared_architecture(model: nn.Module) -> Architecture | None:
    """The :class:`Architecture` a model carries (its class's or its own), or None."""
    declared = getattr(model, "architecture", None)
    return declared if isinstance(declared, Architecture) else None


def architecture_of(model: nn.Module) -> Architecture:
    """``model``'s architecture adapter: the one it declares, else the fallback.

    Raises a one-line ``ModelError`` when a declared head is not an ``nn.Linear`` submodule,
    or when the fallback finds no ``nn.Linear`` at all.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
    declared = declared_architecture(model)
    if declared is None:
        return fallback_architecture(model)
    if not _is_linear(model, declared.head):
        raise ModelError(
            f"model {type(model).__name__}: its architecture names the head "
            f"{declared.head!r}, which is not an nn.Linear submodule"
        )
    return declared


def _is_linear(model: nn.Module, name: str) -> bool:
    try:
        return isinstance(model.get_submodule(name), nn.Linear)
    except AttributeError:
        return False
