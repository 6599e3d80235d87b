"""A measure and the gap against a hyperparameter or the epoch, with bands over seeds."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._data import Band, matches, replicate_stats
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log


def trend(
    table: pd.DataFrame,
    x: str,
    measure: str,
    gap: str,
    stem: str | os.PathLike,
    *,
    hue: str | None = None,
    band: Band = "sd",
) -> PlotResult:
    """Two stacked panels, ``measure`` and ``gap``, against ``x`` (a hyperparameter, epoch).

    Rows sharing ``x`` (and ``hue``) are replicates, typically seeds: the line is their mean
    and the band mean +- one standard deviation (``band="sd"``, needs two replicates) or
    their min..max (``band="range"``). One line per level of ``hue``. A numeric ``x`` is
    placed by value (log axis where it spans orders of magnitude, as for learning rates),
    other values as evenly spaced categories; each panel's y axis is logarithmic where its
    positive values span more than two orders of magnitude. NaN values are left out of the
    means and counted in the panel's title.

    ``data``, read back from the lines: ``panel`` (the measure's or the gap's name), ``hue``
    level (``""`` without hue), ``x``, ``mean``, then ``lo``, ``hi`` and ``n`` replicates.
    """
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    require_columns(table, x, measure, gap, hue)
    if table[x].nunique(dropna=True) < 2:
        raise DataError(f"{x!r} takes fewer than two values; nothing to plot against")
    numeric_x = pd.api.types.is_numeric_dtype(table[x])
    categories = None if numeric_x else list(dict.fromkeys(table[x].dropna().astype(str)))
    hue_levels = list(dict.fromkeys(table[hue].tolist())) if hue else [""]
    with theme():
        figure, axes = new_figure(5.4, 5.4, nrows=2, sharex=True)
        for ax, column in zip(axes[:, 0], (measure, gap), strict=True):
            values = pd.to_numeric(table[column], errors="coerce")
            for color, level in zip(colors(len(hue_levels)), hue_levels, strict=True):
                rows = table if not hue else table[matches(table[hue], level)]
                positions = rows[x]
                if categories is not None:  # categories at 0, 1, ... in order of appearance
                    positions = positions.astype(str).map({c: k for k, c in enumerate(categories)})
                stats = replicate_stats(positions, values.loc[rows.index], band)
                if stats.empty:
                    continue
                (line,) = ax.plot(stats["x"], stats["mean"], marker="o", ms=3, color=color)
                line.set_gid("mean")
                line.set_label(str(level) if hue else column)
                line.panel, line.hue_level, line.stats = column, level, stats
                ax.fill_between(stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.2, lw=0)
            n_nan = int(values.isna().sum())
            if n_nan:
                ax.set_title(f"{n_nan} NaN value(s) left out", fontsize="small")
            if wants_log(values.to_numpy(dtype=float)):
                ax.set_yscale("log")
            ax.set_ylabel(column)
        bottom = axes[1, 0]
        if categories is not None:
            bottom.set_xticks(range(len(categories)), categories)
        elif wants_log(table[x].to_numpy(dtype=float)):
            bottom.set_xscale("log")
        elif pd.api.types.is_integer_dtype(table[x]):
            bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.set_xlabel(x)
        if hue:
            axes[0, 0].legend(title=hue, fontsize="small", title_fontsize="small")
        data = _read_back(axes[:, 0])
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


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
                        "hue": line.hue_level,
                        "x": np.asarray(line.get_xdata(), dtype=float),
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
