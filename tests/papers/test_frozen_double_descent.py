"""frozen-double-descent: the claim check on synthetic curves, the panels built from metrics,
and the studies (one per source size) expand and validate."""

from __future__ import annotations

import pandas as pd
import pytest

from genmeasures.reproduce import StudyGroup
from genmeasures.sweeps import expand
from genmeasures_papers.frozen_double_descent import (
    CLEAN,
    EPOCHS,
    NOISY,
    SOURCE,
    check,
    error_table,
    interior_extremum,
    paper,
    part_name,
    quick,
    tiny,
)


def curve(panel: str, hue: str, means: list[float], sd: float) -> list[dict]:
    return [
        {"panel": panel, "hue": hue, "x": float(m), "mean": v, "lo": v - sd, "hi": v + sd, "n": 3}
        for m, v in enumerate(means)
    ]


MONOTONE = [0.03, 0.03, 0.09, 0.25, 0.44, 0.45]


def test_claim_passes_on_a_noisy_dip_beyond_the_seed_spread() -> None:
    data = pd.DataFrame(
        curve(CLEAN, "n = 500", MONOTONE, 0.01)
        + curve(NOISY, "n = 200", [0.39, 0.37, 0.35, 0.44, 0.51, 0.53], 0.03)  # within sd
        + curve(NOISY, "n = 500", [0.33, 0.32, 0.15, 0.31, 0.43, 0.49], 0.03)  # a clear dip
    )
    claim = check(data)
    assert claim.passed, claim.statistic
    assert "n = 500: dip at m = 2, margin +0.120 (beyond the sd)" in claim.statistic
    assert "n = 200: dip at m = 2, margin -0.020 (within the sd)" in claim.statistic


def test_claim_fails_on_monotone_or_within_spread_noisy_curves() -> None:
    data = pd.DataFrame(
        curve(CLEAN, "n = 500", [0.1, 0.3, 0.05, 0.3, 0.4, 0.5], 0.01)  # clean dips do not count
        + curve(NOISY, "n = 500", MONOTONE, 0.01)
        + curve(NOISY, "n = 200", [0.4, 0.45, 0.42, 0.5, 0.55, 0.6], 0.05)
    )
    claim = check(data)
    assert not claim.passed
    assert "clean labels, for comparison: n = 500: dip at m = 2, margin +0.230" in claim.statistic
    assert not check(pd.DataFrame(curve(CLEAN, "n = 500", MONOTONE, 0.0))).passed


def test_interior_extremum_finds_peaks_and_needs_an_interior_point() -> None:
    peak = pd.DataFrame(curve(NOISY, "", [0.2, 0.25, 0.5, 0.3, 0.1], 0.05))
    assert interior_extremum(peak) == ("peak", 2.0, pytest.approx(0.2))
    assert interior_extremum(pd.DataFrame(curve(NOISY, "", [0.2, 0.3], 0.0)))[0] == "none"


def test_error_table_builds_the_four_panels_from_metrics() -> None:
    rows = []
    for study, source in ((part_name(541), 541), (part_name(60), 60)):
        for freeze in (0, 2) if source == 60 else (0, 1, 2):
            for rate in (0.4,) if source == 60 else (0.0, 0.4):
                for epoch in range(3):
                    rows.append(
                        {
                            "study": study,
                            "epoch": epoch,
                            "train.epochs": 2,
                            "train.freeze": freeze,
                            "data.train_size": 500,
                            "data.noise_rate": rate,
                            "seed": 0,
                            "test_acc": 0.9 - 0.1 * freeze - rate / 10 - epoch / 100,
                        }
                    )
    table = error_table(pd.DataFrame(rows))
    counts = table.groupby("panel").size().to_dict()
    assert counts == {CLEAN: 3, NOISY: 3, EPOCHS: 2, SOURCE: 4}
    source = table[table["panel"] == SOURCE]
    assert set(source["x"]) == {60, 541} and set(source["hue"]) == {"m = 0", "m = 2"}
    noisy = table[(table["panel"] == NOISY) & (table["x"] == 1)]
    assert noisy["error"].iloc[0] == pytest.approx(1 - (0.9 - 0.1 - 0.04 - 0.02))


@pytest.mark.parametrize("make", [quick, tiny, paper])
def test_every_part_expands_and_validates(make) -> None:
    group = make()
    assert isinstance(group, StudyGroup) and len(group.parts) >= 2
    sizes = []
    for name, study in group.parts.items():
        points = expand(study.base, study.grid, study.seeds)  # data and weights: read at run
        assert points and study.measures == ("distance_from_init",)
        sizes.append((int(name.split("=")[1]), study.pretrain["train"]["epochs"]))
    full, *smaller = sizes
    for size, epochs in smaller:  # the same number of pretraining steps for every source size
        assert size < full[0] and epochs * size >= full[1] * full[0]
    first = next(iter(group.parts.values()))
    blocks = max(first.grid["train.freeze"])
    if make is quick:
        assert blocks == 5 and len(expand(first.base, first.grid, first.seeds)) == 72
    if make is paper:
        assert blocks == 9
        assert first.base["model"]["name"] == "resnet18"
