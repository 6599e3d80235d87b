"""regsl-curves: the claim check on synthetic plotted curves; the sweeps share runs."""

from __future__ import annotations

import pandas as pd

from genmeasures.sweeps import expand
from genmeasures_papers import label_noise_accuracy
from genmeasures_papers.regsl_curves import check, paper, quick


def plotted(erm_test: list[float], regsl_test: list[float], count: list[float]) -> pd.DataFrame:
    """What line_panels draws: per method panel, train/test accuracy and the correct count."""
    rows = []
    epochs = range(len(erm_test))
    erm_train = [0.2 + 0.1 * e for e in epochs]  # keeps rising: memorization of the noise
    series = {
        "erm": {"train_acc": erm_train, "test_acc": erm_test, "correct_labels": [76.0] * 5},
        "regsl": {"train_acc": erm_train, "test_acc": regsl_test, "correct_labels": count},
    }
    for method, curves in series.items():
        for name, values in curves.items():
            for epoch, value in zip(epochs, values, strict=True):
                rows.append(
                    {
                        "panel": method,
                        "hue": "",
                        "series": name,
                        "axis": "right" if name == "correct_labels" else "left",
                        "x": float(epoch),
                        "label": str(epoch),
                        "mean": value,
                    }
                )
    return pd.DataFrame(rows).assign(lo=lambda d: d["mean"], hi=lambda d: d["mean"], n=3)


def test_claim_passes_when_erm_memorizes_and_regsl_stays_higher_and_corrects() -> None:
    claim = check(
        plotted([0.2, 0.6, 0.7, 0.6, 0.55], [0.2, 0.5, 0.6, 0.65, 0.66], [76, 76, 80, 90, 95])
    )
    assert claim.passed, claim
    assert "peaks at 0.700 (epoch 2)" in claim.statistic
    assert "76.0 -> 95.0" in claim.statistic


def test_claim_fails_when_erm_test_accuracy_does_not_fall() -> None:
    claim = check(
        plotted([0.2, 0.6, 0.7, 0.72, 0.74], [0.2, 0.5, 0.6, 0.65, 0.66], [76, 76, 80, 90, 95])
    )
    assert not claim.passed
    assert "drop 0.000" in claim.statistic


def test_runs_are_shared_with_label_noise_accuracy_and_the_paper_sweep_expands() -> None:
    ours, theirs = quick(), label_noise_accuracy.quick()
    assert ours.workdir == theirs.workdir and ours.pretrain == theirs.pretrain
    shared = {p.name: p.config for p in expand(theirs.base, theirs.grid, theirs.seeds)}
    mine = expand(ours.base, ours.grid, ours.seeds)
    common = [p for p in mine if p.name in shared]
    assert len(common) == 2 * len(theirs.seeds)  # erm and regsl at 0.6, the shared seeds
    assert all(p.config == shared[p.name] for p in common)
    points = expand(paper().base, paper().grid, paper().seeds)
    assert {p.config.algorithm_name for p in points} == {"erm", "regsl"}
    assert points[0].config.model.name == "resnet18"
