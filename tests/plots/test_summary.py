"""group_means and statistics_chart: files written, and the drawn numbers equal the table's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmeasures.errors import DataError, OptionError
from genmeasures.plots.summary import group_means, statistics_chart


def assert_written(paths) -> None:
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000


@pytest.fixture()
def replicates() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for noise in (0.0, 0.4):
        for k, method in enumerate(("erm", "sam", "nso", "constraint")):
            for seed in range(3):
                rows.append(
                    {
                        "noise": noise,
                        "method": method,
                        "seed": seed,
                        "bound": 1.0 + k + noise + 0.1 * rng.normal(),
                        "gap": 0.1 * k - noise + 0.01 * rng.normal(),
                    }
                )
    return pd.DataFrame(rows)


def test_group_means_draws_each_groups_mean_and_band(
    replicates: pd.DataFrame, tmp_path: Path
) -> None:
    table = replicates.copy()
    table.loc[0, "bound"] = np.nan  # one replicate of (0.0, erm) left out
    result = group_means(table, "bound", "gap", tmp_path / "means", hue="method", panel="noise")
    assert_written(result.paths)
    drawn = result.data
    assert list(drawn.columns) == ["panel", "hue", "x", "x_lo", "x_hi", "mean", "lo", "hi", "n"]
    assert drawn["mean"].notna().all() and len(drawn) == 8
    grouped = table.dropna(subset=["bound"]).groupby(["noise", "method"])
    for _, row in drawn.iterrows():
        group = grouped.get_group((row["panel"], row["hue"]))
        assert row["n"] == len(group)
        np.testing.assert_allclose(row["x"], group["bound"].mean())
        np.testing.assert_allclose(row["mean"], group["gap"].mean())
        np.testing.assert_allclose(row["hi"] - row["mean"], group["gap"].std())
        np.testing.assert_allclose(row["x"] - row["x_lo"], group["bound"].std())
    assert drawn.loc[(drawn["panel"] == 0.0) & (drawn["hue"] == "erm"), "n"].item() == 2
    assert drawn["hue"].tolist()[:4] == ["erm", "sam", "nso", "constraint"]


def test_group_means_range_band_without_panels(replicates: pd.DataFrame, tmp_path: Path) -> None:
    result = group_means(replicates, "bound", "gap", tmp_path / "r", hue="method", band="range")
    drawn = result.data
    assert set(drawn["panel"]) == {""} and len(drawn) == 4
    erm = replicates[replicates["method"] == "erm"]
    row = drawn[drawn["hue"] == "erm"].iloc[0]
    assert row["lo"] == erm["gap"].min() and row["hi"] == erm["gap"].max()
    assert row["x_lo"] == erm["bound"].min() and row["x_hi"] == erm["bound"].max()
    with pytest.raises(OptionError, match="band"):
        group_means(replicates, "bound", "gap", tmp_path / "x", hue="method", band="iqr")
    with pytest.raises(DataError, match="no column 'nope'"):
        group_means(replicates, "nope", "gap", tmp_path / "x", hue="method")
    empty = replicates.assign(bound=np.nan)
    with pytest.raises(DataError, match="no row has finite"):
        group_means(empty, "bound", "gap", tmp_path / "x", hue="method")


@pytest.fixture()
def summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "measure": ["a", "b", "c", "d"],
            "n": [20, 20, 20, 19],
            "kendall_tau": [0.1, 0.6, -0.2, 0.4],
            "kendall_tau_lo": [-0.1, 0.4, -0.4, 0.2],
            "kendall_tau_hi": [0.3, 0.8, 0.0, 0.6],
            "psi": [0.2, np.nan, 0.1, 0.5],
            "r2": [0.01, 0.5, 0.05, 0.3],
        }
    )


def test_statistics_chart_draws_every_defined_statistic(
    summary: pd.DataFrame, tmp_path: Path
) -> None:
    result = statistics_chart(summary, tmp_path / "stats", highlight=["d"])
    assert_written(result.paths)
    drawn = result.data
    assert list(drawn.columns) == ["panel", "measure", "mean", "lo", "hi", "n", "rank"]
    assert drawn["mean"].notna().all()
    tau = drawn[drawn["panel"] == "kendall_tau"]
    assert tau["measure"].tolist() == ["b", "d", "a", "c"]  # ordered by tau, largest first
    assert tau["rank"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(tau["lo"], [0.4, 0.2, -0.1, -0.4])
    np.testing.assert_allclose(tau["hi"], [0.8, 0.6, 0.3, 0.0])
    psi = drawn[drawn["panel"] == "psi"].set_index("measure")
    assert "b" not in psi.index  # NaN: not drawn
    assert psi.loc["d", "rank"] == 1 and psi.loc["a", "rank"] == 2 and psi["lo"].isna().all()
    r2 = drawn[drawn["panel"] == "r2"].set_index("measure")
    np.testing.assert_allclose(r2.loc[["a", "b", "c", "d"], "mean"], summary["r2"])
    assert r2.loc["d", "n"] == 19


def test_statistics_chart_errors(summary: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="at least one"):
        statistics_chart(summary, tmp_path / "x", statistics=[])
    with pytest.raises(DataError, match="no column 'cmi'"):
        statistics_chart(summary, tmp_path / "x", statistics=["cmi"])
    with pytest.raises(DataError, match="no measure"):
        statistics_chart(summary.iloc[:0], tmp_path / "x")
