"""Label-noise models for training labels (test labels stay clean).

Each model is a ``K x K`` row-stochastic transition matrix ``T`` with
``P(noisy = z | clean = y) = T[y, z]``; the noisy label of every sample is drawn from the row
``T[clean]``. The models, for a noise rate ``r`` in ``[0, 1)`` and ``K`` classes:

* ``none``: ``T = I``; no label changes (the rate must be 0).
* ``symmetric``: with probability ``r`` the label is replaced by a class drawn uniformly from
  the ``K - 1`` OTHER classes: ``T[y, y] = 1 - r`` and ``T[y, z] = r / (K - 1)`` for ``z != y``.
  Realised flip rate: ``r``.
* ``symmetric_all``: with probability ``r`` the label is resampled uniformly over ALL ``K``
  classes (so it may come back unchanged): ``T[y, y] = 1 - r + r / K`` and ``T[y, z] = r / K``.
  Realised flip rate: ``r (K - 1) / K``.
* ``pair`` (asymmetric): class ``c`` flips to the fixed other class ``pairs[c]`` with
  probability ``r`` (default ``pairs[c] = (c + 1) mod K``): ``T[c, c] = 1 - r`` and
  ``T[c, pairs[c]] = r``. Realised flip rate: ``r``.
* ``class_conditional``: a given ``K x K`` row-stochastic matrix. Realised flip rate:
  ``sum_y p(y) (1 - T[y, y])`` for clean-label frequencies ``p``; the recorded ``rate`` is its
  value for uniform clean labels, ``1 - trace(T) / K``.

Sampling is by inverse CDF with ONE uniform per sample: ``u = torch.rand(N, generator=g,
dtype=float64)`` from a CPU ``torch.Generator`` seeded with ``seed``, and the noisy label of
sample ``i`` is the smallest ``z`` with ``u[i] < cumsum(T[clean[i]])[z]`` (classes of zero
probability are never drawn). The draw is made on the CPU whatever the device of the labels,
so the same seed gives the same noisy labels on every device; the result is moved back to the
labels' device.

    >>> noisy = apply_label_noise(train.targets, 10, kind="symmetric", rate=0.2, seed=0)
    >>> train_noisy = noisy.apply_to(train)      # same inputs, noisy labels
    >>> noisy.flip_rate, count_correct(train_noisy.targets, noisy.clean)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import torch

from genmeasures._coerce import check_option
from genmeasures.constraints import AtLeast, Interval, Strict
from genmeasures.data.base import as_label_tensor, check_labels
from genmeasures.errors import DataError, OptionError

__all__ = [
    "NOISE_KINDS",
    "NoiseModel",
    "NoisyLabels",
    "apply_label_noise",
    "count_correct",
    "transition_matrix",
    "validate_transition",
]

#: Every noise kind :func:`apply_label_noise` accepts (``-`` may be written for ``_``).
NOISE_KINDS = ("none", "symmetric", "symmetric_all", "pair", "class_conditional")
#: The kinds :func:`transition_matrix` builds from a rate.
_RATE_KINDS = ("none", "symmetric", "symmetric_all", "pair")
#: Tolerance on the row sums of a given transition matrix.
ROW_SUM_TOLERANCE = 1e-6

# The arguments of the noise models, declared once; checked by the one coercion layer with
# messages "label noise: rate must be in [0, 1), got 1.2".
# (Literal built from the tuples at runtime, so the names are written once; mypy cannot
# read a Literal of a variable.)
NoiseKindName = Literal[NOISE_KINDS]  # type: ignore[valid-type]
RateKindName = Literal[_RATE_KINDS]  # type: ignore[valid-type]
NoiseRate = Annotated[float, Interval(0, 1, closed="left")]
ClassCount = Annotated[int, Strict(), AtLeast(1)]
NoiseSeed = Annotated[int, Strict(), Interval(0, 2**64, closed="left")]
_WHERE = "label noise"


# ----------------------------------------------------------------------------- validation


def _kind(kind: Any, choices: Any = NoiseKindName) -> str:
    """The kind, spelled with ``_`` (``symmetric-all`` is accepted), checked against choices."""
    name = kind.strip().replace("-", "_") if isinstance(kind, str) else kind
    return check_option(name, choices, where=_WHERE, name="kind")


def _rate(rate: Any) -> float:
    return check_option(rate, NoiseRate, where=_WHERE, name="rate")


def _num_classes(num_classes: Any) -> int:
    return check_option(num_classes, ClassCount, where=_WHERE, name="num_classes")


def _seed(seed: Any) -> int:
    return check_option(seed, NoiseSeed, where=_WHERE, name="seed")


def _pairs(pairs: Any, num_classes: int) -> tuple[int, ...]:
    """Check a pair mapping: ``pairs[c]`` is the class that ``c`` flips to."""
    if isinstance(pairs, (str, bytes)):
        raise OptionError(f"noise pairs must be a sequence of class indices, got {pairs!r}")
    try:
        values = torch.as_tensor(pairs).reshape(-1).tolist()
    except (TypeError, ValueError, RuntimeError):
        raise OptionError(
            f"noise pairs must be a sequence of class indices, got {pairs!r}"
        ) from None
    if len(values) != num_classes:
        raise OptionError(
            f"noise pairs must map each of the {num_classes} classes, got {len(values)} entries"
        )
    mapping: list[int] = []
    for c, target in enumerate(values):
        if isinstance(target, bool) or not float(target).is_integer():
            raise OptionError(f"noise pairs[{c}] must be a class index, got {target!r}")
        target = int(target)
        if not 0 <= target < num_classes:
            raise OptionError(
                f"noise pairs[{c}] = {target} is outside the classes [0, {num_classes})"
            )
        if target == c:
            raise OptionError(f"noise pairs[{c}] maps class {c} to itself")
        mapping.append(target)
    return tuple(mapping)


def validate_transition(matrix: Any, num_classes: int) -> torch.Tensor:
    """Check a noise transition matrix and return it as a float64 CPU tensor.

    It must be ``num_classes x num_classes``, finite, non-negative, with rows summing to 1
    within ``1e-6`` (:class:`OptionError` otherwise). Rows are renormalised to sum to 1 exactly.
    """
    num_classes = _num_classes(num_classes)
    try:
        tensor = torch.as_tensor(
            np.asarray(matrix.detach().cpu() if torch.is_tensor(matrix) else matrix),
            dtype=torch.float64,
        )
    except (TypeError, ValueError, RuntimeError):
        raise OptionError(
            f"noise matrix must be a {num_classes} x {num_classes} array of numbers, "
            f"got {type(matrix).__name__}"
        ) from None
    if tuple(tensor.shape) != (num_classes, num_classes):
        raise OptionError(
            f"noise matrix must be {num_classes} x {num_classes} for {num_classes} classes, "
            f"got shape {tuple(tensor.shape)}"
        )
    if not bool(torch.isfinite(tensor).all()):
        row, col = (~torch.isfinite(tensor)).nonzero()[0].tolist()
        raise OptionError(f"noise matrix entry [{row}, {col}] is not finite")
    if bool((tensor < 0).any()):
        row, col = (tensor < 0).nonzero()[0].tolist()
        raise OptionError(
            f"noise matrix entry [{row}, {col}] is negative ({float(tensor[row, col]):g})"
        )
    sums = tensor.sum(dim=1)
    bad = (sums - 1).abs() > ROW_SUM_TOLERANCE
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise OptionError(
            f"noise matrix row {row} sums to {float(sums[row]):.9g}, not 1 "
            f"(tolerance {ROW_SUM_TOLERANCE:g})"
        )
    return (tensor / sums[:, None]).contiguous()


# ----------------------------------------------------------------------------- matrices


def transition_matrix(
    kind: str, rate: float, num_classes: int, *, pairs: Sequence[int] | None = None
) -> torch.Tensor:
    """The ``K x K`` float64 transition matrix ``T[clean, noisy]`` of a rate-based noise kind.

    Kinds (``r = rate``, ``K = num_classes``; see the module docstring):

    * ``none``: the identity (``rate`` must be 0).
    * ``symmetric``: ``1 - r`` on the diagonal, ``r / (K - 1)`` elsewhere; flip rate ``r``.
    * ``symmetric_all``: ``1 - r + r / K`` on the diagonal, ``r / K`` elsewhere; flip rate
      ``r (K - 1) / K``.
    * ``pair``: ``1 - r`` on the diagonal and ``r`` at ``[c, pairs[c]]`` (default
      ``pairs[c] = (c + 1) mod K``); flip rate ``r``.

    Raises :class:`OptionError` for an unknown kind, a rate outside ``[0, 1)``, a positive rate
    with fewer than 2 classes, or invalid ``pairs`` (given for a kind other than ``pair``, of
    the wrong length, out of range, or mapping a class to itself).
    """
    kind = _kind(kind, RateKindName)
    rate = _rate(rate)
    k = _num_classes(num_classes)
    if pairs is not None and kind != "pair":
        raise OptionError(f"noise pairs are only used with kind 'pair', got kind '{kind}'")
    if kind == "none" and rate != 0:
        raise OptionError(f"noise rate must be 0 for kind 'none', got {rate!r}")
    if k < 2 and rate > 0:
        raise OptionError(f"noise rate {rate!r} needs num_classes >= 2, got {k}")
    eye = torch.eye(k, dtype=torch.float64)
    if kind == "pair":
        if pairs is not None:
            mapping = _pairs(pairs, k)
        else:
            mapping = tuple((c + 1) % k for c in range(k)) if k >= 2 else (0,)
        matrix = (1 - rate) * eye
        matrix[torch.arange(k), torch.tensor(mapping)] += rate
        return matrix
    if rate == 0:  # "none", or a rate-0 symmetric model
        return eye
    if kind == "symmetric":
        return (1 - rate) * eye + rate / (k - 1) * (1 - eye)
    # symmetric_all
    return (1 - rate) * eye + rate / k * torch.ones(k, k, dtype=torch.float64)


def _nominal_rate(matrix: torch.Tensor) -> float:
    """The flip rate of ``matrix`` for uniform clean labels: ``1 - trace(T) / K``."""
    return float(max(0.0, 1.0 - float(torch.diagonal(matrix).mean())))


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """Noisy training labels with the clean ones they were drawn from.

    Attributes:
        noisy: the noisy labels, int64, shape ``(N,)``, on the device of the input labels.
        clean: the clean labels (an unchanged int64 copy of the input).
        transition: the ``K x K`` float64 matrix ``T[clean, noisy]`` the labels were drawn from.
        kind: the noise kind (one of :data:`NOISE_KINDS`).
        rate: the noise rate; for ``class_conditional``, ``1 - trace(T) / K``.
        seed: the seed of the draw.
    """

    noisy: torch.Tensor
    clean: torch.Tensor
    transition: torch.Tensor
    kind: str
    rate: float
    seed: int

    @property
    def num_classes(self) -> int:
        """``K``, the number of classes."""
        return int(self.transition.shape[0])

    @property
    def is_clean(self) -> torch.Tensor:
        """A bool mask, ``True`` where the noisy label equals the clean one."""
        return self.noisy == self.clean

    @property
    def num_flipped(self) -> int:
        """How many labels differ from the clean ones."""
        return int((self.noisy != self.clean).sum())

    @property
    def flip_rate(self) -> float:
        """The fraction of labels that differ from the clean ones (0.0 for no labels)."""
        n = int(self.clean.numel())
        return self.num_flipped / n if n else 0.0

    def realised_transition(self) -> torch.Tensor:
        """Row-normalised counts of the ``(clean, noisy)`` pairs: a ``K x K`` float64 tensor.

        Entry ``[y, z]`` is the fraction of samples of clean class ``y`` whose noisy label is
        ``z``; rows of classes absent from the clean labels are NaN.
        """
        k = self.num_classes
        pairs = self.clean.cpu() * k + self.noisy.cpu()
        counts = torch.bincount(pairs, minlength=k * k).reshape(k, k).to(torch.float64)
        totals = counts.sum(dim=1, keepdim=True)
        return torch.where(totals > 0, counts / totals.clamp_min(1), torch.nan)

    def apply_to(self, dataset: Any) -> Any:
        """``dataset.with_targets(noisy)``, after checking the dataset's labels are the clean ones.

        ``dataset`` must provide ``with_targets`` (e.g. a
        :class:`~genmeasures.data.base.TensorDataset`); raises :class:`DataError` if its labels
        are not :attr:`clean`.
        """
        targets = getattr(dataset, "targets", None)
        if not hasattr(dataset, "with_targets") or targets is None:
            raise DataError(
                f"cannot relabel a {type(dataset).__name__}: it has no with_targets method"
            )
        if tuple(targets.shape) != tuple(self.clean.shape) or not bool(
            torch.equal(targets.cpu(), self.clean.cpu())
        ):
            raise DataError(
                f"dataset '{getattr(dataset, 'spec', '')}' labels are not the clean labels the "
                f"noise was drawn from ({len(targets)} vs {len(self.clean)} labels)"
            )
        return dataset.with_targets(self.noisy.cpu(), self.num_classes)

    def __repr__(self) -> str:
        return (
            f"NoisyLabels(kind={self.kind!r}, rate={self.rate!r}, seed={self.seed}, "
            f"n={int(self.clean.numel())}, num_classes={self.num_classes}, "
            f"flip_rate={self.flip_rate:.4f})"
        )


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True, eq=False)
class NoiseModel:
    """A label-noise model: a kind, its rate and ``K``, checked and turned into a matrix.

    ``matrix`` is used (and required) only by ``class_conditional``, whose ``rate`` is derived
    from it (``1 - trace(T) / K``; pass 0 or that value). ``pairs`` is used only by ``pair``.
    The checked transition matrix is :attr:`transition`. Raises :class:`OptionError` for any
    invalid option (see :func:`apply_label_noise`).
    """

    num_classes: int
    kind: str = "none"
    rate: float = 0.0
    matrix: Any = None
    pairs: Sequence[int] | None = None
    transition: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        kind = _kind(self.kind)
        rate = _rate(self.rate)
        k = _num_classes(self.num_classes)
        if kind == "class_conditional":
            if self.matrix is None:
                raise OptionError("noise kind 'class_conditional' needs a transition matrix")
            if self.pairs is not None:
                raise OptionError(
                    "noise pairs are only used with kind 'pair', got kind 'class_conditional'"
                )
            transition = validate_transition(self.matrix, k)
            nominal = _nominal_rate(transition)
            if rate != 0 and abs(rate - nominal) > ROW_SUM_TOLERANCE:
                raise OptionError(
                    f"noise rate {rate!r} does not apply to kind 'class_conditional' (the "
                    f"matrix sets the noise, rate 1 - trace/K = {nominal:.6g}); leave it at 0"
                )
            rate, pairs = nominal, None
        else:
            if self.matrix is not None:
                raise OptionError(
                    f"noise matrix is only used with kind 'class_conditional', got kind '{kind}'"
                )
            transition = transition_matrix(kind, rate, k, pairs=self.pairs)
            pairs = _pairs(self.pairs, k) if self.pairs is not None else None
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "num_classes", k)
        object.__setattr__(self, "matrix", transition if kind == "class_conditional" else None)
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "transition", transition)

    @property
    def expected_flip_rate(self) -> float:
        """The flip rate for uniform clean labels: ``r``, ``r (K - 1) / K`` or ``1 - tr(T)/K``."""
        return _nominal_rate(self.transition)

    def apply(self, targets: Any, seed: int = 0) -> NoisyLabels:
        """Draw noisy labels for ``targets`` (see the module docstring for the sampling).

        Raises :class:`DataError` for labels that are not 1-D integers in ``[0, K)`` and
        :class:`OptionError` for a seed that is not an integer in ``[0, 2**64)``.
        """
        seed = _seed(seed)
        device = targets.device if torch.is_tensor(targets) else torch.device("cpu")
        clean = as_label_tensor(targets, "noisy-label targets")
        check_labels(clean, self.num_classes, "noisy-label targets")
        clean_cpu = clean.cpu()
        noisy = _draw(self.transition, clean_cpu, seed)
        return NoisyLabels(
            noisy=noisy.to(device),
            clean=clean_cpu.clone().to(device),
            transition=self.transition.clone(),
            kind=self.kind,
            rate=self.rate,
            seed=seed,
        )


def _draw(transition: torch.Tensor, clean: torch.Tensor, seed: int) -> torch.Tensor:
    """Inverse-CDF sampling on the CPU: one float64 uniform per sample from ``seed``."""
    k = transition.shape[0]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    uniforms = torch.rand(clean.shape[0], generator=generator, dtype=torch.float64)
    cdf = transition.cumsum(dim=1)
    # From the last class of positive probability on, the CDF is exactly 1, so rounding in
    # the cumulative sum never sends a draw to a trailing class of zero probability.
    columns = torch.arange(k)
    last = torch.where(transition > 0, columns, -1).max(dim=1).values
    cdf = torch.where(columns[None, :] >= last[:, None], torch.ones_like(cdf), cdf)
    rows = cdf[clean]
    noisy = torch.searchsorted(rows, uniforms[:, None], right=True).reshape(-1)
    return noisy.clamp_(max=k - 1).to(torch.int64)


# ----------------------------------------------------------------------------- functions


def apply_label_noise(
    targets: torch.Tensor,
    num_classes: int,
    *,
    kind: str = "none",
    rate: float = 0.0,
    matrix: Any = None,
    pairs: Sequence[int] | None = None,
    seed: int = 0,
) -> NoisyLabels:
    """Draw noisy training labels from ``targets`` under a label-noise model.

    Args:
        targets: the clean labels, 1-D integers in ``[0, num_classes)``.
        num_classes: ``K``.
        kind: ``none``, ``symmetric`` (flip to a uniform OTHER class with probability
            ``rate``; flip rate ``rate``), ``symmetric_all`` (resample uniformly over all
            ``K`` classes with probability ``rate``; flip rate ``rate (K - 1) / K``), ``pair``
            (flip ``c -> pairs[c]`` with probability ``rate``, default ``(c + 1) mod K``; flip
            rate ``rate``) or ``class_conditional`` (draw from ``matrix``).
        rate: the noise rate, in ``[0, 1)``; 0 for ``none``.
        matrix: for ``class_conditional``, the ``K x K`` row-stochastic matrix ``T`` with
            ``P(noisy = z | clean = y) = T[y, z]``.
        pairs: for ``pair``, the class each class flips to.
        seed: fixes the draw (inverse CDF, one uniform per sample, on the CPU).

    Returns:
        A :class:`NoisyLabels` with the noisy and clean labels and the matrix used.

    Raises:
        OptionError: an unknown kind, a rate outside ``[0, 1)``, a positive rate with fewer
            than 2 classes, a bad matrix (shape, negative or non-finite entries, rows not
            summing to 1) or bad pairs (length, range, a class mapped to itself), or an option
            given to a kind that does not use it.
        DataError: labels that are not 1-D integers in ``[0, num_classes)``.
    """
    model = NoiseModel(num_classes, kind=kind, rate=rate, matrix=matrix, pairs=pairs)
    return model.apply(targets, seed=seed)


def count_correct(labels: torch.Tensor, clean: torch.Tensor) -> int:
    """How many of ``labels`` agree with the ``clean`` ones (same length required).

    Raises :class:`DataError` if the two have different lengths or are not 1-D integer labels.
    """
    labels_t = as_label_tensor(labels, "labels")
    clean_t = as_label_tensor(clean, "clean labels")
    if labels_t.shape != clean_t.shape:
        raise DataError(
            f"labels have length {labels_t.shape[0]} but the clean labels {clean_t.shape[0]}"
        )
    return int((labels_t.to(clean_t.device) == clean_t).sum())
