"""A table figure: quantities (bounds) next to a reference (the gap), cells coloured by ratio."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._data import Band, matches
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import new_figure, theme

COLUMNS = ("panel", "row", "column", "mean", "lo", "hi", "n", "ratio")
CMAP = "RdBu_r"
UNDEFINED = "0.9"  # the colour of cells without a ratio (the reference column, gap <= 0)


def ratio_table(
    table: pd.DataFrame,
    rows: str,
    columns: Sequence[str],
    reference: str,
    stem: str | os.PathLike,
    *,
    panel: str | None = None,
    band: Band = "range",
    decades: float = 3.0,
    title: str | None = None,
) -> PlotResult:
    """A rendered table: one row per level of ``rows``, the ``reference`` column then ``columns``.

    Rows of ``table`` sharing a ``rows`` level (and ``panel`` level) are replicates, typically
    seeds; each cell shows their mean, and every cell but the reference's also the ratio
    mean / reference mean ("3.6x"). Cells are coloured by log10 of that ratio on a diverging
    scale centred on 1x (blue below, red above, saturating at ``decades`` orders of
    magnitude): how far a bound sits above the gap it bounds. The ratio is undefined (grey
    cell, "n/a") where the reference or the value is not positive. One table per level of
    ``panel``, side by side; rows keep their order of first appearance.

    ``data``, read back from the drawn cells: ``panel`` (``""`` without panels), ``row``,
    ``column``, ``mean``, ``lo``, ``hi`` (mean +- sd with ``band="sd"``, min..max with
    ``"range"``), ``n`` replicates and ``ratio`` (NaN where undefined and in the reference
    column).
    """
    if band not in ("sd", "range"):
        raise OptionError(f"band must be 'sd' or 'range', got {band!r}")
    if decades <= 0:
        raise OptionError(f"decades must be positive, got {decades}")
    quantities = [reference, *[c for c in columns if c != reference]]
    require_columns(table, rows, panel, *quantities)
    panels = list(dict.fromkeys(table[panel].tolist())) if panel else [""]
    row_levels = list(dict.fromkeys(table[rows].tolist()))
    if not row_levels:
        raise DataError("no rows to tabulate")
    norm = Normalize(-decades, decades, clip=True)
    with theme():
        width = 1.6 + len(panels) * (0.95 * len(quantities) + 0.3) + 1.0
        figure, axes = new_figure(width, 1.4 + 0.32 * len(row_levels), ncols=len(panels))
        image = None
        for ax, level in zip(axes[0], panels, strict=True):
            mine = table[matches(table[panel], level)] if panel else table
            cells = _cells(mine, rows, row_levels, quantities, band)
            cells.insert(0, "panel", level)
            means = cells.pivot(index="row", columns="column", values="mean")
            means = means.reindex(index=range(len(row_levels)), columns=quantities)
            reference_mean = means[reference].to_numpy(dtype=float)[:, None]
            values = means.to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_ratio = np.where(
                    (reference_mean > 0) & (values > 0), np.log10(values / reference_mean), np.nan
                )
            log_ratio[:, 0] = np.nan  # the reference column itself
            cmap = _colormap()
            image = ax.imshow(np.ma.masked_invalid(log_ratio), cmap=cmap, norm=norm, aspect="auto")
            image.set_gid("cells")
            image.cells = cells
            for i in range(len(row_levels)):
                for j in range(len(quantities)):
                    value = values[i, j]
                    if not np.isfinite(value):
                        text = "-"
                    elif j == 0:
                        text = f"{value:.3g}"
                    elif np.isfinite(log_ratio[i, j]):
                        text = f"{value:.3g}\n{_times(10 ** log_ratio[i, j])}"
                    else:
                        text = f"{value:.3g}\nn/a"
                    dark = np.isfinite(log_ratio[i, j]) and abs(norm(log_ratio[i, j]) - 0.5) > 0.35
                    ax.text(
                        j,
                        i,
                        text,
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if dark else "0.1",
                    )
            ax.set_xticks(range(len(quantities)), quantities, rotation=30, ha="left")
            ax.xaxis.tick_top()
            ax.set_yticks(range(len(row_levels)), [str(r) for r in row_levels])
            if ax is not axes[0, 0]:
                ax.tick_params(labelleft=False)
            ax.grid(False)
            ax.set_xticks(np.arange(len(quantities) + 1) - 0.5, minor=True)
            ax.set_yticks(np.arange(len(row_levels) + 1) - 0.5, minor=True)
            ax.grid(which="minor", color="white", lw=1.5)
            ax.tick_params(which="minor", length=0)
            if panel:
                ax.set_xlabel(f"{panel} = {level}")
        bar = figure.colorbar(image, ax=list(axes[0]), shrink=0.8, pad=0.02)
        ticks = np.arange(-np.floor(decades), np.floor(decades) + 1)
        bar.set_ticks(ticks, labels=[_times(10.0**t) for t in ticks])
        bar.set_label(f"value / {reference}")
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_back(axes[0], quantities)
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _colormap():
    import matplotlib as mpl

    cmap = mpl.colormaps[CMAP].copy()
    cmap.set_bad(UNDEFINED)
    return cmap


def _times(ratio: float) -> str:
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:,.0f}x"


def _cells(
    table: pd.DataFrame, rows: str, levels: list, quantities: list[str], band: Band
) -> pd.DataFrame:
    records = []
    for i, level in enumerate(levels):
        mine = table[matches(table[rows], level)]
        for column in quantities:
            values = pd.to_numeric(mine[column], errors="coerce").dropna().to_numpy(dtype=float)
            mean = lo = hi = np.nan
            if len(values):
                mean = float(values.mean())
                if band == "range":
                    lo, hi = float(values.min()), float(values.max())
                else:
                    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                    lo, hi = mean - spread, mean + spread
            records.append(
                {
                    "row": i,
                    "label": level,
                    "column": column,
                    "mean": mean,
                    "lo": lo,
                    "hi": hi,
                    "n": len(values),
                }
            )
    return pd.DataFrame(records)


def _read_back(axes, quantities: list[str]) -> pd.DataFrame:
    frames = []
    for ax in axes:
        for image in ax.get_images():
            if image.get_gid() != "cells":
                continue
            cells = image.cells
            drawn: np.ndarray = np.ma.filled(np.ma.asarray(image.get_array(), dtype=float), np.nan)
            position = {c: j for j, c in enumerate(quantities)}
            ratio = [
                10 ** drawn[r, position[c]]
                for r, c in zip(cells["row"], cells["column"], strict=True)
            ]
            frame = cells.assign(ratio=ratio, row=cells["label"]).drop(columns="label")
            frames.append(frame[frame["n"] > 0])
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]
