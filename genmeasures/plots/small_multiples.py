"""Small multiples: one panel per quantity or condition, lines per hue level, bands over seeds.

Where :func:`~genmeasures.plots.trend` draws one measure and the gap, :func:`small_multiples`
draws any number of panels from a long table (one row per replicate: panel, x, hue, value),
each with its own x label, y label, y scale and legend, so one figure can hold, e.g., two
bounds and the gap against the epoch, or test error against the number of frozen layers,
against the epoch and against the source-set size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, NullLocator

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log
from genmeasures.plots.trends import _read_back, _replicate_stats

Band = Literal["sd", "range"]
Labels = str | Mapping[str, str] | None


def small_multiples(
    table: pd.DataFrame,
    x: str,
    y: str,
    stem: str | os.PathLike,
    *,
    panel: str | None = None,
    hue: str | None = None,
    band: Band = "sd",
    ncols: int | None = None,
    panel_order: Sequence[str] | None = None,
    xlabel: Labels = None,
    ylabel: Labels = None,
    hue_title: Labels = None,
    panel_titles: Mapping[str, str] | None = None,
    logx: bool | Mapping[str, bool] | None = None,
    logy: bool | Mapping[str, bool] | None = None,
    title: str | None = None,
    panel_size: tuple[float, float] = (3.6, 2.9),
) -> PlotResult:
    """One panel per level of ``panel``: ``y`` against ``x``, one line per level of ``hue``.

    Rows sharing (panel, hue, x) are replicates, typically seeds: the line is their mean and
    the band mean +- one standard deviation (``band="sd"``) or their min..max
    (``band="range"``). ``x`` must be numeric; it is placed by value, with a tick at each
    value where a panel has at most 8 of them (integer ticks where they are integers
    otherwise). A panel's x (y) axis is logarithmic where its x values (line means) are
    positive and span more than two orders of magnitude (``logx=None``, ``logy=None``),
    always (``True``) or never (``False``); either may map panels to those. A hue level keeps its
    color in every panel; each panel has its own legend of the levels it shows. NaN values are
    left out of the means and counted in the panel's title.

    ``xlabel``, ``ylabel`` and ``hue_title`` are one string for every panel or a mapping panel
    -> string (default: the column names); ``panel_titles`` maps a panel to its title
    (default: the panel's name).

    ``data``, read back from the lines: ``panel``, ``hue`` level (``""`` without hue), ``x``,
    ``mean``, ``lo``, ``hi`` and ``n`` replicates.
    """
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    require_columns(table, x, y, panel, hue)
    if not len(table):
        raise DataError("the table to plot is empty")
    xs = pd.to_numeric(table[x], errors="coerce")
    if xs.notna().sum() < table[x].notna().sum():
        raise DataError(f"{x!r} must be numeric to plot against it")
    values = pd.to_numeric(table[y], errors="coerce")
    panels = _levels(table[panel]) if panel else [""]
    if panel_order is not None:
        missing = [p for p in panel_order if p not in panels]
        if missing:
            raise DataError(f"panel {missing[0]!r} is not in column {panel!r}")
        panels = list(panel_order)
    hue_levels = _levels(table[hue]) if hue else [""]
    palette = dict(zip(hue_levels, colors(len(hue_levels)), strict=True))
    ncols = ncols or min(len(panels), 3)
    if ncols < 1:
        raise OptionError(f"ncols must be >= 1, got {ncols}")
    nrows = math.ceil(len(panels) / ncols)
    width, height = panel_size
    with theme():
        figure, axes = new_figure(width * ncols, height * nrows, nrows=nrows, ncols=ncols)
        flat = list(axes.ravel())
        for ax, name in zip(flat, panels, strict=False):
            rows = table if not panel else table[table[panel].astype(str) == name]
            _draw_panel(ax, name, rows, xs, values, hue, hue_levels, palette, band)
            _scale_axes(ax, xs.loc[rows.index], _pick(logx, name), _pick(logy, name))
            ax.set_xlabel(_label(xlabel, name, x))
            ax.set_ylabel(_label(ylabel, name, y))
            heading = (panel_titles or {}).get(name, name)
            n_nan = int(values.loc[rows.index].isna().sum())
            if n_nan:
                heading = f"{heading} ({n_nan} NaN left out)" if heading else f"{n_nan} NaN"
            if heading:
                ax.set_title(heading)
            if hue and any(line.get_gid() == "mean" for line in ax.get_lines()):
                ax.legend(
                    title=_label(hue_title, name, hue), fontsize="small", title_fontsize="small"
                )
        for ax in flat[len(panels) :]:
            ax.set_visible(False)
        if title:
            figure.suptitle(title)
        drawn = flat[: len(panels)]
        if not any(line.get_gid() == "mean" for ax in drawn for line in ax.get_lines()):
            figure.clear()
            raise DataError(f"no finite values of {y!r} to plot")
        data = _read_back(drawn)
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _levels(column: pd.Series) -> list[str]:
    return list(dict.fromkeys(column.dropna().astype(str)))


def _label(labels: Labels, name: str, default: str) -> str:
    if labels is None:
        return default
    if isinstance(labels, str):
        return labels
    return labels.get(name, default)


def _pick(setting: bool | Mapping[str, bool] | None, name: str) -> bool | None:
    return setting.get(name) if isinstance(setting, Mapping) else setting


def _draw_panel(ax, name, rows, xs, values, hue, hue_levels, palette, band) -> None:
    for level in hue_levels:
        part = rows if not hue else rows[rows[hue].astype(str) == level]
        stats = _replicate_stats(xs.loc[part.index], values.loc[part.index], band, None)
        if stats.empty:
            continue
        color = palette[level]
        (line,) = ax.plot(stats["x"], stats["mean"], marker="o", ms=3, color=color)
        line.set_gid("mean")
        line.set_label(level if hue else name)
        line.panel, line.hue_level, line.stats = name, level, stats
        ax.fill_between(stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.2, lw=0)


def _scale_axes(ax, xs: pd.Series, logx: bool | None, logy: bool | None) -> None:
    lines = [line for line in ax.get_lines() if line.get_gid() == "mean"]
    if not lines:
        return
    means = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in lines])
    if logy or (logy is None and wants_log(means)):
        ax.set_yscale("log")
    panel_x = xs.dropna().to_numpy(dtype=float)
    distinct = np.unique(panel_x)
    if logx or (logx is None and wants_log(panel_x)):
        ax.set_xscale("log")
    if 0 < len(distinct) <= 8:
        ax.set_xticks(distinct, [f"{v:g}" for v in distinct])
        ax.xaxis.set_minor_locator(NullLocator())
    elif np.all(distinct == np.round(distinct)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
