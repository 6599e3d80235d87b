"""A synthetic teacher-student classification task (``teacher-student``).

Inputs are ``x ~ N(0, I_d)``; the label of ``x`` is the argmax of a fixed random two-layer
tanh network (the teacher) ``d -> hidden -> num_classes``. A target task related to the source
task (``shift=0``) is the same teacher with its weights perturbed (``shift > 0``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import torch

from genmeasures.constraints import AtLeast, Interval, NonNegative, Strict
from genmeasures.data.base import TensorDataset
from genmeasures.data.loading import register_dataset

__all__ = ["teacher_network", "teacher_student"]

_NAME = "teacher-student"
_CALIBRATION_SAMPLES = 4096


def derived_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` by sha256 (the same in every process)."""
    text = "/".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def teacher_network(
    d: int, hidden: int, num_classes: int, teacher_seed: int = 0, shift: float = 0.0
) -> list[torch.Tensor]:
    """The teacher's weights ``[w1 (hidden, d), b1 (hidden,), w2 (k, hidden), b2 (k,)]``.

    Weights are drawn from ``N(0, 1/fan_in)`` with ``teacher_seed``. With ``shift > 0`` each
    weight tensor ``w`` becomes ``w + shift * rms(w) * N(0, 1)``, the noise drawn from a seed
    derived from ``teacher_seed`` alone, so tasks with different shifts share the same noise
    direction. The output bias is then set so that the classes are roughly balanced over a
    fixed reference sample of ``N(0, I_d)``.
    """
    g = _generator(derived_seed(_NAME, "teacher", teacher_seed))
    w1 = torch.randn(hidden, d, generator=g, dtype=torch.float64) / d**0.5
    b1 = torch.randn(hidden, generator=g, dtype=torch.float64) * 0.1
    w2 = torch.randn(num_classes, hidden, generator=g, dtype=torch.float64) / hidden**0.5
    weights = [w1, b1, w2]
    if shift:
        noise_g = _generator(derived_seed(_NAME, "shift", teacher_seed))
        weights = [
            w
            + shift
            * w.pow(2).mean().sqrt()
            * torch.randn(w.shape, generator=noise_g, dtype=torch.float64)
            for w in weights
        ]
    reference = torch.randn(
        _CALIBRATION_SAMPLES,
        d,
        generator=_generator(derived_seed(_NAME, "reference", d)),
        dtype=torch.float64,
    )
    logits = torch.tanh(reference @ weights[0].T + weights[1]) @ weights[2].T
    b2 = -logits.mean(dim=0)
    return [*weights, b2]


def _teacher_labels(x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    w1, b1, w2, b2 = weights
    return (torch.tanh(x @ w1.T + b1) @ w2.T + b2).argmax(dim=1)


@register_dataset(_NAME)
def teacher_student(
    n: Annotated[int, AtLeast(1)] = 1000,
    d: Annotated[int, AtLeast(1)] = 32,
    num_classes: Annotated[int, AtLeast(2)] = 4,
    hidden: Annotated[int, AtLeast(1)] = 16,
    teacher_seed: int = 0,
    data_seed: int = 0,
    split: Annotated[Literal["train", "test"], Strict()] = "train",
    shift: Annotated[float, NonNegative()] = 0.0,
    label_noise: Annotated[float, Interval(0, 1)] = 0.0,
) -> TensorDataset:
    """``n`` inputs ``x ~ N(0, I_d)`` (shape ``(n, d)``) labelled by a random tanh teacher.

    Args:
        n: number of samples in the split.
        d: input dimension.
        num_classes: number of classes (the teacher's outputs).
        hidden: the teacher's hidden width.
        teacher_seed: fixes the teacher.
        data_seed: fixes the inputs; ``split=test`` draws from a different seed derived from it.
        split: ``train`` or ``test``.
        shift: relative perturbation of the teacher's weights (see :func:`teacher_network`);
            ``shift=0`` is the source task, e.g. ``shift=0.5`` a related target task with the
            same inputs for the same ``data_seed``.
        label_noise: fraction of samples whose label is replaced by a uniformly random one
            (default 0: no label noise).
    """
    weights = teacher_network(d, hidden, num_classes, teacher_seed, shift)
    g = _generator(derived_seed(_NAME, "data", data_seed, split))
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = _teacher_labels(x, weights)
    if label_noise > 0:
        noise_g = _generator(derived_seed(_NAME, "label-noise", data_seed, split))
        flip = torch.rand(n, generator=noise_g, dtype=torch.float64) < label_noise
        random_labels = torch.randint(0, num_classes, (n,), generator=noise_g)
        labels = torch.where(flip, random_labels, labels)
    return TensorDataset(x.to(torch.float32), labels, num_classes=num_classes, spec=_NAME)
