"""Settings several figures share: the quick scale's regime and the paper scale's base.

The quick scale is the library's built-in regime (:mod:`genmeasures.reproduce.regime`: a
depth-20 ResNet-18 at width 1/8, pretrained on one half of every digit's images, fine-tuned
on 30 images per digit of the other half, long enough to memorize noisy labels), plus:

- a smooth variant (every ReLU a GELU, its own source model) for the claims about smooth
  losses: second-order Taylor expansions such as noise stability ~ (sigma^2/2) Tr(H) need
  activations without kinks;
- the tiny scale's CNN source model, for the tests.
"""

from __future__ import annotations

import copy
from typing import Any

from genmeasures.reproduce.regime import QUICK_MODEL

__all__ = ["SMOOTH_MODEL", "digits_pretrain", "indoor_resnet50"]

#: The same network with GELU activations, for claims about smooth losses.
SMOOTH_MODEL: dict[str, Any] = {
    "name": "resnet18",
    "kwargs": {**QUICK_MODEL["kwargs"], "activation": "gelu"},
}
_DIGITS_PRETRAIN = {
    "model": {"name": "cnn"},
    "data": {"train": "digits-source:split=train", "test": "digits-source:split=test"},
    "train": {"epochs": 20, "batch_size": 32, "lr": 0.02},
}

_INDOOR_RESNET50 = {
    "model": {"name": "resnet50", "pretrained": "weights/resnet50-imagenet.pth"},
    "data": {
        "train": "data/indoor:split=train,image_size=224",
        "test": "data/indoor:split=test,image_size=224",
        "workers": 8,
    },
    "train": {
        "epochs": 30,
        "batch_size": 32,
        "lr": 0.01,
        "schedule": "step",
        "step_size": 10,
        "device": "cuda",
        "amp": True,
    },
}


def digits_pretrain(model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tiny scale's (tests') source model: a CNN (or ``model``) trained on digits 0-4.

    Figures whose pretraining configs are equal pretrain identical weights."""
    config = copy.deepcopy(_DIGITS_PRETRAIN)
    if model is not None:
        config["model"] = copy.deepcopy(model)
    return config


def indoor_resnet50(**train: Any) -> dict[str, Any]:
    """The paper scale's base: ResNet-50 from ImageNet weights on MIT Indoor
    (``data/indoor/{train,test}/CLASS/*.jpg``), SGD 0.01 with a step schedule, on a GPU;
    ``train`` overrides or adds train keys."""
    config = copy.deepcopy(_INDOOR_RESNET50)
    config["train"].update(train)
    return config
