"""frozen-double-descent (Dar, Luzi & Baraniuk 2022, "Double double descent: on
generalization errors in transfer learning between linear regression tasks", and its deep
analogue).

Transfer by freezing: the first m blocks of a pretrained network are kept as they are and the
rest is fine-tuned on the target task. In the linear-regression analysis the target test error
is not monotone in the number of transferred (frozen) parameters: it peaks where the free
parameters can just interpolate the target data, and label noise makes that peak (and the
dip before it) pronounced. Four panels, mean and +- one sd over seeds: test error against m
(a) on clean labels and (b) under label noise, one line per target-set size; (c) test error
per epoch under noise with nothing frozen (memorization of the noise shows as a late rise),
per target size; (d) test error against the source-set size (one pretrained model per size),
one line per m. The claim: under label noise the curve in m is non-monotone, i.e. some
interior m has its mean +- sd band entirely above (a peak: double descent) or entirely below
(a dip) the bands of a smaller and of a larger m.
At quick scale what appears is a dip, not a second peak: with 500 noisy target images,
freezing m = 2 blocks leaves a trainable part that fits the clean majority but no longer
memorizes the noise (training accuracy on the noisy labels 0.62 against 0.89 with nothing
frozen, 3-seed means), while the frozen features are still good enough; more frozen blocks
underfit.

Quick scale: an MLP with 5 hidden layers of widths 128, 96, 64, 48, 32 (5 blocks; m = 0..5,
m = 5 leaves only the head), pretrained on the 541 training images of digits 0-4 (SGD, lr
0.05, batch 32, 30 epochs), fine-tuned on 200 or 500 random training images of digits 5-9,
clean or with 40% symmetric label noise, Adam (lr 0.002, batch 32) for 50 epochs, 3 seeds.
Source sizes: 60, 180 and all 541 source images, pretrained for the same number of SGD steps
(epochs scaled by 541 / size), fine-tuned on 500 noisy target images with m = 0, 2, 5.
Paper scale: ResNet-18 (small-input stem, 9 blocks: the stem and 8 residual blocks, m =
0..9) pretrained on CIFAR-100 subsets of 10000, 25000 and all 50000 images (a CIFAR-100 python
folder data/cifar-100-python: train, test), fine-tuned on 2000 or 10000 CIFAR-10 images
(data/cifar-10-batches-py: data_batch_1..5, test_batch), clean or with 20% symmetric label
noise, on a GPU. There is no weights file: every source model is pretrained by the study.
Standard CIFAR recipes (SGD momentum 0.9, weight decay 5e-4, cosine schedule; lr 0.1 for 100
pretraining epochs, 0.01 for 60 fine-tuning epochs), not settings published for this figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from genmeasures.plots import PlotResult
from genmeasures.plots.lines import Axes, Legend, Lines, Panels, line_panels
from genmeasures.reproduce import (
    Claim,
    FigureData,
    FigureSpec,
    Study,
    StudyGroup,
)

WORKDIR = "frozen-double-descent"
FREEZE = "train.freeze"
TARGET = "data.train_size"
NOISE = "data.noise_rate"
CLEAN, NOISY, EPOCHS, SOURCE = "frozen, clean", "frozen, noisy", "per epoch", "source size"
PANELS = (CLEAN, NOISY, EPOCHS, SOURCE)
HIDDEN = [128, 96, 64, 48, 32]
N_SOURCE_DIGITS = 541  # training images of digits 0-4 (digits-source:split=train)
PRETRAIN_EPOCHS = 30


def part_name(source_size: int) -> str:
    return f"source={source_size}"


def source_size(part: str) -> int:
    return int(str(part).split("=", 1)[1])


def group(
    name: str,
    *,
    model: Mapping[str, Any],
    pretrain: Mapping[str, Any],
    base: Mapping[str, Any],
    full_source: int,
    freeze: Sequence[int],
    targets: Sequence[int],
    rate: float,
    source_sizes: Sequence[int],
    source_freeze: Sequence[int],
    source_target: int,
    seeds: tuple[int, ...],
) -> StudyGroup:
    """One part per source size: the full source set carries the whole grid (m x target size
    x clean/noisy); the smaller ones only what panel (d) draws (noisy, one target size, a few
    m), each pretrained for the same number of steps as the full one."""
    epochs = pretrain["train"]["epochs"]

    def study(size: int, grid: Mapping[str, list]) -> Study:
        data = {**pretrain["data"], "train_size": 0 if size == full_source else size}
        train = {**pretrain["train"], "epochs": math.ceil(epochs * full_source / size)}
        return Study(
            name=f"{name}, {part_name(size)}",
            pretrain={**pretrain, "model": dict(model), "data": data, "train": train},
            base={**base, "model": dict(model)},
            grid=grid,
            seeds=seeds,
            measures=("distance_from_init",),  # only test error is drawn: the cheapest score
            score_samples=0,
            report=False,
        )

    parts = {
        part_name(full_source): study(
            full_source,
            {FREEZE: list(freeze), TARGET: list(targets), NOISE: [0.0, rate]},
        )
    }
    for size in source_sizes:
        parts[part_name(size)] = study(
            size, {FREEZE: list(source_freeze), TARGET: [source_target], NOISE: [rate]}
        )
    return StudyGroup(name=name, parts=parts, workdir=WORKDIR)


def quick() -> StudyGroup:
    return group(
        "frozen-double-descent (quick)",
        model={"name": "mlp", "kwargs": {"hidden": HIDDEN}},
        pretrain={
            "data": {"train": "digits-source:split=train", "test": "digits-source:split=test"},
            "train": {
                "epochs": PRETRAIN_EPOCHS,
                "batch_size": 32,
                "lr": 0.05,
                "save_every": PRETRAIN_EPOCHS,
            },
        },
        base={
            "data": {
                "train": "digits-target:split=train",
                "test": "digits-target:split=test",
                "noise": "symmetric",
            },
            "train": {
                "epochs": 50,
                "batch_size": 32,
                "optimizer": "adam",
                "lr": 0.002,
                "save_every": 50,
            },
        },
        full_source=N_SOURCE_DIGITS,
        freeze=range(len(HIDDEN) + 1),
        targets=(200, 500),
        rate=0.4,
        source_sizes=(60, 180),
        source_freeze=(0, 2, 5),
        source_target=500,
        seeds=(0, 1, 2),
    )


def tiny() -> StudyGroup:
    """For the tests: the same pipeline in seconds (2 hidden layers of 8, 2 epochs)."""
    return group(
        "frozen-double-descent (tiny)",
        model={"name": "mlp", "kwargs": {"hidden": [8, 8]}},
        pretrain={
            "data": {"train": "digits-source:split=train", "test": "digits-source:split=test"},
            "train": {"epochs": 1, "batch_size": 64, "lr": 0.05},
        },
        base={
            "data": {
                "train": "digits-target:split=train",
                "test": "digits-target:split=test",
                "noise": "symmetric",
            },
            "train": {"epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 0.002},
        },
        full_source=N_SOURCE_DIGITS,
        freeze=(0, 1, 2),
        targets=(40,),
        rate=0.4,
        source_sizes=(270,),
        source_freeze=(0, 2),
        source_target=40,
        seeds=(0,),
    )


def paper() -> StudyGroup:
    """ResNet-18 (small-input stem) pretrained on CIFAR-100 subsets, fine-tuned on CIFAR-10
    subsets with the first m of its 9 blocks frozen, on a GPU."""
    cifar_mean = "mean=[0.507,0.487,0.441],std=[0.267,0.256,0.276]"
    return group(
        "frozen-double-descent (paper)",
        model={"name": "resnet18", "kwargs": {"small_input": True}},
        pretrain={
            "data": {
                "train": f"data/cifar-100-python:split=train,{cifar_mean}",
                "test": f"data/cifar-100-python:split=test,{cifar_mean}",
                "workers": 8,
            },
            "train": {
                "epochs": 100,
                "batch_size": 128,
                "lr": 0.1,
                "weight_decay": 5e-4,
                "schedule": "cosine",
                "save_every": 100,
                "device": "cuda",
                "amp": True,
            },
        },
        base={
            "data": {
                "train": f"data/cifar-10-batches-py:split=train,{cifar_mean}",
                "test": f"data/cifar-10-batches-py:split=test,{cifar_mean}",
                "noise": "symmetric",
                "workers": 8,
            },
            "train": {
                "epochs": 60,
                "batch_size": 128,
                "lr": 0.01,
                "weight_decay": 5e-4,
                "schedule": "cosine",
                "save_every": 60,
                "device": "cuda",
                "amp": True,
            },
        },
        full_source=50000,
        freeze=range(10),
        targets=(2000, 10000),
        rate=0.2,
        source_sizes=(10000, 25000),
        source_freeze=(0, 4, 8),
        source_target=10000,
        seeds=(0, 1, 2),
    )


def error_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """The four panels' rows from every run's per-epoch metrics: ``panel``, ``x``, ``hue``,
    ``error`` (1 - test accuracy), ``seed``; final-epoch rows except in the per-epoch panel."""
    frame = metrics.assign(
        error=1.0 - pd.to_numeric(metrics["test_acc"], errors="coerce"),
        source=metrics["study"].map(source_size),
    )
    last = frame[frame["epoch"] == frame["train.epochs"]]
    full = frame["source"].max()
    main, final = frame[frame["source"] == full], last[last["source"] == full]
    rate = float(main[NOISE].max())
    target = "n = " + final[TARGET].astype(int).astype(str)
    frames = [
        final.assign(panel=CLEAN, x=final[FREEZE], hue=target)[final[NOISE] == 0],
        final.assign(panel=NOISY, x=final[FREEZE], hue=target)[final[NOISE] == rate],
    ]
    memorizing = main[(main[NOISE] == rate) & (main[FREEZE] == 0) & (main["epoch"] > 0)]
    sizes = "n = " + memorizing[TARGET].astype(int).astype(str)
    frames.append(memorizing.assign(panel=EPOCHS, x=memorizing["epoch"], hue=sizes))
    small = last[last["source"] < full]
    if len(small):
        keep = (
            (last[NOISE] == rate)
            & last[TARGET].isin(small[TARGET].unique())
            & last[FREEZE].isin(small[FREEZE].unique())
        )
        rows = last[keep]
        frames.append(
            rows.assign(panel=SOURCE, x=rows["source"], hue="m = " + rows[FREEZE].astype(str))
        )
    columns = ["panel", "x", "hue", "error", "seed"]
    table = pd.concat([f[columns] for f in frames], ignore_index=True)
    table.attrs["rate"] = rate
    return table.sort_values(["panel", "hue", "x"], kind="stable", key=_natural)


def _natural(column: pd.Series) -> pd.Series:
    if column.name == "hue":  # "n = 200" before "n = 1000"
        return column.str.extract(r"(\d+)$", expand=False).astype(float)
    return column


def draw(data: FigureData, stem: Path) -> PlotResult:
    table = error_table(data.metrics)
    rate = table.attrs["rate"]
    noise = f"{rate:.0%} label noise"
    return line_panels(
        table,
        "x",
        "error",
        stem,
        lines=Lines(hue="hue"),
        panels=Panels(
            col="panel",
            col_order=[p for p in PANELS if p in set(table["panel"])],
            col_wrap=2,
            titles={
                CLEAN: "(a) clean labels",
                NOISY: f"(b) {noise}",
                EPOCHS: f"(c) {noise}, nothing frozen",
                SOURCE: f"(d) {noise}: source-set size",
            },
        ),
        axes=Axes(
            log_x={SOURCE: True},
            log_y=False,
            xlabel={
                CLEAN: "frozen blocks m",
                NOISY: "frozen blocks m",
                EPOCHS: "epoch",
                SOURCE: "source training images (pretraining)",
            },
            ylabel="test error",
        ),
        legend=Legend(
            "panel",
            title={
                CLEAN: "target size",
                NOISY: "target size",
                EPOCHS: "target size",
                SOURCE: "frozen blocks",
            },
        ),
        title="Transfer by freezing the first m blocks: test error (mean +- sd over seeds)",
    )


def interior_extremum(curve: pd.DataFrame) -> tuple[str, float, float]:
    """The clearest interior dip or peak of one curve (rows ``x``, ``mean``, ``lo``, ``hi``):
    (``dip``/``peak``, its x, margin). The margin of a dip at j is how far its band's top
    ``hi_j`` lies below the highest band bottom ``lo`` on each side (the smaller of the two);
    of a peak, how far its band's bottom lies above the lowest band top on each side. A
    positive margin means the extremum exceeds the seed spread."""
    curve = curve.sort_values("x")
    lo, hi = curve["lo"].to_numpy(), curve["hi"].to_numpy()
    best = ("none", math.nan, -math.inf)
    for j in range(1, len(curve) - 1):
        dip = min(lo[:j].max(), lo[j + 1 :].max()) - hi[j]
        peak = lo[j] - max(hi[:j].min(), hi[j + 1 :].min())
        for kind, margin in (("dip", dip), ("peak", peak)):
            if margin > best[2]:
                best = (kind, float(curve["x"].iloc[j]), float(margin))
    return best


def check(data: pd.DataFrame) -> Claim:
    found, parts, clean_parts = False, [], []
    for panel, out in ((NOISY, parts), (CLEAN, clean_parts)):
        for hue, curve in data[data["panel"] == panel].groupby("hue", sort=False):
            kind, x, margin = interior_extremum(curve)
            if kind == "none":
                out.append(f"{hue}: no interior m")
                continue
            if panel == NOISY and margin > 0:
                found = True
            verdict = "beyond" if margin > 0 else "within"
            out.append(f"{hue}: {kind} at m = {x:g}, margin {margin:+.3f} ({verdict} the sd)")
    if not parts:
        return Claim(False, "no noisy curve in the number of frozen blocks to check")
    return Claim(
        found,
        "under label noise, clearest interior extremum of test error in m: "
        + "; ".join(parts)
        + " | clean labels, for comparison: "
        + ("; ".join(clean_parts) or "none drawn")
        + " (claim: some noisy curve has an interior dip or peak whose mean +- sd band clears "
        "the bands of a smaller and a larger m, i.e. margin > 0)",
    )


SPEC = FigureSpec(
    id="frozen-double-descent",
    paper="Dar, Luzi & Baraniuk 2022, Double double descent (transfer learning between "
    "linear regression tasks), deep analogue",
    claim="under label noise, test error is non-monotone in the number m of frozen blocks: "
    "an interior m whose mean +- sd band lies entirely above (double-descent peak) or "
    "below (dip) the bands of a smaller and a larger m",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
)
