"""Curves over an ordered axis (epochs, layers): several quantities, a right axis, bands.

:func:`twin_curves` draws quantities against ``x`` with bands over replicates (seeds): per-epoch
training curves with a count on a second (right) y axis, or per-layer profiles of a measure
with one line per method. Panels split the table by a ``facet`` column.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log
from genmeasures.plots.trends import Band, _matches, _replicate_stats

LINESTYLES = ("-", "--", ":", "-.")
#: Categorical x axes with more labels than this get rotated tick labels.
ROTATE_ABOVE = 6


def twin_curves(
    table: pd.DataFrame,
    x: str,
    columns: Sequence[str],
    stem: str | os.PathLike,
    *,
    right: Sequence[str] = (),
    hue: str | None = None,
    facet: str | None = None,
    band: Band = "sd",
    labels: dict[str, str] | None = None,
    reference: Sequence[str] = (),
    ylabel: str | None = None,
    right_ylabel: str | None = None,
    xlabel: str | None = None,
    title: str | None = None,
) -> PlotResult:
    """``columns`` (left y axis) and ``right`` (a second, right y axis) against ``x``.

    Rows sharing ``x`` (and ``hue`` and ``facet`` levels) are replicates, typically seeds:
    each line is their mean, its band mean +- one standard deviation (``band="sd"``) or
    min..max (``band="range"``). Without ``hue`` every column gets its own colour; with
    ``hue`` every level of it gets a colour and the columns are told apart by line style
    (solid, dashed, dotted, dash-dot). Right-axis lines are drawn with square markers. One
    panel per level of ``facet`` (side by side, shared y axes). A numeric ``x`` is placed by
    value (integer ticks for integers); any other ``x`` (layer names) as evenly spaced
    categories in order of first appearance, labels rotated when there are many. A y axis
    is logarithmic where its positive values span more than two orders of magnitude.
    ``labels`` renames columns and hue levels in the legend. Hue levels named in
    ``reference`` (a bound, a radius) are drawn as dark grey dashed lines without band or
    markers, over the others (a line lying on one shows through its gaps).

    ``data``, read back from the lines: ``panel`` (facet level, ``""`` without facet),
    ``hue`` (hue level, ``""`` without hue), ``series`` (the column), ``axis`` (``left`` or
    ``right``), ``x`` (the position), ``label`` (the x value as text), ``mean``, ``lo``,
    ``hi`` and ``n`` replicates.
    """
    columns, right = list(columns), list(right)
    if not columns:
        raise OptionError("twin_curves needs at least one column for the left axis")
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    if len(set(columns + right)) != len(columns) + len(right):
        raise OptionError("a column is named twice in columns/right")
    require_columns(table, x, hue, facet, *columns, *right)
    if table.empty:
        raise DataError("the table to plot is empty")
    if hue and len(columns + right) > len(LINESTYLES):
        raise OptionError(f"with hue, at most {len(LINESTYLES)} columns can be told apart")
    labels = dict(labels or {})
    numeric_x = pd.api.types.is_numeric_dtype(table[x])
    categories = None if numeric_x else list(dict.fromkeys(table[x].dropna().astype(str)))
    panels = list(dict.fromkeys(table[facet].tolist())) if facet else [""]
    hue_levels = list(dict.fromkeys(table[hue].tolist())) if hue else [""]
    series = [(c, "left") for c in columns] + [(c, "right") for c in right]
    reference = [level for level in reference if level in hue_levels]
    coloured = [level for level in hue_levels if level not in reference]
    palette = colors(len(coloured) if hue else len(series))
    with theme():
        figure, axes = new_figure(
            4.4 * len(panels) + (0.6 if right else 0.0) + 2.0, 3.8, ncols=len(panels), sharey=True
        )
        twins = [ax.twinx() for ax in axes[0]] if right else []
        for k, panel in enumerate(panels):
            ax = axes[0, k]
            rows = table if not facet else table[_matches(table[facet], panel)]
            for level in hue_levels:
                is_reference = level in reference
                mine = rows if not hue else rows[_matches(rows[hue], level)]
                for i, (column, side) in enumerate(series):
                    target = twins[k] if side == "right" else ax
                    values = pd.to_numeric(mine[column], errors="coerce")
                    stats = _replicate_stats(mine[x], values, band, categories)
                    if stats.empty:
                        continue
                    color = (
                        palette[coloured.index(level) if hue else i] if not is_reference else "0.3"
                    )
                    style = "--" if is_reference else LINESTYLES[i] if hue else "-"
                    name = labels.get(column, column)
                    legend = name
                    if hue:
                        level_name = labels.get(str(level), str(level))
                        legend = f"{level_name}: {name}" if len(series) > 1 else level_name
                    (line,) = target.plot(
                        stats["x"],
                        stats["mean"],
                        ls=style,
                        marker=None if is_reference else "s" if side == "right" else "o",
                        ms=3,
                        color=color,
                        label=legend,
                        zorder=2.3 if is_reference else 2.1,
                    )
                    line.set_gid("mean")
                    line.meta = (panel, level, column, side, stats)
                    if not is_reference:
                        target.fill_between(
                            stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.18, lw=0
                        )
            if facet:
                ax.set_title(f"{facet} = {labels.get(str(panel), panel)}")
            _x_axis(ax, table[x], categories, xlabel or x)
        _y_axes(list(axes[0]), columns, table)
        axes[0, 0].set_ylabel(ylabel or (columns[0] if len(columns) == 1 else "value"))
        if twins:
            _y_axes(twins, right, table)
            twins[-1].set_ylabel(right_ylabel or ", ".join(right))
            low = min(t.get_ylim()[0] for t in twins)
            high = max(t.get_ylim()[1] for t in twins)
            for k, twin in enumerate(twins):
                twin.set_ylim(low, high)
                twin.grid(False)
                if k < len(twins) - 1:
                    twin.tick_params(right=False, labelright=False)
        handles, names = [], []
        for ax in [axes[0, -1], *(twins[-1:] if twins else [])]:
            h, n = ax.get_legend_handles_labels()
            handles += h
            names += n
        figure.legend(handles, names, fontsize="small", loc="outside right center")
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_back([*axes[0], *twins], categories)
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _x_axis(ax, x: pd.Series, categories: list[str] | None, label: str) -> None:
    if categories is not None:
        rotate = len(categories) > ROTATE_ABOVE
        ax.set_xticks(
            range(len(categories)),
            categories,
            rotation=60 if rotate else 0,
            ha="right" if rotate else "center",
            fontsize="small" if rotate else None,
        )
    elif wants_log(x.to_numpy(dtype=float)):
        ax.set_xscale("log")
    elif pd.api.types.is_integer_dtype(x) or (
        np.isfinite(x.to_numpy(dtype=float)).all() and (x % 1 == 0).all()
    ):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def _y_axes(axes, columns: list[str], table: pd.DataFrame) -> None:
    values = np.concatenate([pd.to_numeric(table[c], errors="coerce").to_numpy() for c in columns])
    if wants_log(values):
        for ax in axes:
            ax.set_yscale("log")


def _read_back(axes, categories: list[str] | None) -> pd.DataFrame:
    frames = []
    for ax in axes:
        for line in ax.get_lines():
            if line.get_gid() != "mean":
                continue
            panel, level, column, side, stats = line.meta
            x = np.asarray(line.get_xdata(), dtype=float)
            text = [categories[int(v)] for v in x] if categories is not None else x
            frames.append(
                pd.DataFrame(
                    {
                        "panel": panel,
                        "hue": level,
                        "series": column,
                        "axis": side,
                        "x": x,
                        "label": [str(t) if categories is not None else f"{t:g}" for t in text],
                        "mean": np.asarray(line.get_ydata(), dtype=float),
                        "lo": stats["lo"].to_numpy(),
                        "hi": stats["hi"].to_numpy(),
                        "n": stats["n"].to_numpy(),
                    }
                )
            )
    if not frames:
        raise DataError("nothing to plot: every column is empty")
    return pd.concat(frames, ignore_index=True)
