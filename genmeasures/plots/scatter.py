"""A measure against the gap, with the OLS line and its confidence band."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import stats

from genmeasures.correlation.regression import fit_ols
from genmeasures.errors import DataError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import (
    LEGEND_WIDTH,
    SEQUENTIAL,
    colors,
    legend_outside,
    new_figure,
    theme,
    wants_log,
)

MAX_CATEGORIES = 10


def measure_vs_gap(
    table: pd.DataFrame,
    measure: str,
    gap: str,
    stem: str | os.PathLike,
    *,
    hue: str | None = None,
    confidence: float = 0.95,
) -> PlotResult:
    """Scatter of ``gap`` (y) against ``measure`` (x), one point per row of ``table``.

    Points are coloured by the column ``hue`` (categories keyed in a legend right of the
    axes, or a colour bar when it is numeric with more than ten levels). The line is the OLS
    fit gap ~ measure and the band its ``confidence`` interval for the mean (statsmodels).
    Axes are logarithmic where the values are positive and span more than two orders of
    magnitude. Rows with a NaN measure or gap are not drawn and their count is in the title.

    Returns the paths of ``stem.png`` and ``stem.pdf``; ``data`` has the drawn points
    (``row``: the table's index, then ``measure``, ``gap`` and ``hue`` columns under their
    own names), ``extra`` the line and band (``x``, ``fit``, ``lo``, ``hi``).
    """
    require_columns(table, measure, gap, hue)
    x_all = pd.to_numeric(table[measure], errors="coerce").to_numpy(dtype=float)
    y_all = pd.to_numeric(table[gap], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(x_all) & np.isfinite(y_all)
    if keep.sum() < 2:
        raise DataError(f"fewer than two checkpoints with finite {measure!r} and {gap!r} to plot")
    rows = table.index.to_numpy()[keep]
    x, y = x_all[keep], y_all[keep]
    with theme():
        figure, axes = new_figure(5.0 + (LEGEND_WIDTH if hue else 0.0), 3.8)
        ax = axes[0, 0]
        log_x, log_y = wants_log(x), wants_log(y)
        _scatter(figure, ax, x, y, rows, table.loc[keep, hue] if hue else None, hue)
        fit = _fit_line(ax, x, y, log_x, confidence)
        ax.set_xscale("log" if log_x else "linear")
        ax.set_yscale("log" if log_y else "linear")
        ax.set_xlabel(measure)
        ax.set_ylabel(gap)
        ax.set_title(_title(x, y, int((~keep).sum())))
        data = _read_points(ax, measure, gap, hue)
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data, fit)


def _scatter(figure, ax, x, y, rows, hue_values: pd.Series | None, hue: str | None):
    if hue_values is None:
        ax.scatter(x, y, s=22, alpha=0.85, gid="points", label="checkpoints").rows = rows
        return
    levels = list(dict.fromkeys(hue_values.tolist()))
    numeric = pd.api.types.is_numeric_dtype(hue_values)
    if numeric and len(levels) > MAX_CATEGORIES:
        points = ax.scatter(x, y, c=hue_values.to_numpy(dtype=float), cmap=SEQUENTIAL, s=22)
        points.set_gid("points")
        points.rows = rows
        figure.colorbar(points, ax=ax, label=hue)
        return
    if numeric:
        levels = sorted(levels, key=lambda v: (pd.isna(v), v))
    values = hue_values.to_numpy(dtype=object)
    for color, level in zip(colors(len(levels)), levels, strict=True):
        mask = pd.isna(values) if pd.isna(level) else values == level
        points = ax.scatter(x[mask], y[mask], s=22, alpha=0.85, color=color, label=str(level))
        points.set_gid("points")
        points.rows = rows[mask]
        points.hue_level = level
    legend_outside(figure, [ax], title=hue)


def _fit_line(ax, x, y, log_x: bool, confidence: float) -> pd.DataFrame | None:
    if len(x) < 3 or np.ptp(x) == 0:
        return None
    fit = fit_ols(x, y)
    grid = np.geomspace(x.min(), x.max(), 100) if log_x else np.linspace(x.min(), x.max(), 100)
    exog = np.column_stack([np.ones_like(grid), grid])
    frame = fit.get_prediction(exog).summary_frame(alpha=1 - confidence)
    lo, hi = frame["mean_ci_lower"].to_numpy(), frame["mean_ci_upper"].to_numpy()
    (line,) = ax.plot(grid, frame["mean"].to_numpy(), color="0.2", lw=1.2, gid="fit")
    ax.fill_between(grid, lo, hi, color="0.2", alpha=0.15, lw=0, label=f"{confidence:.0%} CI")
    return pd.DataFrame({"x": line.get_xdata(), "fit": line.get_ydata(), "lo": lo, "hi": hi})


def _title(x, y, n_dropped: int) -> str:
    parts = [f"n = {len(x)}"]
    if np.ptp(x) > 0 and np.ptp(y) > 0:
        parts.append(f"Kendall tau = {stats.kendalltau(x, y).statistic:.2f}")
        parts.append(f"Pearson r = {stats.pearsonr(x, y).statistic:.2f}")
    if n_dropped:
        parts.append(f"{n_dropped} NaN dropped")
    return ", ".join(parts)


def _read_points(ax, measure: str, gap: str, hue: str | None) -> pd.DataFrame:
    frames = []
    for points in ax.collections:
        if points.get_gid() != "points":
            continue
        offsets = np.asarray(points.get_offsets(), dtype=float)
        frame = pd.DataFrame({"row": points.rows, measure: offsets[:, 0], gap: offsets[:, 1]})
        if hue is not None:
            level = getattr(points, "hue_level", None)
            frame[hue] = np.asarray(points.get_array()) if level is None else level
        frames.append(frame)
    return pd.concat(frames).sort_values("row", kind="stable").reset_index(drop=True)
