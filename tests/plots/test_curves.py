"""curve_panels: one panel per quantity, one line per group, what it draws is the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmeasures.errors import DataError, OptionError
from genmeasures.plots.curves import curve_panels


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for method, rate in (("a", 0.5), ("b", 0.1)):
        for seed in range(3):
            for epoch in range(0, 50, 5):
                rows.append(
                    {
                        "method": method,
                        "seed": seed,
                        "epoch": epoch,
                        "loss": np.exp(-rate * epoch) * (1 + 0.1 * rng.random()),
                        "distance": 1.0 - 0.01 * epoch + 0.01 * seed,
                    }
                )
    return pd.DataFrame(rows)


def test_draws_the_means_and_bands_of_each_group(table: pd.DataFrame, tmp_path: Path) -> None:
    result = curve_panels(
        table, "epoch", ["loss", "distance"], tmp_path / "curves", hue="method", band="range"
    )
    png, pdf = result.paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    data = result.data
    assert list(data.columns) == ["panel", "hue", "x", "mean", "lo", "hi", "n"]
    assert len(data) == 2 * 2 * 10 and (data["n"] == 3).all()
    grouped = table.groupby(["method", "epoch"])
    for column in ("loss", "distance"):
        drawn = data[data["panel"] == column].set_index(["hue", "x"]).sort_index()
        expected = grouped[column].agg(["mean", "min", "max"])
        np.testing.assert_allclose(drawn["mean"], expected["mean"])
        np.testing.assert_allclose(drawn["lo"], expected["min"])
        np.testing.assert_allclose(drawn["hi"], expected["max"])


def test_log_axis_where_values_span_decades(table: pd.DataFrame, tmp_path: Path) -> None:
    import genmeasures.plots.curves as curves

    scales = []
    original = curves.save

    def spy(figure, stem):
        scales.extend(ax.get_yscale() for ax in figure.axes)
        return original(figure, stem)

    curves.save = spy
    try:
        curve_panels(table, "epoch", ["loss", "distance"], tmp_path / "a", hue="method")
        curve_panels(table, "epoch", ["loss"], tmp_path / "b", log_y=False)
        curve_panels(table, "epoch", ["loss", "distance"], tmp_path / "c", log_y={"distance": True})
    finally:
        curves.save = original
    assert scales == ["log", "linear", "linear", "log", "log"]


def test_sd_band_and_no_hue(table: pd.DataFrame, tmp_path: Path) -> None:
    data = curve_panels(table, "epoch", ["distance"], tmp_path / "sd").data
    assert set(data["hue"]) == {""} and (data["n"] == 6).all()
    sd = table.groupby("epoch")["distance"].std().to_numpy()
    np.testing.assert_allclose(data["hi"] - data["mean"], sd)


def test_nan_values_are_left_out(table: pd.DataFrame, tmp_path: Path) -> None:
    broken = table.copy()
    broken.loc[0, "loss"] = np.nan
    data = curve_panels(broken, "epoch", ["loss"], tmp_path / "nan", hue="method").data
    first = data[(data["hue"] == "a") & (data["x"] == 0)].iloc[0]
    assert first["n"] == 2 and data["mean"].notna().all()


def test_bad_input(table: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="band must be"):
        curve_panels(table, "epoch", ["loss"], tmp_path / "x", band="iqr")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="at least one column"):
        curve_panels(table, "epoch", [], tmp_path / "x")
    with pytest.raises(DataError, match="no column 'accuracy'"):
        curve_panels(table, "epoch", ["accuracy"], tmp_path / "x")
    with pytest.raises(DataError, match="'method' must be numeric"):
        curve_panels(table, "method", ["loss"], tmp_path / "x")
    with pytest.raises(DataError, match="fewer than two values"):
        curve_panels(table[table["epoch"] == 0], "epoch", ["loss"], tmp_path / "x")
    empty = table.assign(loss=np.nan)
    with pytest.raises(DataError, match="no finite values of 'loss'"):
        curve_panels(empty, "epoch", ["loss"], tmp_path / "x")
