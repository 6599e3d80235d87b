"""Dataset classes: the abstract :class:`LabeledDataset` and its in-memory and subset forms."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from genmeasures._coerce import option_error
from genmeasures.constraints import Positive
from genmeasures.errors import DataError, OptionError, one_line

__all__ = [
    "ChannelStd",
    "ChannelValues",
    "LabeledDataset",
    "RelabeledDataset",
    "SubsetDataset",
    "TensorDataset",
    "per_channel",
]

#: A per-channel normalization option: one number for every channel, or one per channel.
ChannelValues = float | list[float] | None
#: The same, every number > 0 (a standard deviation).
ChannelStd = Annotated[float | list[float] | None, Positive()]


def per_channel(
    values: float | Sequence[float] | None, channels: int, *, where: str, name: str
) -> list[float] | None:
    """A checked per-channel option (see :data:`ChannelValues`) as ``channels`` floats; a
    single number is broadcast and ``None`` stays ``None``. Only the count is checked here:
    the type and range were checked with the builder's arguments."""
    if values is None:
        return None
    numbers = [values] * channels if isinstance(values, int | float) else list(values)
    if len(numbers) != channels:
        requirement = f"must be a number or a list of {channels} numbers"
        raise option_error(where, name, requirement, values)
    return [float(v) for v in numbers]


class LabeledDataset(Dataset, ABC):
    """A classification dataset: ``dataset[i] -> (x, y)``.

    ``x`` is a float tensor and ``y`` an int64 scalar tensor in ``[0, num_classes)``.

    Attributes:
        targets: all labels, an int64 tensor of shape ``(N,)``.
        num_classes: the number of classes of the task (labels lie in ``[0, num_classes)``).
        spec: a canonical spec string; ``load_dataset(spec)`` rebuilds the dataset. Datasets
            derived from a loaded one (subsets, relabelled copies) keep their parent's spec
            and are told apart by :meth:`fingerprint`.
    """

    targets: torch.Tensor
    num_classes: int
    spec: str = ""
    _fingerprint: str | None = None

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @abstractmethod
    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)`` for one sample."""

    @abstractmethod
    def _compute_fingerprint(self) -> str:
        """Return the hex sha256 of the dataset's content."""

    def fingerprint(self) -> str:
        """A hex sha256 identifying the content (inputs and labels); computed once, cached.

        It depends only on the content, not on the process, so it is stable across runs.
        """
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def subset(self, indices: Sequence[int] | torch.Tensor) -> LabeledDataset:
        """The samples at ``indices``, in the given order."""
        return SubsetDataset(self, indices)

    def with_targets(self, new_targets: Any, num_classes: int | None = None) -> LabeledDataset:
        """The same inputs with other labels (e.g. noisy or corrected training labels)."""
        return RelabeledDataset(self, new_targets, num_classes)

    def validate(self, name: str | None = None) -> None:
        """Raise :class:`DataError` if the dataset is empty or has labels out of range."""
        name = name or self.spec or type(self).__name__
        if len(self) == 0:
            raise DataError(f"dataset '{name}' is empty")
        check_labels(self.targets, self.num_classes, f"dataset '{name}'")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(spec={self.spec!r}, n={len(self)}, "
            f"num_classes={self.num_classes})"
        )


class TensorDataset(LabeledDataset):
    """An in-memory dataset: ``inputs`` (float32, shape ``(N, ...)``) and ``targets`` ``(N,)``.

    ``num_classes`` defaults to ``max(targets) + 1``. The fingerprint hashes the bytes of the
    inputs and labels; do not modify the tensors in place after calling :meth:`fingerprint`.
    """

    def __init__(
        self,
        inputs: torch.Tensor | np.ndarray,
        targets: torch.Tensor | np.ndarray | Sequence[int],
        num_classes: int | None = None,
        spec: str = "",
    ) -> None:
        inputs_t = _as_tensor(inputs)
        if not inputs_t.is_floating_point() or inputs_t.dtype != torch.float32:
            inputs_t = inputs_t.to(torch.float32)
        if inputs_t.dim() == 0:
            raise DataError(f"dataset '{spec}' inputs must have a sample dimension, got a scalar")
        self.inputs = inputs_t.contiguous()
        self.targets = as_label_tensor(targets, f"dataset '{spec}'")
        if self.targets.shape[0] != self.inputs.shape[0]:
            raise DataError(
                f"dataset '{spec}' has {self.inputs.shape[0]} inputs but "
                f"{self.targets.shape[0]} labels"
            )
        if num_classes is None:
            num_classes = int(self.targets.max()) + 1 if self.targets.numel() else 0
        self.num_classes = int(num_classes)
        self.spec = spec
        self._fingerprint = None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(f"tensor;{tuple(self.inputs.shape)};{self.num_classes};".encode())
        digest.update(self.inputs.detach().cpu().contiguous().numpy().tobytes())
        digest.update(self.targets.detach().cpu().contiguous().numpy().astype("<i8").tobytes())
        return digest.hexdigest()

    def validate(self, name: str | None = None) -> None:
        """Also reject NaN or infinite inputs."""
        super().validate(name)
        if self.inputs.numel() == 0:
            return
        finite = torch.isfinite(self.inputs.reshape(len(self), -1)).all(dim=1)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0, 0])
            name = name or self.spec or type(self).__name__
            raise DataError(f"dataset '{name}' has NaN or infinite inputs (first at index {first})")

    def subset(self, indices: Sequence[int] | torch.Tensor) -> TensorDataset:
        """A new :class:`TensorDataset` with the samples at ``indices`` (same spec)."""
        idx = index_tensor(indices, len(self))
        return TensorDataset(self.inputs[idx], self.targets[idx], self.num_classes, self.spec)

    def with_targets(
        self,
        new_targets: torch.Tensor | np.ndarray | Sequence[int],
        num_classes: int | None = None,
    ) -> TensorDataset:
        """The same inputs with other labels (``num_classes`` defaults to the current one)."""
        targets = as_label_tensor(new_targets, "new targets")
        if targets.shape[0] != len(self):
            raise DataError(
                f"new targets have length {targets.shape[0]}, dataset '{self.spec}' has "
                f"{len(self)} samples"
            )
        num_classes = self.num_classes if num_classes is None else int(num_classes)
        check_labels(targets, num_classes, "new targets")
        return TensorDataset(self.inputs, targets, num_classes, self.spec)


class SubsetDataset(LabeledDataset):
    """A view of the samples of ``base`` at ``indices`` (for lazily loaded datasets)."""

    def __init__(self, base: LabeledDataset, indices: Sequence[int] | torch.Tensor) -> None:
        self.base = base
        self.indices = index_tensor(indices, len(base))
        self.targets = base.targets[self.indices]
        self.num_classes = base.num_classes
        self.spec = base.spec
        self._fingerprint = None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base[int(self.indices[index])]

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha256(f"subset;{self.base.fingerprint()};".encode())
        digest.update(self.indices.numpy().astype("<i8").tobytes())
        return digest.hexdigest()


class RelabeledDataset(LabeledDataset):
    """A view of ``base`` with other labels (for lazily loaded datasets)."""

    def __init__(self, base: LabeledDataset, targets: Any, num_classes: int | None) -> None:
        labels = as_label_tensor(targets, "new targets")
        if labels.shape[0] != len(base):
            raise DataError(
                f"new targets have length {labels.shape[0]}, dataset '{base.spec}' has "
                f"{len(base)} samples"
            )
        self.base = base
        self.num_classes = base.num_classes if num_classes is None else int(num_classes)
        check_labels(labels, self.num_classes, "new targets")
        self.targets = labels
        self.spec = base.spec
        self._fingerprint = None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base[index][0], self.targets[index]

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha256(f"relabeled;{self.base.fingerprint()};".encode())
        digest.update(self.targets.numpy().astype("<i8").tobytes())
        return digest.hexdigest()


def _as_tensor(data: Any) -> torch.Tensor:
    if torch.is_tensor(data):
        return data
    array = np.asarray(data)
    if not array.flags.writeable:  # torch warns about read-only numpy memory
        array = array.copy()
    return torch.as_tensor(array)


def as_label_tensor(targets: Any, what: str) -> torch.Tensor:
    """Convert labels to a 1-D int64 tensor, rejecting non-integer values."""
    try:
        tensor = _as_tensor(targets)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"{what}: labels are not numeric ({one_line(exc)})") from None
    if tensor.dim() != 1:
        raise DataError(f"{what}: labels must be 1-D, got shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise DataError(f"{what}: labels must be integers, got dtype {tensor.dtype}")
    if tensor.is_floating_point() and not (
        bool(torch.isfinite(tensor).all()) and bool((tensor == tensor.round()).all())
    ):
        raise DataError(f"{what}: labels must be integers, got dtype {tensor.dtype}")
    return tensor.to(torch.int64).contiguous()


def check_labels(targets: torch.Tensor, num_classes: int, what: str) -> None:
    """Raise :class:`DataError` naming the first label outside ``[0, num_classes)``."""
    bad = (targets < 0) | (targets >= num_classes)
    if bool(bad.any()):
        position = int(bad.nonzero()[0, 0])
        raise DataError(
            f"{what} has label {int(targets[position])} at index {position} outside "
            f"[0, {num_classes})"
        )


def index_tensor(indices: Sequence[int] | torch.Tensor, length: int) -> torch.Tensor:
    """Convert ``indices`` to an int64 tensor, checking that each lies in ``[0, length)``."""
    idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
    bad = (idx < 0) | (idx >= length)
    if bool(bad.any()):
        raise OptionError(
            f"subset index {int(idx[bad][0])} out of range for a dataset of {length} samples"
        )
    return idx
