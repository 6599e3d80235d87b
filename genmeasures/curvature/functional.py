"""The empirical risk L_S(W) as a pure function of selected parameters, in eval mode.

Everything second-order in genmeasures differentiates this function:

    L_S(W) = (1/m) sum_j l(x_j, y_j; W)

over the whole evaluation set, sample-weighted (each batch contributes its *sum* of per-sample
losses divided by the total m, so a short last batch is not over-weighted). The model is
called through ``torch.func.functional_call`` with the selected parameters replaced, so the
module's own parameters, ``.grad`` fields and ``requires_grad`` flags are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from genmeasures.errors import MeasureError
from genmeasures.losses import PerSampleLoss


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; restore each one's own flag afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@dataclass
class FunctionalModel:
    """``model`` as a function of the parameters named in ``names``; the rest held fixed.

    ``params`` are detached copies of the selected parameters (the point W at which all
    derivatives are taken); ``fixed`` holds every other parameter and buffer.
    """

    model: nn.Module
    names: tuple[str, ...]
    params: tuple[torch.Tensor, ...]
    fixed: dict[str, torch.Tensor]
    loss: PerSampleLoss

    @classmethod
    def create(
        cls,
        model: nn.Module,
        names: Sequence[str],
        loss: PerSampleLoss,
        weights: Mapping[str, torch.Tensor] | None = None,
    ) -> FunctionalModel:
        """Build from ``model``; ``weights`` (a state dict) overrides the module's own values."""
        parameters = dict(model.named_parameters())
        state = {**parameters, **dict(model.named_buffers())}
        if weights is not None:
            device = next(iter(state.values())).device if state else torch.device("cpu")
            state.update({k: v.to(device) for k, v in weights.items() if k in state})
        missing = [n for n in names if n not in parameters]
        if missing:
            raise MeasureError(f"{missing[0]!r} is not a parameter of the model")
        names = tuple(names)
        params = tuple(state[n].detach() for n in names)
        fixed = {k: v.detach() for k, v in state.items() if k not in names}
        return cls(model, names, params, fixed, loss)

    def outputs(self, params: Sequence[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(
            self.model, {**self.fixed, **dict(zip(self.names, params, strict=True))}, (inputs,)
        )

    def sample_losses(
        self, params: Sequence[torch.Tensor], inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Per-sample losses l(x_j, y_j; W) of a batch, shape (B,)."""
        losses = self.loss(self.outputs(params, inputs), targets)
        if losses.ndim != 1 or losses.shape[0] != inputs.shape[0]:
            raise MeasureError(
                f"the loss must return one value per sample (reduction='none'); got shape "
                f"{tuple(losses.shape)} for a batch of {inputs.shape[0]}"
            )
        return losses

    def weighted_loss(
        self,
        params: Sequence[torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        total: int,
    ) -> torch.Tensor:
        """This batch's share of L_S: sum of its per-sample losses divided by ``total``."""
        return self.sample_losses(params, inputs, targets).sum() / total


def check_loss(values: torch.Tensor, where: str) -> None:
    """Raise MeasureError if a loss is NaN or infinite."""
    if not bool(torch.isfinite(values).all()):
        bad = values[~torch.isfinite(values)][0].item()
        raise MeasureError(f"the loss is {bad} at the checkpoint ({where})")


def batch_losses(
    fmodel: FunctionalModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> list[float]:
    """Mean loss of each batch, without gradients."""
    with torch.no_grad():
        return [float(fmodel.sample_losses(fmodel.params, x, y).mean()) for x, y in batches]


def verify_loss(fmodel: FunctionalModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """Evaluate the first two batches twice: the loss must be finite and deterministic."""
    first = batch_losses(fmodel, batches[:2])
    check_loss(torch.tensor(first, dtype=torch.float64), "evaluation data")
    check_determinism(first, batch_losses(fmodel, batches[:2]))


def check_determinism(first: Sequence[float], second: Sequence[float], rtol: float = 1e-5) -> None:
    """Raise MeasureError when two evaluations of the per-batch losses differ.

    Dropout left active or a shuffling data loader make the loss a random function, and
    every curvature estimate built on it meaningless.
    """
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        if not math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12):
            raise MeasureError(
                f"the loss differs between two evaluations (batch {index}: {a:.8g} vs "
                f"{b:.8g}); is dropout active in eval mode, or is the data loader shuffling?"
            )
