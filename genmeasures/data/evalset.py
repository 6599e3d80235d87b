"""The evaluation sample S = {(x_j, y_j)}, j = 1..m, in a fixed order, iterated in batches.

Measures never see DataLoaders or datasets directly: they iterate an :class:`EvaluationSet`,
which knows its size m (so losses can be sample-weighted: a short last batch is not
over-weighted) and a fingerprint of its content (so results can be cached).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from genmeasures._io import sha256_bytes, tensor_bytes
from genmeasures.data.base import LabeledDataset
from genmeasures.data.sampling import evaluation_sample, make_loader, sample_indices
from genmeasures.errors import DataError

Batch = tuple[torch.Tensor, torch.Tensor]
DEFAULT_BATCH_SIZE = 256


class EvaluationSet:
    """A fixed sequence of (inputs, targets) batches of known total size."""

    def __init__(
        self,
        batches: Callable[[], Iterable[Batch]],
        size: int,
        *,
        fingerprint: str | None = None,
        description: str = "evaluation data",
    ) -> None:
        if size <= 0:
            raise DataError(f"{description} is empty")
        self._batches = batches
        self._size = size
        self.fingerprint = fingerprint
        self.description = description

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"EvaluationSet({self.description}, m={self._size})"

    def batches(self, device: torch.device | str | None = None) -> Iterator[Batch]:
        for inputs, targets in self._batches():
            if device is not None:
                inputs, targets = inputs.to(device), targets.to(device)
            yield inputs, targets

    def targets(self) -> torch.Tensor:
        return torch.cat([targets.reshape(len(targets), -1)[:, 0] for _, targets in self.batches()])

    @classmethod
    def from_tensors(
        cls,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        n_samples: int | None = None,
        seed: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        description: str = "evaluation tensors",
    ) -> EvaluationSet:
        if len(inputs) != len(targets):
            raise DataError(f"{description}: {len(inputs)} inputs but {len(targets)} targets")
        if len(inputs) == 0:
            raise DataError(f"{description} is empty")
        index = sample_indices(len(inputs), n_samples, seed)
        if index is not None:
            inputs, targets = inputs[index], targets[index]
        fingerprint = sha256_bytes(tensor_bytes(inputs) + tensor_bytes(targets))

        def batches() -> Iterator[Batch]:
            for start in range(0, len(inputs), batch_size):
                yield inputs[start : start + batch_size], targets[start : start + batch_size]

        return cls(batches, len(inputs), fingerprint=fingerprint, description=description)

    @classmethod
    def from_dataset(
        cls,
        dataset: LabeledDataset,
        *,
        n_samples: int | None = None,
        seed: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> EvaluationSet:
        """From a genmeasures dataset: a seeded subset of ``n_samples``, fingerprinted."""
        description = f"dataset {dataset.spec or type(dataset).__name__!r}"
        if len(dataset) == 0:
            raise DataError(f"{description} is empty")
        sample = evaluation_sample(dataset, n_samples, seed)
        loader = make_loader(sample, batch_size)
        return cls(
            lambda: iter(loader),
            len(sample),
            fingerprint=sample.fingerprint(),
            description=description,
        )

    @classmethod
    def from_loader(cls, loader: Iterable[Any], *, n_samples: int | None = None) -> EvaluationSet:
        """From a user's DataLoader, in its own order, truncated to the first ``n_samples``.

        The loader must yield the same batches every time it is iterated (no shuffling);
        curvature measures check this.
        """
        sample_indices(1, n_samples, 0)  # validates n_samples

        def batches() -> Iterator[Batch]:
            seen = 0
            for batch in loader:
                inputs, targets = batch[0], batch[1]
                if n_samples is not None and seen + len(inputs) > n_samples:
                    keep = n_samples - seen
                    inputs, targets = inputs[:keep], targets[:keep]
                if len(inputs):
                    yield inputs, targets
                seen += len(inputs)
                if n_samples is not None and seen >= n_samples:
                    return

        size = sum(len(inputs) for inputs, _ in batches())
        return cls(batches, size, description="evaluation DataLoader")


def as_evaluation_set(
    data: Any, *, n_samples: int | None = None, seed: int = 0
) -> EvaluationSet | None:
    """Accept None, an EvaluationSet, an (inputs, targets) pair, a dataset or a DataLoader."""
    if data is None:
        return None
    if isinstance(data, EvaluationSet):
        return data
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        return EvaluationSet.from_tensors(data[0], data[1], n_samples=n_samples, seed=seed)
    if isinstance(data, LabeledDataset):
        return EvaluationSet.from_dataset(data, n_samples=n_samples, seed=seed)
    if isinstance(data, Dataset):  # any other map-style dataset: iterate it in order
        data = DataLoader(data, batch_size=DEFAULT_BATCH_SIZE, shuffle=False)
    if hasattr(data, "__iter__"):
        return EvaluationSet.from_loader(data, n_samples=n_samples)
    raise DataError(
        f"cannot use {type(data).__name__} as data; pass a DataLoader, a dataset or an "
        f"(inputs, targets) pair of tensors"
    )
