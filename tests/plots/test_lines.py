"""line_panels: what it draws (lines, bands, error bars; read back from the figure's artists)
is the table's means, spreads and counts, in every layout; bad input fails in one line."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgb

import genmeasures.plots.lines as lines
from genmeasures.errors import DataError, OptionError
from genmeasures.plots import line_panels
from genmeasures.plots.lines import Axes, Legend, Lines, Panels, Replicates

# -- tables -------------------------------------------------------------------------------


def curves_table() -> pd.DataFrame:
    """Two methods x three seeds x ten epochs: a loss spanning decades and a distance."""
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


def panels_table() -> pd.DataFrame:
    """A long table: panel (gap, bound), hue (a, b), x, three seeds; the bound spans decades."""
    rng = np.random.default_rng(0)
    rows = []
    for panel, scale in (("gap", 1.0), ("bound", 1000.0)):
        for hue in ("a", "b"):
            for x in (1, 2, 4, 8):
                for seed in range(3):
                    value = scale * (x + (hue == "b") + rng.normal(0, 0.1))
                    if panel == "bound":
                        value *= 10.0**x
                    rows.append({"panel": panel, "hue": hue, "x": x, "seed": seed, "value": value})
    return pd.DataFrame(rows)


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


# -- reading the figure back ------------------------------------------------------------------


@pytest.fixture
def drawn(monkeypatch) -> list[dict]:
    """Every figure line_panels saves, as seen just before it is written: per axes its scales,
    texts, lines, bands (per x: lowest and highest vertex) and error bars."""
    figures: list[dict] = []
    original = lines.save

    def spy(figure, stem):
        figure.canvas.draw()  # so tick labels are those shown
        axes = figure.axes
        figures.append(
            {
                "axes": [_axes(ax) for ax in axes],
                # which axes share their x (y) axis with which: [i][j]
                "sharex": [[a.get_shared_x_axes().joined(a, b) for b in axes] for a in axes],
                "sharey": [[a.get_shared_y_axes().joined(a, b) for b in axes] for a in axes],
                "legends": [[t.get_text() for t in leg.get_texts()] for leg in figure.legends],
                "suptitle": figure.get_suptitle(),
            }
        )
        return original(figure, stem)

    monkeypatch.setattr(lines, "save", spy)
    return figures


def _axes(ax) -> dict:
    legend = ax.get_legend()
    return {
        "visible": ax.get_visible(),
        "ylim": ax.get_ylim(),
        "xscale": ax.get_xscale(),
        "yscale": ax.get_yscale(),
        "title": ax.get_title(),
        "xlabel": ax.get_xlabel(),
        "ylabel": ax.get_ylabel(),
        "xticks": [t.get_text() for t in ax.get_xticklabels()],
        "rotation": [t.get_rotation() for t in ax.get_xticklabels()],
        "lines": [
            {
                "label": line.get_label(),
                "x": np.asarray(line.get_xdata(), dtype=float),
                "y": np.asarray(line.get_ydata(), dtype=float),
                "color": to_rgb(line.get_color()),
                "marker": line.get_marker(),
                "ls": line.get_linestyle(),
                "mfc": line.get_markerfacecolor(),
            }
            for line in ax.get_lines()
            if len(line.get_xdata()) > 0 and line.get_linestyle() != "None"  # not caps
        ],
        "bands": [_band(c) for c in ax.collections if isinstance(c, PolyCollection)],
        "errorbars": [
            np.array([(s[0, 0], s[0, 1], s[1, 1]) for s in c.get_segments()])
            for c in ax.collections
            if isinstance(c, LineCollection)
        ],
        "legend": None if legend is None else [t.get_text() for t in legend.get_texts()],
        "legend_title": None if legend is None else legend.get_title().get_text(),
    }


def _band(collection) -> dict:
    vertices = collection.get_paths()[0].vertices
    spans = {}
    for x in np.unique(vertices[:, 0]):
        ys = vertices[vertices[:, 0] == x, 1]
        spans[float(x)] = (float(ys.min()), float(ys.max()))
    return {"color": tuple(collection.get_facecolor()[0][:3]), "span": spans}


def assert_drawn_is_data(figure: dict, data: pd.DataFrame, skip: tuple[str, ...] = ()) -> None:
    """The lines drawn, in order, are ``data``'s rows (x, mean), and the band of each line
    (but those labelled in ``skip``) spans exactly its lo..hi at every x."""
    offset = 0
    for ax in figure["axes"]:
        for line in ax["lines"]:
            rows = data.iloc[offset : offset + len(line["x"])]
            offset += len(line["x"])
            np.testing.assert_allclose(line["x"], rows["x"])
            np.testing.assert_allclose(line["y"], rows["mean"])
            if line["label"] in skip:
                continue
            (band,) = [b for b in ax["bands"] if np.allclose(b["color"], line["color"])]
            np.testing.assert_allclose([band["span"][x][0] for x in line["x"]], rows["lo"])
            np.testing.assert_allclose([band["span"][x][1] for x in line["x"]], rows["hi"])
    assert offset == len(data)


def assert_written(result) -> None:
    assert result.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result.png.stat().st_size > 5000
    assert result.pdf.read_bytes()[:5] == b"%PDF-"


# -- a panel per quantity (subplots) ----------------------------------------------------------


def test_a_panel_per_quantity_draws_each_groups_means_and_range(drawn, tmp_path: Path) -> None:
    table = curves_table()
    result = line_panels(
        table,
        "epoch",
        ["loss", "distance"],
        tmp_path / "curves",
        lines=Lines(hue="method", labels={"loss": "training loss"}),
        panels=Panels(subplots=True),
        replicates=Replicates(band="range"),
    )
    assert_written(result)
    data = result.data
    assert list(data.columns) == ["panel", "hue", "x", "mean", "lo", "hi", "n"]
    assert len(data) == 2 * 2 * 10 and (data["n"] == 3).all()
    grouped = table.groupby(["method", "epoch"])
    for column in ("loss", "distance"):
        got = data[data["panel"] == column].set_index(["hue", "x"]).sort_index()
        expected = grouped[column].agg(["mean", "min", "max"])
        np.testing.assert_allclose(got["mean"], expected["mean"])
        np.testing.assert_allclose(got["lo"], expected["min"])
        np.testing.assert_allclose(got["hi"], expected["max"])
    (figure,) = drawn
    assert_drawn_is_data(figure, data)
    first, second = figure["axes"]
    assert (first["ylabel"], second["ylabel"]) == ("training loss", "distance")
    assert first["xlabel"] == second["xlabel"] == "epoch"
    assert first["title"] == second["title"] == ""  # a quantity is named by its y label
    assert figure["legends"] == [["a", "b"]]
    # a hue level keeps its colour in every panel; the k-th level the k-th marker
    for ax in (first, second):
        assert [line["marker"] for line in ax["lines"]] == ["o", "s"]
    assert first["lines"][0]["color"] == second["lines"][0]["color"]
    assert first["lines"][0]["color"] != first["lines"][1]["color"]


def test_log_y_where_values_span_decades_or_where_forced(drawn, tmp_path: Path) -> None:
    table = curves_table()
    both = ["loss", "distance"]
    each = Panels(subplots=True)
    line_panels(table, "epoch", both, tmp_path / "a", panels=each, lines=Lines(hue="method"))
    line_panels(table, "epoch", ["loss"], tmp_path / "b", panels=each, axes=Axes(log_y=False))
    distance_log = Axes(log_y={"distance": True})
    line_panels(table, "epoch", both, tmp_path / "c", panels=each, axes=distance_log)
    line_panels(table, "epoch", both, tmp_path / "d", panels=each, axes=Axes(log_y=True))
    scales = [[ax["yscale"] for ax in figure["axes"]] for figure in drawn]
    assert scales == [["log", "linear"], ["linear"], ["log", "log"], ["log", "log"]]


def test_sd_band_without_hue(drawn, tmp_path: Path) -> None:
    table = curves_table()
    data = line_panels(table, "epoch", "distance", tmp_path / "sd").data
    assert set(data["hue"]) == {""} and set(data["panel"]) == {""} and (data["n"] == 6).all()
    sd = table.groupby("epoch")["distance"].std().to_numpy()
    np.testing.assert_allclose(data["hi"] - data["mean"], sd)
    np.testing.assert_allclose(data["mean"] - data["lo"], sd)
    (figure,) = drawn
    assert_drawn_is_data(figure, data)
    assert figure["legends"] == [] and figure["axes"][0]["legend"] is None  # nothing to key


def test_nan_values_are_left_out_and_counted(drawn, tmp_path: Path) -> None:
    broken = curves_table()
    broken.loc[0, "loss"] = np.nan
    result = line_panels(
        broken,
        "epoch",
        ["loss"],
        tmp_path / "nan",
        lines=Lines(hue="method"),
        panels=Panels(subplots=True),
    )
    data = result.data
    first = data[(data["hue"] == "a") & (data["x"] == 0)].iloc[0]
    assert first["n"] == 2 and data["mean"].notna().all()
    others = broken[(broken["method"] == "a") & (broken["epoch"] == 0)]["loss"].dropna()
    assert first["mean"] == pytest.approx(others.mean())
    assert drawn[0]["axes"][0]["title"] == "1 NaN value(s) left out"


def test_markers_only_where_a_panel_has_few_x_values(drawn, tmp_path: Path) -> None:
    many = pd.DataFrame({"step": np.arange(40), "loss": np.linspace(1, 2, 40)})
    line_panels(many, "step", "loss", tmp_path / "many")
    assert [line["marker"] for line in drawn[0]["axes"][0]["lines"]] == ["None"]
    # more than eight integer x values: integer ticks, not one per value
    ticks = drawn[0]["axes"][0]["xticks"]
    assert 2 <= len(ticks) < 40 and all(t.lstrip("−-").isdigit() for t in ticks if t)


# -- a grid of panels with stderr error bars ----------------------------------------------


def test_grid_means_ranges_and_stderr_bars_are_the_tables(drawn, tmp_path: Path) -> None:
    table = grid_table()
    result = line_panels(
        table,
        "x",
        "value",
        tmp_path / "grid",
        lines=Lines(hue="variant"),
        panels=Panels(row="quantity", col="axis"),
        replicates=Replicates(band="range", stderr="se"),
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
    for _, got in data.iterrows():
        key = (got["row"], got["col"], got["hue"], got["x"])
        assert got["mean"] == pytest.approx(expected.loc[key, "mean"])
        assert got["lo"] == pytest.approx(expected.loc[key, "min"])
        assert got["hi"] == pytest.approx(expected.loc[key, "max"])
        assert got["n"] == 3
        assert got["stderr"] == pytest.approx(se.loc[key])
        assert got["panel"] == f"{got['row']} | {got['col']}"
    (figure,) = drawn
    assert_drawn_is_data(figure, data)
    # error bars: at each point, mean -+ the mean's stderr
    bars = np.concatenate([b for ax in figure["axes"] for b in ax["errorbars"]])
    assert len(bars) == len(data)
    half = (bars[:, 2] - bars[:, 1]) / 2
    np.testing.assert_allclose(np.sort(half), np.sort(data["stderr"]))
    np.testing.assert_allclose(np.sort(bars[:, 1] + half), np.sort(data["mean"]))
    # labels: column levels on top, x labels under the bottom row, y labels left
    titles = [ax["title"] for ax in figure["axes"]]
    assert titles == ["k", "sigma", "", ""]
    assert [ax["xlabel"] for ax in figure["axes"]] == ["", "", "x", "x"]
    assert [ax["ylabel"] for ax in figure["axes"]] == ["value: trace", "", "value: accuracy", ""]
    assert figure["legends"] == [["two", "one"]]
    assert [line["marker"] for line in figure["axes"][0]["lines"]] == ["o", "s"]


def test_shared_stderr_is_the_mean_stderr_and_sd_band(tmp_path: Path) -> None:
    table = grid_table()
    result = line_panels(
        table,
        "x",
        "value",
        tmp_path / "shared",
        lines=Lines(hue="variant"),
        panels=Panels(row="quantity", col="axis"),
        replicates=Replicates(band="sd", stderr="se", stderr_mean="shared"),
    )
    groups = table.groupby(["quantity", "axis", "variant", "x"])
    mean_se = groups["se"].mean()
    sd = groups["value"].std()
    for _, got in result.data.iterrows():
        key = (got["row"], got["col"], got["hue"], got["x"])
        assert got["stderr"] == pytest.approx(mean_se.loc[key])
        assert got["hi"] - got["mean"] == pytest.approx(sd.loc[key])


def test_a_nan_stderr_makes_the_means_stderr_unknown(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {"x": [1, 1, 2, 2], "y": [1.0, 3.0, 2.0, 4.0], "se": [0.1, np.nan, 0.3, 0.4]}
    )
    only_errors = Replicates(band=None, stderr="se")
    data = line_panels(table, "x", "y", tmp_path / "se", replicates=only_errors).data
    assert np.isnan(data["stderr"].iloc[0])
    assert data["stderr"].iloc[1] == pytest.approx(np.sqrt(0.3**2 + 0.4**2) / 2)
    # without a band, lo..hi is mean -+ stderr (an unknown stderr: the mean)
    assert data["lo"].tolist() == pytest.approx([2.0, 3.0 - 0.25])
    assert data["hi"].tolist() == pytest.approx([2.0, 3.0 + 0.25])


def test_one_panel_without_band_and_nan_values_left_out(drawn, tmp_path: Path) -> None:
    table = pd.DataFrame({"x": [1, 1, 2, 2, 3], "y": [1.0, 3.0, 2.0, np.nan, 5.0]})
    result = line_panels(table, "x", "y", tmp_path / "single", replicates=Replicates(band=None))
    data = result.data
    assert list(data.columns) == ["panel", "hue", "x", "mean", "lo", "hi", "n"]
    assert data["mean"].tolist() == [2.0, 2.0, 5.0]
    assert data["n"].tolist() == [2, 1, 1]
    assert (data["lo"] == data["mean"]).all() and (data["hi"] == data["mean"]).all()
    assert set(data["panel"]) == {""} and set(data["hue"]) == {""}
    (figure,) = drawn
    assert figure["axes"][0]["bands"] == [] and figure["axes"][0]["errorbars"] == []
    assert figure["axes"][0]["title"] == "1 NaN value(s) left out"


def test_log_x_orders_and_ticks_at_the_values_drawn(drawn, tmp_path: Path) -> None:
    table = grid_table()
    table = table[table["quantity"] == "trace"]
    result = line_panels(
        table,
        "x",
        "value",
        tmp_path / "log",
        lines=Lines(hue="variant", hue_order=["one", "two"]),
        panels=Panels(col="axis", col_order=["sigma", "k"]),
        axes=Axes(log_x={"sigma": True}, xlabel={"sigma": "noise level"}),
    )
    data = result.data
    assert list(data.columns) == ["panel", "hue", "x", "mean", "lo", "hi", "n"]
    assert list(dict.fromkeys(data["panel"])) == ["sigma", "k"]
    assert list(dict.fromkeys(data["hue"])) == ["one", "two"]
    (figure,) = drawn
    assert [ax["xscale"] for ax in figure["axes"]] == ["log", "linear"]
    assert [ax["xticks"] for ax in figure["axes"]] == [["0.001", "0.01", "0.1"], ["1", "2", "3"]]
    assert [ax["xlabel"] for ax in figure["axes"]] == ["noise level", "x"]
    assert [ax["title"] for ax in figure["axes"]] == ["sigma", "k"]
    assert figure["legends"] == [["one", "two"]]
    # hue_order leaves levels out: only those are drawn
    one_level = Lines(hue="variant", hue_order=["one"])
    only = line_panels(table, "x", "value", tmp_path / "one", lines=one_level)
    assert set(only.data["hue"]) == {"one"}
    assert only.data["n"].sum() == (table["variant"] == "one").sum()


def test_sharey_shares_the_y_axes_of_a_row(drawn, tmp_path: Path) -> None:
    table = grid_table()
    grid = Panels(row="quantity", col="axis")
    line_panels(table, "x", "value", tmp_path / "shared", panels=grid, axes=Axes(sharey=True))
    line_panels(table, "x", "value", tmp_path / "free", panels=grid)
    for figure, shared in zip(drawn, (True, False), strict=True):
        # axes 0 and 1 form the first row, 2 and 3 the second
        assert figure["sharey"][0][1] is shared and figure["sharey"][2][3] is shared
        assert not figure["sharey"][0][2]
        assert figure["sharex"][0][2] and not figure["sharex"][0][1]  # a grid column's x


# -- wrapped panels (small multiples) ----------------------------------------------------


def test_wrapped_panels_have_their_own_labels_scales_and_legends(drawn, tmp_path: Path) -> None:
    table = panels_table()
    result = line_panels(
        table,
        "x",
        "value",
        tmp_path / "sm",
        lines=Lines(hue="hue"),
        panels=Panels(
            col="panel", col_order=["gap", "bound"], col_wrap=3, titles={"bound": "(b) the bound"}
        ),
        axes=Axes(xlabel={"gap": "epoch"}, ylabel="value"),
        legend=Legend("panel", title={"gap": "variant"}),
    )
    assert_written(result)
    data = result.data
    assert list(data.columns) == ["panel", "hue", "x", "mean", "lo", "hi", "n"]
    assert data["panel"].unique().tolist() == ["gap", "bound"]
    expected = table.groupby(["panel", "hue", "x"])["value"].agg(["mean", "std", "count"])
    for row in data.itertuples():
        mean, sd, n = expected.loc[(row.panel, row.hue, int(row.x))]
        assert row.mean == pytest.approx(mean)
        assert row.lo == pytest.approx(mean - sd) and row.hi == pytest.approx(mean + sd)
        assert row.n == n == 3
    (figure,) = drawn
    assert_drawn_is_data(figure, data)
    gap, bound = figure["axes"]  # two panels: two columns, not three
    assert (gap["title"], bound["title"]) == ("gap", "(b) the bound")
    assert (gap["xlabel"], bound["xlabel"]) == ("epoch", "x")
    assert gap["ylabel"] == bound["ylabel"] == "value"
    assert (gap["yscale"], bound["yscale"]) == ("linear", "log")
    assert gap["legend"] == bound["legend"] == ["a", "b"]
    assert (gap["legend_title"], bound["legend_title"]) == ("variant", "")
    assert figure["legends"] == []
    assert gap["xticks"] == ["1", "2", "4", "8"]


def test_wrapping_hides_the_unused_end_of_the_last_row(drawn, tmp_path: Path) -> None:
    table = grid_table()
    table = table.assign(cell=table["quantity"] + "/" + table["axis"])
    table = table[table["cell"] != "accuracy/sigma"]
    wrapped = Panels(col="cell", col_wrap=2)
    data = line_panels(table, "x", "value", tmp_path / "wrap", panels=wrapped).data
    assert data["panel"].unique().tolist() == ["trace/k", "trace/sigma", "accuracy/k"]
    (figure,) = drawn
    assert [ax["visible"] for ax in figure["axes"]] == [True, True, True, False]
    assert [ax["xlabel"] for ax in figure["axes"][:3]] == ["x", "x", "x"]  # each its own


def test_range_band_nan_values_and_a_single_panel(tmp_path: Path) -> None:
    table = panels_table().query("panel == 'gap'").reset_index(drop=True)
    table.loc[[0, 5], "value"] = np.nan
    data = line_panels(
        table,
        "x",
        "value",
        tmp_path / "one",
        lines=Lines(hue="hue"),
        replicates=Replicates("range"),
    ).data
    first = data[(data["hue"] == "a") & (data["x"] == 1)].iloc[0]
    values = table[(table["hue"] == "a") & (table["x"] == 1)]["value"].dropna()
    assert first["n"] == 2 and first["lo"] == values.min() and first["hi"] == values.max()
    assert set(data["panel"]) == {""}


# -- several columns per panel, a right axis, a categorical x -----------------------------


def test_right_axis_and_col_facets_draw_the_means_over_seeds(drawn, tmp_path: Path) -> None:
    table = epochs_table()
    before = dict(mpl.rcParams)
    result = line_panels(
        table,
        "epoch",
        ["train_acc", "test_acc"],
        tmp_path / "curves",
        lines=Lines(right=["correct_labels"], labels={"correct_labels": "correct labels"}),
        panels=Panels(col="method"),
        axes=Axes(sharey=True),
        legend=Legend("right"),
    )
    assert_written(result)
    assert dict(mpl.rcParams) == before
    data = result.data
    assert list(data.columns) == [
        "panel",
        "hue",
        "series",
        "axis",
        "x",
        "label",
        "mean",
        "lo",
        "hi",
        "n",
    ]
    assert set(data["panel"]) == {"erm", "regsl"} and set(data["hue"]) == {""}
    assert len(data) == 2 * 3 * 5  # panels x series x epochs
    expected = table.groupby(["method", "epoch"]).agg(["mean", "std", "count"])
    for (panel, series), rows in data.groupby(["panel", "series"]):
        stats = expected.loc[panel][series]
        np.testing.assert_allclose(rows["x"], stats.index.to_numpy(dtype=float))
        np.testing.assert_allclose(rows["mean"], stats["mean"])
        np.testing.assert_allclose(rows["hi"] - rows["mean"], stats["std"].fillna(0))
        assert (rows["n"] == 3).all()
    assert (data.loc[data["series"] == "correct_labels", "axis"] == "right").all()
    assert (data.loc[data["series"] != "correct_labels", "axis"] == "left").all()
    assert data["label"].tolist()[:5] == ["0", "1", "2", "3", "4"]
    (figure,) = drawn
    assert_drawn_is_data(figure, data)
    left_erm, left_regsl, right_erm, right_regsl = figure["axes"]
    # the right axes hold exactly the count, drawn with hollow markers, and share limits
    for right in (right_erm, right_regsl):
        assert [line["label"] for line in right["lines"]] == ["correct labels"]
        assert right["lines"][0]["mfc"] == "white"
    assert [line["label"] for line in left_erm["lines"]] == ["train_acc", "test_acc"]
    assert right_erm["ylim"] == right_regsl["ylim"] and left_erm["ylim"] == left_regsl["ylim"]
    assert figure["sharey"][2][3] and figure["sharey"][0][1]
    assert (right_erm["ylabel"], right_regsl["ylabel"]) == ("", "correct labels")
    assert (left_erm["ylabel"], left_regsl["ylabel"]) == ("value", "")
    assert (left_erm["title"], left_regsl["title"]) == ("erm", "regsl")
    assert figure["legends"] == [["train_acc", "test_acc", "correct labels"]]


def test_hue_with_a_categorical_x_keeps_the_order_of_first_appearance(
    drawn, tmp_path: Path
) -> None:
    # network order, not sorted order: stem first, head last
    layers = ["stem.weight", *(f"layer{k}.conv.weight" for k in range(1, 7)), "fc.weight"]
    rows = [
        {"method": method, "seed": seed, "layer": layer, "distance": (k + 1) * (1 + m)}
        for m, method in enumerate(("erm", "constraint"))
        for seed in range(2)
        for k, layer in enumerate(layers)
    ]
    radius = [{"method": "radius", "seed": 0, "layer": layer, "distance": 1.5} for layer in layers]
    table = pd.DataFrame(rows + radius)
    result = line_panels(
        table,
        "layer",
        ["distance"],
        tmp_path / "layers",
        lines=Lines(
            hue="method", reference=["radius", "not a level"], labels={"radius": "the radius"}
        ),
        axes=Axes(categorical_x=True),
    )
    assert_written(result)
    data = result.data
    assert_drawn_is_data(drawn[0], data, skip=("the radius",))
    assert (data.loc[data["hue"] == "radius", "mean"] == 1.5).all()
    assert (data.loc[data["hue"] == "radius", "n"] == 1).all()
    data = data[data["hue"] != "radius"]
    assert data.loc[data["hue"] == "erm", "label"].tolist() == layers
    assert data.loc[data["hue"] == "erm", "x"].tolist() == list(range(8))
    assert data.loc[data["hue"] == "constraint", "mean"].tolist() == [2 * (k + 1) for k in range(8)]
    assert (data["n"] == 2).all() and (data["lo"] == data["mean"]).all()
    (figure,) = drawn
    (ax,) = figure["axes"]
    assert ax["xticks"] == layers and set(ax["rotation"]) == {60.0}  # more than six: rotated
    reference = [line for line in ax["lines"] if line["label"] == "the radius"]
    assert len(reference) == 1 and reference[0]["ls"] == "--" and reference[0]["marker"] == "None"
    assert len(ax["bands"]) == 2  # erm and constraint, none for the reference
    assert figure["legends"] == [["erm", "constraint", "the radius"]]


def test_hue_tells_several_columns_apart_by_line_style(drawn, tmp_path: Path) -> None:
    data = line_panels(
        epochs_table(),
        "epoch",
        ["train_acc", "test_acc"],
        tmp_path / "styles",
        lines=Lines(hue="method"),
    ).data
    assert set(zip(data["hue"], data["series"], strict=True)) == {
        (m, s) for m in ("erm", "regsl") for s in ("train_acc", "test_acc")
    }
    (figure,) = drawn
    styles = {line["label"]: line["ls"] for line in figure["axes"][0]["lines"]}
    assert styles == {
        "erm: train_acc": "-",
        "erm: test_acc": "--",
        "regsl: train_acc": "-",
        "regsl: test_acc": "--",
    }


def test_range_band_on_several_columns_with_nan_values(tmp_path: Path) -> None:
    table = epochs_table()
    table.loc[0, "test_acc"] = np.nan
    by_range = Replicates(band="range")
    data = line_panels(table, "epoch", ["test_acc"], tmp_path / "range", replicates=by_range).data
    first = data.iloc[0]
    assert first["n"] == 5  # six replicates at epoch 0, one NaN left out
    at_zero = table[table["epoch"] == 0]["test_acc"].dropna()
    assert first["lo"] == at_zero.min() and first["hi"] == at_zero.max()


# -- bad input: one clear line each -------------------------------------------------------

TABLE = curves_table().assign(se=0.1, extra=1.0)

# a spec refuses a bad value when it is built, in one line naming the spec and its option
BAD_SPECS = [
    (Replicates, {"band": "iqr"}, "Replicates: band must be one of sd|range or none, got 'iqr'"),
    (Replicates, {"stderr_mean": "x"}, "Replicates: stderr_mean must be one of independent|"),
    (Replicates, {"stderr": 3}, "Replicates: stderr must be str or none, got 3"),
    (Legend, {"placement": "top"}, "Legend: placement must be one of below|right|panel"),
    (Legend, {"title": 1.5}, "Legend: title must be str or dict or none, got 1.5"),
    (Panels, {"col": "method", "col_wrap": 0}, "Panels: col_wrap must be >= 1, got 0"),
    (Panels, {"col": "method", "col_wrap": 1.5}, "Panels: col_wrap must be int or none, got 1.5"),
    (Panels, {"col_wrap": 2}, "Panels: col_wrap needs col"),
    (Panels, {"col": "method", "row": "seed", "col_wrap": 2}, "Panels: col_wrap needs col"),
    (Panels, {"row_order": ["a"]}, "Panels: row_order needs row"),
    (Panels, {"col_order": ["a"]}, "Panels: col_order needs col"),
    (Panels, {"subplots": True, "col": "method"}, "Panels: subplots .* cannot be combined"),
    (Panels, {"subplots": "yes"}, "Panels: subplots must be bool, got 'yes'"),
    (Lines, {"hue_order": ["a"]}, "Lines: hue_order needs hue"),
    (Lines, {"reference": ["a"]}, "Lines: reference names hue levels: it needs hue"),
    (Lines, {"right": "loss"}, "Lines: right must be list of str, got 'loss'"),
    (Lines, {"labels": ["a"]}, "Lines: labels must be dict or none"),
    (Axes, {"categorical_x": True, "log_x": True}, "Axes: log_x cannot apply"),
    (Axes, {"log_y": "yes"}, "Axes: log_y must be bool or dict or none, got 'yes'"),
    (Axes, {"sharey": 1}, "Axes: sharey must be bool, got 1"),
]


@pytest.mark.parametrize(("spec", "options", "match"), BAD_SPECS)
def test_a_spec_refuses_a_bad_value_in_one_line(spec: type, options: dict, match: str) -> None:
    with pytest.raises(OptionError, match=match) as raised:
        spec(**options)
    assert "\n" not in str(raised.value)


def test_specs_are_frozen_and_coerce_their_values() -> None:
    panels = Panels(col="method", col_order=("a", "b"), col_wrap=2.0)
    assert panels.col_order == ["a", "b"] and panels.col_wrap == 2
    assert Replicates(band="Range").band == "range"
    assert Lines(right=("count",)).right == ["count"]
    assert Panels().grid and not Panels(subplots=True).grid
    with pytest.raises(AttributeError):
        panels.col = "seed"  # type: ignore[misc]


# rules between the y columns and the specs, and bad columns: refused by line_panels
BAD = [
    ({"y": []}, OptionError, "at least one y column"),
    ({"y": ["loss"], "lines": Lines(right=["loss"])}, OptionError, "named twice"),
    (
        {"y": ["loss", "distance", "seed", "se", "extra"], "lines": Lines(hue="method")},
        OptionError,
        "with Lines.hue, at most 4",
    ),
    (
        {"y": ["loss", "distance"], "replicates": Replicates(stderr="se")},
        OptionError,
        "Replicates.stderr needs a single y",
    ),
    (
        {"y": ["loss"], "panels": Panels(subplots=True), "lines": Lines(right=["distance"])},
        OptionError,
        "Panels.subplots .* cannot have Lines.right",
    ),
    ({"y": "accuracy"}, DataError, "no column 'accuracy'"),
    ({"lines": Lines(hue="optimizer")}, DataError, "no column 'optimizer'"),
    ({"x": "method"}, DataError, "'method' must be numeric"),
    (
        {"panels": Panels(col="method", col_order=["a", "c"])},
        DataError,
        r"'method' has no rows for .*\['c'\]",
    ),
    ({"lines": Lines(hue="method", hue_order=["z"])}, DataError, "'method' has no rows for level"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD)
def test_bad_options_and_columns(options: dict, error: type, match: str, tmp_path: Path) -> None:
    options = {"x": "epoch", "y": "loss", **options}
    x, y = options.pop("x"), options.pop("y")
    with pytest.raises(error, match=match) as raised:
        line_panels(TABLE, x, y, tmp_path / "bad", **options)
    assert "\n" not in str(raised.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_tables(tmp_path: Path) -> None:
    table = curves_table()
    cases = [
        (table.iloc[:0], "epoch", "the table to plot is empty"),
        (table[table["epoch"] == 0], "epoch", "'epoch' takes fewer than two values"),
        (table.assign(loss=np.nan), "epoch", "no finite values of 'loss'"),
    ]
    # x and y never both present in one row
    apart = table.assign(
        epoch=table["epoch"].where(table["seed"] == 0), loss=table["loss"].where(table["seed"] > 0)
    )
    cases.append((apart, "epoch", "no finite values of 'loss'"))
    for frame, x, match in cases:
        with pytest.raises(DataError, match=match) as raised:
            line_panels(frame, x, "loss", tmp_path / "bad")
        assert "\n" not in str(raised.value)
    # every row of the level drawn lacks a value: nothing to plot
    only_nan_b = table.assign(loss=table["loss"].where(table["method"] == "a"))
    with pytest.raises(DataError, match="nothing to plot"):
        b_only = Lines(hue="method", hue_order=["b"])
        line_panels(only_nan_b, "epoch", "loss", tmp_path / "x", lines=b_only)
    assert not list(tmp_path.iterdir())
