"""hessian-vs-radius (Ju, Li & Zhang, ICML 2022, Figure 1).

Constrained fine-tuning at a range of radii D: the Hessian-based bound rises with D like the
observed loss gap and stays within a small factor of it, while a distance-only norm bound is
orders of magnitude above. Quick scale: the papers' regime shrunk
(``genmeasures_papers._settings``): a depth-20 ResNet-18 at width 1/8, pretrained on one half
of every digit's images, fine-tuned with the layer-wise constraint (the same radius D for every
backbone layer) on 30 clean images per digit of the other half, 30 epochs, 3 seeds; both bounds
with the whole training split. Paper scale: ResNet-50 fine-tuned on an image-folder dataset
(e.g. MIT Indoor) from ImageNet weights, on a GPU.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy.stats import kendalltau

from genmeasures.plots import overlay
from genmeasures.reproduce import Claim, FigureData, FigureSpec, Study
from genmeasures.reproduce.regime import quick_base, quick_pretrain
from genmeasures_papers._settings import indoor_resnet50

RADII = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
MEASURES = ("hessian_bound", "distance_bound")


def quick() -> Study:
    return Study(
        name="hessian-vs-radius (quick)",
        pretrain=quick_pretrain(),
        base=quick_base(),
        grid={"algorithm": [{"name": "constraint", "distance": d} for d in RADII]},
        seeds=(0, 1, 2),
        measures=MEASURES,
        score_samples=0,
        report=False,
    )


def tiny() -> Study:
    """For the tests: the same pipeline in seconds."""
    from dataclasses import replace

    study = quick()
    base = {
        **study.base,
        "model": {"name": "cnn", "kwargs": {"width": 4}},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.01},
    }
    pretrain = {
        **study.pretrain,
        "model": {"name": "cnn", "kwargs": {"width": 4}},
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.02},
    }
    return replace(
        study,
        name="hessian-vs-radius (tiny)",
        base=base,
        pretrain=pretrain,
        grid={"algorithm": [{"name": "constraint", "distance": d} for d in (0.05, 0.5)]},
        seeds=(0,),
        score_samples=20,
    )


def paper() -> Study:
    """ResNet-50 from ImageNet weights on an image folder (train/ and test/ subfolders of
    class folders), the published constraint schedule (D grows by gamma per stage)."""
    return Study(
        name="hessian-vs-radius (paper)",
        pretrain=None,
        base=indoor_resnet50(),
        grid={
            "algorithm": [
                {"name": "constraint", "distance": d, "gamma": 2.53, "head_distance": 6.41}
                for d in (0.05, 0.1, 0.137, 0.3, 1.0)
            ]
        },
        seeds=(0, 1, 2),
        measures=("hessian_bound:exact_max_dim=4096,quadrature_steps=20", "distance_bound"),
        score_samples=200,
        report=False,
    )


def draw(data: FigureData, stem):
    return overlay(
        data.scores,
        "algorithm.distance",
        ["gap_loss", *MEASURES],
        stem,
        ylabel="loss gap / bound",
        title="Constrained fine-tuning: bounds against the observed gap",
    )


def check(data: pd.DataFrame) -> Claim:
    means = data.pivot_table(index="x", columns="panel", values="mean")
    tau, _ = kendalltau(means["hessian_bound"], means["gap_loss"])
    positive = means[means["gap_loss"] > 0]
    ratio_hessian = (positive["hessian_bound"] / positive["gap_loss"]).median()
    ratio_distance = (positive["distance_bound"] / positive["gap_loss"]).median()
    passed = math.isfinite(tau) and tau > 0 and ratio_hessian <= 10 and ratio_distance >= 100
    return Claim(
        passed,
        f"Kendall tau(hessian_bound, gap) over radii = {tau:.2f}; median hessian_bound/gap ="
        f" {ratio_hessian:.3g} (claim: <= 10); median distance_bound/gap = "
        f"{ratio_distance:.3g} (claim: >= 100)",
    )


SPEC = FigureSpec(
    id="hessian-vs-radius",
    paper="Ju, Li & Zhang, ICML 2022, Figure 1",
    claim="hessian_bound rises with D like the gap and is within a small factor of it; "
    "distance_bound is orders of magnitude above",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
    notes=(
        "At quick scale, in the papers' regime, distance_bound is orders of magnitude above "
        "the gap as claimed (median 2e8 x: the product of 20 spectral norms), and the Hessian"
        " distance itself rises with the radius (2.1 at D = 0.05 to 4.4-4.6 at D = 1-2, "
        "Kendall tau 0.87). But hessian_bound = sqrt(C/n) sum_i sqrt(calH_i) falls with D "
        "(tau -0.47 against the gap) and stays below the gap (median 0.46x): C, the largest "
        "per-sample training loss, falls twelvefold (0.29 at D = 0.05 to 0.025 at D = 2) as a"
        " looser constraint lets the network interpolate its 300 images. The gap itself moves"
        " little (0.107 to 0.142; test accuracy 0.96-0.97 at every radius), because the "
        "source features already suit the target. The claim as defined (C the empirical "
        "maximum of the training loss) fails wherever fine-tuning interpolates."
    ),
)
