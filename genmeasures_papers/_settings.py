"""Settings several figures share: the quick-scale source model and the paper-scale base."""

from __future__ import annotations

import copy
from typing import Any

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
    """The quick scale's source model: a CNN (or ``model``) trained on digits 0-4, 20 epochs.

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
