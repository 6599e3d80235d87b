"""Regularized self-labeling (Li & Zhang, NeurIPS 2021, "Improved regularization and robustness
for fine-tuning in neural networks"): layer-wise projection + label correction + reweighting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import torch

from genmeasures.constraints import Interval, NonNegative, Positive
from genmeasures.finetune.algorithm import TrainState, register_algorithm
from genmeasures.finetune.algorithms.constraint import Constraint, ConstraintOptions
from genmeasures.losses import cross_entropy_per_sample


def training_predictions(state: TrainState, batch_size: int = 512) -> torch.Tensor:
    """Softmax outputs (N x K, CPU) of the model in eval mode on the un-augmented training set.

    Contract: the fine-tuning run sets ``state.train_dataset`` (the training
    :class:`~genmeasures.data.LabeledDataset`, in the order of ``state.labels``) before training.
    """
    dataset = getattr(state, "train_dataset", None)
    if dataset is None:
        raise RuntimeError(
            "this algorithm needs the training inputs: the fine-tuning run must set "
            "state.train_dataset (the training LabeledDataset) before training"
        )
    from genmeasures.finetune.trainer import evaluate

    _, _, probabilities = evaluate(state.model, dataset, state.labels, state.device, batch_size)
    return probabilities


def reweighted_loss(losses: torch.Tensor, temperature: float) -> torch.Tensor:
    """sum_b w_b l_b with w = softmax_b(-l_b / temperature); the weights are constants."""
    weights = torch.softmax(-losses.detach().float() / temperature, dim=0)
    return (weights.to(losses.dtype) * losses).sum()


def corrections(
    probabilities: torch.Tensor, labels: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, new labels) of the samples whose top probability exceeds ``threshold`` and
    whose predicted class differs from the current label."""
    confidence, predicted = probabilities.max(dim=1)
    labels = labels.to(predicted.device)
    change = (confidence > threshold) & (predicted != labels)
    indices = change.nonzero().flatten()
    return indices, predicted[indices]


@register_algorithm
class RegSL(Constraint):
    """Regularized self-labeling (Li & Zhang 2021): ``constraint`` plus label correction and
    label reweighting.

    * Projection: exactly ``constraint``'s layer-wise projection after every step (options
      ``distance``, ``head_distance``, ``gamma``, ``norm``, ``head_center``; see
      :class:`~genmeasures.finetune.algorithms.constraint.ConstraintOptions`).
    * Label reweighting: in every epoch t >= ``reweight_epoch`` (default 5; epochs count from
      1) the batch loss is ``sum_b w_b l_b`` with ``w = softmax_b(-l_b / tau)`` over the batch,
      ``l_b`` the per-sample cross-entropy against the current label and
      ``tau = tau_0 * max(0.5, exp(-0.1 (t - reweight_epoch)))``, ``tau_0 = temperature``
      (default 2.0; the paper uses 1.5-2). The weights are detached: constants, no gradient
      flows through them (as in the authors' code). Before that epoch: the mean cross-entropy.
    * Label correction: at the END of every epoch t >= ``correct_epoch`` (default 10), the
      model in eval mode predicts the un-augmented training set; every label whose top
      probability exceeds ``correct_threshold`` (default 0.9, strictly) and whose predicted
      class differs from the current label is permanently replaced by the prediction (a
      replaced label can be replaced again later). Correcting at the end of the epoch makes the
      epoch's logged metrics, ``correct_labels`` and the saved labels reflect the correction.
      (The authors' code corrects per batch on the training-mode outputs of augmented inputs.)

    Contract: the predictions need the training inputs, which an algorithm is not given: the
    fine-tuning run sets ``state.train_dataset`` (the training LabeledDataset, in the order of
    ``state.labels``) before training; correction raises RuntimeError without it.

    Extra metrics (``on_epoch_end``): ``corrected_labels``, the total number of label
    replacements so far (kept in ``state_dict`` for resume; the labels themselves are saved by
    the trainer), and ``reweight_temperature``, the tau of the epoch (only in epochs that
    reweight).
    """

    name = "regsl"

    @dataclass(frozen=True)
    class Options(ConstraintOptions):
        correct_epoch: Annotated[
            int, NonNegative(), "correct labels at the end of every epoch from this one"
        ] = 10
        correct_threshold: Annotated[
            float, Interval(0, 1, closed="right"), "replace a label above this confidence"
        ] = 0.9
        reweight_epoch: Annotated[int, NonNegative(), "reweight the loss from this epoch"] = 5
        temperature: Annotated[float, Positive(), "tau_0 of the reweighting softmax"] = 2.0

    def __init__(self, options: Options, state: TrainState) -> None:
        super().__init__(options, state)
        self.corrected = 0

    # --- reweighting ------------------------------------------------------------------------
    def temperature_at(self, epoch: int) -> float | None:
        """tau of epoch ``epoch``, or None before ``reweight_epoch`` (no reweighting)."""
        start = self.options.reweight_epoch
        if epoch < start:
            return None
        return self.options.temperature * max(0.5, math.exp(-0.1 * (epoch - start)))

    def batch_loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        losses = cross_entropy_per_sample(outputs, targets)
        temperature = self.temperature_at(self.state.epoch)
        if temperature is None:
            return losses.mean()
        return reweighted_loss(losses, temperature)

    # --- label correction -------------------------------------------------------------------
    def predict_training_set(self) -> torch.Tensor:
        """N x K probabilities on the training set (see :func:`training_predictions`)."""
        return training_predictions(self.state)

    def correct_labels(self) -> torch.Tensor:
        """Replace the confident, disagreeing labels in ``state.labels``; return their indices."""
        labels = self.state.labels
        indices, new = corrections(
            self.predict_training_set(), labels, self.options.correct_threshold
        )
        if len(indices):
            labels[indices.to(labels.device)] = new.to(labels.device, labels.dtype)
        self.corrected += len(indices)
        return indices

    def on_epoch_end(self) -> dict[str, float]:
        epoch = self.state.epoch
        if epoch >= self.options.correct_epoch:
            self.correct_labels()
        metrics: dict[str, float] = {"corrected_labels": self.corrected}
        temperature = self.temperature_at(epoch)
        if temperature is not None:
            metrics["reweight_temperature"] = temperature
        return metrics

    # --- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"corrected": self.corrected}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.corrected = int(state.get("corrected", 0))
