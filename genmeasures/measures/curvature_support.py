"""What every curvature measure does first: eval mode, the sample on the device, checks.

In a distributed run (:mod:`genmeasures.curvature.distributed`) every rank holds the whole
evaluation sample; :func:`curvature_setup` first checks that the ranks were given the same
sample, weights, layers and loss, and the per-sample reductions here map each rank's own
batches and reduce the gathered list as one process does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from genmeasures.curvature import distributed
from genmeasures.curvature.functional import FunctionalModel, evaluation_mode, verify_loss
from genmeasures.measures.context import MeasureContext
from genmeasures.measures.layers import LayerPattern, select_layers

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class CurvatureSetup:
    """The model (in eval mode), the selected parameter names and the evaluation batches."""

    ctx: MeasureContext
    model: nn.Module
    names: list[str]
    batches: list[Batch]

    def functional(self, names: Sequence[str] | None = None) -> FunctionalModel:
        return FunctionalModel.create(self.model, list(names or self.names), self.ctx.loss)

    def regroup(self, batch_size: int) -> list[Batch]:
        """The same samples, in the same order, in consecutive batches of ``batch_size``."""
        inputs = torch.cat([x for x, _ in self.batches])
        targets = torch.cat([y for _, y in self.batches])
        return [
            (inputs[i : i + batch_size], targets[i : i + batch_size])
            for i in range(0, len(targets), batch_size)
        ]

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.ctx.seed)


@contextmanager
def curvature_setup(ctx: MeasureContext, layers: LayerPattern) -> Iterator[CurvatureSetup]:
    """Select layers, put the model in eval mode (restored after), check the loss.

    Inputs are cast to the model's floating dtype, so float64 models work on float32 data.
    """
    assert ctx.data is not None  # "data" is in the curvature measures' needs
    model = ctx.model
    names = select_layers(ctx.weights, layers, model=model)
    dtype = next(model.parameters()).dtype
    batches = [
        (x.to(dtype) if x.is_floating_point() else x, y) for x, y in ctx.data.batches(ctx.device)
    ]
    with evaluation_mode(model):
        setup = CurvatureSetup(ctx, model, names, batches)
        if distributed.active() is not None:
            _check_ranks_agree(setup)
        verify_loss(setup.functional(), batches)
        yield setup


def _check_ranks_agree(setup: CurvatureSetup) -> None:
    """Refuse (:class:`~genmeasures.curvature.distributed.DistributedError`, on every rank)
    unless every rank holds the same evaluation sample, batch by batch, the same weights,
    init, layers, loss, seed and n_train: a rank with other data would add products of
    another sample. The digests are computed once per context (they hash the sample and the
    weights)."""
    ctx = setup.ctx
    key = ("distributed", "digests")
    if key not in ctx.memo:
        ctx.memo[key] = {
            "sample": distributed.tensor_digest(
                (f"{i}:{part}", tensor)
                for i, batch in enumerate(setup.batches)
                for part, tensor in zip(("inputs", "targets"), batch, strict=True)
            ),
            "weights": distributed.tensor_digest(
                [*setup.model.named_parameters(), *setup.model.named_buffers()]
            ),
            "init": distributed.tensor_digest(sorted(ctx.init.items()))
            if ctx.init is not None
            else None,
        }
    loss = ctx.loss
    distributed.agree(
        {
            **ctx.memo[key],
            "layers": list(setup.names),
            "loss": f"{getattr(loss, '__module__', '')}.{getattr(loss, '__qualname__', loss)}",
            "seed": ctx.seed,
            "n_train": ctx.n_train,
        }
    )


def max_sample_loss(setup: CurvatureSetup) -> float:
    """C = the largest per-sample loss over the evaluation sample."""
    fmodel = setup.functional()

    def largest(batch: Batch) -> float:
        with torch.no_grad():
            return float(fmodel.sample_losses(fmodel.params, *batch).max())

    return max(distributed.map_batches(largest, setup.batches))


def max_batch_mean_loss(setup: CurvatureSetup, batch_size: int) -> float:
    """C as the authors' scripts take it: the largest mean loss of consecutive mini-batches
    of ``batch_size`` samples (in the evaluation sample's order)."""
    fmodel = setup.functional()

    def sample_losses(batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            return fmodel.sample_losses(fmodel.params, *batch)

    losses = torch.cat(distributed.map_batches(sample_losses, setup.batches))
    return max(float(chunk.mean()) for chunk in losses.split(batch_size))
