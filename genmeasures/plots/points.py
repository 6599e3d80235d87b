"""Several quantities per category (e.g. per optimizer), side by side: a dot per replicate and
the mean with an error bar, one panel per quantity.

The compact alternative to grouped bars for a handful of seeds: every seed stays visible, and
quantities on different scales (a Hessian trace, an accuracy) each get their own axis.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._data import Band
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log

DATA_COLUMNS = ("panel", "x", "mean", "lo", "hi", "n")


def category_points(
    table: pd.DataFrame,
    category: str,
    columns: Sequence[str],
    stem: str | os.PathLike,
    *,
    order: Sequence[Any] | None = None,
    labels: Mapping[str, str] | None = None,
    band: Band = "sd",
    highlight: Any | None = None,
    replicates: bool = True,
    log_y: bool | None = None,
    title: str | None = None,
) -> PlotResult:
    """One panel per column of ``columns``; in each, one position per ``category`` level.

    Rows sharing a category are replicates (typically seeds): each is drawn as a small faint
    dot (``replicates``), their mean as a larger marker with an error bar spanning mean +-
    one standard deviation (``band="sd"``; 0 for a single replicate) or min..max
    (``band="range"``). Categories keep ``order`` or their order of first appearance; the
    ``highlight`` category is drawn in a second colour. ``labels`` maps a column to its axis
    label. A panel's y axis is logarithmic where its positive values span more than two
    orders of magnitude (``log_y`` forces it on or off). NaN values are left out and counted
    in the panel's title.

    ``data``, read back from the mean markers: ``panel`` (the column), ``x`` (the category),
    ``mean``, ``lo``, ``hi`` (the error bar) and ``n`` replicates.
    """
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    columns = list(columns)
    if not columns:
        raise OptionError("category_points needs at least one column to plot")
    require_columns(table, category, *columns)
    present = list(dict.fromkeys(table[category].dropna().tolist()))
    if order is None:
        order = present
    else:
        order = list(order)
        missing = [level for level in order if level not in present]
        if missing:
            raise DataError(f"{category!r} has no rows for level(s) {missing}")
    if not order:
        raise DataError(f"{category!r} has no levels to plot")
    if highlight is not None and highlight not in order:
        raise OptionError(f"highlight {highlight!r} is not a level of {category!r}")
    labels = dict(labels or {})
    base, accent = colors(2)
    with theme():
        width = max(3.0, 0.42 * len(order) + 1.2)
        figure, axes = new_figure(width * len(columns) + 0.3, 3.4, ncols=len(columns))
        for ax, column in zip(axes[0], columns, strict=True):
            values = pd.to_numeric(table[column], errors="coerce")
            stats = _category_stats(table[category], values, order, band)
            if stats["n"].sum() == 0:
                raise DataError(f"no finite values of {column!r} to plot")
            shown = stats[stats["n"] > 0]
            positions = shown["position"].to_numpy(dtype=float)
            point_colors = [accent if c == highlight else base for c in shown["x"]]
            if replicates:
                for position, level, color in zip(positions, shown["x"], point_colors, strict=True):
                    own = values[(table[category] == level) & values.notna()].to_numpy(float)
                    offsets = np.linspace(-0.12, 0.12, len(own)) if len(own) > 1 else [0.0]
                    ax.scatter(
                        position + np.asarray(offsets), own, s=14, color=color, alpha=0.45, lw=0
                    )
            for position, mean, lo, hi, color in zip(
                positions, shown["mean"], shown["lo"], shown["hi"], point_colors, strict=True
            ):
                ax.errorbar(
                    [position],
                    [mean],
                    yerr=[[mean - lo], [hi - mean]],
                    fmt="none",
                    ecolor=color,
                    elinewidth=1.4,
                    capsize=3,
                )
            (line,) = ax.plot(positions, shown["mean"], ls="none", marker="o", ms=6, color=base)
            line.set_gid("mean")
            line.panel, line.stats = column, shown
            if highlight is not None:
                ax.plot(
                    positions[np.asarray(shown["x"] == highlight)],
                    shown.loc[shown["x"] == highlight, "mean"],
                    ls="none",
                    marker="o",
                    ms=6,
                    color=accent,
                )
            ax.set_xticks(stats["position"].to_numpy(), [str(c) for c in order])
            ax.set_xlim(-0.6, len(order) - 0.4)
            ax.grid(axis="x", visible=False)
            n_nan = int(values.isna().sum())
            if n_nan:
                ax.set_title(f"{n_nan} NaN value(s) left out", fontsize="small")
            drawn = shown[["mean", "lo", "hi"]].to_numpy(dtype=float).ravel()
            if wants_log(drawn) if log_y is None else log_y:
                ax.set_yscale("log")
            ax.set_ylabel(labels.get(column, column))
            ax.set_xlabel(category)
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_back(axes[0])
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _category_stats(
    categories: pd.Series, values: pd.Series, order: list, band: Band
) -> pd.DataFrame:
    records = []
    for position, level in enumerate(order):
        own = values[(categories == level) & values.notna()].to_numpy(dtype=float)
        if len(own) == 0:
            records.append((position, level, np.nan, np.nan, np.nan, 0))
            continue
        mean = float(own.mean())
        if band == "sd":
            spread = float(own.std(ddof=1)) if len(own) > 1 else 0.0
            lo, hi = mean - spread, mean + spread
        else:
            lo, hi = float(own.min()), float(own.max())
        records.append((position, level, mean, lo, hi, len(own)))
    return pd.DataFrame(records, columns=["position", "x", "mean", "lo", "hi", "n"])


def _read_back(axes) -> pd.DataFrame:
    frames = []
    for ax in axes:
        for line in ax.get_lines():
            if line.get_gid() != "mean":
                continue
            stats = line.stats
            frames.append(
                pd.DataFrame(
                    {
                        "panel": line.panel,
                        "x": stats["x"].to_numpy(),
                        "mean": np.asarray(line.get_ydata(), dtype=float),
                        "lo": stats["lo"].to_numpy(dtype=float),
                        "hi": stats["hi"].to_numpy(dtype=float),
                        "n": stats["n"].to_numpy(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)
