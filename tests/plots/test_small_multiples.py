"""small_multiples: one panel per level, lines per hue, bands over seeds; data read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmeasures.errors import DataError, OptionError
from genmeasures.plots.small_multiples import small_multiples


def replicates() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for panel, scale in (("gap", 1.0), ("bound", 1000.0)):
        for hue in ("a", "b"):
            for x in (1, 2, 4, 8):
                for seed in range(3):
                    value = scale * (x + (hue == "b") + rng.normal(0, 0.1))
                    if panel == "bound":
                        value *= 10.0**x  # spans orders of magnitude: a log y axis
                    rows.append({"panel": panel, "hue": hue, "x": x, "seed": seed, "value": value})
    return pd.DataFrame(rows)


def test_draws_means_and_bands_over_replicates(tmp_path: Path) -> None:
    table = replicates()
    result = small_multiples(
        table,
        "x",
        "value",
        tmp_path / "sm",
        panel="panel",
        hue="hue",
        panel_order=["gap", "bound"],
        xlabel={"gap": "epoch"},
        ylabel="value",
        hue_title="variant",
    )
    assert result.png.stat().st_size > 5000 and result.pdf.read_bytes()[:5] == b"%PDF-"
    drawn = result.data
    assert list(drawn.columns) == ["panel", "hue", "x", "mean", "lo", "hi", "n"]
    assert drawn["panel"].unique().tolist() == ["gap", "bound"]
    expected = table.groupby(["panel", "hue", "x"])["value"].agg(["mean", "std", "count"])
    for row in drawn.itertuples():
        mean, sd, n = expected.loc[(row.panel, row.hue, int(row.x))]
        assert row.mean == pytest.approx(mean)
        assert row.lo == pytest.approx(mean - sd) and row.hi == pytest.approx(mean + sd)
        assert row.n == n == 3


def test_range_band_nan_values_and_a_single_panel(tmp_path: Path) -> None:
    table = replicates().query("panel == 'gap'").reset_index(drop=True)
    table.loc[[0, 5], "value"] = np.nan
    result = small_multiples(table, "x", "value", tmp_path / "one", hue="hue", band="range")
    drawn = result.data
    first = drawn[(drawn["hue"] == "a") & (drawn["x"] == 1)].iloc[0]
    values = table[(table["hue"] == "a") & (table["x"] == 1)]["value"].dropna()
    assert first["n"] == 2 and first["lo"] == values.min() and first["hi"] == values.max()
    assert set(drawn["panel"]) == {""}


def test_rejects_what_it_cannot_draw(tmp_path: Path) -> None:
    table = replicates()
    with pytest.raises(DataError, match="no column 'nope'"):
        small_multiples(table, "x", "nope", tmp_path / "x")
    with pytest.raises(DataError, match="must be numeric"):
        small_multiples(table, "hue", "value", tmp_path / "x")
    with pytest.raises(OptionError, match="band"):
        small_multiples(table, "x", "value", tmp_path / "x", band="iqr")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="panel 'other'"):
        small_multiples(table, "x", "value", tmp_path / "x", panel="panel", panel_order=["other"])
    with pytest.raises(DataError, match="no finite values"):
        small_multiples(table.assign(value=np.nan), "x", "value", tmp_path / "x")
    with pytest.raises(DataError, match="empty"):
        small_multiples(table.iloc[:0], "x", "value", tmp_path / "x")
