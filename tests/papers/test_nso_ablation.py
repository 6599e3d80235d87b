"""nso-ablation: the claim check on synthetic plotted data, the reshaping of the score table,
the grid's equal-pass pairs, and the sweeps (quick, tiny, paper) expand and validate."""

from __future__ import annotations

import pandas as pd
import pytest

from genmeasures.sweeps import expand
from genmeasures_papers.nso_ablation import (
    NOISE,
    ONE,
    ONE_SIDED_K,
    PASSES,
    QUANTITIES,
    SIGMA,
    TWO,
    TWO_SIDED_K,
    ablation_table,
    check,
    grid,
    paper,
    quick,
    tiny,
)

TRACE, ACCURACY = QUANTITIES["hessian_trace"], QUANTITIES["test_acc"]


def plotted(two_sided_trace: float, one_sided_trace: dict[float, float]) -> pd.DataFrame:
    """What line_panels draws: trace and accuracy against passes (at sigma 0.01) and sigma
    (at 2 passes), two-sided flat at ``two_sided_trace``."""
    rows = []
    for x in (1, 2, 3, 4, 6):
        rows.append((TRACE, PASSES, ONE, x, one_sided_trace.get(x, 600.0)))
        rows.append((ACCURACY, PASSES, ONE, x, 0.78))
    for x in (2, 4, 6):
        rows.append((TRACE, PASSES, TWO, x, two_sided_trace))
        rows.append((ACCURACY, PASSES, TWO, x, 0.80))
    for sigma in (0.003, SIGMA, 0.03):
        one = one_sided_trace.get(2) if sigma == SIGMA else one_sided_trace.get(sigma, 600.0)
        rows.append((TRACE, NOISE, ONE, sigma, one if one is not None else 600.0))
        rows.append((TRACE, NOISE, TWO, sigma, two_sided_trace))
        rows.append((ACCURACY, NOISE, ONE, sigma, 0.78))
        rows.append((ACCURACY, NOISE, TWO, sigma, 0.80))
    frame = pd.DataFrame(rows, columns=["row", "col", "hue", "x", "mean"])
    return frame.assign(
        panel=frame["row"] + " | " + frame["col"], lo=frame["mean"], hi=frame["mean"], n=3
    )


def test_claim_passes_when_two_sided_is_flatter_at_every_equal_pass_pair() -> None:
    claim = check(plotted(550.0, {2: 600.0, 4: 590.0, 6: 580.0}))
    assert claim.passed, claim.statistic
    assert "lower mean Tr(H) in 5/5 equal-pass pairs" in claim.statistic
    assert "2 passes: 550 vs 600" in claim.statistic
    assert "higher in 5/5 pairs" in claim.statistic


def test_claim_fails_when_one_sided_wins_a_pair() -> None:
    claim = check(plotted(550.0, {2: 600.0, 4: 540.0, 6: 580.0}))
    assert not claim.passed
    assert "4/5 equal-pass pairs" in claim.statistic and "4 passes: 550 vs 540" in claim.statistic


def test_the_grid_holds_every_equal_pass_pair() -> None:
    points = grid(SIGMA, (0.003, SIGMA, 0.03), TWO_SIDED_K, ONE_SIDED_K)
    keys = {(p["sigma"], p["k"], p["two_sided"]) for p in points}
    assert len(keys) == len(points) == 12
    for k in TWO_SIDED_K:
        assert (SIGMA, 2 * k, False) in keys
    for sigma in (0.003, 0.03):
        assert {(sigma, 1, True), (sigma, 2, False)} <= keys


def test_ablation_table_places_each_run_on_its_axes() -> None:
    scores = pd.DataFrame(
        {
            "algorithm.sigma": [0.01, 0.01, 0.03, 0.01],
            "algorithm.k": [1, 2, 1, 3],
            "algorithm.two_sided": ["True", "False", True, False],  # as read back from a CSV
            "hessian_trace": [600.0, 610.0, 420.0, 605.0],
            "hessian_trace.stderr": [6.0, 6.1, 4.2, 6.0],
            "test_acc": [0.8, 0.79, 0.75, 0.78],
            "seed": [0, 0, 0, 0],
        }
    )
    table = ablation_table(scores)
    trace = table[table["quantity"] == TRACE]
    passes = trace[trace["axis"] == PASSES]
    assert sorted(zip(passes["x"], passes["variant"], strict=True)) == [
        (2.0, ONE),
        (2.0, TWO),
        (3.0, ONE),
    ]
    noise = trace[trace["axis"] == NOISE]
    assert sorted(zip(noise["x"], noise["variant"], strict=True)) == [
        (0.01, ONE),
        (0.01, TWO),
        (0.03, TWO),
    ]
    assert noise["stderr"].notna().all()
    accuracy = table[table["quantity"] == ACCURACY]
    assert accuracy["stderr"].isna().all() and len(accuracy) == len(trace)


@pytest.mark.parametrize("scale", [quick, tiny, paper])
def test_every_scale_expands_and_validates(scale) -> None:
    """The paper sweep names files that do not exist here (weights/resnet34-imagenet.pth,
    data/indoor): config validation does not open them, so only the configs are checked."""
    group = scale()
    (part,) = group.parts.values()
    points = expand(part.base, part.grid, part.seeds)
    assert len(points) == len(part.grid["algorithm"]) * len(part.seeds)
    assert all(p.config.algorithm_name == "nso" for p in points)


def test_quick_shares_its_runs_with_sharpness_by_optimizer() -> None:
    from genmeasures_papers.sharpness_by_optimizer import quick as sharpness

    mine, theirs = quick(), sharpness()
    assert mine.workdir == theirs.workdir
    (part,) = mine.parts.values()
    assert part.base == theirs.parts["sgd"].base and part.pretrain == theirs.parts["sgd"].pretrain
    shared = [a for a in part.grid["algorithm"] if a in theirs.parts["sgd"].grid["algorithm"]]
    assert shared == [{"name": "nso", "sigma": 0.01, "k": 1, "two_sided": True}]
