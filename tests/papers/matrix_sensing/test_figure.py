"""matrix-sensing: the claim check on synthetic plotted data; the scales' experiments."""

from __future__ import annotations

import pandas as pd
import pytest

from genmeasures_papers.matrix_sensing import MatrixSensingExperiment
from genmeasures_papers.matrix_sensing import figure as matrix_sensing


def plotted(final: dict[str, float]) -> pd.DataFrame:
    """What line_panels returns: three panels, a line per optimizer, epochs 0..100."""
    rows = []
    for hue, last in final.items():
        for panel in matrix_sensing.PANELS:
            for x, value in ((0.0, 1.0), (50.0, (1.0 + last) / 2), (100.0, last)):
                rows.append(
                    {"panel": panel, "hue": hue, "x": x, "mean": value, "lo": value,
                     "hi": value, "n": 3}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_claim_passes_when_nso_ends_lowest() -> None:
    claim = matrix_sensing.check(plotted({"GD": 4e-3, "WP-GD σ=0.02": 3e-3, "NSO σ=0.02": 2.5e-3}))
    assert claim.passed
    assert "epoch 100" in claim.statistic and "NSO 0.0025" in claim.statistic
    assert "NSO/WP-GD = 0.83" in claim.statistic and "NSO/GD = 0.62" in claim.statistic


@pytest.mark.parametrize(
    "final",
    [
        {"GD": 4e-3, "WP-GD σ=0.02": 2e-3, "NSO σ=0.02": 2.5e-3},  # WP-GD below NSO
        {"GD": 2e-3, "WP-GD σ=0.02": 3e-3, "NSO σ=0.02": 2.5e-3},  # GD below NSO
        {"GD": 2.5e-3, "WP-GD σ=0.02": 3e-3, "NSO σ=0.02": 2.5e-3},  # a tie is not lower
    ],
)
def test_claim_fails_otherwise(final: dict[str, float]) -> None:
    assert not matrix_sensing.check(plotted(final)).passed


def test_claim_fails_without_the_three_lines() -> None:
    claim = matrix_sensing.check(plotted({"GD": 4e-3, "NSO σ=0.02": 2.5e-3}))
    assert not claim.passed and "expected one NSO, one WP-GD and one GD line" in claim.statistic


def test_claim_uses_the_final_epoch_not_the_best() -> None:
    data = plotted({"GD": 4e-3, "WP-GD σ=0.02": 3e-3, "NSO σ=0.02": 2.5e-3})
    # NSO's curve dipped lower mid-run but ends above WP-GD: the final values decide
    dip = (data["panel"] == "val_mse") & (data["hue"] == "NSO σ=0.02")
    data.loc[dip & (data["x"] == 50.0), "mean"] = 1e-4
    data.loc[dip & (data["x"] == 100.0), "mean"] = 3.5e-3
    assert not matrix_sensing.check(data).passed


def test_quick_runs_the_papers_problem_size() -> None:
    quick = matrix_sensing.quick()
    assert (quick.d, quick.r, quick.runs()[0].config()["m"]) == (100, 5, 2500)
    assert quick.lr == 0.0025 and len(quick.seeds) >= 2
    assert [spec.optimizer.name for spec in quick.runs()[:3]] == ["gd", "wp", "nso"]


def test_paper_scale_expands_and_validates() -> None:
    """The paper experiment validates without a GPU (the device is only opened by run())."""
    paper = matrix_sensing.paper()
    assert isinstance(paper, MatrixSensingExperiment)
    specs = paper.runs()
    assert len(specs) == 9 and len({s.dirname for s in specs}) == 9
    config = specs[-1].config()
    assert config == {
        "method": "nso",
        "label": "NSO σ=0.02",
        "optimizer.sigma": 0.02,
        "optimizer.k": 1,
        "seed": 2,
        "d": 100,
        "r": 5,
        "m": 2500,
        "lr": 0.0025,
        "epochs": 20000,
        "init_scale": 1.0,
        "log_every": 20,
        "dtype": "float64",
        "device": "cuda",
    }


def test_tiny_is_small() -> None:
    tiny = matrix_sensing.tiny()
    assert tiny.d <= 20 and tiny.epochs <= 100
