"""load_backbone / backbone_tensors: pretrained weights into all but a new model's head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genmeasures.checkpoints import CheckpointMeta, load_backbone, save_checkpoint
from genmeasures.checkpoints.backbone import backbone_tensors
from genmeasures.errors import CheckpointError
from genmeasures.models import build_model


def mlp(num_classes: int, seed: int, hidden: int = 8) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", {"in_features": 6, "hidden": [hidden], "num_classes": num_classes})


def test_everything_but_the_head_is_loaded(tmp_path: Path) -> None:
    source = mlp(num_classes=10, seed=0)
    path = save_checkpoint(tmp_path / "pre.safetensors", source.state_dict(), CheckpointMeta())
    target = mlp(num_classes=3, seed=1)
    fresh_head = {n: t.clone() for n, t in target.state_dict().items() if n.startswith("head.")}
    assert load_backbone(target, path) == ["head.weight", "head.bias"]
    for name, tensor in target.state_dict().items():
        expected = fresh_head[name] if name in fresh_head else source.state_dict()[name]
        assert torch.equal(tensor, expected), name


def test_checks_without_loading_even_on_the_meta_device() -> None:
    pretrained = mlp(num_classes=10, seed=0).state_dict()
    with torch.device("meta"):
        model = build_model("mlp", {"in_features": 6, "hidden": [8], "num_classes": 3})
    tensors, skipped = backbone_tensors(model, pretrained, "pre.safetensors")
    assert skipped == ["head.weight", "head.bias"]
    assert set(tensors) == {n for n in pretrained if not n.startswith("head.")}
    assert all(tensors[n] is pretrained[n] for n in tensors)


def test_a_file_that_does_not_fit_or_is_not_finite_is_refused() -> None:
    pretrained = mlp(num_classes=10, seed=0).state_dict()
    with pytest.raises(CheckpointError, match=r"pre: 'layers.0.weight' has shape \(8, 6\)"):
        backbone_tensors(mlp(num_classes=3, seed=0, hidden=4), pretrained, "pre")
    extra = {**pretrained, "extra.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"do not fit the model: unexpected \['extra"):
        backbone_tensors(mlp(num_classes=3, seed=0), extra, "pre")
    without = {n: t for n, t in pretrained.items() if n != "layers.0.bias"}
    with pytest.raises(CheckpointError, match=r"do not fit the model: missing \['layers.0.bias"):
        backbone_tensors(mlp(num_classes=3, seed=0), without, "pre")
    broken = {**pretrained, "layers.0.bias": torch.full((8,), float("nan"))}
    with pytest.raises(CheckpointError, match="pretrained weights pre"):
        backbone_tensors(mlp(num_classes=3, seed=0), broken, "pre")
