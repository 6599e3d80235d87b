"""One quantity against a numeric x in a grid of panels, one line per group, with error bars.

The grid's columns and rows are levels of two table columns (e.g. a fine-tuning method, or
which hyperparameter an ablation varies), the lines levels of a third. Rows sharing
(row, column, line, x) are replicates (seeds): the line is their mean, the band their spread,
and where each row carries its own measurement standard error (a Monte-Carlo estimate's
``stderr``), the error bars are the standard error of the mean of those measurements.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log
from genmeasures.plots.trends import Band

StderrMean = Literal["independent", "shared"]
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "p")
#: x values drawn, at most, to label each one as a tick (instead of a locator's ticks)
MAX_LABELLED_TICKS = 8
DATA_COLUMNS = ("panel", "row", "col", "hue", "x", "mean", "lo", "hi", "n")


def facet_lines(
    table: pd.DataFrame,
    x: str,
    y: str,
    stem: str | os.PathLike,
    *,
    col: str | None = None,
    row: str | None = None,
    hue: str | None = None,
    stderr: str | None = None,
    stderr_mean: StderrMean = "independent",
    band: Band | None = "range",
    col_order: Sequence[Any] | None = None,
    row_order: Sequence[Any] | None = None,
    hue_order: Sequence[Any] | None = None,
    xlabel: str | Mapping[Any, str] | None = None,
    ylabel: str | Mapping[Any, str] | None = None,
    log_x: bool | Mapping[Any, bool] | None = None,
    log_y: bool | None = None,
    sharey: bool = False,
    title: str | None = None,
) -> PlotResult:
    """``y`` against a numeric ``x``: one panel per (``row``, ``col``) level, one line per
    ``hue`` level.

    Rows sharing (row, col, hue, x) are replicates, typically seeds: the line joins their
    means, the band spans their min..max (``band="range"``) or mean +- one standard
    deviation (``band="sd"``); ``band=None`` draws none. ``stderr`` names a column holding
    each row's own standard error (a Monte-Carlo measurement's); the error bars are then
    +- the standard error of the mean of the replicates' measurements: sqrt(sum_j
    stderr_j^2) / n when their random errors are independent (``stderr_mean="independent"``),
    or mean_j stderr_j, the bound for errors that may be correlated
    (``stderr_mean="shared"``: replicates scored with the same random draws or probes). This
    is the uncertainty to use when comparing two quantities measured on the same replicates
    (the spread between replicates is common to both). Panels of a grid column share their
    x axis. Each panel's y axis (each column's x axis) is logarithmic where its positive
    values span more than two orders of magnitude; ``log_x``/``log_y`` force it on or off
    everywhere, ``log_x`` may also map a column level to its choice (non-positive values are
    not drawn on a log axis, but kept in ``data``). ``xlabel`` may map a column level to its
    label, ``ylabel`` a row level to its. Levels keep ``*_order`` or their order of first
    appearance; NaN values of ``y`` are left out and counted in the panel's title. With
    ``sharey`` the panels of a grid row share their y axis. Where a column draws at most
    eight distinct x values, exactly those are its tick labels.

    ``data``, read back from the lines: ``panel`` (the row and column levels joined by
    " | "), ``row``, ``col``, ``hue`` (``""`` where unused), ``x``, ``mean``, ``lo``, ``hi``
    (the band, or mean +- stderr without a band, or the mean), ``n`` replicates, and
    ``stderr`` (the mean's, when ``stderr`` is given).
    """
    if band not in ("sd", "range", None):
        raise OptionError(f"band must be 'sd', 'range' or None, got {band!r}")
    if stderr_mean not in ("independent", "shared"):
        raise OptionError(f"stderr_mean must be 'independent' or 'shared', got {stderr_mean!r}")
    require_columns(table, x, y, col, row, hue, stderr)
    if not pd.api.types.is_numeric_dtype(table[x]):
        raise DataError(f"{x!r} must be numeric to draw lines against it")
    values = pd.to_numeric(table[y], errors="coerce")
    if not values.notna().any():
        raise DataError(f"no finite values of {y!r} to plot")
    cols = _levels(table, col, col_order)
    rows = _levels(table, row, row_order)
    hues = _levels(table, hue, hue_order)
    palette = colors(len(hues))
    errors = pd.to_numeric(table[stderr], errors="coerce") if stderr else None
    with theme():
        figure, axes = new_figure(
            3.7 * len(cols) + 0.4,
            3.1 * len(rows) + (0.7 if hue else 0.3),
            nrows=len(rows),
            ncols=len(cols),
            sharex="col",
            sharey="row" if sharey else False,
        )
        for i, row_level in enumerate(rows):
            for j, col_level in enumerate(cols):
                ax = axes[i, j]
                in_panel = _matches(table, row, row_level) & _matches(table, col, col_level)
                drawn: list[np.ndarray] = []
                for k, (color, level) in enumerate(zip(palette, hues, strict=True)):
                    selected = in_panel & _matches(table, hue, level)
                    stats = _replicate_stats(
                        table.loc[selected, x],
                        values[selected],
                        None if errors is None else errors[selected],
                        band,
                        stderr_mean,
                    )
                    if stats.empty:
                        continue
                    (line,) = ax.plot(
                        stats["x"],
                        stats["mean"],
                        color=color,
                        marker=_MARKERS[k % len(_MARKERS)],
                        ms=4,
                        lw=1.4,
                        label=str(level) if hue else y,
                    )
                    line.set_gid("mean")
                    line.facet = (row_level, col_level, level)
                    line.stats = stats
                    if band is not None:
                        ax.fill_between(
                            stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.15, lw=0
                        )
                    if errors is not None:
                        ax.errorbar(
                            stats["x"],
                            stats["mean"],
                            yerr=stats["stderr"].fillna(0.0),
                            fmt="none",
                            ecolor=color,
                            elinewidth=1.0,
                            capsize=2.5,
                        )
                    drawn.append(stats[["mean", "lo", "hi"]].to_numpy(dtype=float).ravel())
                n_nan = int(values[in_panel].isna().sum())
                heading = [str(col_level)] if col and i == 0 else []
                if n_nan:
                    heading.append(f"{n_nan} NaN value(s) left out")
                if heading:
                    ax.set_title("\n".join(heading), fontsize="medium")
                if log_y is None:
                    logarithmic = bool(drawn) and wants_log(np.concatenate(drawn))
                else:
                    logarithmic = bool(log_y)
                if logarithmic:
                    ax.set_yscale("log")
                if j == 0:
                    default = y if not row else f"{y}: {row_level}"
                    ax.set_ylabel(_label(ylabel, row_level, default))
        for j, col_level in enumerate(cols):
            xs = table.loc[_matches(table, col, col_level), x].to_numpy(dtype=float)
            choice = log_x.get(col_level) if isinstance(log_x, Mapping) else log_x
            if wants_log(xs) if choice is None else choice:
                for ax in axes[:, j]:
                    ax.set_xscale("log")
            ticks = np.unique(xs[np.isfinite(xs)])
            if len(ticks) <= MAX_LABELLED_TICKS:  # label the values drawn, nothing else
                axes[-1, j].set_xticks(ticks, [f"{t:g}" for t in ticks])
                axes[-1, j].xaxis.set_minor_formatter(NullFormatter())
            axes[-1, j].set_xlabel(_label(xlabel, col_level, x))
        if hue:
            handles, names = [], []
            for ax in axes.ravel():
                for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                    if name not in names:
                        handles.append(handle)
                        names.append(name)
            figure.legend(
                handles,
                names,
                loc="outside lower center",
                ncols=min(len(names), 4),
                fontsize="small",
            )
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_back(axes.ravel(), stderr is not None)
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _levels(table: pd.DataFrame, column: str | None, order: Sequence[Any] | None) -> list:
    if column is None:
        return [""]
    present = list(dict.fromkeys(table[column].dropna().tolist()))
    if order is None:
        return present
    missing = [level for level in order if level not in present]
    if missing:
        raise DataError(f"{column!r} has no rows for level(s) {missing}")
    return list(order)


def _matches(table: pd.DataFrame, column: str | None, level) -> pd.Series:
    if column is None:
        return pd.Series(True, index=table.index)
    return table[column] == level


def _label(labels: str | Mapping[Any, str] | None, level, default: str) -> str:
    if labels is None:
        return default
    if isinstance(labels, str):
        return labels
    return labels.get(level, default)


def _replicate_stats(
    x: pd.Series,
    y: pd.Series,
    errors: pd.Series | None,
    band: Band | None,
    stderr_mean: StderrMean = "independent",
) -> pd.DataFrame:
    frame = pd.DataFrame({"x": x.astype(float), "y": y})
    frame["se"] = np.nan if errors is None else errors.to_numpy(dtype=float)
    frame = frame.dropna(subset=["x", "y"])
    if frame.empty:
        return pd.DataFrame(columns=["x", "mean", "lo", "hi", "n", "stderr"])
    grouped = frame.groupby("x", sort=True)
    stats = grouped["y"].agg(["mean", "std", "min", "max", "count"]).reset_index()
    # one NaN stderr makes the mean's stderr NaN (unknown), not smaller
    combine = _shared if stderr_mean == "shared" else _independent
    stderr = grouped["se"].apply(combine).to_numpy(dtype=float)
    mean = stats["mean"].to_numpy(dtype=float)
    if band == "range":
        lo, hi = stats["min"].to_numpy(dtype=float), stats["max"].to_numpy(dtype=float)
    elif band == "sd":
        spread = stats["std"].fillna(0.0).to_numpy(dtype=float)
        lo, hi = mean - spread, mean + spread
    elif errors is not None:
        lo, hi = mean - np.nan_to_num(stderr), mean + np.nan_to_num(stderr)
    else:
        lo, hi = mean, mean
    return pd.DataFrame(
        {"x": stats["x"], "mean": mean, "lo": lo, "hi": hi, "n": stats["count"], "stderr": stderr}
    )


def _independent(se: pd.Series) -> float:
    return float(np.sqrt((se**2).sum()) / len(se)) if se.notna().all() else np.nan


def _shared(se: pd.Series) -> float:
    return float(se.mean()) if se.notna().all() else np.nan


def _read_back(axes, with_stderr: bool) -> pd.DataFrame:
    frames = []
    for ax in axes:
        for line in ax.get_lines():
            if line.get_gid() != "mean":
                continue
            row_level, col_level, hue_level = line.facet
            stats = line.stats
            frame = pd.DataFrame(
                {
                    "panel": " | ".join(str(v) for v in (row_level, col_level) if v != ""),
                    "row": row_level,
                    "col": col_level,
                    "hue": hue_level,
                    "x": np.asarray(line.get_xdata(), dtype=float),
                    "mean": np.asarray(line.get_ydata(), dtype=float),
                    "lo": stats["lo"].to_numpy(dtype=float),
                    "hi": stats["hi"].to_numpy(dtype=float),
                    "n": stats["n"].to_numpy(),
                }
            )
            if with_stderr:
                frame["stderr"] = stats["stderr"].to_numpy(dtype=float)
            frames.append(frame)
    if not frames:
        raise DataError("nothing to plot: every panel is empty")
    return pd.concat(frames, ignore_index=True)
