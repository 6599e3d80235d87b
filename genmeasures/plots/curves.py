"""Several quantities side by side against a common x (the epoch), one line per group.

Training curves of several optimizers (training loss, validation loss, distance to a target),
each quantity in its own panel, replicates (seeds) summarized as a line and a band.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log
from genmeasures.plots.trends import Band, _matches, _read_back, _replicate_stats


def curve_panels(
    table: pd.DataFrame,
    x: str,
    columns: Sequence[str],
    stem: str | os.PathLike,
    *,
    hue: str | None = None,
    band: Band = "sd",
    labels: Mapping[str, str] | None = None,
    xlabel: str | None = None,
    title: str | None = None,
    log_y: bool | Mapping[str, bool] | None = None,
    markers: bool | None = None,
) -> PlotResult:
    """One panel per column of ``columns`` against ``x``, side by side, one line per ``hue``.

    Rows sharing ``x`` and ``hue`` are replicates (typically seeds): the line is their mean,
    the band mean +- one standard deviation (``band="sd"``) or their min..max
    (``band="range"``, the honest choice for two or three seeds and on log axes). Each
    panel's y axis is logarithmic where its positive values span more than two orders of
    magnitude (``log_y`` forces it on or off for every panel, or, as a mapping from column to
    bool, for the panels it names); ``labels`` maps a column to its axis label. Markers are
    drawn when lines have at most 30 points (``markers`` overrides). NaN values are left out
    and counted in the panel's title.

    ``data``, read back from the lines: ``panel`` (the column), ``hue`` level (``""``
    without hue), ``x``, ``mean``, ``lo``, ``hi``, ``n`` replicates.
    """
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    columns = list(columns)
    if not columns:
        raise OptionError("curve_panels needs at least one column to plot")
    require_columns(table, x, *columns, hue)
    if not pd.api.types.is_numeric_dtype(table[x]):
        raise DataError(f"{x!r} must be numeric to draw curves against it")
    if table[x].nunique(dropna=True) < 2:
        raise DataError(f"{x!r} takes fewer than two values; nothing to plot against")
    labels = dict(labels or {})
    hue_levels = list(dict.fromkeys(table[hue].tolist())) if hue else [""]
    palette = colors(len(hue_levels))
    n_points = table[x].nunique()
    show_markers = n_points <= 30 if markers is None else markers
    with theme():
        figure, axes = new_figure(3.6 * len(columns) + 0.4, 3.4, ncols=len(columns))
        for ax, column in zip(axes[0], columns, strict=True):
            values = pd.to_numeric(table[column], errors="coerce")
            drawn = []
            for color, level in zip(palette, hue_levels, strict=True):
                rows = table if not hue else table[_matches(table[hue], level)]
                stats = _replicate_stats(rows[x], values.loc[rows.index], band, None)
                if stats.empty:
                    continue
                (line,) = ax.plot(
                    stats["x"],
                    stats["mean"],
                    color=color,
                    lw=1.4,
                    marker="o" if show_markers else None,
                    ms=3,
                    label=str(level) if hue else column,
                )
                line.set_gid("mean")
                line.panel, line.hue_level, line.stats = column, level, stats
                ax.fill_between(stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.2, lw=0)
                drawn.append(stats["mean"].to_numpy(dtype=float))
            if not drawn:
                raise DataError(f"no finite values of {column!r} to plot")
            n_nan = int(values.isna().sum())
            if n_nan:
                ax.set_title(f"{n_nan} NaN value(s) left out", fontsize="small")
            forced = log_y.get(column) if isinstance(log_y, Mapping) else log_y
            logarithmic = wants_log(np.concatenate(drawn)) if forced is None else forced
            if logarithmic:
                ax.set_yscale("log")
            ax.set_ylabel(labels.get(column, column))
            ax.set_xlabel(xlabel or x)
            if pd.api.types.is_integer_dtype(table[x]):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        if hue:
            handles, names = axes[0, 0].get_legend_handles_labels()
            figure.legend(
                handles,
                names,
                loc="outside lower center",
                ncols=min(len(names), 6),
                fontsize="small",
            )
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_back(axes[0])
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)
