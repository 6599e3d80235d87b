"""bound-vs-epoch: the claim check on synthetic plotted curves; the paper sweep validates."""

from __future__ import annotations

import pandas as pd

from genmeasures.sweeps import expand
from genmeasures_papers.bound_vs_epoch import BOUNDS, GAP, check, epoch_table, paper, quick, tiny


def plotted(curves: dict[str, list[float]]) -> pd.DataFrame:
    """What line_panels draws: one line per quantity panel, x = epoch, seed means."""
    rows = [
        {"panel": name, "hue": "", "x": float(2 * (i + 1)), "mean": value}
        for name, values in curves.items()
        for i, value in enumerate(values)
    ]
    return pd.DataFrame(rows).assign(lo=lambda d: d["mean"], hi=lambda d: d["mean"], n=3)


GAP_CURVE = [0.02, 0.05, 0.08, 0.10, 0.13, 0.14, 0.16]


def test_claim_passes_when_both_bounds_rise_with_the_gap() -> None:
    claim = check(
        plotted(
            {
                GAP: GAP_CURVE,
                "pacbayes_trace_bound": [1.0, 2.5, 5.0, 8.0, 11.0, 10.5, 15.0],  # one swap
                "hessian_bound": [0.2, 0.3, 0.35, 0.45, 0.5, 0.6, 0.7],
            }
        )
    )
    assert claim.passed, claim.statistic
    assert "pacbayes_trace_bound: Spearman rho = 0.96" in claim.statistic
    assert "hessian_bound: Spearman rho = 1.00" in claim.statistic


def test_claim_fails_when_a_bound_does_not_track_the_gap() -> None:
    claim = check(
        plotted(
            {
                GAP: GAP_CURVE,
                "pacbayes_trace_bound": [1.0, 2.5, 5.0, 8.0, 11.0, 12.0, 15.0],
                "hessian_bound": [0.7, 0.5, 0.6, 0.3, 0.4, 0.2, 0.3],  # falls while gap rises
            }
        )
    )
    assert not claim.passed
    assert "hessian_bound: Spearman rho = -0.8" in claim.statistic
    assert not check(plotted({GAP: GAP_CURVE})).passed  # no bound plotted: not a pass


def test_epoch_table_has_one_row_per_checkpoint_and_quantity() -> None:
    scores = pd.DataFrame(
        {"epoch": [2, 4], "seed": [0, 0], GAP: [0.1, 0.2], BOUNDS[0]: [1.0, 2.0], BOUNDS[1]: 3}
    )
    table = epoch_table(scores)
    assert len(table) == 6 and set(table["quantity"]) == {GAP, *BOUNDS}


def test_sweeps_expand_and_validate() -> None:
    for study in (quick(), tiny()):
        points = expand(study.base, study.grid, study.seeds)
        assert len(points) == len(study.seeds) and study.select == "all"
    study = paper()
    points = expand(study.base, study.grid, study.seeds)  # files are only read when run
    assert len(points) == 3
    config = points[0].config
    assert config.model.name == "resnet50" and config.train.save_every == 3
    assert config.train.device == "cuda"
