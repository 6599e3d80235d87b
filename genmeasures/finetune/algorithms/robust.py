"""Consistent loss with layer-wise projection (Ju, Li & Zhang, ICML 2022, "Robust fine-tuning
of deep neural networks with Hessian-based generalization guarantees").

Backward loss correction (Patrini et al. 2017) for class-conditional label noise with the
transition matrix ``T[y, z] = P(noisy = z | clean = y)``: for a noisy label ``z`` the loss is

    l(x, z) = -sum_j [T^-1]_{z, j} log p_j(x)

so that ``E_z[l(x, z) | y] = sum_z T[y, z] l(x, z) = -log p_y(x)``: unbiased for the clean
cross-entropy (with the Moore-Penrose pseudo-inverse when ``T`` is singular). Combined with the
``constraint`` projection after every step.

Dual-T (Yao et al., NeurIPS 2020, "Dual T: reducing estimation error for transition matrix in
label-noise learning") estimates ``T`` from a model trained on the noisy labels:
``T = T_club @ T_spade`` with ``T_spade[a, z]`` the row-normalised counts of predicted class
``a`` versus noisy label ``z`` over the training set and ``T_club[i, :]`` the softmax output at
the anchor point of class ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch

from genmeasures.constraints import Interval, Positive
from genmeasures.data.noise import transition_matrix, validate_transition
from genmeasures.errors import OptionError
from genmeasures.finetune.algorithm import (
    TrainState,
    register_algorithm,
)
from genmeasures.finetune.algorithms.constraint import Constraint, ConstraintOptions
from genmeasures.finetune.algorithms.regsl import training_predictions
from genmeasures.losses import cross_entropy_per_sample

# ------------------------------------------------------------------------- the loss


def correction_matrix(transition: torch.Tensor) -> torch.Tensor:
    """``T^-1`` (float64), or the Moore-Penrose pseudo-inverse when ``T`` is singular."""
    t = transition.detach().to(torch.float64).cpu()
    if int(torch.linalg.matrix_rank(t)) == t.shape[0]:
        return torch.linalg.inv(t)
    return torch.linalg.pinv(t)


def backward_corrected_loss(
    outputs: torch.Tensor, targets: torch.Tensor, inverse: torch.Tensor
) -> torch.Tensor:
    """Per-sample ``-sum_j inverse[z_b, j] log softmax(outputs_b)_j`` (same dtype as outputs)."""
    log_probs = torch.log_softmax(outputs, dim=1)
    weights = inverse.to(log_probs.device, log_probs.dtype)[targets]
    return -(weights * log_probs).sum(dim=1)


# ------------------------------------------------------------------------- Dual-T


def anchor_indices(probabilities: torch.Tensor, outlier_fraction: float = 0.03) -> torch.Tensor:
    """For each class i, the index of the sample with the highest ``p_i`` after discarding the
    ``floor(outlier_fraction * N)`` samples with the highest ``p_i`` as outliers.

    Outliers are discarded by rank (ties broken by index), not by value as in the authors'
    code (``p_i >= 97th percentile``), so that confident predictions with many tied
    probabilities of 1 still give an anchor of the class.
    """
    n = probabilities.shape[0]
    drop = min(math.floor(outlier_fraction * n + 1e-9), n - 1)
    order = torch.sort(probabilities, dim=0, descending=True, stable=True).indices
    return order[drop]


def dual_t_estimate(
    probabilities: torch.Tensor,
    noisy_labels: torch.Tensor,
    num_classes: int,
    outlier_fraction: float = 0.03,
) -> torch.Tensor:
    """The Dual-T estimate ``T = T_club @ T_spade`` (K x K, float64, rows summing to 1).

    ``probabilities``: N x K softmax outputs of a model trained on ``noisy_labels``.
    ``T_spade[a, z]``: row-normalised counts of (predicted class a, noisy label z); a class
    that is never predicted gets the identity row. ``T_club[i, :]``: the probabilities at the
    anchor point of class i (:func:`anchor_indices`).
    """
    k = int(num_classes)
    probs = probabilities.detach().to(torch.float64).cpu()
    noisy = noisy_labels.detach().cpu().long()
    predicted = probs.argmax(dim=1)
    counts = torch.bincount(predicted * k + noisy, minlength=k * k).reshape(k, k).double()
    totals = counts.sum(dim=1, keepdim=True)
    eye = torch.eye(k, dtype=torch.float64)
    t_spade = torch.where(totals > 0, counts / totals.clamp_min(1), eye)
    t_club = probs[anchor_indices(probs, outlier_fraction)]
    t_club = t_club / t_club.sum(dim=1, keepdim=True)
    return t_club @ t_spade


# ------------------------------------------------------------------------- the algorithm


@register_algorithm
class Robust(Constraint):
    """Consistent (backward-corrected) loss + layer-wise projection (Ju, Li & Zhang 2022).

    loss(x, z) = -sum_j [T^-1]_{z, j} log p_j(x)  (pseudo-inverse when T is singular),
    averaged over the batch, and ``constraint``'s projection after every step (options
    ``distance``, ``head_distance``, ``gamma``, ``norm``, ``head_center``).

    Where T comes from (``estimate``):

    * ``transition``: a given K x K row-stochastic matrix (list of lists), ``T[clean, noisy]``;
    * ``noise_rate`` > 0: ``transition_matrix(noise_kind, noise_rate, K)`` with ``noise_kind``
      symmetric (default) | symmetric_all | pair (see :mod:`genmeasures.data.noise`);
    * ``estimate = "dual_t"``: Dual-T (Yao et al. 2020) from this run's own model: for the first
      ``warmup_epochs`` epochs (default 1) the loss is the plain cross-entropy on the noisy
      labels; at the end of epoch ``warmup_epochs`` T is estimated (:func:`dual_t_estimate`,
      outliers ``outlier_fraction`` = 3% as Dual-T) and the corrected loss is used from then on.
    * ``estimate = "known"``: the transition matrix the run's own label noise was drawn from
      (``data.noise`` / ``data.noise_rate``; the identity for clean labels), as the fine-tuning
      run passes it in ``state.noise_transition``: "T given", without repeating the rate.
    * ``estimate = "auto"`` (default): ``transition`` if given, else ``noise_rate`` if > 0,
      else Dual-T. ``transition`` and ``noise_rate`` together, or either with
      ``estimate = "dual_t"``, is an error.

    What the paper used: its experiments estimate T with Dual-T from a model first fine-tuned
    (with the constraints) on the noisy labels, then fine-tune again from the pretrained weights
    with the corrected loss; the authors' code alternatively builds a symmetric T from a rate.
    Here the estimate comes from the same run after its warm-up epochs (no second run).

    Contract (Dual-T only): like ``regsl``, the predictions need ``state.train_dataset`` (the
    training LabeledDataset, set by the fine-tuning run before training). T is kept in
    ``state_dict`` for resume; ``on_epoch_end`` logs ``transition_diagonal``, the mean of T's
    diagonal, once T is known.
    """

    name = "robust"

    @dataclass(frozen=True)
    class Options(ConstraintOptions):
        transition: Annotated[
            list[list[float]] | None, "a K x K row-stochastic T[clean, noisy]"
        ] = None
        noise_rate: Annotated[
            float, Interval(0, 1, closed="left"), "T from this rate (with noise_kind)"
        ] = 0.0
        noise_kind: Annotated[
            Literal["symmetric", "symmetric_all", "pair"], "the noise model of noise_rate"
        ] = "symmetric"
        estimate: Annotated[
            Literal["auto", "dual_t", "known"],
            "where T comes from: auto, Dual-T from this run, or the run's own label noise",
        ] = "auto"
        warmup_epochs: Annotated[int, Positive(), "epochs of plain CE before Dual-T"] = 1
        outlier_fraction: Annotated[
            float, Interval(0, 1, closed="left"), "Dual-T's outlier fraction"
        ] = 0.03

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.transition is not None:
                _check_transition(self.transition, len(self.transition))
            if self.transition is not None and self.noise_rate > 0:
                raise OptionError(
                    "algorithm.transition and algorithm.noise_rate both set: give one noise model"
                )
            if self.estimate in ("dual_t", "known") and (
                self.transition is not None or self.noise_rate > 0
            ):
                key = "transition" if self.transition is not None else "noise_rate"
                raise OptionError(
                    f"algorithm.estimate = {self.estimate!r} sets T: do not also set "
                    f"algorithm.{key}"
                )

        @property
        def source(self) -> str:
            """Where T comes from: "transition", "noise_rate", "known" or "dual_t"."""
            if self.estimate == "known":
                return "known"
            if self.transition is not None:
                return "transition"
            if self.noise_rate > 0:
                return "noise_rate"
            return "dual_t"

    def __init__(self, options: Options, state: TrainState) -> None:
        super().__init__(options, state)
        self.transition: torch.Tensor | None = None
        self.inverse: torch.Tensor | None = None
        k = state.num_classes
        if options.source == "transition":
            self.set_transition(_check_transition(options.transition, k))
        elif options.source == "noise_rate":
            try:
                matrix = transition_matrix(options.noise_kind, options.noise_rate, k)
            except OptionError as exc:
                raise OptionError(f"algorithm.noise_rate: {exc}") from None
            self.set_transition(matrix)
        elif options.source == "known":
            known = getattr(state, "noise_transition", None)
            if known is None:
                raise OptionError(
                    "algorithm.estimate = 'known' needs the run's noise transition; "
                    "it is set by `finetune` from data.noise and data.noise_rate"
                )
            self.set_transition(known)

    def set_transition(self, transition: torch.Tensor) -> None:
        """Use ``transition`` (K x K) from now on; the loss uses its (pseudo-)inverse."""
        self.transition = transition.detach().to(torch.float64).cpu()
        inverse = correction_matrix(self.transition)
        self.inverse = inverse.to(self.state.device, torch.float32)

    # --- the loss ---------------------------------------------------------------------------
    def batch_loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        if self.inverse is None:  # Dual-T warm-up: plain cross-entropy on the noisy labels
            return cross_entropy_per_sample(outputs, targets).mean()
        return backward_corrected_loss(outputs.float(), targets, self.inverse).mean()

    # --- Dual-T -----------------------------------------------------------------------------
    def predict_training_set(self) -> torch.Tensor:
        """N x K probabilities on the training set (see ``regsl.training_predictions``)."""
        return training_predictions(self.state)

    def estimate_transition(self) -> torch.Tensor:
        """Estimate T by Dual-T from the current model and training labels, and use it."""
        matrix = dual_t_estimate(
            self.predict_training_set(),
            self.state.labels,
            self.state.num_classes,
            self.options.outlier_fraction,
        )
        self.set_transition(matrix)
        return matrix

    def on_epoch_end(self) -> dict[str, float]:
        if self.transition is None and self.state.epoch >= self.options.warmup_epochs:
            self.estimate_transition()
        if self.transition is None:
            return {}
        return {"transition_diagonal": float(torch.diagonal(self.transition).mean())}

    # --- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {} if self.transition is None else {"transition": self.transition.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("transition") is not None:
            self.set_transition(torch.as_tensor(state["transition"]))


def _check_transition(matrix: Any, num_classes: int) -> torch.Tensor:
    """The option ``transition`` as a checked float64 matrix (OptionError naming the key)."""
    if not matrix or not all(isinstance(row, list | tuple) for row in matrix):
        raise OptionError(f"algorithm.transition must be a K x K list of lists, got {matrix!r}")
    try:
        return validate_transition(matrix, num_classes)
    except OptionError as exc:
        message = str(exc).replace("noise matrix", "matrix")
        raise OptionError(f"algorithm.transition: {message}") from None
