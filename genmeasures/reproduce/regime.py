"""The built-in data's fine-tuning regime: the papers' regime shrunk to a 2-core CPU.

The default study and the papers' figures at quick scale (``genmeasures_papers``) share it: a
deep pretrained network whose lower layers already suit the target, fine-tuned on a small
target set it can memorize, noisy labels included.
- Network: ResNet-18 in torchvision's layout at width 1/8 (stages of 8, 16, 32, 64 channels)
  with the 3x3 stem for 8x8 images: 20 backbone weight layers and the head, 176k weights.
  Depth is what makes the distance bound's product of spectral norms explode (the papers'
  ResNet-50 has about fifty weight layers); width only sets the cost.
- Source task: all ten digits, on one half of every digit's images (``digits10-source``: 541
  training images). The target (``digits10-target``) is the other half, so the source's
  features suit the target by construction, as ImageNet features suit Indoor, while no
  target image (training, validation or test) was seen in pretraining. The source model is
  trained with its own seed, so no fine-tuning run's new head starts where pretraining's did.
- Target task: 30 images per digit (300), validation and test images from the target half
  (90 and 268). Fine-tuning: SGD with momentum 0.9, lr 0.05 on a cosine schedule, batch 32,
  30 epochs: long enough that erm fits 40% symmetric label noise (training accuracy on the
  noisy labels 1.0 in the pilot run, test accuracy falling from 0.81 at epoch 6 to 0.66).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = [
    "MEMORIZED",
    "QUICK_DATA",
    "QUICK_MODEL",
    "QUICK_TRAIN",
    "QUICK_TRAIN_SET",
    "QUICK_VAL",
    "SOURCE_SEED",
    "Memorization",
    "memorization",
    "quick_base",
    "quick_pretrain",
]

#: The quick scale's network (see the module docstring).
QUICK_MODEL: dict[str, Any] = {
    "name": "resnet18",
    "kwargs": {"width_multiplier": 0.125, "small_input": True, "in_channels": 1},
}
#: The source model's seed: far from every fine-tuning seed (0, 1, ... plus any offset).
SOURCE_SEED = 1_000_003
#: The quick scale's target task: 30 training images per digit from the target half.
QUICK_TRAIN_SET = "digits10-target:split=train,n_per_class=30"
QUICK_DATA: dict[str, Any] = {"train": QUICK_TRAIN_SET, "test": "digits10-target:split=test"}
#: The target half's validation split (90 images), for the figures that early-stop.
QUICK_VAL = "digits10-target:split=val"
QUICK_TRAIN: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 32,
    "lr": 0.05,
    "schedule": "cosine",
    "save_every": 30,  # the last checkpoint only (a figure that needs more says so)
}

_QUICK_PRETRAIN = {
    "data": {"train": "digits10-source:split=train", "test": "digits10-source:split=test"},
    "train": {
        "epochs": 30,
        "batch_size": 32,
        "lr": 0.05,
        "schedule": "cosine",
        "seed": SOURCE_SEED,
    },
}


def quick_pretrain(model: dict[str, Any] = QUICK_MODEL) -> dict[str, Any]:
    """The quick scale's source model: ``model`` trained on the source half of all ten
    digits, 30 epochs (SGD, lr 0.05, cosine), seeded with :data:`SOURCE_SEED`.

    Figures whose pretraining configs are equal pretrain identical weights."""
    config = copy.deepcopy(_QUICK_PRETRAIN)
    config["model"] = {**copy.deepcopy(model), "seed": SOURCE_SEED}
    return config


def quick_base(
    model: dict[str, Any] = QUICK_MODEL, *, data: dict[str, Any] | None = None, **train: Any
) -> dict[str, Any]:
    """A quick-scale fine-tuning config: ``model`` on the target task (:data:`QUICK_DATA`,
    updated by ``data``; a value of None drops the key), trained as :data:`QUICK_TRAIN`
    updated by ``train``."""
    merged = {**QUICK_DATA, **(data or {})}
    return {
        "model": copy.deepcopy(model),
        "data": {k: v for k, v in merged.items() if v is not None},
        "train": {**QUICK_TRAIN, **train},
    }


#: erm "memorizes" noisy labels when its final training accuracy on them is at least this.
MEMORIZED = 0.95


@dataclass(frozen=True)
class Memorization:
    """Whether erm memorized the noisy labels at one noise rate: the regime the papers' claims
    about label noise need (a network that fits the noise, so there is a gap to close).

    ``final_train_acc`` is the lowest, over runs, last-epoch accuracy on the labels trained on;
    ``peak_test_acc`` and ``final_test_acc`` are means over runs of each run's best and last
    test accuracy; ``falling`` counts the runs whose last test accuracy is below their peak.
    """

    noise_rate: float
    runs: int
    final_train_acc: float
    peak_test_acc: float
    final_test_acc: float
    falling: int

    @property
    def memorizes(self) -> bool:
        """Training accuracy on the noisy labels >= :data:`MEMORIZED` in every run, and the
        test accuracy below its peak at the end in every run."""
        return self.final_train_acc >= MEMORIZED and self.falling == self.runs

    def __str__(self) -> str:
        verdict = "memorizes" if self.memorizes else "does NOT memorize"
        return (
            f"regime check: erm at {self.noise_rate:.0%} label noise ({self.runs} runs) "
            f"{verdict}: final training accuracy on the noisy labels >= "
            f"{self.final_train_acc:.3f} (lowest run; needed >= {MEMORIZED}), test accuracy "
            f"{self.peak_test_acc:.3f} at its peak -> {self.final_test_acc:.3f} at the end "
            f"(mean over runs; below the peak in {self.falling}/{self.runs})"
        )


def memorization(metrics: pd.DataFrame) -> list[Memorization]:
    """The memorization check of every noise rate > 0 at which erm fine-tuned the whole
    network (``train.freeze`` 0: a run with frozen blocks is not asked to memorize), from the
    runs' per-epoch metrics (:func:`genmeasures.checkpoints.metrics_table`); empty when no
    such run had label noise."""
    needed = {"run", "epoch", "train_acc", "test_acc", "algorithm.name", "data.noise_rate"}
    if metrics.empty or not needed <= set(metrics.columns):
        return []
    rate = pd.to_numeric(metrics["data.noise_rate"], errors="coerce").fillna(0.0)
    whole = True
    if "train.freeze" in metrics.columns:
        whole = pd.to_numeric(metrics["train.freeze"], errors="coerce").fillna(0) == 0
    erm = metrics[(metrics["algorithm.name"] == "erm") & (rate > 0) & whole].assign(_rate=rate)
    checks = []
    for noise_rate, rows in erm.groupby("_rate", sort=True):
        finals, peaks, lasts, falling = [], [], [], 0
        for _, run in rows.sort_values("epoch").groupby("run", sort=True):
            test = pd.to_numeric(run["test_acc"], errors="coerce").dropna()
            train = pd.to_numeric(run["train_acc"], errors="coerce").dropna()
            if test.empty or train.empty:
                continue
            finals.append(float(train.iloc[-1]))
            peaks.append(float(test.max()))
            lasts.append(float(test.iloc[-1]))
            falling += int(lasts[-1] < peaks[-1])
        if finals:
            checks.append(
                Memorization(
                    noise_rate=float(noise_rate),
                    runs=len(finals),
                    final_train_acc=min(finals),
                    peak_test_acc=math.fsum(peaks) / len(peaks),
                    final_test_acc=math.fsum(lasts) / len(lasts),
                    falling=falling,
                )
            )
    return checks
