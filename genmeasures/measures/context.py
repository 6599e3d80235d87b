"""What a measure is given: the checkpoint's weights, its init, the model, the evaluation data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import nn

from genmeasures.errors import MeasureError
from genmeasures.losses import PerSampleLoss, cross_entropy_per_sample

if TYPE_CHECKING:
    from genmeasures.data.evalset import EvaluationSet


@dataclass
class MeasureContext:
    """Inputs of one measure evaluation on one checkpoint.

    ``weights`` and ``init`` are state dicts (CPU or device tensors). ``model`` is built on
    first use by ``model_factory`` and already holds ``weights``. ``data`` is the evaluation
    sample S (an :class:`~genmeasures.data.evaluation.EvaluationSet`); ``loss`` maps
    (outputs, targets) to per-sample losses.
    """

    weights: Mapping[str, torch.Tensor]
    init: Mapping[str, torch.Tensor] | None = None
    model_factory: Callable[[], nn.Module] | None = None
    data: EvaluationSet | None = None
    loss: PerSampleLoss = cross_entropy_per_sample
    n_train: int | None = None
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str = "model"
    memo: dict = field(default_factory=dict)  # results that several measures share

    @cached_property
    def model(self) -> nn.Module:
        if self.model_factory is None:
            raise MeasureError(f"{self.source}: no model architecture is known; pass --model")
        return self.model_factory()

    @property
    def n_eval_samples(self) -> int | None:
        return len(self.data) if self.data is not None else None

    def missing_inputs(self, needs: Iterable[str]) -> list[str]:
        """What of ``needs`` this context lacks, each with the option that supplies it."""
        needs = set(needs)
        missing = []
        if "init" in needs and self.init is None:
            missing.append("an init checkpoint (--init)")
        if "data" in needs and self.data is None:
            missing.append("evaluation data (--data)")
        if needs & {"model", "curvature"} and self.model_factory is None:
            missing.append("a model architecture (--model)")
        if "n_train" in needs and self.n_train is None:
            missing.append("the training-set size (--n-train)")
        return missing

    def check_needs(self, measure: str, needs: Iterable[str]) -> None:
        """Raise MeasureError naming what ``measure`` needs and this context lacks."""
        missing = self.missing_inputs(needs)
        if missing:
            raise MeasureError(f"measure {measure!r} needs {' and '.join(missing)}")
