"""Weights as the papers' public training scripts and torchvision write them.

The scripts of Ju, Li & Zhang (VirtuosoResearch Robust-Fine-Tuning, Noise-stability-
optimization, Regularized-Self-Labeling) wrap a torchvision network: ``feature_extractor``
is the torchvision model with its classifier replaced by an identity, ``pred_head`` the new
``nn.Linear``, saved as ``{'arch': 'ResNet18', 'epoch': ..., 'state_dict': ...}`` (keys
``feature_extractor.conv1.weight`` ... ``pred_head.weight``; ``module.`` in front when trained
under ``nn.DataParallel``, whose ``arch`` then reads ``DataParallel``). :func:`recognize`
maps such a state dict onto the registered model with torchvision's names (the head becomes
``fc`` or ``heads.head``) and infers the architecture and its keyword arguments from the
tensors' shapes; a plain torchvision state dict is recognized the same way. Every inferred
spec is checked by building the model on the meta device and comparing every name and shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from genmeasures.checkpoints.format import ModelSpec
from genmeasures.checkpoints.validate import same_layout

BODY_PREFIX = "feature_extractor."
HEAD_PREFIX = "pred_head."

# (block type, blocks per stage) -> registered ResNet
_RESNETS: dict[tuple[str, tuple[int, ...]], str] = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
}
# The `arch` names the scripts save (the wrapper's class names), and torchvision's own.
ARCH_NAMES = {
    "ResNet18": "resnet18",
    "ResNet34": "resnet34",
    "ResNet50": "resnet50",
    "ResNet101": "resnet101",
    "ViTB16": "vit_b_16",
    **{name: name for name in ("resnet18", "resnet34", "resnet50", "resnet101", "vit_b_16")},
}
# The registered model each family's files are read into (its head names the file's head).
_FAMILY_MODEL = {"resnet": "resnet18", "vit": "vit_b_16"}


def _head_prefix(family: str) -> str:
    """``fc.`` / ``heads.head.``: the head of the family's registered architecture."""
    from genmeasures.models import registered_architecture

    architecture = registered_architecture(_FAMILY_MODEL[family])
    assert architecture is not None
    return architecture.head + "."


def is_wrapped(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` has the scripts' ``feature_extractor.`` / ``pred_head.`` layout."""
    return (
        bool(state)
        and all(k.startswith((BODY_PREFIX, HEAD_PREFIX)) for k in state)
        and any(k.startswith(HEAD_PREFIX) for k in state)
    )


def recognize(
    state: Mapping[str, torch.Tensor], arch: str | None = None
) -> tuple[dict[str, torch.Tensor], ModelSpec] | None:
    """The state dict in the registered model's names and the model that holds it, or None
    when ``state`` is neither a wrapped nor a plain torchvision ResNet / ViT-B/16.

    ``arch`` (the file's ``arch`` entry) must agree with the shapes when it names a known
    architecture; other names (``DataParallel``) are ignored.
    """
    family = _family(state)
    if family is None:
        return None
    renamed = _torchvision_names(state, family)
    spec = _infer(renamed, family)
    if spec is None:
        return None
    named = ARCH_NAMES.get(arch or "")
    if named is not None and named != spec.name:
        return None  # the shapes say otherwise: leave the file to the user's --model
    order = _model_order(renamed, spec)
    if order is None:
        return None
    return {name: renamed[name] for name in order}, spec


def _family(state: Mapping[str, torch.Tensor]) -> str | None:
    body = [k.removeprefix(BODY_PREFIX) for k in state]
    if "conv_proj.weight" in body and "class_token" in body:
        return "vit"
    if "conv1.weight" in body and "layer1.0.conv1.weight" in body:
        return "resnet"
    return None


def _torchvision_names(state: Mapping[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    if not is_wrapped(state):
        return dict(state)
    head = _head_prefix(family)
    return {
        (head + k.removeprefix(HEAD_PREFIX))
        if k.startswith(HEAD_PREFIX)
        else k.removeprefix(BODY_PREFIX): v
        for k, v in state.items()
    }


def _infer(state: Mapping[str, torch.Tensor], family: str) -> ModelSpec | None:
    head = state.get(_head_prefix(family) + "weight")
    if head is None or head.ndim != 2:
        return None
    kwargs: dict[str, Any] = {"num_classes": int(head.shape[0])}
    if family == "vit":
        embedding, patches = state.get("encoder.pos_embedding"), state.get("conv_proj.weight")
        if embedding is None or patches is None or embedding.ndim != 3 or patches.ndim != 4:
            return None
        positions = embedding.shape[1] - 1
        side = round(positions**0.5)
        if side * side != positions or patches.shape[-1] != 16:
            return None
        if side * 16 != 224:
            kwargs["image_size"] = side * 16
        return ModelSpec("vit_b_16", kwargs)
    stages = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        stages.append(len(blocks))
    block = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    name = _RESNETS.get((block, tuple(stages)))
    if name is None:
        return None
    stem = state["conv1.weight"]
    if stem.ndim != 4:
        return None
    width = stem.shape[0] / 64
    if width != 1.0:
        kwargs["width_multiplier"] = width
    if stem.shape[1] != 3:
        kwargs["in_channels"] = int(stem.shape[1])
    if stem.shape[-1] == 3:
        kwargs["small_input"] = True
    return ModelSpec(name, kwargs)


def _model_order(state: Mapping[str, torch.Tensor], spec: ModelSpec) -> list[str] | None:
    """The state-dict order of the model ``spec`` builds, if it has exactly ``state``'s names
    and shapes (else None)."""
    from genmeasures.errors import GenMeasuresError
    from genmeasures.models import build_model

    try:
        with torch.device("meta"):
            own = build_model(spec.name, dict(spec.kwargs)).state_dict()
    except GenMeasuresError:
        return None
    return list(own) if same_layout(own, state) else None
