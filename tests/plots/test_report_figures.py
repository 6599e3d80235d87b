"""The report's figures: a categorical hyperparameter (the method) is drawn as points with
error bars, hue levels side by side, and no legend covers the data of any figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.container import ErrorbarContainer

import genmeasures.plots.layers as layers
import genmeasures.plots.ranking as ranking
import genmeasures.plots.scatter as scatter
import genmeasures.plots.trends as trends
from genmeasures.correlation import correlate
from genmeasures.errors import OptionError
from genmeasures.plots import measure_vs_gap, plot_report, trend
from tests.correlation.synthetic import synthetic_long_table

METHODS = ("erm", "constraint", "l2sp")
COLUMNS = ["panel", "hue", "x", "mean", "lo", "hi", "n"]


def methods_table() -> pd.DataFrame:
    """Three methods x two noise rates x three seeds: a measure and the gap."""
    rng = np.random.default_rng(0)
    rows = []
    for k, method in enumerate(METHODS):
        for noise in (0.0, 0.4):
            for seed in range(3):
                gap = 0.1 + 0.05 * k + noise + 0.02 * rng.standard_normal()
                rows.append(
                    {
                        "method": method,
                        "data.noise_rate": noise,
                        "seed": seed,
                        "sharpness": 2.0 * gap + 0.05 * rng.standard_normal(),
                        "gap_loss": gap,
                    }
                )
    return pd.DataFrame(rows)


# -- looking at a figure just before it is written ---------------------------------------------


@pytest.fixture
def seen(monkeypatch) -> dict[str, dict]:
    """Every figure the report's plot functions save, by file stem: per axes its lines,
    error-bar containers, bands and window extent, and the extents of all legends, rendered
    on the Agg canvas."""
    figures: dict[str, dict] = {}
    for module in (trends, scatter, ranking, layers):
        original = module.save

        def spy(figure, stem, original=original):
            figure.canvas.draw()  # lay out (constrained) and render, so extents are final
            legends = list(figure.legends) + [
                ax.get_legend() for ax in figure.axes if ax.get_legend() is not None
            ]
            figures[Path(stem).name] = {
                "axes": [_axes(ax) for ax in figure.axes],
                "legends": [legend.get_window_extent() for legend in legends],
                "legend_texts": [[t.get_text() for t in leg.get_texts()] for leg in legends],
            }
            return original(figure, stem)

        monkeypatch.setattr(module, "save", spy)
    return figures


def _axes(ax) -> dict:
    return {
        "extent": ax.get_window_extent(),
        "lines": [
            {
                "gid": line.get_gid(),
                "ls": line.get_linestyle(),
                "x": np.asarray(line.get_xdata(), dtype=float),
                "y": np.asarray(line.get_ydata(), dtype=float),
            }
            for line in ax.get_lines()
        ],
        "errorbars": [c for c in ax.containers if isinstance(c, ErrorbarContainer)],
        "segments": [
            np.array([(s[0, 0], s[0, 1], s[1, 1]) for s in c.get_segments()])
            for c in ax.collections
            if isinstance(c, LineCollection)
        ],
        "bands": [c for c in ax.collections if isinstance(c, PolyCollection)],
    }


def means(axes: dict) -> list[dict]:
    return [line for line in axes["lines"] if line["gid"] == "mean"]


def assert_legends_outside(figure: dict, name: str = "") -> None:
    assert figure["legends"], f"{name}: no legend to check"
    for legend in figure["legends"]:
        for axes in figure["axes"]:
            assert not legend.overlaps(axes["extent"]), (name, legend, axes["extent"])


# -- categorical x -------------------------------------------------------------------------------


def test_a_categorical_x_is_points_with_error_bars_and_nothing_joins_them(
    seen, tmp_path: Path
) -> None:
    table = methods_table()
    result = trend(table, "method", "sharpness", "gap_loss", tmp_path / "t", hue="data.noise_rate")
    figure = seen["t"]
    for axes, panel in zip(figure["axes"], ("sharpness", "gap_loss"), strict=True):
        assert len(means(axes)) == 2  # one series of points per noise rate
        assert {line["ls"] for line in axes["lines"]} == {"None"}  # no line, caps included
        assert len(axes["errorbars"]) == 2
        assert axes["bands"] == []  # no shaded band between categories
        drawn = result.data[result.data["panel"] == panel]
        bars = np.concatenate(axes["segments"])  # (x, lo, hi) per bar
        bars = bars[np.lexsort((bars[:, 0],))]
        expected = drawn.sort_values(["x", "hue"])
        np.testing.assert_allclose(bars[:, 1], expected["lo"])
        np.testing.assert_allclose(bars[:, 2], expected["hi"])
    grouped = table.groupby(["method", "data.noise_rate"], sort=False)["sharpness"]
    good = result.data[result.data["panel"] == "sharpness"].set_index(["x", "hue"])
    for (method, noise), values in grouped:
        row = good.loc[(float(METHODS.index(method)), noise)]
        assert row["mean"] == pytest.approx(values.mean())
        assert row["hi"] - row["mean"] == pytest.approx(values.std())
        assert row["n"] == 3


def test_hue_levels_sit_side_by_side_within_each_category(seen, tmp_path: Path) -> None:
    trend(methods_table(), "method", "sharpness", "gap_loss", tmp_path / "t", hue="data.noise_rate")
    for axes in seen["t"]["axes"]:
        clean, noisy = (line["x"] for line in means(axes))
        offset = noisy - clean
        assert (offset > 0).all() and np.ptp(offset) == pytest.approx(0.0)  # one shift
        np.testing.assert_allclose((clean + noisy) / 2, [0.0, 1.0, 2.0])  # centred
        assert offset[0] < 0.5  # the levels stay within their category
        bar_xs = np.concatenate(axes["segments"])[:, 0]
        assert len(np.unique(bar_xs)) == len(bar_xs) == 6  # no two error bars on one x


def test_a_numeric_x_keeps_lines_and_bands(seen, tmp_path: Path) -> None:
    trend(methods_table(), "data.noise_rate", "sharpness", "gap_loss", tmp_path / "t", hue="method")
    for axes in seen["t"]["axes"]:
        assert [line["ls"] for line in means(axes)] == ["-"] * 3
        assert len(axes["bands"]) == 3 and axes["errorbars"] == []


def test_the_data_read_back_is_the_same_for_categories_and_numbers(tmp_path: Path) -> None:
    table = methods_table()
    categorical = trend(table, "method", "sharpness", "gap_loss", tmp_path / "c", hue="seed")
    # the same categories as numbers 0, 1, 2 (their order of appearance), drawn as lines
    coded = table.assign(method=table["method"].map({m: k for k, m in enumerate(METHODS)}))
    numeric = trend(coded, "method", "sharpness", "gap_loss", tmp_path / "n", hue="seed")
    assert categorical.data.columns.tolist() == COLUMNS
    pd.testing.assert_frame_equal(categorical.data, numeric.data)
    forced = trend(coded, "method", "sharpness", "gap_loss", tmp_path / "f", categorical=True)
    assert forced.data.columns.tolist() == COLUMNS
    assert forced.data["x"].tolist() == [0.0, 1.0, 2.0] * 2 and set(forced.data["hue"]) == {""}
    with pytest.raises(OptionError, match="only be drawn as categories"):
        trend(table, "method", "sharpness", "gap_loss", tmp_path / "x", categorical=False)


def test_a_numeric_x_asked_as_categories_is_points_in_order_of_value(seen, tmp_path: Path) -> None:
    table = methods_table().assign(width=lambda t: t["seed"].map({0: 64, 1: 8, 2: 16}))
    result = trend(table, "width", "sharpness", "gap_loss", tmp_path / "w", categorical=True)
    for axes in seen["w"]["axes"]:
        (line,) = means(axes)
        assert line["ls"] == "None" and len(axes["errorbars"]) == 1
        np.testing.assert_array_equal(line["x"], [0.0, 1.0, 2.0])  # one level: no offset
    by_width = table.groupby("width")["sharpness"].mean()  # 8, 16, 64
    np.testing.assert_allclose(result.data["mean"][:3], by_width)


# -- legends ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("x", ["method", "data.noise_rate"])
def test_the_trend_legend_lies_outside_the_panels(seen, tmp_path: Path, x: str) -> None:
    hue = "data.noise_rate" if x == "method" else "method"
    trend(methods_table(), x, "sharpness", "gap_loss", tmp_path / "t", hue=hue)
    assert_legends_outside(seen["t"])


def test_the_scatter_legend_lies_outside_the_axes(seen, tmp_path: Path) -> None:
    measure_vs_gap(methods_table(), "sharpness", "gap_loss", tmp_path / "s", hue="method")
    assert_legends_outside(seen["s"])
    assert seen["s"]["legend_texts"] == [list(METHODS)]


def test_no_legend_of_the_report_covers_its_axes(seen, tmp_path: Path) -> None:
    long = synthetic_long_table()
    long = long[long["epoch"] == 3]  # one epoch: the trend is against the first axis
    with pytest.warns(UserWarning):
        report = correlate(long, measures=["good"], n_boot=50)
    plot_report(report, tmp_path / "figures", long_table=long)
    assert sorted(seen) == ["gap_vs_good", "good_vs_algorithm", "layers_good", "ranking"]
    for name, figure in seen.items():
        assert_legends_outside(figure, name)
    (panel, _) = seen["good_vs_algorithm"]["axes"]
    assert {line["ls"] for line in panel["lines"]} == {"None"}  # algorithms: points
