"""Summaries over groups: group means of a measure against the gap, and statistics per measure.

- :func:`group_means`: one point per group (e.g. a fine-tuning method), the mean of a measure
  (x) against the mean of the gap (y) over the group's replicates (seeds), with error bars in
  both directions and the replicates drawn faintly behind; one panel per level of ``panel``.
- :func:`statistics_chart`: several statistics of each measure (Kendall tau with its CI,
  granulated Kendall Psi, R^2, ...) in side-by-side panels sharing the measure axis, measures
  ordered by the first statistic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._data import Band, matches
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log

GROUP_COLUMNS = ("panel", "hue", "x", "x_lo", "x_hi", "mean", "lo", "hi", "n")
STATISTIC_COLUMNS = ("panel", "measure", "mean", "lo", "hi", "n", "rank")
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "p", "h", "*")


def group_means(
    table: pd.DataFrame,
    x: str,
    y: str,
    stem: str | os.PathLike,
    *,
    hue: str,
    panel: str | None = None,
    band: Band = "sd",
    replicates: bool = True,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
) -> PlotResult:
    """Per group (a level of ``hue`` within a level of ``panel``): mean ``x`` against mean ``y``.

    Rows sharing ``hue`` (and ``panel``) are replicates, typically seeds: the marker sits at
    the mean of ``x`` and the mean of ``y`` over them, the error bars span mean +- one
    standard deviation (``band="sd"``; 0 for a single replicate) or min..max
    (``band="range"``) in each direction, and with ``replicates`` every row is drawn as a
    small faint dot of the group's colour. Rows where ``x`` or ``y`` is NaN are left out and
    counted in the panel's title, which also gives Kendall's tau between the group means.
    Groups keep the order of first appearance of their ``hue`` level (one colour and marker
    per level, one legend for the figure); panels are side by side. Each axis is logarithmic
    where its positive values span more than two orders of magnitude.

    ``data``, read back from the markers: ``panel`` (the level, ``""`` without panels),
    ``hue``, ``x``, ``x_lo``, ``x_hi`` (the mean of ``x`` and its band), ``mean``, ``lo``,
    ``hi`` (the same for ``y``) and ``n`` replicates.
    """
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    require_columns(table, x, y, hue, panel)
    xs = pd.to_numeric(table[x], errors="coerce")
    ys = pd.to_numeric(table[y], errors="coerce")
    finite = np.isfinite(xs.to_numpy(dtype=float)) & np.isfinite(ys.to_numpy(dtype=float))
    if not finite.any():
        raise DataError(f"no row has finite {x!r} and {y!r} to plot")
    hue_levels = list(dict.fromkeys(table[hue].tolist()))
    panels = list(dict.fromkeys(table[panel].tolist())) if panel else [""]
    palette = dict(zip(hue_levels, colors(len(hue_levels)), strict=True))
    markers = {level: _MARKERS[k % len(_MARKERS)] for k, level in enumerate(hue_levels)}
    with theme():
        figure, axes = new_figure(3.6 * len(panels) + 2.2, 3.8, ncols=len(panels))
        handles: dict = {}
        for ax, level in zip(axes[0], panels, strict=True):
            in_panel = matches(table[panel], level) if panel else pd.Series(True, table.index)
            rows = table[in_panel & finite]
            n_nan = int((in_panel & ~finite).sum())
            means_x, means_y = [], []
            for group in hue_levels:
                mine = rows[matches(rows[hue], group)]
                if mine.empty:
                    continue
                gx = _band(xs.loc[mine.index].to_numpy(dtype=float), band)
                gy = _band(ys.loc[mine.index].to_numpy(dtype=float), band)
                color, marker = palette[group], markers[group]
                if replicates:
                    ax.scatter(
                        xs.loc[mine.index], ys.loc[mine.index], s=9, color=color, alpha=0.3, lw=0
                    )
                ax.errorbar(
                    gx[0],
                    gy[0],
                    xerr=[[gx[0] - gx[1]], [gx[2] - gx[0]]],
                    yerr=[[gy[0] - gy[1]], [gy[2] - gy[0]]],
                    fmt="none",
                    ecolor=color,
                    elinewidth=1.0,
                    alpha=0.8,
                )
                (point,) = ax.plot(
                    [gx[0]],
                    [gy[0]],
                    marker=marker,
                    ms=6.5,
                    ls="none",
                    color=color,
                    mec="0.15",
                    mew=0.5,
                    zorder=3,
                )
                point.set_gid("mean")
                point.group = (level, group, gx, gy, len(mine))
                handles.setdefault(group, point)
                means_x.append(gx[0])
                means_y.append(gy[0])
            parts = []
            if panel:
                parts.append(f"{panel} = {level}")
            if len(means_x) >= 3 and np.ptp(means_x) > 0 and np.ptp(means_y) > 0:
                tau = stats.kendalltau(means_x, means_y).statistic
                parts.append(f"Kendall tau (means) = {tau:.2f}")
            if n_nan:
                parts.append(f"{n_nan} NaN left out")
            ax.set_title("\n".join(parts), fontsize="small")
            if wants_log(xs[in_panel & finite].to_numpy(dtype=float)):
                ax.set_xscale("log")
            if wants_log(ys[in_panel & finite].to_numpy(dtype=float)):
                ax.set_yscale("log")
            ax.set_xlabel(xlabel or x)
        axes[0, 0].set_ylabel(ylabel or y)
        figure.legend(
            list(handles.values()),
            [str(k) for k in handles],
            title=hue,
            loc="outside right center",
            fontsize="small",
            title_fontsize="small",
        )
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_groups(axes[0])
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _band(values: np.ndarray, band: Band) -> tuple[float, float, float]:
    mean = float(values.mean())
    if band == "range":
        return mean, float(values.min()), float(values.max())
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, mean - spread, mean + spread


def _read_groups(axes) -> pd.DataFrame:
    records = []
    for ax in axes:
        for line in ax.get_lines():
            if line.get_gid() != "mean":
                continue
            level, group, gx, gy, n = line.group
            records.append(
                {
                    "panel": level,
                    "hue": group,
                    "x": float(np.asarray(line.get_xdata(), dtype=float)[0]),
                    "x_lo": gx[1],
                    "x_hi": gx[2],
                    "mean": float(np.asarray(line.get_ydata(), dtype=float)[0]),
                    "lo": gy[1],
                    "hi": gy[2],
                    "n": n,
                }
            )
    return pd.DataFrame(records, columns=list(GROUP_COLUMNS))


def statistics_chart(
    summary: pd.DataFrame,
    stem: str | os.PathLike,
    *,
    statistics: Sequence[str] = ("kendall_tau", "psi", "r2"),
    labels: dict[str, str] | None = None,
    highlight: Sequence[str] = (),
    title: str | None = None,
) -> PlotResult:
    """Each measure's ``statistics`` side by side, one panel per statistic, measures as rows.

    ``summary`` has one row per measure: a ``measure`` column and a column per statistic
    (e.g. :func:`~genmeasures.correlation.correlate`'s ``summary``); where the columns
    ``<statistic>_lo`` and ``<statistic>_hi`` exist they are drawn as the statistic's
    interval. Measures are ordered by the first statistic, largest (signed) at the top;
    ``highlight`` names measures drawn in a second colour with bold labels. A NaN statistic
    is not drawn and the measure is named in that panel's title. ``labels`` maps statistic
    columns to axis labels.

    ``data``, read back from the markers: ``panel`` (the statistic), ``measure``, ``mean``
    (its value), ``lo``, ``hi`` (the interval, NaN without one), ``n`` (the ``n`` column of
    ``summary`` when present) and ``rank`` (1 = largest among the measures where it is
    defined).
    """
    statistics = list(statistics)
    if not statistics:
        raise OptionError("statistics_chart needs at least one statistic")
    require_columns(summary, "measure", *statistics)
    if summary.empty:
        raise DataError("no measure to chart")
    labels = labels or {}
    first = pd.to_numeric(summary[statistics[0]], errors="coerce").to_numpy(dtype=float)
    order = np.argsort(-np.nan_to_num(first, nan=-np.inf), kind="stable")
    frame = summary.iloc[order].reset_index(drop=True)
    names = frame["measure"].astype(str).tolist()
    position = np.arange(len(names))[::-1].astype(float)  # first at the top
    marked = set(highlight)
    base, accent = colors(2)
    with theme():
        figure, axes = new_figure(
            1.6 + 2.3 * len(statistics), 1.2 + 0.3 * len(names), ncols=len(statistics), sharey=True
        )
        for ax, statistic in zip(axes[0], statistics, strict=True):
            value = pd.to_numeric(frame[statistic], errors="coerce").to_numpy(dtype=float)
            lo, hi = _interval(frame, statistic, len(frame))
            defined = np.isfinite(value)
            ranks = pd.Series(value).rank(ascending=False, method="min").to_numpy()
            for k in np.flatnonzero(defined):
                color = accent if names[k] in marked else base
                if np.isfinite(lo[k]) and np.isfinite(hi[k]):
                    ax.plot([lo[k], hi[k]], [position[k]] * 2, color=color, lw=1.3, alpha=0.8)
                (point,) = ax.plot(
                    [value[k]],
                    [position[k]],
                    marker="o",
                    ms=5.5,
                    ls="none",
                    color=color,
                    zorder=3,
                )
                point.set_gid("statistic")
                n = frame["n"].iloc[k] if "n" in frame.columns else np.nan
                point.record = (statistic, names[k], lo[k], hi[k], n, int(ranks[k]))
            ax.axvline(0.0, color="0.5", lw=0.8)
            ax.set_xlabel(labels.get(statistic, statistic))
            missing = [names[k] for k in np.flatnonzero(~defined)]
            if missing:
                ax.set_title(f"undefined: {', '.join(missing)}", fontsize="x-small")
        axes[0, 0].set_yticks(position, names)
        for tick, name in zip(axes[0, 0].get_yticklabels(), names, strict=True):
            if name in marked:
                tick.set_fontweight("bold")
                tick.set_color(accent)
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_statistics(axes[0])
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _interval(frame: pd.DataFrame, statistic: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo_col, hi_col = f"{statistic}_lo", f"{statistic}_hi"
    if lo_col in frame.columns and hi_col in frame.columns:
        lo = pd.to_numeric(frame[lo_col], errors="coerce").to_numpy(dtype=float)
        hi = pd.to_numeric(frame[hi_col], errors="coerce").to_numpy(dtype=float)
        return lo, hi
    return np.full(n, np.nan), np.full(n, np.nan)


def _read_statistics(axes) -> pd.DataFrame:
    records = []
    for ax in axes:
        for line in ax.get_lines():
            if line.get_gid() != "statistic":
                continue
            statistic, measure, lo, hi, n, rank = line.record
            records.append(
                {
                    "panel": statistic,
                    "measure": measure,
                    "mean": float(np.asarray(line.get_xdata(), dtype=float)[0]),
                    "lo": lo,
                    "hi": hi,
                    "n": n,
                    "rank": rank,
                }
            )
    return pd.DataFrame(records, columns=list(STATISTIC_COLUMNS))
