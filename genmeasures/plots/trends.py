"""A measure and the gap against a hyperparameter or the epoch, with bands over seeds."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._data import Band, matches, replicate_stats
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import (
    LEGEND_WIDTH,
    colors,
    legend_outside,
    new_figure,
    theme,
    wants_log,
)

#: Categorical x: the hue levels' points share this much of the unit between categories.
DODGE = 0.5


def trend(
    table: pd.DataFrame,
    x: str,
    measure: str,
    gap: str,
    stem: str | os.PathLike,
    *,
    hue: str | None = None,
    band: Band = "sd",
    categorical: bool | None = None,
) -> PlotResult:
    """Two stacked panels, ``measure`` and ``gap``, against ``x`` (a hyperparameter, epoch).

    Rows sharing ``x`` (and ``hue``) are replicates, typically seeds, summarized by their
    mean and a band: mean +- one standard deviation (``band="sd"``, needs two replicates)
    or their min..max (``band="range"``). A numeric ``x`` is placed by value (log axis
    where it spans orders of magnitude, as for learning rates) and drawn as one line per
    level of ``hue`` with the band shaded. A categorical ``x`` (not numeric, boolean, or
    any with ``categorical=True``) is drawn as evenly spaced categories (in order of
    appearance; numbers sorted), the means as points with the band as error bars and
    nothing joining one category to the next; the levels of ``hue`` sit side by side
    within each category. Each panel's y axis is logarithmic where its positive values span
    more than two orders of magnitude. NaN values are left out of the means and counted in
    the panel's title. The key to ``hue`` is outside the panels, on the right.

    ``data``, read back from the lines and points: ``panel`` (the measure's or the gap's
    name), ``hue`` level (``""`` without hue), ``x`` (a category's position 0, 1, ...,
    without the side-by-side offset), ``mean``, then ``lo``, ``hi`` and ``n`` replicates.
    """
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    require_columns(table, x, measure, gap, hue)
    if table[x].nunique(dropna=True) < 2:
        raise DataError(f"{x!r} takes fewer than two values; nothing to plot against")
    places = _categories(table[x], categorical)
    hue_levels = list(dict.fromkeys(table[hue].tolist())) if hue else [""]
    offsets = _dodge(len(hue_levels)) if places is not None else np.zeros(len(hue_levels))
    with theme():
        figure, axes = new_figure(5.4 + (LEGEND_WIDTH if hue else 0.0), 5.4, nrows=2, sharex=True)
        for ax, column in zip(axes[:, 0], (measure, gap), strict=True):
            values = pd.to_numeric(table[column], errors="coerce")
            palette = colors(len(hue_levels))
            for color, level, offset in zip(palette, hue_levels, offsets, strict=True):
                rows = table if not hue else table[matches(table[hue], level)]
                positions = rows[x] if places is None else rows[x].map(places[0])
                stats = replicate_stats(positions, values.loc[rows.index], band)
                if stats.empty:
                    continue
                label = str(level) if hue else column
                if places is None:
                    (line,) = ax.plot(stats["x"], stats["mean"], marker="o", ms=3, color=color)
                    line.set_label(label)
                    ax.fill_between(
                        stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.2, lw=0
                    )
                else:
                    line = _points(ax, stats, offset, color, label)
                line.set_gid("mean")
                line.panel, line.hue_level, line.stats = column, level, stats
            n_nan = int(values.isna().sum())
            if n_nan:
                ax.set_title(f"{n_nan} NaN value(s) left out", fontsize="small")
            if wants_log(values.to_numpy(dtype=float)):
                ax.set_yscale("log")
            ax.set_ylabel(column)
        bottom = axes[1, 0]
        if places is not None:
            labels = places[1]
            bottom.set_xticks(range(len(labels)), labels)
            bottom.set_xlim(-0.5, len(labels) - 0.5)
            for ax in axes[:, 0]:
                ax.xaxis.grid(False)  # a category's points are side by side, not on a line
        elif wants_log(table[x].to_numpy(dtype=float)):
            bottom.set_xscale("log")
        elif pd.api.types.is_integer_dtype(table[x]):
            bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.set_xlabel(x)
        if hue:
            legend_outside(figure, axes[:, 0], title=hue)
        data = _read_back(axes[:, 0])
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _categories(column: pd.Series, categorical: bool | None) -> tuple[dict, list[str]] | None:
    """Where each value of a categorical ``column`` goes (0, 1, ...) and the tick labels;
    None for a numeric x placed by value."""
    is_bool = pd.api.types.is_bool_dtype(column)
    numeric = pd.api.types.is_numeric_dtype(column) and not is_bool
    if categorical is False and not numeric:
        raise OptionError(f"{column.name!r} is not numeric; it can only be drawn as categories")
    if numeric and not categorical:
        return None
    if numeric or is_bool:  # ordered by value, labelled as written
        levels = sorted(column.dropna().unique().tolist())
        names = [f"{v:g}" if isinstance(v, float) else str(v) for v in levels]
        return {v: float(k) for k, v in enumerate(levels)}, names
    names = list(dict.fromkeys(column.dropna().astype(str)))  # in order of appearance
    place = {name: float(k) for k, name in enumerate(names)}
    return {v: place[str(v)] for v in column.dropna().unique()}, names


def _dodge(n: int) -> np.ndarray:
    """Offsets putting ``n`` hue levels side by side, centred on their category."""
    step = DODGE / n
    return (np.arange(n) - (n - 1) / 2) * step


def _points(ax, stats: pd.DataFrame, offset: float, color, label: str):
    """The means as markers with the band as error bars, nothing joining them; returns the
    markers' line (linestyle 'None')."""
    mean = stats["mean"].to_numpy(dtype=float)
    below = np.clip(mean - stats["lo"].to_numpy(dtype=float), 0.0, None)
    above = np.clip(stats["hi"].to_numpy(dtype=float) - mean, 0.0, None)
    container = ax.errorbar(
        stats["x"].to_numpy(dtype=float) + offset,
        mean,
        yerr=[below, above],
        fmt="o",
        linestyle="none",
        ms=4,
        capsize=3,
        elinewidth=1.2,
        color=color,
        label=label,
    )
    line = container.lines[0]
    line.offset = offset
    return line


def _read_back(axes) -> pd.DataFrame:
    frames = []
    for ax in axes:
        for line in ax.get_lines():
            if line.get_gid() != "mean":
                continue
            stats = line.stats
            offset = getattr(line, "offset", 0.0)
            x = np.asarray(line.get_xdata(), dtype=float) - offset
            if offset:  # a dodged category: its position is a whole number
                x = np.round(x)
            frames.append(
                pd.DataFrame(
                    {
                        "panel": line.panel,
                        "hue": line.hue_level,
                        "x": x,
                        "mean": np.asarray(line.get_ydata(), dtype=float),
                        "lo": stats["lo"].to_numpy(),
                        "hi": stats["hi"].to_numpy(),
                        "n": stats["n"].to_numpy(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def overlay(
    table: pd.DataFrame,
    x: str,
    columns: list[str],
    stem: str | os.PathLike,
    *,
    band: Band = "range",
    ylabel: str = "value",
    title: str | None = None,
) -> PlotResult:
    """Several quantities (e.g. two bounds and the observed gap) against ``x`` in one panel.

    Rows sharing ``x`` are replicates (seeds): each line is their mean, its band their
    min..max (``band="range"``) or mean +- sd. Axes are logarithmic where the values span
    more than two orders of magnitude (bounds often sit orders of magnitude above the gap).
    ``data``: one row per line point: ``panel`` (the column), ``x``, ``mean``, ``lo``,
    ``hi``, ``n``.
    """
    require_columns(table, x, *columns)
    if not columns:
        raise OptionError("overlay needs at least one column to plot")
    with theme():
        figure, axes = new_figure(width=6.0, height=4.0)
        ax = axes[0, 0]
        palette = colors(len(columns))
        values = []
        for column, color in zip(columns, palette, strict=True):
            stats = replicate_stats(table[x], table[column], band)
            if stats.empty:
                raise DataError(f"no finite values of {column!r} to plot")
            (line,) = ax.plot(
                stats["x"], stats["mean"], marker="o", ms=4, color=color, label=column
            )
            line.set_gid("mean")
            line.panel, line.hue_level, line.stats = column, "", stats
            ax.fill_between(stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.2, lw=0)
            values.append(stats["mean"].to_numpy(dtype=float))
        if wants_log(np.concatenate(values)):
            ax.set_yscale("log")
        if wants_log(table[x].to_numpy(dtype=float)):
            ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize="medium")
        ax.legend(fontsize="small")
        data = _read_back([ax])
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)
