"""label-noise-accuracy (Ju, Li & Zhang, ICML 2022; Li & Zhang, NeurIPS 2021).

Fine-tuning under label noise: test accuracy against the noise rate (0.2, 0.4, 0.6, 0.8) for
erm, l2sp, constraint, regsl and robust (top panel), and the Hessian distance of each method's
last checkpoint (bottom panel), mean and +- one sd over seeds. The claim: regsl and robust
beat erm at high noise (rates >= 0.6), and their Hessian distance is lower there.

Noise: symmetric over all K classes (``data.noise = symmetric_all``, the papers' variant: a
label is resampled uniformly over the K classes with probability r; the other variant,
``symmetric``, replaces it by one of the K - 1 others, which at K = 5 and r = 0.8 makes every
row of T equal, so the noisy label carries nothing about the clean one and T is singular).
robust uses ``estimate = known``, the transition matrix the
run's own noise was drawn from; regsl uses the published schedule (reweighting from epoch 5,
label correction from epoch 10 at confidence > 0.9, tau_0 = 2), inside the epochs trained.

Quick scale: the papers' regime shrunk (``genmeasures_papers._settings``): a depth-20
ResNet-18 at width 1/8 pretrained on one half of every digit's images (all ten digits),
fine-tuned on 30 images per digit of the other half, 30 epochs of SGD (lr 0.05, cosine,
batch 32), long enough for erm to fit the noisy labels; the layer-wise constraint of every
method that has one (constraint, regsl, robust) with the radii of layerwise-distance, D = 0.2
for the stem and stages 1-2, 0.4 for stage 3, 0.8 for stage 4 (gamma = 2; the head within 10
of zero), l2sp with its default penalties; 3 seeds (a seed fixes the head's init, the batch
order and the noisy labels, the same for every method: comparisons are paired). With K = 10
classes, ``symmetric_all`` at r = 0.8 keeps the clean label with probability 0.28.
hessian_distance with its defaults on the training set (with the labels trained on): the
paper's positive-part per-sample layer blocks, on the Gauss-Newton route for this ReLU network.
Paper scale: ResNet-18 from ImageNet weights on an image folder (MIT Indoor layout), 30
epochs, published constraint settings for Indoor, GPU.

The ``regsl-curves`` figure shares this study's work directory and configurations.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from genmeasures.plots import trend
from genmeasures.reproduce import Claim, FigureData, FigureSpec, Study
from genmeasures.reproduce.regime import quick_base, quick_pretrain
from genmeasures_papers._settings import digits_pretrain

WORKDIR = "label-noise"
RATES = [0.2, 0.4, 0.6, 0.8]
HIGH = 0.6  # "high noise": rates >= HIGH
MEASURE = "hessian_distance"
MEASURES = ("hessian_distance",)
CHALLENGERS = ("regsl", "robust")

PRETRAIN = quick_pretrain()
BASE = quick_base(data={"noise": "symmetric_all"})
# Options left at their defaults are not written out (run names stay short): the head radius
# is 10 (around zero) and regsl's schedule is the published one, correct_epoch = 10,
# correct_threshold = 0.9, reweight_epoch = 5, temperature (tau_0) = 2.
RADII = {"distance": 0.2, "gamma": 2.0}
ERM = {"name": "erm"}
L2SP = {"name": "l2sp"}
CONSTRAINT = {"name": "constraint", **RADII}
REGSL = {"name": "regsl", **RADII}
ROBUST = {"name": "robust", **RADII, "estimate": "known"}
ALGORITHMS = [ERM, L2SP, CONSTRAINT, REGSL, ROBUST]


def quick() -> Study:
    return Study(
        name="label-noise-accuracy (quick)",
        pretrain=PRETRAIN,
        base=BASE,
        grid={"algorithm": ALGORITHMS, "data.noise_rate": RATES},
        seeds=(0, 1, 2),
        measures=MEASURES,
        score_samples=0,
        report=False,
        workdir=WORKDIR,
    )


TINY_MODEL = {"name": "cnn", "kwargs": {"width": 4}}


def tiny_settings(study: Study) -> Study:
    """The same pipeline in seconds (shared with regsl-curves' tiny scale)."""
    pretrain = {
        **digits_pretrain(TINY_MODEL),
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.02},
    }
    base = {
        **BASE,
        "model": TINY_MODEL,
        "data": {
            **BASE["data"],
            "train": "digits-target:split=train,n_per_class=10",
            "test": "digits-target:split=test",
        },
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.02},
    }
    return replace(study, pretrain=pretrain, base=base, seeds=(0,), score_samples=20)


def tiny() -> Study:
    """Three methods at two rates, one epoch (regsl's schedule moved into it)."""
    regsl = {**REGSL, "correct_epoch": 1, "reweight_epoch": 1}
    study = replace(
        quick(),
        name="label-noise-accuracy (tiny)",
        grid={"algorithm": [ERM, regsl, ROBUST], "data.noise_rate": [0.2, 0.8]},
    )
    return tiny_settings(study)


PAPER_RADII = {"distance": 0.137, "gamma": 2.53, "head_distance": 6.41}  # Indoor, published
PAPER_MODEL = {
    "name": "resnet18",
    "pretrained": "weights/resnet18-imagenet.pth",
}
PAPER_BASE = {
    "model": PAPER_MODEL,
    "data": {
        "train": "data/indoor:split=train,image_size=224",
        "test": "data/indoor:split=test,image_size=224",
        "noise": "symmetric_all",
        "workers": 8,
    },
    "train": {
        "epochs": 30,
        "batch_size": 32,
        "lr": 0.01,
        "schedule": "step",
        "step_size": 10,
        "device": "cuda",
        "amp": True,
        "save_every": 30,
    },
}


def paper_algorithms() -> list[dict]:
    """The five methods with the published Indoor radii and regsl's published schedule."""
    return [
        ERM,
        L2SP,
        {"name": "constraint", **PAPER_RADII},
        {**REGSL, **PAPER_RADII},
        {"name": "robust", **PAPER_RADII, "estimate": "known"},
    ]


def paper() -> Study:
    """ResNet-18 from ImageNet weights on an image folder (``data/indoor/{train,test}/CLASS/``),
    SGD lr 0.01 stepped every 10 epochs, 30 epochs, the published constraint radii for Indoor
    (D = 0.137, gamma = 2.53, head 6.41; Li & Zhang 2021 report them for ResNet-101), the
    Hessian distance at its paper definition (positive part) on 200 training samples."""
    return Study(
        name="label-noise-accuracy (paper)",
        pretrain=None,
        base=PAPER_BASE,
        grid={"algorithm": paper_algorithms(), "data.noise_rate": RATES},
        seeds=(0, 1, 2),
        measures=("hessian_distance:exact_max_dim=4096,quadrature_steps=20",),
        score_samples=200,
        report=False,
        workdir=WORKDIR,
    )


def measure_column(scores: pd.DataFrame) -> str:
    """The wide-table column of the Hessian distance (bare name, or ``name[options]``)."""
    names = [c for c in scores.columns if c == MEASURE or str(c).startswith(MEASURE + "[")]
    if len(names) != 1:
        raise KeyError(f"expected one {MEASURE} column in the scores, got {names}")
    return names[0]


def draw(data: FigureData, stem):
    scores = data.scores
    column = measure_column(scores)
    table = scores.rename(columns={column: MEASURE, "data.noise_rate": "noise rate"})
    table = table.rename(columns={"test_acc": "test accuracy"})
    return trend(table, "noise rate", "test accuracy", MEASURE, stem, hue="method")


def check(data: pd.DataFrame) -> Claim:
    """At every noise rate >= 0.6: regsl's and robust's mean test accuracy above erm's and
    their mean hessian_distance below erm's (means over seeds, as plotted)."""
    means = data.pivot_table(index=["panel", "x"], columns="hue", values="mean")
    missing = [m for m in ("erm", *CHALLENGERS) if m not in means.columns]
    if missing:
        return Claim(False, f"methods missing from the plotted data: {missing}")
    rates = sorted(x for x in means.loc["test accuracy"].index if x >= HIGH - 1e-9)
    if not rates:
        return Claim(False, f"no noise rate >= {HIGH} in the plotted data")
    verdicts, parts = [], []
    for rate in rates:
        acc, dist = means.loc[("test accuracy", rate)], means.loc[(MEASURE, rate)]
        for method in CHALLENGERS:
            better = acc[method] > acc["erm"]
            lower = dist[method] < dist["erm"]
            verdicts += [bool(better), bool(lower)]
        parts.append(
            f"noise {rate:g}: test acc erm {acc['erm']:.3f}, "
            + ", ".join(f"{m} {acc[m]:.3f}" for m in CHALLENGERS)
            + f"; {MEASURE} erm {dist['erm']:.3g}, "
            + ", ".join(f"{m} {dist[m]:.3g}" for m in CHALLENGERS)
        )
    wins = sum(verdicts)
    passed = all(verdicts)
    return Claim(
        passed,
        "; ".join(parts)
        + f" ({wins}/{len(verdicts)} comparisons go the claimed way; claim: all, at every "
        f"rate >= {HIGH:g}: regsl and robust above erm in accuracy, below in {MEASURE})",
    )


SPEC = FigureSpec(
    id="label-noise-accuracy",
    paper="Ju, Li & Zhang, ICML 2022; Li & Zhang, NeurIPS 2021 (label-noise experiments)",
    claim="regsl and robust beat erm in test accuracy at high noise, and their "
    "hessian_distance is lower",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
    notes=(
        "At quick scale erm memorizes the noise (training accuracy on the noisy labels >= "
        "0.98 at every rate; test accuracy 0.47 at rate 0.6 and 0.29 at 0.8) and regsl "
        "recovers much of it: 0.89 and 0.62, with the lowest Hessian distance (11.3 and 12.1 "
        "against erm's 29.8 and 30.1), as claimed, in every seed mean. robust does not: its "
        "accuracy is above erm's at 0.6 (0.58 vs 0.47) but below at 0.8 (0.19 vs 0.29), and "
        "its Hessian distance is 2-5x erm's (61 and 158). 5 of 8 comparisons go the claimed "
        "way. robust's backward-corrected loss with the known transition matrix T has "
        "negative entries in T^-1 and is unbounded below; with SGD at lr 0.05 it drives the "
        "logits large (the head is only bounded at radius 10), which both spoils its "
        "predictions at 0.8 and inflates the per-sample curvature. The constraint alone (0.63"
        " and 0.37) also beats erm. Reproducing robust's half needs the paper's setting or a "
        "smaller learning rate for robust; settings were not changed per method here."
    ),
)
