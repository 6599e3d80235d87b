"""correlation-summary (this toolkit): how well every measure predicts the gap over one sweep.

For every measure scored on the method sweep of ``hessian-vs-method`` (ten fine-tuning
methods, clean and 40% noisy labels, seeds): Kendall's tau with the loss gap over all
checkpoints (with its 95% bootstrap CI), Jiang et al.'s granulated Kendall Psi over the axes
method and label noise (seeds averaged), and the R^2 of the OLS fit gap ~ measure; one panel
per statistic, measures ordered by tau. The claim: the Hessian-based measures
(hessian_bound, hessian_distance) are among the best correlated.

Same work directory and configs as ``hessian-vs-method`` (see that module for the quick and
paper settings): the runs and the scores are shared.
"""

from __future__ import annotations

import math

import pandas as pd

from genmeasures.correlation import correlate
from genmeasures.plots.summary import statistics_chart
from genmeasures.reproduce import Claim, FigureData, FigureSpec
from genmeasures_papers.hessian_vs_method import method_table, paper, quick, tiny

GAP = "gap_loss"
AXES = ("method", "data.noise_rate")
STATISTICS = ("kendall_tau", "psi", "r2")
HESSIAN = ("hessian_bound", "hessian_distance")
TOP = 3


def measures(long: pd.DataFrame) -> list[str]:
    """The measures scored (sub-quantities like ``distance_bound.log10_value`` left out)."""
    return sorted({m for m in long["measure"].astype(str).unique() if "." not in m})


def draw(data: FigureData, stem):
    table = method_table(data.scores)
    report = correlate(
        table, gap=GAP, by=list(AXES), measures=measures(data.long), n_boot=1000, seed=0
    )
    return statistics_chart(
        report.summary,
        stem,
        statistics=STATISTICS,
        labels={
            "kendall_tau": "Kendall tau with the gap (95% CI)",
            "psi": "granulated Kendall Psi",
            "r2": "R^2 (OLS gap ~ measure)",
        },
        highlight=HESSIAN,
        title="Every measure against the loss gap over the method sweep "
        f"({int(report.summary['n'].max())} checkpoints)",
    )


def check(data: pd.DataFrame) -> Claim:
    """Rank of hessian_bound and hessian_distance among the measures by Kendall tau (1 = the
    largest tau); both must be in the top 3 with tau > 0."""
    ranks = {}
    parts = []
    for statistic in STATISTICS:
        rows = data[data["panel"] == statistic].set_index("measure")
        n = len(rows)
        for name in HESSIAN:
            if name in rows.index:
                rank, value = int(rows.loc[name, "rank"]), float(rows.loc[name, "mean"])
            else:
                rank, value = 0, math.nan
            ranks[(statistic, name)] = (rank, value)
        parts.append(
            f"{statistic}: "
            + ", ".join(
                f"{name} #{ranks[(statistic, name)][0]} ({ranks[(statistic, name)][1]:.2f})"
                for name in HESSIAN
            )
            + f" of {n}"
        )
    best = data[data["panel"] == STATISTICS[0]].sort_values("rank").head(TOP)
    passed = all(
        1 <= ranks[(STATISTICS[0], name)][0] <= TOP and ranks[(STATISTICS[0], name)][1] > 0
        for name in HESSIAN
    )
    top = ", ".join(f"{m} ({v:.2f})" for m, v in zip(best["measure"], best["mean"], strict=True))
    return Claim(
        passed,
        "; ".join(parts) + f"; top {TOP} by Kendall tau: {top} (claim: both Hessian measures "
        f"in the top {TOP} by tau, tau > 0)",
    )


SPEC = FigureSpec(
    id="correlation-summary",
    paper="this toolkit (statistics of Jiang et al., ICLR 2020)",
    claim=f"hessian_bound and hessian_distance rank among the best correlated: both are "
    f"in the top {TOP} of the measures by Kendall tau with the loss gap over the method "
    "sweep, with tau > 0",
    studies={"quick": quick, "paper": paper, "tiny": tiny},
    draw=draw,
    check=check,
    notes=(
        "At quick scale hessian_distance is 4th of 9 by Kendall tau (0.38 [0.16, 0.58]) and "
        "1st by granulated Kendall Psi (0.41), hessian_bound 5th (0.20 [-0.02, 0.40]); the "
        "top 3 by tau are layerwise_distance (0.53 [0.40, 0.67]), distance_from_init (0.45) "
        "and distance_bound (0.40), whose CIs overlap hessian_distance's. hessian_bound = "
        "sqrt(C/n) hessian_distance is pulled down by C, the largest per-sample training "
        "loss: runs that fit their labels (erm, sam, nso under 40% noise: the largest gaps) "
        "have the smallest C. The curvature measures that do not scale with distance "
        "(hessian_trace, hessian_eigenvalue, noise_stability, pacbayes_trace_bound) have tau "
        "near 0. With 60 runs the first four measures are not separated by their bootstrap "
        "CIs (about +-0.2); more seeds would narrow them, but the ranking of hessian_bound "
        "below the distance measures comes from C, not from noise."
    ),
)
