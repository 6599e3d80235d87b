"""facet_lines: a grid of panels, lines per hue, bands over seeds, stderr error bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmeasures.errors import DataError, OptionError
from genmeasures.plots.facets import facet_lines


def grid_table() -> pd.DataFrame:
    """2 rows x 2 columns x 2 hues x 3 x values x 3 seeds, with a per-row stderr."""
    rng = np.random.default_rng(0)
    rows = []
    for quantity in ("trace", "accuracy"):
        for axis in ("k", "sigma"):
            for variant in ("two", "one"):
                for x in (1.0, 2.0, 3.0) if axis == "k" else (0.001, 0.01, 0.1):
                    for seed in range(3):
                        rows.append(
                            {
                                "quantity": quantity,
                                "axis": axis,
                                "variant": variant,
                                "x": x,
                                "seed": seed,
                                "value": float(rng.uniform(1, 2)),
                                "se": float(rng.uniform(0.01, 0.1)),
                            }
                        )
    return pd.DataFrame(rows)


def assert_written(result) -> None:
    assert result.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result.png.stat().st_size > 5000
    assert result.pdf.read_bytes()[:5] == b"%PDF-"


def test_the_means_bands_and_stderr_drawn_are_the_tables(tmp_path: Path) -> None:
    table = grid_table()
    result = facet_lines(
        table,
        "x",
        "value",
        tmp_path / "grid",
        row="quantity",
        col="axis",
        hue="variant",
        stderr="se",
    )
    assert_written(result)
    data = result.data
    assert list(data.columns) == [
        "panel",
        "row",
        "col",
        "hue",
        "x",
        "mean",
        "lo",
        "hi",
        "n",
        "stderr",
    ]
    assert len(data) == 2 * 2 * 2 * 3
    groups = table.groupby(["quantity", "axis", "variant", "x"])
    expected = groups["value"].agg(["mean", "min", "max", "count"])
    se = groups["se"].apply(lambda s: np.sqrt((s**2).sum()) / len(s))
    for _, drawn in data.iterrows():
        key = (drawn["row"], drawn["col"], drawn["hue"], drawn["x"])
        assert drawn["mean"] == pytest.approx(expected.loc[key, "mean"])
        assert drawn["lo"] == pytest.approx(expected.loc[key, "min"])
        assert drawn["hi"] == pytest.approx(expected.loc[key, "max"])
        assert drawn["n"] == 3
        assert drawn["stderr"] == pytest.approx(se.loc[key])
        assert drawn["panel"] == f"{drawn['row']} | {drawn['col']}"


def test_shared_stderr_is_the_mean_stderr_and_sd_band(tmp_path: Path) -> None:
    table = grid_table()
    result = facet_lines(
        table,
        "x",
        "value",
        tmp_path / "shared",
        row="quantity",
        col="axis",
        hue="variant",
        stderr="se",
        stderr_mean="shared",
        band="sd",
    )
    groups = table.groupby(["quantity", "axis", "variant", "x"])
    mean_se = groups["se"].mean()
    sd = groups["value"].std()
    for _, drawn in result.data.iterrows():
        key = (drawn["row"], drawn["col"], drawn["hue"], drawn["x"])
        assert drawn["stderr"] == pytest.approx(mean_se.loc[key])
        assert drawn["hi"] - drawn["mean"] == pytest.approx(sd.loc[key])


def test_one_panel_without_facets_and_nan_values_left_out(tmp_path: Path) -> None:
    table = pd.DataFrame({"x": [1, 1, 2, 2, 3], "y": [1.0, 3.0, 2.0, np.nan, 5.0]})
    result = facet_lines(table, "x", "y", tmp_path / "single", band=None)
    data = result.data
    assert data["mean"].tolist() == [2.0, 2.0, 5.0]
    assert data["n"].tolist() == [2, 1, 1]
    assert (data["lo"] == data["mean"]).all() and "stderr" not in data
    assert set(data["panel"]) == {""} and set(data["hue"]) == {""}


def test_log_axes_and_orders(tmp_path: Path) -> None:
    from genmeasures.plots import facets

    table = grid_table()
    table = table[table["quantity"] == "trace"]
    seen = {}
    original = facets.save

    def capture(figure, stem):
        seen["scales"] = [ax.get_xscale() for ax in figure.axes]
        seen["ticks"] = [[t.get_text() for t in ax.get_xticklabels()] for ax in figure.axes]
        return original(figure, stem)

    facets.save = capture
    try:
        result = facet_lines(
            table,
            "x",
            "value",
            tmp_path / "log",
            col="axis",
            hue="variant",
            col_order=["sigma", "k"],
            hue_order=["one", "two"],
            log_x={"sigma": True},
        )
    finally:
        facets.save = original
    assert list(dict.fromkeys(result.data["col"])) == ["sigma", "k"]
    assert list(dict.fromkeys(result.data["hue"])) == ["one", "two"]
    assert seen["scales"] == ["log", "linear"]
    assert seen["ticks"] == [["0.001", "0.01", "0.1"], ["1", "2", "3"]]


def test_bad_arguments(tmp_path: Path) -> None:
    table = grid_table()
    with pytest.raises(OptionError, match="band"):
        facet_lines(table, "x", "value", tmp_path / "a", band="iqr")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="stderr_mean"):
        facet_lines(table, "x", "value", tmp_path / "b", stderr_mean="x")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="numeric"):
        facet_lines(table, "variant", "value", tmp_path / "c")
    with pytest.raises(DataError, match="no rows for level"):
        facet_lines(table, "x", "value", tmp_path / "d", col="axis", col_order=["k", "lr"])
    with pytest.raises(DataError, match="no column"):
        facet_lines(table, "x", "value", tmp_path / "e", hue="method")
