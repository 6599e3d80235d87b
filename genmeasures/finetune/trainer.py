"""The one training loop. Algorithms plug in through hooks (see :mod:`.algorithm`).

Every epoch seeds its own generators from (seed, epoch): ``TrainState.generator`` (the
shuffling order, the algorithms' noise) and those the run lends for what would otherwise draw
from torch's global generator (dropout masks, a data loader's worker seed; see
:mod:`.randomness`). So epoch t depends neither on what ran before (a run resumed after epoch
t ends with the same weights as one that was never interrupted) nor on what other threads of
the process draw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from genmeasures._rng import current_generator
from genmeasures.finetune.algorithm import Algorithm, TrainState


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**63 - 1)


def _size(dataset: Dataset) -> int:
    """``len(dataset)``: the map-style datasets trained on here all have one."""
    return len(dataset)  # type: ignore[arg-type]  # torch's Dataset declares no __len__


class _Indexed(Dataset):
    """Yields (input, index) so the loop can read the current (noisy/corrected) labels."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return _size(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index][0], index


@dataclass
class TrainingData:
    """The training inputs, iterated in a per-epoch order; in memory when possible."""

    dataset: Dataset
    batch_size: int
    device: torch.device
    workers: int = 0

    def __post_init__(self) -> None:
        inputs = getattr(self.dataset, "inputs", None)
        self._inputs = inputs.to(self.device) if isinstance(inputs, torch.Tensor) else None

    def __len__(self) -> int:
        return _size(self.dataset)

    def batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(_size(self.dataset), generator=generator)
        if self._inputs is not None:
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                yield self._inputs[index.to(self.device)], index
            return
        # Iterating draws the workers' base seed from the loader's generator: the run's lent
        # one (None outside a run: torch's global one, as DataLoader does by default).
        loader = DataLoader(
            torch.utils.data.Subset(_Indexed(self.dataset), order.tolist()),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            generator=current_generator("cpu"),
        )
        for inputs, index in loader:
            yield inputs.to(self.device, non_blocking=True), index


def train_one_epoch(
    algorithm: Algorithm,
    optimizer: torch.optim.Optimizer,
    data: TrainingData,
    frozen: list[nn.Module],
    amp: bool,
) -> float:
    """One pass over the training data; returns the mean training loss (as optimized)."""
    state: TrainState = algorithm.state
    model = state.model
    model.train()
    for module in frozen:
        module.eval()
    algorithm.on_epoch_start()
    total = torch.zeros((), device=state.device)
    steps = 0
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if amp and state.device.type == "cuda"
        else contextlib.nullcontext()
    )
    for inputs, index in data.batches(state.generator):
        targets = state.labels[index].to(state.device)
        index = index.to(state.device)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            inputs, prepared = algorithm.prepare_batch(inputs, targets)
            loss = algorithm.compute_gradient(inputs, prepared, index)
        optimizer.step()
        algorithm.after_step()
        total += loss.float()
        steps += 1
    return float(total) / max(steps, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    labels: torch.Tensor,
    device: torch.device,
    batch_size: int = 512,
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy and accuracy against ``labels`` in eval mode (mode restored),
    and the predicted probabilities (on the CPU).
    """
    was_training = model.training
    model.eval()
    inputs = getattr(dataset, "inputs", None)
    if isinstance(inputs, torch.Tensor):
        batches = (inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size))
    else:
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, generator=current_generator("cpu")
        )
        batches = (x for x, _ in loader)
    total_loss, correct, start = 0.0, 0, 0
    probabilities = []
    for x in batches:
        y = labels[start : start + len(x)].to(device)
        outputs = model(x.to(device)).float()
        total_loss += float(nn.functional.cross_entropy(outputs, y, reduction="sum"))
        correct += int((outputs.argmax(dim=1) == y).sum())
        probabilities.append(outputs.softmax(dim=1).cpu())
        start += len(x)
    model.train(was_training)
    return total_loss / start, correct / start, torch.cat(probabilities)
