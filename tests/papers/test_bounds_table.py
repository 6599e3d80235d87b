"""bounds-table: the claim check on synthetic plotted data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genmeasures_papers.bounds_table import BOUNDS, GAP, check


def plotted(ratios: dict[str, float], negative_gaps: bool = True) -> pd.DataFrame:
    """What ratio_table draws: cells per (panel, method, column); noisy gaps negative."""
    rows = []
    for panel, sign in (("clean", 1.0), ("40% symmetric", -1.0 if negative_gaps else 1.0)):
        for k, method in enumerate(("erm", "l2sp", "sam", "nso")):
            gap = sign * (0.1 + 0.02 * k)
            rows.append(
                {"panel": panel, "row": method, "column": GAP, "mean": gap, "ratio": np.nan}
            )
            for bound in BOUNDS:
                value = ratios[bound] * abs(gap)
                rows.append(
                    {
                        "panel": panel,
                        "row": method,
                        "column": bound,
                        "mean": value,
                        "ratio": value / gap if gap > 0 else np.nan,
                    }
                )
    return pd.DataFrame(rows).assign(lo=lambda d: d["mean"], hi=lambda d: d["mean"], n=3)


def test_claim_passes_when_only_the_hessian_bound_is_on_the_gaps_scale() -> None:
    claim = check(
        plotted({"hessian_bound": 3.0, "pacbayes_trace_bound": 50.0, "distance_bound": 1e4})
    )
    assert claim.passed, claim
    assert "hessian_bound/gap median 3" in claim.statistic
    assert "4 cells without a positive gap left out" in claim.statistic


def test_claim_fails_when_another_bound_is_within_10x() -> None:
    claim = check(
        plotted(
            {"hessian_bound": 3.0, "pacbayes_trace_bound": 50.0, "distance_bound": 4.0},
            negative_gaps=False,
        )
    )
    assert not claim.passed
    assert "distance_bound/gap median 4" in claim.statistic


def test_claim_fails_when_the_hessian_bound_is_vacuous_too() -> None:
    claim = check(
        plotted({"hessian_bound": 30.0, "pacbayes_trace_bound": 50.0, "distance_bound": 1e4})
    )
    assert not claim.passed
