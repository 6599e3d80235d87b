"""ratio_table: files written, cells are the replicate means, ratios to the reference column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmeasures.errors import DataError, OptionError
from genmeasures.plots.table import ratio_table


@pytest.fixture()
def table() -> pd.DataFrame:
    rows = []
    for noise, sign in ((0.0, 1.0), (0.4, -1.0)):
        for k, method in enumerate(("erm", "l2sp", "sam")):
            for seed in range(3):
                gap = sign * (0.1 + 0.05 * k) + 0.01 * seed
                rows.append(
                    {
                        "noise": noise,
                        "method": method,
                        "gap": gap,
                        "tight": 2.0 * abs(gap) + 0.1,
                        "vacuous": 1000.0 * (k + 1) + seed,
                    }
                )
    return pd.DataFrame(rows)


def test_ratio_table_cells_and_ratios(table: pd.DataFrame, tmp_path: Path) -> None:
    result = ratio_table(
        table, "method", ["tight", "vacuous"], "gap", tmp_path / "t", panel="noise"
    )
    png, pdf = result.paths
    assert png.stat().st_size > 5000 and pdf.read_bytes()[:5] == b"%PDF-"
    drawn = result.data
    assert list(drawn.columns) == ["panel", "row", "column", "mean", "lo", "hi", "n", "ratio"]
    assert len(drawn) == 2 * 3 * 3 and drawn["mean"].notna().all()
    grouped = table.groupby(["noise", "method"])
    for _, cell in drawn.iterrows():
        values = grouped.get_group((cell["panel"], cell["row"]))[cell["column"]]
        gap = grouped.get_group((cell["panel"], cell["row"]))["gap"].mean()
        np.testing.assert_allclose(cell["mean"], values.mean())
        assert cell["lo"] == values.min() and cell["hi"] == values.max() and cell["n"] == 3
        if cell["column"] == "gap" or gap <= 0:
            assert np.isnan(cell["ratio"])
        else:
            np.testing.assert_allclose(cell["ratio"], values.mean() / gap)
    assert drawn[drawn["panel"] == 0.4]["ratio"].isna().all()  # negative gaps: no ratio
    assert drawn["row"].tolist()[:3] == ["erm", "erm", "erm"]
    assert drawn["column"].tolist()[:3] == ["gap", "tight", "vacuous"]


def test_ratio_table_sd_band_without_panels_and_errors(table: pd.DataFrame, tmp_path: Path) -> None:
    clean = table[table["noise"] == 0.0].copy()
    clean.loc[clean.index[0], "tight"] = np.nan
    result = ratio_table(clean, "method", ["tight"], "gap", tmp_path / "sd", band="sd")
    drawn = result.data
    assert set(drawn["panel"]) == {""}
    erm = drawn[(drawn["row"] == "erm") & (drawn["column"] == "tight")].iloc[0]
    values = clean[clean["method"] == "erm"]["tight"].dropna()
    assert erm["n"] == 2
    np.testing.assert_allclose(erm["hi"] - erm["mean"], values.std())
    with pytest.raises(OptionError, match="band"):
        ratio_table(clean, "method", ["tight"], "gap", tmp_path / "x", band="iqr")
    with pytest.raises(OptionError, match="decades"):
        ratio_table(clean, "method", ["tight"], "gap", tmp_path / "x", decades=0)
    with pytest.raises(DataError, match="no column 'nope'"):
        ratio_table(clean, "method", ["nope"], "gap", tmp_path / "x")
