"""category_points: one panel per quantity, a position per category, seeds and their mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmeasures.errors import DataError, OptionError
from genmeasures.plots.points import category_points


def table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [
        {
            "optimizer": name,
            "seed": seed,
            "trace": float(rng.uniform(100, 900)),
            "accuracy": float(rng.uniform(0.7, 0.9)),
        }
        for name in ("sgd", "adam", "sam", "nso")
        for seed in range(3)
    ]
    return pd.DataFrame(rows)


def test_the_means_and_error_bars_drawn_are_the_tables(tmp_path: Path) -> None:
    frame = table()
    frame.loc[0, "accuracy"] = np.nan
    result = category_points(
        frame,
        "optimizer",
        ["trace", "accuracy"],
        tmp_path / "points",
        order=["nso", "sgd", "adam", "sam"],
        labels={"trace": "Tr(H)"},
        highlight="nso",
    )
    assert result.png.stat().st_size > 5000 and result.pdf.read_bytes()[:5] == b"%PDF-"
    data = result.data
    assert list(data.columns) == ["panel", "x", "mean", "lo", "hi", "n"]
    assert data["x"].tolist() == ["nso", "sgd", "adam", "sam"] * 2
    for _, drawn in data.iterrows():
        own = frame.loc[frame["optimizer"] == drawn["x"], drawn["panel"]].dropna()
        assert drawn["mean"] == pytest.approx(own.mean())
        assert drawn["hi"] - drawn["mean"] == pytest.approx(own.std(ddof=1))
        assert drawn["mean"] - drawn["lo"] == pytest.approx(own.std(ddof=1))
        assert drawn["n"] == len(own)
    assert data.loc[(data["panel"] == "accuracy") & (data["x"] == "sgd"), "n"].item() == 2


def test_range_band_and_first_appearance_order(tmp_path: Path) -> None:
    frame = table()
    result = category_points(frame, "optimizer", ["trace"], tmp_path / "range", band="range")
    data = result.data
    assert data["x"].tolist() == ["sgd", "adam", "sam", "nso"]
    stats = frame.groupby("optimizer")["trace"].agg(["min", "max"])
    assert data.set_index("x")["lo"].to_dict() == stats["min"].to_dict()
    assert data.set_index("x")["hi"].to_dict() == stats["max"].to_dict()


def test_bad_arguments(tmp_path: Path) -> None:
    frame = table()
    with pytest.raises(OptionError, match="band"):
        category_points(frame, "optimizer", ["trace"], tmp_path / "a", band="iqr")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="at least one column"):
        category_points(frame, "optimizer", [], tmp_path / "b")
    with pytest.raises(OptionError, match="highlight"):
        category_points(frame, "optimizer", ["trace"], tmp_path / "c", highlight="rwp")
    with pytest.raises(DataError, match="no rows for level"):
        category_points(frame, "optimizer", ["trace"], tmp_path / "d", order=["sgd", "rwp"])
    frame["empty"] = np.nan
    with pytest.raises(DataError, match="no finite values"):
        category_points(frame, "optimizer", ["empty"], tmp_path / "e")
