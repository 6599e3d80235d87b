"""matrix-sensing (Zhang, Li & Ju, TMLR 2024: the NSO paper's controlled experiment).

Over-parameterized matrix sensing: a rank-5 ground truth X = U* U*^T (d = 100), m = 5 d r =
2500 symmetric Gaussian measurements, U in R^{100 x 100} fitted by full-batch GD, weight-
perturbed GD (WP-GD: the gradient at U + V, V ~ N(0, sigma^2)) and NSO (the average of the
gradients at U + V and U - V), learning rate 0.0025, sigma = 0.02. Three panels per epoch:
training MSE, validation MSE on 2500 fresh measurements (both relative: mean squared
residual / mean squared label) and ||U U^T - X||_F / ||X||_F; one line per optimizer, the
band the range over seeds. Claim: NSO ends with a lower validation MSE than WP-GD and GD
(final logged epoch, mean over seeds).

Both scales run the paper's problem size. quick: init scale 0.1, 1000 epochs, float32 on
the CPU, 3 seeds. paper: the authors' script (init U_0 with N(0, 1) entries, 20000 epochs),
float64 on CUDA, 3 seeds. Why the init differs: the noise's implicit penalty,
(sigma^2 / 2) Tr(grad^2 f) ~ (sigma^2 / 2)(d + 1) ||U||_F^2, shrinks the excess of U by about
lr * sigma^2 * (d + 1) = 1e-4 per step, so from the authors' init of scale 1 it needs ~10^4
steps to act; from scale 0.1 GD still over-fits and 1000 steps show the effect (in a
2000-epoch trial NSO < WP-GD < GD held for each of 3 seeds at every epoch from 800 on).
tiny: d = 12, r = 2, 60 epochs, for the tests.

The claim depends on the init scale. A CPU run of the paper setting (seed 0, float32, all
20000 epochs) ended with validation MSE GD 1.87, WP-GD 1.25e-3, NSO 1.78e-3: GD over-fits
as in the paper, but WP-GD stayed ~1.4-1.5x below NSO from epoch 2000 to the end, so the
paper scale is expected to FAIL as implemented here (the optimizers follow the authors'
script: WP-GD steps with the gradient at U + V, NSO with the mean at U +- V).
"""

from __future__ import annotations

import math

import pandas as pd

from genmeasures.plots.lines import Axes, Lines, Panels, Replicates, line_panels
from genmeasures.reproduce import Claim, FigureData, FigureSpec
from genmeasures_papers.matrix_sensing import MatrixSensingExperiment

METHODS = ("gd", "wp:sigma=0.02", "nso:sigma=0.02")
PANELS = {
    "train_mse": "training MSE (relative)",
    "val_mse": "validation MSE (relative)",
    "distance": r"distance to truth $\|UU^\top - X\|_F / \|X\|_F$",
}


def quick() -> MatrixSensingExperiment:
    return MatrixSensingExperiment(
        name="matrix-sensing (quick)",
        d=100,
        r=5,
        methods=METHODS,
        lr=0.0025,
        epochs=1000,
        init_scale=0.1,
        seeds=(0, 1, 2),
        log_every=20,
        dtype="float32",
        device="cpu",
    )


def tiny() -> MatrixSensingExperiment:
    """For the tests: the same pipeline in seconds."""
    return MatrixSensingExperiment(
        name="matrix-sensing (tiny)",
        d=12,
        r=2,
        methods=METHODS,
        lr=0.0025,
        epochs=60,
        init_scale=0.1,
        seeds=(0, 1),
        log_every=5,
    )


def paper() -> MatrixSensingExperiment:
    """The authors' script: init N(0, 1), lr 0.0025, sigma 0.02, 20000 epochs, logged every
    20 (as they printed); float64 on a GPU (a problem's measurements take 200 MB)."""
    return MatrixSensingExperiment(
        name="matrix-sensing (paper)",
        d=100,
        r=5,
        methods=METHODS,
        lr=0.0025,
        epochs=20000,
        init_scale=1.0,
        seeds=(0, 1, 2),
        log_every=20,
        dtype="float64",
        device="cuda",
    )


def draw(data: FigureData, stem):
    metrics = data.metrics
    return line_panels(
        metrics,
        "epoch",
        list(PANELS),
        stem,
        lines=Lines(hue="label", labels=PANELS),
        panels=Panels(subplots=True),
        replicates=Replicates(band="range"),
        axes=Axes(log_y=True),
        title=_title(metrics),
    )


def _title(metrics: pd.DataFrame) -> str:
    if metrics.empty:
        return "Matrix sensing"
    first = metrics.iloc[0]
    seeds = metrics["seed"].nunique()
    return (
        f"Matrix sensing: d={first['d']}, r={first['r']}, m={first['m']}, "
        f"init scale {first['init_scale']:g}, lr {first['lr']:g}; "
        f"mean and range over {seeds} seed{'s' if seeds != 1 else ''}"
    )


def check(data: pd.DataFrame) -> Claim:
    """Final validation MSE (mean over seeds at the last logged epoch): NSO below both."""
    val = data[data["panel"] == "val_mse"]
    final = val.loc[val.groupby("hue")["x"].idxmax()].set_index("hue")["mean"]
    nso = [h for h in final.index if str(h).startswith("NSO")]
    others = {
        name: [h for h in final.index if str(h).startswith(prefix)]
        for name, prefix in (("WP-GD", "WP-GD"), ("GD", "GD"))
    }
    if len(nso) != 1 or any(len(v) != 1 for v in others.values()):
        return Claim(False, f"expected one NSO, one WP-GD and one GD line, got {list(final.index)}")
    ours = float(final[nso[0]])
    theirs = {name: float(final[levels[0]]) for name, levels in others.items()}
    passed = math.isfinite(ours) and all(ours < v for v in theirs.values())
    epoch = int(val["x"].max())
    ratios = ", ".join(
        f"{name} {value:.3g} (NSO/{name} = {ours / value:.2f})" for name, value in theirs.items()
    )
    return Claim(
        passed,
        f"final validation MSE at epoch {epoch} (mean over seeds): NSO {ours:.3g}; {ratios}",
    )


SPEC = FigureSpec(
    id="matrix-sensing",
    paper="Zhang, Li & Ju, TMLR 2024 (NSO), matrix-sensing experiment",
    claim="NSO reaches a lower final validation MSE than WP-GD and GD",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
    notes="The outcome depends on the init scale. From init 0.1 (quick) NSO ends lowest "
    "on each of 3 seeds, but only 4% below WP-GD (24% below GD). From the authors' init "
    "N(0, 1) (paper), a 20000-epoch CPU run (seed 0) ended with WP-GD 1.4x below NSO: "
    "WP-GD's one-sided noise shrinks the over-fitted part of U faster than NSO's two-sided "
    "average, and NSO only wins on training MSE (its noise floor is ~50x lower).",
)
