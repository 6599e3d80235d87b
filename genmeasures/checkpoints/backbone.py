"""Pretrained weights into a new model: every tensor but the classification head.

A fine-tuning run starts from a pretrained file whose head usually has another shape (a new
task); the head keeps the model's fresh initialization and everything else must fit exactly.
The model's head is the one its architecture adapter names
(:func:`genmeasures.models.architecture_of`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from genmeasures.checkpoints.format import load_checkpoint
from genmeasures.checkpoints.validate import check_finite
from genmeasures.errors import CheckpointError
from genmeasures.models import architecture_of


def load_backbone(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load pretrained weights into every tensor but the classification head.

    The head keeps its fresh initialization (its shape usually differs: a new task). Any
    other missing, unexpected or mis-shaped tensor is an error naming it, and so is a NaN or
    infinite value anywhere in the file. Returns the names of the head tensors that were left
    as initialized.
    """
    backbone, skipped = backbone_tensors(model, load_checkpoint(path).state, path)
    model.load_state_dict(backbone, strict=False)
    return skipped


def backbone_tensors(
    model: nn.Module, pretrained: Mapping[str, torch.Tensor], path: str | os.PathLike
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of ``pretrained`` to load into ``model`` (all but its head), checked.

    Checks what :func:`load_backbone` checks without loading anything, so it also serves a
    model built on the meta device. ``path`` names the file in error messages. Returns the
    tensors by name and the names of the model's head tensors (left out).

    Raises:
        CheckpointError: a tensor is missing, unexpected, mis-shaped or not finite.
    """
    check_finite(pretrained, f"pretrained weights {path}")
    head_prefix = architecture_of(model).head + "."
    own = model.state_dict()
    skipped = [n for n in own if n.startswith(head_prefix)]
    missing = [n for n in own if n not in pretrained and n not in skipped]
    unexpected = [n for n in pretrained if n not in own and not n.startswith(head_prefix)]
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"pretrained weights {path} do not fit the model: {what}")
    for name in own:
        if name in skipped:
            continue
        if tuple(pretrained[name].shape) != tuple(own[name].shape):
            raise CheckpointError(
                f"pretrained weights {path}: {name!r} has shape {tuple(pretrained[name].shape)},"
                f" the model has {tuple(own[name].shape)}"
            )
    return {n: pretrained[n] for n in own if n not in skipped}, skipped
