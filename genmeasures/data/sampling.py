"""Deterministic evaluation subsets and data loaders."""

from __future__ import annotations

from typing import Annotated

import torch
from torch.utils.data import DataLoader

from genmeasures._coerce import check_option
from genmeasures.constraints import Positive, Strict
from genmeasures.data.base import LabeledDataset

__all__ = ["evaluation_sample", "make_loader", "sample_indices"]

#: How many samples to evaluate on (None: all); exactly an int, not 2.0.
SampleCount = Annotated[int, Strict(), Positive()] | None
Seed = Annotated[int, Strict()]
BatchSize = Annotated[int, Strict(), Positive()]


def sample_indices(size: int, n_samples: int | None, seed: int) -> torch.Tensor | None:
    """``n_samples`` of ``range(size)`` drawn without replacement, sorted; None for all.

    Raises:
        OptionError: ``n_samples`` is not a positive integer or ``seed`` not an integer.
    """
    n_samples = check_option(n_samples, SampleCount, where="evaluation sample", name="n_samples")
    if n_samples is None:
        return None
    seed = check_option(seed, Seed, where="evaluation sample", name="seed")
    if n_samples >= size:
        return None
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(size, generator=generator)[: int(n_samples)].sort().values


def evaluation_sample(dataset: LabeledDataset, n_samples: int | None, seed: int) -> LabeledDataset:
    """The whole ``dataset`` if ``n_samples`` is ``None`` or ``>= len(dataset)``, else a subset.

    The subset holds ``n_samples`` indices drawn without replacement by a ``torch.Generator``
    seeded with ``seed``, kept in increasing order; the same arguments give the same subset.

    Raises:
        OptionError: ``n_samples`` is not a positive integer.
    """
    indices = sample_indices(len(dataset), n_samples, seed)
    return dataset if indices is None else dataset.subset(indices)


def make_loader(dataset: LabeledDataset, batch_size: int = 256) -> DataLoader:
    """A loader over ``dataset`` in order: no shuffling, no worker processes, last batch kept."""
    batch_size = check_option(batch_size, BatchSize, where="data loader", name="batch_size")
    return DataLoader(dataset, batch_size=int(batch_size), shuffle=False, num_workers=0)
