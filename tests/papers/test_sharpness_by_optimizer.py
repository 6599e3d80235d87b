"""sharpness-by-optimizer: the claim check on synthetic plotted data, the optimizer labels,
and the sweeps (quick, tiny, paper) expand and validate."""

from __future__ import annotations

import pandas as pd
import pytest

from genmeasures.sweeps import expand
from genmeasures_papers.sharpness_by_optimizer import (
    ORDER,
    check,
    optimizer_labels,
    paper,
    quick,
    tiny,
)


def plotted(trace: dict[str, float], eigenvalue: dict[str, float]) -> pd.DataFrame:
    """What category_points draws: one row per panel and optimizer, means over seeds."""
    accuracy = {name: 0.8 for name in ORDER}
    rows = [
        {"panel": panel, "x": name, "mean": value, "n": 3}
        for panel, values in (
            ("hessian_trace", trace),
            ("hessian_eigenvalue", eigenvalue),
            ("test_acc", accuracy),
        )
        for name, value in values.items()
    ]
    frame = pd.DataFrame(rows)
    return frame.assign(lo=frame["mean"] - 1, hi=frame["mean"] + 1)


TRACE = {"sgd": 700.0, "adam": 530.0, "sam": 510.0, "asam": 440.0, "wp": 620.0, "rwp": 660.0}
EIGENVALUE = {"sgd": 340.0, "adam": 230.0, "sam": 240.0, "asam": 220.0, "wp": 300.0, "rwp": 320.0}


def test_claim_passes_when_nso_is_flattest_on_both() -> None:
    claim = check(plotted({**TRACE, "nso": 400.0}, {**EIGENVALUE, "nso": 200.0}))
    assert claim.passed, claim.statistic
    assert "nso trace = 400, rank 1/7 (lowest other: asam 440)" in claim.statistic
    assert "nso top eigenvalue = 200, rank 1/7" in claim.statistic


def test_claim_fails_when_nso_is_not_lowest_on_the_eigenvalue() -> None:
    claim = check(plotted({**TRACE, "nso": 400.0}, {**EIGENVALUE, "nso": 311.0}))
    assert not claim.passed
    assert "nso top eigenvalue = 311, rank 5/7 (lowest other: asam 220)" in claim.statistic


def test_claim_fails_without_nso() -> None:
    assert not check(plotted(TRACE, EIGENVALUE)).passed


def test_erm_is_named_by_its_optimizer() -> None:
    scores = pd.DataFrame(
        {"method": ["erm", "erm", "sam", "nso"], "study": ["sgd", "adam", "sgd", "adam"]}
    )
    assert optimizer_labels(scores).tolist() == ["sgd", "adam", "sam", "nso"]


@pytest.mark.parametrize("scale", [quick, tiny, paper])
def test_every_scale_expands_and_validates(scale) -> None:
    """The paper sweep names files that do not exist here (weights/resnet34-imagenet.pth,
    data/indoor): config validation does not open them, so only the configs are checked."""
    group = scale()
    assert set(group.parts) == {"sgd", "adam"}
    optimizers = set()
    for name, part in group.parts.items():
        points = expand(part.base, part.grid, part.seeds)
        assert len(points) == len(part.grid["algorithm"]) * len(part.seeds)
        for point in points:
            method = point.config.algorithm_name
            optimizers.add(name if method == "erm" else method)
            assert point.config.train.optimizer == ("sgd" if name == "sgd" else "adam") or (
                scale is not paper and method != "erm"
            )
    if scale is not tiny:
        assert optimizers == set(ORDER)
