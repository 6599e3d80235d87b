"""noise-stability-vs-sigma (Ju, Li & Zhang, ICML 2022; Li & Zhang, NeurIPS 2021): noise
stability against the noise level sigma, with its second-order prediction (sigma^2/2) Tr(H).

For small isotropic Gaussian noise U ~ N(0, sigma^2 I) on the weights of a network whose loss
is twice differentiable, E_U[L_S(W + U)] - L_S(W) = (sigma^2/2) Tr(H) + O(sigma^4): the noise
stability that the papers' bounds are built on is a Hessian trace in disguise. The figure
scores noise_stability at several sigma on the same checkpoints (one option set per sigma)
and overlays (sigma^2/2) Tr(H) from hessian_trace on the same data and the same layers; one
column per fine-tuning method (erm, sam, nso); top row log-log, bottom row the ratio of the
two-sided noise stability to the prediction. Error bars are the measurements' standard errors
(every checkpoint is scored with the same noise draws and probes, so the mean over seeds gets
the mean of their stderrs, the bound for correlated errors); bands the range over seeds.

Which variant: both the one-sided (L(W+U) - L(W)) and the two-sided
((L(W+U) + L(W-U))/2 - L(W)) estimators have expectation (sigma^2/2) Tr(H) + O(sigma^4) (the
odd terms of the expansion vanish in expectation), but one-sided draws carry the gradient
term g^T U, whose spread sigma ||g|| dwarfs the sigma^2 signal as sigma -> 0 (the model is not
at a stationary point of L_S). The two-sided estimator cancels it draw by draw, so it is the
one that matches (sigma^2/2) Tr(H) at small sigma; the one-sided one is drawn for comparison.
The claim is checked on the two-sided one at the smaller half of the sigma grid (quick:
sigma = 1e-3 and 3e-3, where the noise's norm sigma sqrt(d) is at most 0.15, 2% of ||W||):
|two-sided - (sigma^2/2) Tr(H)| within 2 combined standard errors for every method.

Quick scale: the set-up of sharpness-by-optimizer with the smooth network
(``genmeasures_papers._settings.SMOOTH_MODEL``: the depth-20 ResNet-18 at width 1/8 with every
ReLU a GELU, pretrained on its own on the source half of the digits): the claim is a
second-order Taylor expansion, exact only for a smooth loss, and ReLU gates that Gaussian
weight noise flips add a term of order sigma^2 that the Hessian does not contain (seen at
this figure's earlier ReLU quick scale: a ratio of 1.22-1.33 that did not shrink with sigma,
gone with the gates frozen). erm, sam, nso fine-tuned for 30 epochs, 3 seeds, sigma = 1e-3 ..
1e-1 (d = 175k Conv/Linear weights, so sigma sqrt(d) is 0.4 .. 42, the range of the paper
scale's grid at its d ~ 2.3e7), 300 two-sided draws at the small sigmas and 100 elsewhere
(one-sided: 100), Tr(H) by Hutch++ (30 products), all on the whole training split (300
images). Paper scale: ResNet-50 from ImageNet weights
(weights/resnet50-imagenet.pth) on MIT Indoor (data/indoor/{train,test}/CLASS/*.jpg, 224 px),
erm / sam / nso with SGD lr 0.01 for 30 epochs (step schedule), sigma = 1e-4 .. 1e-2
(d ~ 2.3e7), 200 evaluation samples, on a GPU.
"""

from __future__ import annotations

import math

import pandas as pd

from genmeasures.correlation.tables import whole_model_rows
from genmeasures.plots.lines import Axes, Lines, Panels, Replicates, line_panels
from genmeasures.reproduce import (
    Claim,
    FigureData,
    FigureSpec,
    Study,
    StudyGroup,
)
from genmeasures_papers._settings import SMOOTH_MODEL, indoor_resnet50
from genmeasures_papers.sharpness_by_optimizer import (
    ERM,
    SAM,
    TRACE,
    TRACE_TINY,
    nso,
    sgd_study,
    tiny_study,
)

#: The smooth network's runs: their own work directory (another source model and configs).
WORKDIR_SMOOTH = "nso-figures-smooth"
SIGMAS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SIGMAS_PAPER = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
#: two-sided draws at the small sigmas (where the claim is checked), and everywhere else
DRAWS_SMALL, DRAWS = 300, 100
METHODS = [ERM, SAM, nso()]
TWO_SIDED = "noise stability, two-sided"
ONE_SIDED = "noise stability, one-sided"
PREDICTED = "(σ²/2) Tr(H)"
VALUES = "loss increase"
RATIO = "ratio to (σ²/2) Tr(H)"
#: |z| at or below which two estimates agree "within stderr" (about 95% two-sided)
Z_AGREE = 2.0


def small_sigmas(sigmas) -> list[float]:
    """The smaller half of a sigma grid: where the claim is checked."""
    ordered = sorted(sigmas)
    return ordered[: max(1, len(ordered) // 2)]


def noise_measures(sigmas: tuple[float, ...], draws: int, draws_small: int) -> tuple[str, ...]:
    """noise_stability at each sigma, two-sided (more draws at the small sigmas) and
    one-sided; the same noise seed, so every sigma scales the same draws."""
    small = small_sigmas(sigmas)
    return tuple(
        f"noise_stability:sigma={s:g},sided={side},draws={r}"
        for s in sigmas
        for side, r in (("two", draws_small if s in small else draws), ("one", draws))
    )


def quick() -> StudyGroup:
    measures = (TRACE, *noise_measures(SIGMAS, DRAWS, DRAWS_SMALL))
    study = sgd_study(
        "noise stability vs sigma (quick)",
        METHODS,
        measures,
        model=SMOOTH_MODEL,
        seeds=(0, 1, 2),
    )
    return StudyGroup(study.name, parts={"sgd": study}, workdir=WORKDIR_SMOOTH)


def tiny() -> StudyGroup:
    study = sgd_study("noise stability vs sigma", [ERM, nso()], ())
    study = tiny_study(study, (TRACE_TINY, *noise_measures((1e-3, 1e-2, 1e-1), 3, 4)))
    return StudyGroup(study.name, parts={"sgd": study})


def paper() -> StudyGroup:
    """ResNet-50 from ImageNet weights on an image folder (train/ and test/ subfolders of
    class folders), erm / sam / nso with SGD, as hessian-vs-radius."""
    study = Study(
        name="noise stability vs sigma (paper)",
        pretrain=None,
        base=indoor_resnet50(),
        grid={"algorithm": METHODS},
        seeds=(0, 1, 2),
        measures=(
            "hessian_trace:estimator=hutchpp,max_matvecs=100,rtol=0.02",
            *noise_measures(SIGMAS_PAPER, 100, 300),
        ),
        score_samples=200,
        report=False,
    )
    return StudyGroup(study.name, parts={"sgd": study})


def _options(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in str(text).split(",") if "=" in item)


def sigma_table(long: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint, sigma, quantity and view: the two noise stabilities and
    (sigma^2/2) Tr(H) at each scored sigma with their standard errors (view ``VALUES``), and
    the two-sided one and the prediction divided by the prediction (view ``RATIO``)."""
    whole = whole_model_rows(long)
    keys = ["checkpoint", "method", "seed"]
    noise = whole[whole["measure"] == "noise_stability"]
    options = noise["options"].map(_options)
    noise = noise.assign(
        sigma=options.map(lambda o: float(o["sigma"])),
        quantity=options.map(lambda o: TWO_SIDED if o["sided"] == "two" else ONE_SIDED),
    )[[*keys, "sigma", "quantity", "value", "stderr"]]
    trace = whole[whole["measure"] == "hessian_trace"][[*keys, "value", "stderr"]]
    predicted = pd.concat(
        [
            trace.assign(
                sigma=s,
                quantity=PREDICTED,
                value=trace["value"] * s**2 / 2,
                stderr=trace["stderr"] * s**2 / 2,
            )
            for s in sorted(noise["sigma"].unique())
        ],
        ignore_index=True,
    )
    values = pd.concat([noise, predicted], ignore_index=True).assign(view=VALUES)
    reference = predicted[["checkpoint", "sigma", "value"]].rename(columns={"value": "p"})
    ratio = values[values["quantity"].isin([TWO_SIDED, PREDICTED])].merge(
        reference, on=["checkpoint", "sigma"]
    )
    ratio = ratio.assign(
        value=ratio["value"] / ratio["p"], stderr=ratio["stderr"] / ratio["p"], view=RATIO
    ).drop(columns="p")
    return pd.concat([values, ratio], ignore_index=True)


def draw(data: FigureData, stem):
    table = sigma_table(data.long)
    return line_panels(
        table,
        "sigma",
        "value",
        stem,
        lines=Lines(
            hue="quantity",
            hue_order=[q for q in (PREDICTED, TWO_SIDED, ONE_SIDED) if q in set(table["quantity"])],
        ),
        panels=Panels(
            row="view",
            row_order=[VALUES, RATIO],
            col="method",
            col_order=[m for m in ("erm", "sam", "nso") if m in set(table["method"])],
        ),
        replicates=Replicates(
            band="range",
            stderr="stderr",
            stderr_mean="shared",  # every checkpoint is scored with the same noise draws
        ),
        axes=Axes(
            log_x=True,
            xlabel="noise level σ",
            ylabel={VALUES: "E[L(W+U)] − L(W)", RATIO: "noise stability / ((σ²/2) Tr(H))"},
            sharey=True,
        ),
        title="Noise stability against σ and its second-order prediction\n(error bars: ±1 "
        "stderr of the measurements, the same draws for every seed; bands: range over seeds)",
    )


def check(data: pd.DataFrame) -> Claim:
    """|z| = |two-sided noise stability - (sigma^2/2) Tr(H)| / sqrt(se_ns^2 + se_tr^2) on the
    seed means at every small sigma and method, with the mean's stderr as drawn."""
    data = data[data["row"] == VALUES] if "row" in data else data
    sigmas = sorted(data["x"].unique())
    small = small_sigmas(sigmas)
    cells = []  # (|z|, method, sigma, ratio)
    for method, rows in data.groupby("col", sort=False):
        both = rows.pivot_table(index="x", columns="hue", values=["mean", "stderr"], dropna=False)
        if TWO_SIDED not in both["mean"] or PREDICTED not in both["mean"]:
            return Claim(False, f"{method}: no two-sided noise stability or trace to compare")
        ns, predicted = both["mean"][TWO_SIDED], both["mean"][PREDICTED]
        se = (both["stderr"][TWO_SIDED] ** 2 + both["stderr"][PREDICTED] ** 2) ** 0.5
        for sigma in small:
            z = abs(float((ns[sigma] - predicted[sigma]) / se[sigma]))
            cells.append(
                (z if math.isfinite(z) else math.inf, method, sigma, ns[sigma] / predicted[sigma])
            )
    worst = max(cells, key=lambda c: c[0])
    ratios = ", ".join(f"{m} {r:.3f}" for _, m, s, r in cells if s == small[0])
    return Claim(
        worst[0] <= Z_AGREE,
        f"small sigma = {', '.join(f'{s:g}' for s in small)}: max |two-sided noise stability"
        f" - (sigma^2/2)Tr(H)| / combined stderr = {worst[0]:.2f} ({worst[1]}, sigma="
        f"{worst[2]:g}; claim: <= {Z_AGREE:g}) over {len(cells)} method x sigma cells "
        f"(seed means; the mean's stderr bounded by the mean stderr, the seeds sharing noise "
        f"draws); noise stability / (sigma^2/2)Tr(H) at sigma={small[0]:g}: {ratios}",
    )


SPEC = FigureSpec(
    id="noise-stability-vs-sigma",
    paper="Ju, Li & Zhang, ICML 2022; Li & Zhang, NeurIPS 2021 (noise stability)",
    claim="for small sigma (the smaller half of the sigma grid) the two-sided noise "
    "stability agrees with (sigma^2/2) Tr(H) within 2 combined standard errors, per method",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
    notes=(
        "At quick scale with the smooth network (GELU) the large discrepancy of the ReLU "
        "network (ratio 1.22-1.33, from gates that weight noise flips) is gone: two-sided "
        "noise stability / (sigma^2/2) Tr(H) at sigma = 1e-3 is 1.06 (erm), 1.05 (sam) and "
        "1.02 (nso). But the largest |difference| / combined stderr is 2.06 (erm, sigma = "
        "3e-3) against the claim's 2, a FAIL by 0.06 standard errors. The ratio does not "
        "shrink from sigma = 3e-3 to 1e-3 (1.047 and 1.046, averaged over methods), so the "
        "remaining 5% is not a higher-order term in sigma; at sigma >= 1e-2 the ratio grows "
        "(1.13, 2.0 and 103 at 1e-2, 3e-2, 1e-1) as higher-order terms take over. Three "
        "seeds, 300 two-sided draws at the small sigmas and Tr(H) by Hutch++ with 30 "
        "products: more draws and products would shrink the stderr and tell whether the 5% "
        "offset is real."
    ),
)
