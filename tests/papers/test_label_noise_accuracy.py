"""label-noise-accuracy: the claim check on synthetic plotted data; the paper sweep expands."""

from __future__ import annotations

import pandas as pd

from genmeasures.sweeps import expand
from genmeasures_papers.label_noise_accuracy import MEASURE, RATES, check, paper, quick

METHODS = ("erm", "l2sp", "constraint", "regsl", "robust")


def plotted(accuracy: dict[str, float], distance: dict[str, float]) -> pd.DataFrame:
    """What trend draws: panels test accuracy and hessian_distance, one line per method;
    accuracy falls with the noise rate from the given value at rate 0."""
    rows = []
    for method in METHODS:
        for rate in RATES:
            acc = accuracy.get(method, 0.8) - 0.5 * rate
            rows.append({"panel": "test accuracy", "hue": method, "x": rate, "mean": acc})
            dist = distance.get(method, 5.0) * (1 + rate)
            rows.append({"panel": MEASURE, "hue": method, "x": rate, "mean": dist})
    return pd.DataFrame(rows).assign(lo=lambda d: d["mean"], hi=lambda d: d["mean"], n=2)


def test_claim_passes_when_regsl_and_robust_beat_erm_with_a_lower_hessian_distance() -> None:
    claim = check(
        plotted({"erm": 0.8, "regsl": 0.85, "robust": 0.83}, {"erm": 6, "regsl": 3, "robust": 4})
    )
    assert claim.passed, claim
    assert "noise 0.6" in claim.statistic and "noise 0.8" in claim.statistic
    assert "noise 0.4" not in claim.statistic
    assert "8/8 comparisons" in claim.statistic


def test_claim_fails_when_robust_is_below_erm_or_its_distance_higher() -> None:
    claim = check(
        plotted({"erm": 0.8, "regsl": 0.85, "robust": 0.75}, {"erm": 6, "regsl": 3, "robust": 9})
    )
    assert not claim.passed
    assert "4/8 comparisons" in claim.statistic
    missing = plotted({}, {})
    assert not check(missing[missing["hue"] != "robust"]).passed


def test_quick_and_paper_sweeps_expand_and_validate() -> None:
    study = quick()
    points = expand(study.base, study.grid, study.seeds)
    assert len(points) == 5 * len(RATES) * 3  # three seeds, paired across methods
    assert {p.config.data.noise for p in points} == {"symmetric_all"}
    regsl = next(p.config for p in points if p.config.algorithm_name == "regsl")
    assert regsl.train.epochs > 10  # the published correction/reweighting epochs fall inside
    # The paper scale names files that only exist on the GPU machine (weights, image folder);
    # the configs validate without them (files are opened when the runs start).
    paper_study = paper()
    points = expand(paper_study.base, paper_study.grid, paper_study.seeds)
    assert len(points) == 5 * len(RATES) * 3
    config = points[0].config
    assert config.model.name == "resnet18" and config.train.device == "cuda"
    assert config.model.pretrained == "weights/resnet18-imagenet.pth"
    assert config.data.train.startswith("data/indoor:split=train")
