"""bound-vs-epoch (Zhang, Li & Ju, TMLR 2024 (NSO); Ju, Li & Zhang, ICML 2022).

Over the course of fine-tuning, the two Hessian-based generalization bounds, the PAC-Bayes
trace bound of the NSO paper's script (``pacbayes_trace_bound``: C sqrt(sum_i max_batch
Tr(H_ii) * sum_i ||W_i - W0_i||^2 / n)) and the Hessian distance bound of Ju et al.
(``hessian_bound``: sqrt(C) sum_i sqrt(calH_i) / sqrt(n)), are computed on every saved epoch's
checkpoint, next to the observed loss gap (test loss - train loss). One panel per quantity
(each on its own scale), x = epoch, mean and +- one sd over seeds. The claim: the bounds track
the gap over training, i.e. their seed-mean curves are rank-correlated with the gap's across
the saved epochs (Spearman rho >= 0.7 for each bound; Kendall tau reported alongside).

Quick scale: the papers' regime shrunk (``genmeasures_papers._settings``): a depth-20
ResNet-18 at width 1/8 pretrained on one half of every digit's images, fine-tuned with erm
(SGD, lr 0.05, cosine, batch 32) on 30 clean images per digit of the other half for 30 epochs,
a checkpoint every 3 epochs (10 per run), 3 seeds; both bounds on 100 training samples
(pacbayes_trace_bound: per-batch traces on 2 batches of 50, Hutchinson with at most 20
products per batch and 10% relative stderr; hessian_bound: the paper's positive-part
per-sample layer blocks). Paper scale: ResNet-50 from ImageNet weights
(weights/resnet50-imagenet.pth) on MIT Indoor as an image folder
(data/indoor/{train,test}/CLASS/*.jpg, 224 px), SGD lr 0.01, batch 32, 30 epochs (step
schedule, every 10 epochs), a checkpoint every 3 epochs, 3 seeds, 200 evaluation samples, on
a GPU.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau, spearmanr

from genmeasures.plots import PlotResult
from genmeasures.plots.lines import Axes, Panels, line_panels
from genmeasures.reproduce import Claim, FigureData, FigureSpec, Study
from genmeasures.reproduce.regime import quick_base, quick_pretrain

GAP = "gap_loss"
BOUNDS = ("pacbayes_trace_bound", "hessian_bound")
QUANTITIES = (GAP, *BOUNDS)
TITLES = {
    GAP: "observed gap (test - train loss)",
    "pacbayes_trace_bound": "PAC-Bayes trace bound (NSO)",
    "hessian_bound": "Hessian distance bound (Ju et al.)",
}
RHO = 0.7  # the claim: Spearman rho(bound, gap) over the saved epochs at least this
QUICK_MEASURES = (
    "pacbayes_trace_bound:batch_size=50,max_matvecs=20,rtol=0.1",
    "hessian_bound",
)
PRETRAIN = quick_pretrain()


def quick() -> Study:
    return Study(
        name="bound-vs-epoch (quick)",
        pretrain=PRETRAIN,
        base=quick_base(save_every=3),
        grid={"algorithm": [{"name": "erm"}]},
        seeds=(0, 1, 2),
        measures=QUICK_MEASURES,
        score_samples=100,
        report=False,
        select="all",
    )


def tiny() -> Study:
    """For the tests: the same pipeline in seconds (width-4 CNN, 2 epochs, 20 samples)."""
    study = quick()
    small = {"name": "cnn", "kwargs": {"width": 4}}
    return replace(
        study,
        name="bound-vs-epoch (tiny)",
        pretrain={**PRETRAIN, "model": small, "train": {"epochs": 1, "batch_size": 32}},
        base={
            **study.base,
            "model": small,
            "train": {"epochs": 2, "batch_size": 16, "lr": 0.01, "save_every": 1},
        },
        seeds=(0,),
        measures=("pacbayes_trace_bound:batch_size=20,max_matvecs=4,rtol=0.5", "hessian_bound"),
        score_samples=20,
    )


def paper() -> Study:
    """ResNet-50 from ImageNet weights on an image folder (train/ and test/ subfolders of class
    folders), SGD with the published step schedule; a checkpoint every 3 epochs."""
    return Study(
        name="bound-vs-epoch (paper)",
        pretrain=None,
        base={
            "model": {"name": "resnet50", "pretrained": "weights/resnet50-imagenet.pth"},
            "data": {
                "train": "data/indoor:split=train,image_size=224",
                "test": "data/indoor:split=test,image_size=224",
                "workers": 8,
            },
            "train": {
                "epochs": 30,
                "batch_size": 32,
                "lr": 0.01,
                "schedule": "step",
                "step_size": 10,
                "save_every": 3,
                "device": "cuda",
                "amp": True,
            },
        },
        grid={"algorithm": [{"name": "erm"}]},
        seeds=(0, 1, 2),
        measures=(
            "pacbayes_trace_bound:batch_size=32,max_matvecs=100,rtol=0.05",
            "hessian_bound:quadrature_steps=20",
        ),
        score_samples=200,
        report=False,
        select="all",
    )


def epoch_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per scored checkpoint and quantity: ``quantity``, ``epoch``, ``seed``, ``value``."""
    frames = [
        pd.DataFrame(
            {
                "quantity": column,
                "epoch": scores["epoch"],
                "seed": scores["seed"],
                "value": pd.to_numeric(scores[column], errors="coerce"),
            }
        )
        for column in QUANTITIES
    ]
    return pd.concat(frames, ignore_index=True)


def draw(data: FigureData, stem: Path) -> PlotResult:
    return line_panels(
        epoch_table(data.scores),
        "epoch",
        "value",
        stem,
        panels=Panels(col="quantity", col_order=list(QUANTITIES), col_wrap=3, titles=TITLES),
        axes=Axes(
            log_y=False,
            xlabel="epoch",
            ylabel={GAP: "test loss - train loss", **dict.fromkeys(BOUNDS, "bound")},
        ),
        title="Fine-tuning, epoch by epoch: two Hessian-based bounds and the observed gap "
        "(mean +- sd over seeds)",
    )


def check(data: pd.DataFrame) -> Claim:
    means = data.pivot_table(index="x", columns="panel", values="mean")
    missing = [q for q in QUANTITIES if q not in means.columns]
    if missing:
        return Claim(False, f"no plotted {missing[0]} to compare")
    parts, passed = [], True
    for bound in BOUNDS:
        both = means[[bound, GAP]].dropna()
        rho = float(spearmanr(both[bound], both[GAP]).statistic) if len(both) > 1 else math.nan
        tau = float(kendalltau(both[bound], both[GAP]).statistic) if len(both) > 1 else math.nan
        passed = passed and math.isfinite(rho) and rho >= RHO
        last = both.iloc[-1] if len(both) else None
        ratio = last[bound] / last[GAP] if last is not None and last[GAP] > 0 else math.nan
        parts.append(
            f"{bound}: Spearman rho = {rho:.2f}, Kendall tau = {tau:.2f} "
            f"(bound / gap at the last epoch = {ratio:.3g})"
        )
    return Claim(
        passed,
        f"rank correlation with the gap across {len(means)} saved epochs (seed means): "
        + "; ".join(parts)
        + f" (claim: rho >= {RHO} for each bound)",
    )


SPEC = FigureSpec(
    id="bound-vs-epoch",
    paper="Zhang, Li & Ju, TMLR 2024 (NSO); Ju, Li & Zhang, ICML 2022",
    claim=f"the bounds track the gap over training: Spearman rho between each bound's and "
    f"the gap's seed-mean curves across the saved epochs >= {RHO}",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
    notes=(
        "At quick scale, in the papers' regime (erm fits its 300 training images: training "
        "loss 0.0007 at the end), both bounds rise with the gap for the first epochs (gap "
        "0.12 at epoch 3 to 0.28 at epoch 9; hessian_bound 1.7 to 4.1 at epoch 6) and then "
        "collapse by two orders of magnitude (hessian_bound 0.03, pacbayes_trace_bound 0.016 "
        "at epoch 30) while the gap settles at 0.15: Spearman rho 0.55 for both (claim 0.7), "
        "and at the last epoch both bounds are below the gap (0.21x and 0.11x). Both bounds "
        "are multiplied by C, the largest per-sample training loss (sqrt(C) in hessian_bound,"
        " C in pacbayes_trace_bound; docs/measures.md), and once the network interpolates C "
        "falls towards 0 while the test loss does not. The earlier quick scale (a 3-layer CNN"
        " that never fit its training set) passed with rho 0.88-0.95. A bound with C the "
        "range of the loss rather than its empirical maximum would not collapse; the claim as"
        " defined does not hold once training interpolates."
    ),
)
