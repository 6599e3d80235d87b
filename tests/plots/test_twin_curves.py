"""twin_curves: bands over replicates, a right axis, facets, categorical x; data read back."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest

from genmeasures.errors import DataError, OptionError
from genmeasures.plots.twin_curves import twin_curves


def epochs_table() -> pd.DataFrame:
    """Two methods x three seeds x five epochs: accuracies and a count of correct labels."""
    rows = []
    for m, method in enumerate(("erm", "regsl")):
        for seed in range(3):
            for epoch in range(5):
                rows.append(
                    {
                        "method": method,
                        "seed": seed,
                        "epoch": epoch,
                        "train_acc": 0.2 + 0.1 * epoch + 0.01 * seed,
                        "test_acc": 0.5 + 0.05 * m - 0.02 * seed,
                        "correct_labels": 60.0 + m * epoch * 5 + seed,
                    }
                )
    return pd.DataFrame(rows)


def assert_written(result) -> None:
    assert result.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result.png.stat().st_size > 5000
    assert result.pdf.read_bytes()[:5] == b"%PDF-"


def test_right_axis_and_facets_draw_the_means_over_seeds(tmp_path: Path) -> None:
    table = epochs_table()
    before = dict(mpl.rcParams)
    result = twin_curves(
        table,
        "epoch",
        ["train_acc", "test_acc"],
        tmp_path / "curves",
        right=["correct_labels"],
        facet="method",
        labels={"correct_labels": "correct labels"},
    )
    assert_written(result)
    assert dict(mpl.rcParams) == before
    data = result.data
    assert set(data["panel"]) == {"erm", "regsl"} and set(data["hue"]) == {""}
    assert set(data["axis"]) == {"left", "right"}
    assert len(data) == 2 * 3 * 5  # panels x series x epochs
    expected = table.groupby(["method", "epoch"]).agg(["mean", "std", "count"])
    for (panel, series), rows in data.groupby(["panel", "series"]):
        stats = expected.loc[panel][series]
        np.testing.assert_allclose(rows["x"], stats.index.to_numpy(dtype=float))
        np.testing.assert_allclose(rows["mean"], stats["mean"])
        np.testing.assert_allclose(rows["hi"] - rows["mean"], stats["std"].fillna(0))
        assert (rows["n"] == 3).all()
    assert (data.loc[data["series"] == "correct_labels", "axis"] == "right").all()
    assert data["label"].iloc[0] == "0"


def test_hue_with_a_categorical_x_keeps_the_order_of_first_appearance(tmp_path: Path) -> None:
    layers = [f"layer{k}.conv.weight" for k in range(8)]
    rows = [
        {"method": method, "seed": seed, "layer": layer, "distance": (k + 1) * (1 + m)}
        for m, method in enumerate(("erm", "constraint"))
        for seed in range(2)
        for k, layer in enumerate(layers)
    ]
    radius = [{"method": "radius", "seed": 0, "layer": layer, "distance": 1.5} for layer in layers]
    table = pd.DataFrame(rows + radius)
    result = twin_curves(
        table, "layer", ["distance"], tmp_path / "layers", hue="method", reference=["radius"]
    )
    assert_written(result)
    data = result.data
    assert (data.loc[data["hue"] == "radius", "mean"] == 1.5).all()
    assert (data.loc[data["hue"] == "radius", "n"] == 1).all()
    data = data[data["hue"] != "radius"]
    assert data.loc[data["hue"] == "erm", "label"].tolist() == layers
    assert data.loc[data["hue"] == "erm", "x"].tolist() == list(range(8))
    assert data.loc[data["hue"] == "constraint", "mean"].tolist() == [2 * (k + 1) for k in range(8)]
    assert (data["n"] == 2).all() and (data["lo"] == data["mean"]).all()


def test_range_band_nan_values_and_errors(tmp_path: Path) -> None:
    table = epochs_table()
    table.loc[0, "test_acc"] = np.nan
    result = twin_curves(table, "epoch", ["test_acc"], tmp_path / "range", band="range")
    first = result.data.iloc[0]
    assert first["n"] == 5  # six replicates at epoch 0, one NaN left out
    at_zero = table[table["epoch"] == 0]["test_acc"].dropna()
    assert first["lo"] == at_zero.min() and first["hi"] == at_zero.max()
    with pytest.raises(OptionError, match="at least one column"):
        twin_curves(table, "epoch", [], tmp_path / "x")
    with pytest.raises(OptionError, match="band"):
        twin_curves(table, "epoch", ["test_acc"], tmp_path / "x", band="iqr")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no column 'nope'"):
        twin_curves(table, "epoch", ["nope"], tmp_path / "x")
    with pytest.raises(DataError, match="empty"):
        twin_curves(table.iloc[:0], "epoch", ["test_acc"], tmp_path / "x")
