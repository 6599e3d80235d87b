"""Measures ranked by the strength of their rank correlation with the gap."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, legend_outside, new_figure, theme

STATISTICS = ("kendall_tau", "spearman_rho", "pearson_r")
_LABELS = {"kendall_tau": "Kendall tau", "spearman_rho": "Spearman rho", "pearson_r": "Pearson r"}


def ranking_chart(
    correlations: pd.DataFrame,
    stem: str | os.PathLike,
    *,
    statistic: str = "kendall_tau",
) -> PlotResult:
    """|statistic| per measure with its bootstrap CI, strongest at the top.

    ``correlations`` is :func:`~genmeasures.correlation.rank_correlations`' table (or a
    report's ``summary``): columns ``measure``, ``<statistic>``, ``<statistic>_lo`` and
    ``<statistic>_hi``. The interval drawn is the CI of sign(t) * statistic for the
    estimate t, i.e. [lo, hi] for a positive and [-hi, -lo] for a negative correlation; the
    marker's colour tells the sign (keyed below the axes). Measures whose statistic is NaN
    are left out and named in the caption.

    ``data``, read back from the figure: ``measure``, ``abs_value``, ``lo``, ``hi``,
    ``sign``, top to bottom.
    """
    if statistic not in STATISTICS:
        raise OptionError(f"unknown statistic {statistic!r}; one of {', '.join(STATISTICS)}")
    lo_col, hi_col = f"{statistic}_lo", f"{statistic}_hi"
    require_columns(correlations, "measure", statistic, lo_col, hi_col)
    frame = correlations[["measure", statistic, lo_col, hi_col]].copy()
    missing = frame.loc[frame[statistic].isna(), "measure"].tolist()
    frame = frame[frame[statistic].notna()]
    if frame.empty:
        raise DataError(f"no measure has a defined {statistic} to rank")
    value = frame[statistic].to_numpy(dtype=float)
    sign = np.where(value < 0, -1.0, 1.0)
    lo = np.where(sign > 0, frame[lo_col], -frame[hi_col].to_numpy(dtype=float))
    hi = np.where(sign > 0, frame[hi_col], -frame[lo_col].to_numpy(dtype=float))
    order = np.argsort(-np.abs(value), kind="stable")
    names = frame["measure"].to_numpy()[order]
    magnitude, lo, hi, sign = np.abs(value)[order], lo[order], hi[order], sign[order]
    position = np.arange(len(names))[::-1].astype(float)  # strongest at the top
    label = _LABELS[statistic]
    with theme():
        figure, axes = new_figure(6.0, 1.4 + 0.32 * len(names))
        ax = axes[0, 0]
        has_ci = np.isfinite(lo) & np.isfinite(hi)
        if has_ci.any():
            # centred on the interval, not the estimate: a bootstrap CI need not hold it
            middle, half = (lo[has_ci] + hi[has_ci]) / 2, (hi[has_ci] - lo[has_ci]) / 2
            bars = ax.errorbar(
                middle,
                position[has_ci],
                xerr=half,
                fmt="none",
                ecolor="0.35",
                elinewidth=1.2,
                capsize=2.5,
            )
            bars.lines[2][0].set_gid("ci")
        positive, negative = colors(2)
        for s, color, text in ((1.0, positive, f"{label} > 0"), (-1.0, negative, f"{label} < 0")):
            mask = sign == s
            if mask.any():
                points = ax.scatter(magnitude[mask], position[mask], color=color, s=30, zorder=3)
                points.set_gid("points")
                points.set_label(text)
                points.sign = s
        ax.axvline(0.0, color="0.5", lw=0.8)
        ax.set_yticks(position, names)
        ax.set_xlabel(f"|{label}| with 95% bootstrap CI")
        ax.set_xlim(min(-0.05, np.nanmin(lo, initial=0.0) - 0.05), 1.02)
        legend_outside(figure, [ax], where="below")
        if missing:
            ax.set_title(f"undefined: {', '.join(missing)}", fontsize="small")
        data = _read_back(ax)
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _read_back(ax) -> pd.DataFrame:
    ticks = {
        float(t): label.get_text()
        for t, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    }
    rows = []
    for points in ax.collections:
        if points.get_gid() != "points":
            continue
        for x, y in np.asarray(points.get_offsets(), dtype=float):
            rows.append({"measure": ticks[y], "abs_value": x, "sign": points.sign, "_y": y})
    data = pd.DataFrame(rows)
    data["lo"], data["hi"] = np.nan, np.nan
    for collection in ax.collections:
        if collection.get_gid() == "ci":
            for segment in collection.get_segments():
                (x0, y0), (x1, _) = segment
                data.loc[data["_y"] == y0, ["lo", "hi"]] = [x0, x1]
    data = data.sort_values("_y", ascending=False).drop(columns="_y").reset_index(drop=True)
    return data[["measure", "abs_value", "lo", "hi", "sign"]]
