"""sharpness-by-optimizer (Zhang, Li & Ju, TMLR 2024, "Noise stability optimization"):
the Hessian trace, the top Hessian eigenvalue and the test accuracy reached by each optimizer.

One panel per quantity, one position per optimizer: sgd and adam (plain fine-tuning, erm,
with either optimizer), sam, asam, wp (one-sided weight perturbation), rwp (random weight
perturbation) and nso (two-sided noise stability optimization); a dot per seed, the mean with
+- one standard deviation over seeds. The paper's claim: nso finds the flattest minimum, the
lowest trace and the lowest top eigenvalue.

Quick scale: a CNN pretrained on digits 0-4, fine-tuned on 30 images per class of digits 5-9
for 15 epochs (batch 16; SGD with momentum 0.9, lr 0.01, for every method but adam, which is
erm with Adam at lr 0.003, the rate that reaches the SGD runs' training loss in as many
steps), sam rho 0.05, asam rho 0.5, wp/rwp/nso sigma 0.01 (nso: k = 1, two-sided,
lambda = 0), 3 seeds; the curvature measures on the whole training split (150
images): Tr(H) by Hutch++ with 30 Hessian-vector products, lambda_max by Lanczos. Paper scale:
ResNet-34 from ImageNet weights (weights/resnet34-imagenet.pth, a torchvision file) on MIT
Indoor (data/indoor/{train,test}/CLASS/*.jpg, 224 px), 30 epochs with the published
optimizer (Adam, lr 1e-4) for every method, against erm with SGD (lr 0.01), on a GPU.

This module also defines the fine-tuning set-up that noise-stability-vs-sigma and nso-ablation
share with it (the same work directory and the same configs: erm, sam and nso are trained and
their Hessian traces scored once for all three figures).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pandas as pd

from genmeasures.plots.points import category_points
from genmeasures.reproduce import (
    Claim,
    FigureData,
    FigureSpec,
    Study,
    StudyGroup,
)
from genmeasures_papers._settings import digits_pretrain

#: The work directory shared with noise-stability-vs-sigma and nso-ablation.
WORKDIR = "nso-figures"
#: Measure specs, identical in the three figures so that each result is computed once.
TRACE = "hessian_trace:estimator=hutchpp,max_matvecs=30,rtol=0.01"
EIGENVALUE = "hessian_eigenvalue:rtol=0.001,max_matvecs=40"
TRACE_TINY = "hessian_trace:estimator=hutchpp,max_matvecs=9,rtol=0.1"
EIGENVALUE_TINY = "hessian_eigenvalue:rtol=0.01,max_matvecs=8"
#: How the optimizers are drawn, left to right.
ORDER = ("sgd", "adam", "sam", "asam", "wp", "rwp", "nso")
LABELS = {
    "hessian_trace": "Hessian trace Tr(H)",
    "hessian_eigenvalue": "top Hessian eigenvalue λ_max",
    "test_acc": "test accuracy",
}

PRETRAIN = digits_pretrain()
BASE = {
    "model": {"name": "cnn"},
    "data": {
        "train": "digits-target:split=train,n_per_class=30",
        "test": "digits-target:split=test",
    },
    "train": {"epochs": 15, "batch_size": 16, "lr": 0.01},
}
SEEDS = (0, 1, 2)
#: Adam's learning rate at quick scale: the one that reaches the SGD runs' training loss in the
#: same 150 steps (about 0.5; lr 1e-3 leaves it at 1.07, lr 1e-2 is unstable)
ADAM_LR = 0.003


def nso(sigma: float = 0.01, k: int = 1, two_sided: bool = True) -> dict[str, Any]:
    """An nso grid entry, spelled the same way in every figure (so run names coincide)."""
    return {"name": "nso", "sigma": sigma, "k": k, "two_sided": two_sided}


ERM = {"name": "erm"}
SAM = {"name": "sam", "rho": 0.05}
OPTIMIZERS = [
    ERM,
    SAM,
    {"name": "asam", "rho": 0.5},
    {"name": "wp", "sigma": 0.01},
    {"name": "rwp", "sigma": 0.01},
    nso(),
]


def sgd_study(name: str, algorithms: list[dict[str, Any]], measures: tuple[str, ...]) -> Study:
    """The shared quick set-up: SGD fine-tuning of the digits CNN with ``algorithms``."""
    return Study(
        name=name,
        pretrain=PRETRAIN,
        base=BASE,
        grid={"algorithm": algorithms},
        seeds=SEEDS,
        measures=measures,
        score_samples=0,
        report=False,
    )


def tiny_study(study: Study, measures: tuple[str, ...]) -> Study:
    """The same pipeline in seconds (tests): width-4 CNN, one epoch, one seed, 20 samples."""
    small = {"name": "cnn", "kwargs": {"width": 4}}
    return replace(
        study,
        name=f"{study.name} (tiny)",
        pretrain={**PRETRAIN, "model": small, "train": {**PRETRAIN["train"], "epochs": 1}},
        base={**study.base, "model": small, "train": {**study.base["train"], "epochs": 1}},
        seeds=(0,),
        measures=measures,
        score_samples=20,
    )


def _adam(study: Study, lr: float) -> Study:
    base = {**study.base, "train": {**study.base["train"], "optimizer": "adam", "lr": lr}}
    return replace(study, name=f"{study.name}: adam", base=base, grid={"algorithm": [ERM]})


def quick() -> StudyGroup:
    sgd = sgd_study("sharpness by optimizer (quick)", OPTIMIZERS, (TRACE, EIGENVALUE))
    return StudyGroup(
        name="sharpness by optimizer (quick)",
        parts={"sgd": sgd, "adam": _adam(sgd, ADAM_LR)},
        workdir=WORKDIR,
    )


def tiny() -> StudyGroup:
    sgd = tiny_study(
        sgd_study("sharpness by optimizer", [ERM, SAM, nso()], ()), (TRACE_TINY, EIGENVALUE_TINY)
    )
    return StudyGroup(
        name="sharpness by optimizer (tiny)",
        parts={"sgd": sgd, "adam": _adam(sgd, ADAM_LR)},
    )


PAPER_BASE = {
    "model": {"name": "resnet34", "pretrained": "weights/resnet34-imagenet.pth"},
    "data": {
        "train": "data/indoor:split=train,image_size=224",
        "test": "data/indoor:split=test,image_size=224",
        "workers": 8,
    },
    "train": {
        "epochs": 30,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 1e-4,
        "schedule": "step",
        "step_size": 10,
        "device": "cuda",
        "amp": True,
    },
}
PAPER_TRACE = "hessian_trace:estimator=hutchpp,max_matvecs=100,rtol=0.02"
PAPER_EIGENVALUE = "hessian_eigenvalue:rtol=0.001,max_matvecs=60"


def paper() -> StudyGroup:
    """ResNet-34 from ImageNet weights on an image folder (train/ and test/ subfolders of
    class folders); every method with the NSO paper's optimizer (Adam, lr 1e-4: its "adam"),
    plain fine-tuning also with SGD (lr 0.01, momentum 0.9)."""
    adam = Study(
        name="sharpness by optimizer (paper)",
        pretrain=None,
        base=PAPER_BASE,
        grid={"algorithm": OPTIMIZERS},
        seeds=SEEDS,
        measures=(PAPER_TRACE, PAPER_EIGENVALUE),
        score_samples=200,
        report=False,
    )
    sgd_base = {**PAPER_BASE, "train": {**PAPER_BASE["train"], "optimizer": "sgd", "lr": 0.01}}
    sgd = replace(adam, name=f"{adam.name}: sgd", base=sgd_base, grid={"algorithm": [ERM]})
    return StudyGroup(
        name="sharpness by optimizer (paper)", parts={"sgd": sgd, "adam": adam}, workdir=WORKDIR
    )


def optimizer_labels(scores: pd.DataFrame) -> pd.Series:
    """Each checkpoint's optimizer: erm is named by its part (sgd or adam), others by method."""
    return scores["method"].where(scores["method"] != "erm", scores["study"]).astype(str)


def draw(data: FigureData, stem):
    table = data.scores.assign(optimizer=optimizer_labels(data.scores))
    return category_points(
        table,
        "optimizer",
        [c for c in LABELS if c in table.columns],
        stem,
        order=[o for o in ORDER if o in set(table["optimizer"])],
        labels=LABELS,
        highlight="nso",
        title="Sharpness and accuracy after fine-tuning, by optimizer (dots: seeds; bars: ±1 sd)",
    )


def check(data: pd.DataFrame) -> Claim:
    parts = []
    lowest = []
    for panel, verb in (("hessian_trace", "trace"), ("hessian_eigenvalue", "top eigenvalue")):
        means = data[data["panel"] == panel].set_index("x")["mean"]
        if "nso" not in means.index or len(means) < 2:
            return Claim(False, f"no nso and competitors in the {verb} panel")
        others = means.drop("nso")
        best = others.idxmin()
        rank = int((means < means["nso"]).sum()) + 1
        lowest.append(bool(means["nso"] < others.min()) and math.isfinite(means["nso"]))
        parts.append(
            f"nso {verb} = {means['nso']:.4g}, rank {rank}/{len(means)} "
            f"(lowest other: {best} {others.min():.4g})"
        )
    accuracy = data[data["panel"] == "test_acc"].set_index("x")["mean"]
    if "nso" in accuracy.index:
        rank = int((accuracy > accuracy["nso"]).sum()) + 1
        parts.append(f"nso test accuracy = {accuracy['nso']:.3f}, rank {rank}/{len(accuracy)}")
    return Claim(all(lowest), "; ".join(parts) + " (means over seeds)")


SPEC = FigureSpec(
    id="sharpness-by-optimizer",
    paper="Zhang, Li & Ju, TMLR 2024 (NSO), Hessian trace and eigenvalue by optimizer",
    claim="nso reaches the lowest Hessian trace and the lowest top Hessian eigenvalue "
    "(means over seeds) among sgd, adam, sam, asam, wp, rwp and nso",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
    notes="At quick scale nso (sigma 0.01, k = 1) ranks 4th of 7 on Tr(H) (615; asam 444, "
    "adam 513 and sam 516 are lower) and 4th on the top eigenvalue, within the seed "
    "spread of sgd (whose Tr(H) is 701 +- 163 over three seeds). On the 2.5k-weight "
    "digits CNN sigma = 0.01 is a mild perturbation (noise norm sigma*sqrt(d) ~ 0.5 "
    "against ||W|| ~ 7; it raises the loss by ~10%), and nso-ablation shows the trace "
    "falling to ~420 at sigma = 0.03. Reproducing the claim needs the paper's setting "
    "(ResNet-34, 21M weights, every method with Adam 1e-4, sigma 0.008-0.012 chosen "
    "per dataset), training to convergence (15 epochs leave the training loss at "
    "~0.5) and more seeds, to resolve differences smaller than the spread between "
    "seeds.",
)
