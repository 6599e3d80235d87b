"""scikit-learn's 8x8 handwritten digits, with deterministic stratified splits.

Registered datasets:

* ``digits``: the 1797 real 8x8 images of ``sklearn.datasets.load_digits`` (bundled with
  scikit-learn, nothing is downloaded). Inputs are float32 in ``[0, 1]`` (pixel / 16) of shape
  ``(N, 1, 8, 8)``.
* ``digits-source`` and ``digits-target``: a transfer experiment's two related tasks, the
  digits 0-4 (source) and the digits 5-9 (target), each re-indexed to labels 0-4. A model is
  pre-trained on ``digits-source:split=train`` and fine-tuned on ``digits-target:split=train``
  (``n_per_class`` makes the target task small); both share the split of the whole set fixed by
  ``split_seed``.
* ``digits10-source`` and ``digits10-target``: the ten-class transfer experiment, in which the
  source's features suit the target by construction (the papers' regime: lower layers that
  already fit the target, as ImageNet features do for Indoor). Every digit's images are
  shuffled by a seeded generator and cut in two disjoint halves; the source half pretrains a
  model on all ten digits, the target half holds the (small, possibly noisy) target task
  and its validation and test images. No image is in both, so neither the fine-tuning nor
  the test images were seen in pretraining.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Literal, get_args

import numpy as np

from genmeasures._coerce import checked_arguments, option_error
from genmeasures.constraints import AtLeast, Interval, NonNegative, Strict
from genmeasures.data.base import TensorDataset
from genmeasures.data.loading import register_dataset

__all__ = [
    "DIGIT_SPLITS",
    "digits",
    "digits10_source",
    "digits10_target",
    "digits_source",
    "digits_split_indices",
    "digits_target",
]

#: One digit 0-9 (exactly an int: 5.0 is not a digit).
Digit = Annotated[int, Strict(), Interval(0, 9)]
#: The digits to keep: one digit, a list of distinct digits, or None for all ten.
Classes = Digit | list[Digit] | None
Split = Annotated[Literal["train", "val", "test", "all"], Strict()]
Fraction = Annotated[float, Interval(0, 1, closed="left")]
SplitSeed = Annotated[int, NonNegative()]
PerClass = Annotated[int, AtLeast(1)] | None
#: Which half of every digit's images a ten-class transfer dataset draws from.
Half = Literal["source", "target"] | None
SourceFraction = Annotated[float, Interval(0, 1, closed="neither")]

DIGIT_SPLITS = get_args(get_args(Split)[0])
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = np.asarray(bunch.data, dtype=np.float64)
    target = np.asarray(bunch.target, dtype=np.int64)
    data.setflags(write=False)
    target.setflags(write=False)
    return data, target


def _class_list(name: str, classes: int | list[int] | tuple[int, ...] | None) -> list[int]:
    """The checked ``classes`` option (see :data:`Classes`) as a list; the digits themselves
    were checked with the builder's arguments, here only that the list is non-empty and has
    no digit twice."""
    if classes is None:
        return list(range(10))
    chosen = [classes] if isinstance(classes, int) else list(classes)
    if not chosen:
        raise option_error(f"dataset {name!r}", "classes", "must list at least one digit", classes)
    if len(set(chosen)) != len(chosen):
        raise option_error(f"dataset {name!r}", "classes", "must not repeat a digit", classes)
    return chosen


@checked_arguments("dataset 'digits'")
def digits_split_indices(
    classes: Classes = None,
    split: Split = "train",
    val_fraction: Fraction = 0.1,
    test_fraction: Fraction = 0.3,
    split_seed: SplitSeed = 0,
    n_per_class: PerClass = None,
    half: Half = None,
    source_fraction: SourceFraction = 0.5,
    *,
    name: str = "digits",
) -> np.ndarray:
    """Sorted indices into ``load_digits()`` of the samples of one split.

    Each digit's samples are shuffled by a generator seeded with ``(split_seed, digit)``; the
    first ``round(test_fraction * n)`` go to test, the next ``round(val_fraction * n)`` to val,
    the rest to train (capped at its first ``n_per_class`` when given; the cap applies to the
    train split only). The split of a digit does not depend on which other digits are kept.

    With ``half``, each digit's samples are first cut in two by a generator seeded with
    ``(split_seed, digit, 1)``: the first ``round(source_fraction * n)`` are the ``source``
    half, the rest the ``target`` half, and the split above is made inside the chosen half.
    """
    keep = _class_list(name, classes)
    if val_fraction + test_fraction >= 1.0:
        raise option_error(
            f"dataset {name!r}",
            "val_fraction + test_fraction",
            "must be < 1",
            (val_fraction, test_fraction),
            shown=f"{val_fraction!r} + {test_fraction!r}",
        )
    _, target = _load_digits()
    chosen = []
    for digit in keep:
        members = np.flatnonzero(target == digit)
        if half is not None:
            cut = np.random.default_rng([split_seed, digit, 1]).permutation(members)
            n_source = math.floor(source_fraction * len(members) + 0.5)
            members = np.sort(cut[:n_source] if half == "source" else cut[n_source:])
        if split == "all":
            chosen.append(members)
            continue
        order = np.random.default_rng([split_seed, digit]).permutation(members)
        n_test = math.floor(test_fraction * len(members) + 0.5)
        n_val = math.floor(val_fraction * len(members) + 0.5)
        if split == "test":
            part = order[:n_test]
        elif split == "val":
            part = order[n_test : n_test + n_val]
        else:
            part = order[n_test + n_val :]
            if n_per_class is not None:
                part = part[:n_per_class]
        chosen.append(part)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _build(
    name: str,
    classes: int | list[int] | tuple[int, ...] | None,
    split: Split,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    n_per_class: int | None,
    half: Literal["source", "target"] | None = None,
    source_fraction: float = 0.5,
) -> TensorDataset:
    keep = _class_list(name, classes)
    indices = digits_split_indices(
        keep,
        split,
        val_fraction,
        test_fraction,
        split_seed,
        n_per_class,
        half,
        source_fraction,
        name=name,
    )
    data, target = _load_digits()
    inputs = (data[indices] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    relabel = np.full(10, -1, dtype=np.int64)
    relabel[keep] = np.arange(len(keep))
    return TensorDataset(inputs, relabel[target[indices]], num_classes=len(keep), spec=name)


@register_dataset("digits")
def digits(
    classes: Classes = None,
    split: Split = "train",
    val_fraction: Fraction = 0.1,
    test_fraction: Fraction = 0.3,
    split_seed: SplitSeed = 0,
    n_per_class: PerClass = None,
) -> TensorDataset:
    """scikit-learn's 1797 8x8 digit images as ``(N, 1, 8, 8)`` float32 in ``[0, 1]``.

    Args:
        classes: the digits to keep (default all ten); labels are re-indexed ``0..k-1`` in the
            given order, e.g. ``classes=[5,6,7,8,9]`` makes 5 label 0.
        split: ``train``, ``val``, ``test`` or ``all``: a stratified, deterministic split.
        val_fraction: fraction of each digit's samples in ``val``.
        test_fraction: fraction of each digit's samples in ``test``.
        split_seed: fixes the split (train/val/test are disjoint and cover the whole set).
        n_per_class: keep at most this many training samples per digit (train split only).
    """
    return _build("digits", classes, split, val_fraction, test_fraction, split_seed, n_per_class)


@register_dataset("digits-source")
def digits_source(
    split: Split = "train",
    val_fraction: Fraction = 0.1,
    test_fraction: Fraction = 0.3,
    split_seed: SplitSeed = 0,
    n_per_class: PerClass = None,
) -> TensorDataset:
    """The source task of the digits transfer experiment: digits 0-4 (labels 0-4).

    Same options as ``digits`` except ``classes``.
    """
    return _build(
        "digits-source",
        SOURCE_CLASSES,
        split,
        val_fraction,
        test_fraction,
        split_seed,
        n_per_class,
    )


@register_dataset("digits-target")
def digits_target(
    split: Split = "train",
    val_fraction: Fraction = 0.1,
    test_fraction: Fraction = 0.3,
    split_seed: SplitSeed = 0,
    n_per_class: PerClass = None,
) -> TensorDataset:
    """The target task of the digits transfer experiment: digits 5-9 re-indexed to 0-4.

    Same options as ``digits`` except ``classes``; ``n_per_class`` gives a small target task.
    """
    return _build(
        "digits-target",
        TARGET_CLASSES,
        split,
        val_fraction,
        test_fraction,
        split_seed,
        n_per_class,
    )


@register_dataset("digits10-source")
def digits10_source(
    split: Split = "train",
    val_fraction: Fraction = 0.1,
    test_fraction: Fraction = 0.3,
    split_seed: SplitSeed = 0,
    n_per_class: PerClass = None,
    source_fraction: SourceFraction = 0.5,
) -> TensorDataset:
    """The ten-class transfer experiment's source task: all ten digits (labels 0-9), the
    source half of every digit's images (``source_fraction`` of them), split into
    train/val/test inside that half.

    Same options as ``digits`` except ``classes``; disjoint from ``digits10-target`` with the
    same ``split_seed`` and ``source_fraction``.
    """
    return _build(
        "digits10-source",
        None,
        split,
        val_fraction,
        test_fraction,
        split_seed,
        n_per_class,
        "source",
        source_fraction,
    )


@register_dataset("digits10-target")
def digits10_target(
    split: Split = "train",
    val_fraction: Fraction = 0.1,
    test_fraction: Fraction = 0.3,
    split_seed: SplitSeed = 0,
    n_per_class: PerClass = None,
    source_fraction: SourceFraction = 0.5,
) -> TensorDataset:
    """The ten-class transfer experiment's target task: all ten digits (labels 0-9), the
    images outside the source half, split into train/val/test inside them;
    ``n_per_class`` gives a small target task.

    Same options as ``digits`` except ``classes``; disjoint from ``digits10-source`` with the
    same ``split_seed`` and ``source_fraction``.
    """
    return _build(
        "digits10-target",
        None,
        split,
        val_fraction,
        test_fraction,
        split_seed,
        n_per_class,
        "target",
        source_fraction,
    )
