"""Which tensors count as "layers" i = 1..L.

Default (measures.md): the weight tensors (ndim >= 2) of every Conv and Linear module, keyed by
state-dict name. Where the measure has the model, the default is its architecture adapter's
``default_layers`` (:func:`genmeasures.models.architecture_of`); on a bare state dict it is the
rule "floating tensor, name ends with ``weight``, ndim >= 2", which is also the fallback
adapter's. For every built-in model both select exactly the Conv/Linear weights (and the fused
``in_proj_weight`` of attention), which the tests check. A name glob, or a list of globs,
selects other tensors (biases, normalization parameters); normalization running statistics
are never selected.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

import torch
from torch import nn

from genmeasures.errors import OptionError
from genmeasures.models.architecture import architecture_of, matrix_weight_names

LayerPattern = str | Sequence[str] | None

_RUNNING_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def default_layer_names(
    state: Mapping[str, torch.Tensor], model: nn.Module | None = None
) -> list[str]:
    """The default layers of ``state`` in its order: ``model``'s architecture's
    ``default_layers`` (those ``state`` holds) where a model is given, else the weight
    matrices rule of the module docstring."""
    if model is None:
        return matrix_weight_names(state)
    chosen = set(architecture_of(model).default_layers(model))
    return [name for name in state if name in chosen]


def select_layers(
    state: Mapping[str, torch.Tensor],
    pattern: LayerPattern = None,
    *,
    model: nn.Module | None = None,
) -> list[str]:
    """Names of the selected layers in network (state-dict) order.

    ``None``: the default (Conv/Linear weights; ``model``'s architecture decides where the
    model is given); ``"all"``: every floating tensor but normalization running statistics,
    i.e. every parameter (PyHessian's operator; the same as the glob ``"*"``); otherwise name
    globs.
    """
    if pattern == "all":
        pattern = "*"
    if pattern is None:
        names = default_layer_names(state, model)
        if not names:
            raise OptionError("no Conv/Linear weight tensors found; select layers with a glob")
        _note_left_out(state, names)
        return names
    globs = [pattern] if isinstance(pattern, str) else list(pattern)
    candidates = [
        name
        for name, tensor in state.items()
        if tensor.is_floating_point() and not name.endswith(_RUNNING_STATISTICS)
    ]
    names = [name for name in candidates if any(fnmatchcase(name, g) for g in globs)]
    if not names:
        examples = ", ".join(candidates[:4])
        raise OptionError(
            f"layer glob {pattern!r} matches no parameter (names look like: {examples}, ...)"
        )
    return names


def _note_left_out(state: Mapping[str, torch.Tensor], names: list[str]) -> None:
    """Warn (the scorer's notes collect it) about matrices the default leaves out: weights
    that are not a Conv/Linear module's, such as a free nn.Parameter or a ViT's position
    embedding, so that the layer set is never narrower than the user thinks unnoticed."""
    chosen = set(names)
    left_out = [
        name
        for name, tensor in state.items()
        if tensor.is_floating_point()
        and tensor.ndim >= 2
        and name not in chosen
        and not name.endswith(_RUNNING_STATISTICS)
    ]
    if left_out:
        shown = ", ".join(repr(n) for n in left_out[:3]) + (" ..." if len(left_out) > 3 else "")
        warnings.warn(
            f"the default layers (Conv/Linear weights) leave out {len(left_out)} other "
            f"matrix tensor(s): {shown}; pass layers=all or a glob to include them",
            UserWarning,
            stacklevel=3,
        )


def published_layer_names(model: nn.Module) -> list[str]:
    """The layers Ju, Li & Zhang's published scripts measure (``get_layers`` in their
    ``utils/hessian.py``), as state-dict names of weights (biases are never included).

    On a convolutional network: every ``nn.Conv2d`` (exactly that type) whose module name
    contains ``conv``, plus the classification head; so a ResNet's ``downsample``
    convolutions are left out. On a transformer (a model with ``nn.MultiheadAttention``):
    every linear map but the embeddings -- the attention's query/key/value projections (one
    fused ``in_proj_weight`` in torchvision's layout, three ``nn.Linear`` in the authors'), its
    output projection, the MLP layers and the head; the patch embedding is left out.
    """
    head = architecture_of(model).head
    transformer = any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    chosen = set()
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if name == head:
            chosen.add(f"{prefix}weight")
        elif transformer:
            if isinstance(module, nn.Linear):
                chosen.add(f"{prefix}weight")
            elif isinstance(module, nn.MultiheadAttention):
                for attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                    if getattr(module, attr, None) is not None:
                        chosen.add(f"{prefix}{attr}")
        elif type(module) is nn.Conv2d and "conv" in name:
            chosen.add(f"{prefix}weight")
    return [name for name in model.state_dict() if name in chosen]
