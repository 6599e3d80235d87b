"""correlation-summary: the claim check on synthetic plotted data."""

from __future__ import annotations

import pandas as pd

from genmeasures_papers.correlation_summary import STATISTICS, check

MEASURES = ("hessian_bound", "hessian_distance", "hessian_trace", "distance_bound", "noise")


def plotted(taus: dict[str, float]) -> pd.DataFrame:
    """What statistics_chart draws: one row per (statistic, measure) with its rank."""
    rows = []
    for statistic in STATISTICS:
        values = pd.Series(taus)
        ranks = values.rank(ascending=False, method="min").astype(int)
        for measure, value in values.items():
            rows.append(
                {
                    "panel": statistic,
                    "measure": measure,
                    "mean": value,
                    "lo": value - 0.1,
                    "hi": value + 0.1,
                    "n": 60,
                    "rank": int(ranks[measure]),
                }
            )
    return pd.DataFrame(rows)


def test_claim_passes_when_both_hessian_measures_are_in_the_top_three() -> None:
    taus = dict(zip(MEASURES, (0.5, 0.45, 0.6, 0.2, 0.0), strict=True))
    claim = check(plotted(taus))
    assert claim.passed, claim
    assert "kendall_tau: hessian_bound #2 (0.50), hessian_distance #3 (0.45) of 5" in (
        claim.statistic
    )


def test_claim_fails_when_one_hessian_measure_ranks_fourth() -> None:
    taus = dict(zip(MEASURES, (0.5, 0.1, 0.6, 0.2, 0.3), strict=True))
    claim = check(plotted(taus))
    assert not claim.passed
    assert "hessian_distance #5" in claim.statistic


def test_claim_fails_on_negative_correlations_even_at_the_top() -> None:
    taus = dict(zip(MEASURES, (-0.1, -0.2, -0.3, -0.4, -0.5), strict=True))
    assert not check(plotted(taus)).passed
