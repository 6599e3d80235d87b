"""The shared case table: small named models x losses x batch layouts x dtypes x devices.

In the manner of curvlinops' ``test/cases.py``: every axis is a dictionary of small named
entries, :data:`CASES` is their cross product, and ``tests/conftest.py`` turns it into the
``case`` fixture. A test that takes ``case`` runs on every combination (the CUDA ones marked
``gpu`` and skipped, visibly, without a GPU); a test that needs one particular combination
builds it with :func:`make_case`.

The models come from the toolkit's own factories (:func:`genmeasures.models.build_model`) at
sizes that take milliseconds on a CPU; the cross-entropy loss is the toolkit's own
(:mod:`genmeasures.losses`), the squared error a per-sample regression loss written here (the
toolkit accepts any ``(outputs, targets) -> per-sample`` loss).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

from genmeasures.data import EvaluationSet
from genmeasures.losses import PerSampleLoss, cross_entropy_per_sample
from genmeasures.models import build_model

NUM_CLASSES = 3
N_SAMPLES = 11  # odd and prime: no batch size divides it unless it is 1 or >= 11
N_TRAIN = 100


@dataclass(frozen=True)
class ModelCase:
    """A tiny model from a registered factory and the shape of one of its inputs."""

    name: str
    factory: str
    kwargs: Mapping[str, Any]
    input_shape: tuple[int, ...]
    has_batchnorm: bool = False
    has_dropout: bool = False

    def build(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build_model(self.factory, {**self.kwargs, "num_classes": NUM_CLASSES})


@dataclass(frozen=True)
class LossCase:
    """A per-sample loss and how to draw targets for it."""

    name: str
    loss: PerSampleLoss
    targets: Callable[[int, torch.Generator, torch.dtype], torch.Tensor]


@dataclass(frozen=True)
class LayoutCase:
    """How the evaluation sample is cut into batches."""

    name: str
    batch_size: int


def squared_error_per_sample(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """l(x, y; W) = 1/2 ||f(x; W) - y||^2 for each sample: a regression loss."""
    return 0.5 * (outputs - targets).pow(2).flatten(1).sum(dim=1)


def class_targets(n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randint(0, NUM_CLASSES, (n,), generator=generator)


def regression_targets(n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(n, NUM_CLASSES, generator=generator, dtype=dtype)


MODELS = {
    "mlp": ModelCase("mlp", "mlp", {"in_features": 6, "hidden": [5], "activation": "tanh"}, (6,)),
    # batch normalization and dropout: the training flags and running statistics that a
    # measure must leave as it found them
    "cnn": ModelCase(
        "cnn",
        "cnn",
        {"in_channels": 1, "width": 3, "depth": 1, "dropout": 0.5},
        (1, 6, 6),
        has_batchnorm=True,
        has_dropout=True,
    ),
    "vit": ModelCase(
        "vit",
        "vit_tiny",
        {"image_size": 4, "patch_size": 2, "num_layers": 1, "hidden_dim": 8, "mlp_dim": 8},
        (1, 4, 4),
    ),
}

LOSSES = {
    "cross_entropy": LossCase("cross_entropy", cross_entropy_per_sample, class_targets),
    "squared_error": LossCase("squared_error", squared_error_per_sample, regression_targets),
}

LAYOUTS = {
    "one_batch": LayoutCase("one_batch", batch_size=N_SAMPLES),
    "ragged": LayoutCase("ragged", batch_size=4),  # 11 = 4 + 4 + 3: a short last batch
}

DTYPES = {"float64": torch.float64, "float32": torch.float32}

DEVICES = ["cpu", "cuda"]


@dataclass
class BuiltCase:
    """A case made concrete: a model moved away from its init, data, loss, device."""

    case: Case
    model: nn.Module
    init: nn.Module
    data: EvaluationSet
    loss: PerSampleLoss
    device: torch.device
    n_train: int = N_TRAIN
    inputs: torch.Tensor = field(repr=False, default=None)
    targets: torch.Tensor = field(repr=False, default=None)


@dataclass(frozen=True)
class Case:
    """One combination of the table's axes, named ``model-loss-layout-dtype-device``."""

    model: str
    loss: str
    layout: str
    dtype: str
    device: str

    @property
    def id(self) -> str:
        return "-".join((self.model, self.loss, self.layout, self.dtype, self.device))

    @property
    def model_case(self) -> ModelCase:
        return MODELS[self.model]

    @property
    def loss_case(self) -> LossCase:
        return LOSSES[self.loss]

    def build(self, seed: int = 0, displacement: float = 0.3) -> BuiltCase:
        """The case's model (its init moved by a seeded ``displacement``), init and data.

        The same ``seed`` gives bitwise the same objects; the model is in training mode,
        as a fine-tuned network handed over from a training loop would be.
        """
        dtype, device = DTYPES[self.dtype], torch.device(self.device)
        model_case = self.model_case
        init = model_case.build(seed).to(dtype=dtype, device=device)
        model = model_case.build(seed).to(dtype=dtype, device=device)
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for parameter in model.parameters():
                step = torch.randn(parameter.shape, generator=generator, dtype=dtype)
                parameter.add_(displacement * step.to(device))
            for module in model.modules():  # non-trivial running statistics
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
        inputs = torch.randn(N_SAMPLES, *model_case.input_shape, generator=generator, dtype=dtype)
        targets = self.loss_case.targets(N_SAMPLES, generator, dtype)
        data = EvaluationSet.from_tensors(
            inputs, targets, batch_size=LAYOUTS[self.layout].batch_size, description=self.id
        )
        model.train()
        return BuiltCase(
            case=self,
            model=model,
            init=init,
            data=data,
            loss=self.loss_case.loss,
            device=device,
            inputs=inputs,
            targets=targets,
        )


def make_case(
    model: str = "mlp",
    loss: str = "cross_entropy",
    layout: str = "ragged",
    dtype: str = "float64",
    device: str = "cpu",
) -> Case:
    """One case by its axes; the defaults are the cheapest case (used by the contracts)."""
    for axis, value, table in (
        ("model", model, MODELS),
        ("loss", loss, LOSSES),
        ("layout", layout, LAYOUTS),
        ("dtype", dtype, DTYPES),
        ("device", device, DEVICES),
    ):
        if value not in table:
            raise KeyError(f"no {axis} {value!r} in the case table; have {sorted(table)}")
    return Case(model, loss, layout, dtype, device)


CASES = [Case(*axes) for axes in itertools.product(MODELS, LOSSES, LAYOUTS, DTYPES, DEVICES)]

CUDA_AVAILABLE = torch.cuda.is_available()


def case_param(case: Case) -> Any:
    """``case`` as a pytest parameter: CUDA cases marked ``gpu`` and skipped without one."""
    marks = []
    if case.device == "cuda":
        marks = [
            pytest.mark.gpu,
            pytest.mark.skipif(not CUDA_AVAILABLE, reason="needs a CUDA GPU (none found)"),
        ]
    return pytest.param(case, id=case.id, marks=marks)
