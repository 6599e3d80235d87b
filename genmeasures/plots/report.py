"""Every figure of a correlation study, written to one folder."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from genmeasures.correlation import CorrelationReport
from genmeasures.errors import DataError
from genmeasures.plots._output import PlotResult, safe_name
from genmeasures.plots.layers import layer_profiles
from genmeasures.plots.ranking import ranking_chart
from genmeasures.plots.scatter import measure_vs_gap
from genmeasures.plots.trends import trend
from genmeasures.tables.schema import per_layer_rows, split_wide_column


def plot_report(
    report: CorrelationReport,
    out_dir: str | os.PathLike,
    *,
    long_table: pd.DataFrame | None = None,
) -> list[PlotResult]:
    """Write the figures of ``report`` to ``out_dir`` (PNG and PDF each).

    - ``ranking``: measures by |Kendall tau| with bootstrap CIs;
    - ``gap_vs_<measure>``: the gap against each measure with the OLS line and band,
      coloured by the first hyperparameter axis (else the epoch);
    - ``<measure>_vs_<x>``: measure and gap against the epoch (if it varies, else the first
      axis), one line per configuration of the other axes (per level of the first of them
      when there are more than ten configurations), bands over the remaining replicates
      (seeds); a categorical first axis (the method) is drawn as points with error bars,
      the configurations side by side;
    - ``layers_<measure>``: per-layer profiles, when ``long_table`` (the score table) has
      per-layer rows for the measure.

    Every legend is outside its axes (:func:`~genmeasures.plots.style.legend_outside`). A
    figure that cannot be drawn (e.g. fewer than two finite points) is skipped with a
    warning naming it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, gap, axes = report.table, report.gap, report.axes
    epoch_varies = "epoch" in table.columns and table["epoch"].nunique() > 1
    hue = axes[0] if axes else ("epoch" if epoch_varies else None)
    x = "epoch" if epoch_varies else (axes[0] if axes else None)
    lines = [a for a in axes if a != x]
    line_hue = None
    if lines:
        table, line_hue = _configurations(table, lines)
    results: list[PlotResult] = []

    def attempt(what: str, draw) -> None:
        try:
            results.append(draw())
        except DataError as exc:
            warnings.warn(f"skipped plot {what}: {exc}", UserWarning, stacklevel=3)

    attempt("ranking", lambda: ranking_chart(report.summary, out / "ranking"))
    for measure in report.summary["measure"]:
        name = safe_name(measure)
        attempt(
            f"gap_vs_{name}",
            lambda m=measure, n=name: measure_vs_gap(table, m, gap, out / f"gap_vs_{n}", hue=hue),
        )
        if x is not None:
            stem = out / f"{name}_vs_{safe_name(x)}"
            attempt(stem.name, lambda m=measure, s=stem: trend(table, x, m, gap, s, hue=line_hue))
        if long_table is not None and {"measure", "layer"} <= set(long_table.columns):
            base, options = split_wide_column(measure)
            if _has_layers(long_table, base):
                attempt(
                    f"layers_{name}",
                    lambda b=base, o=options, n=name: layer_profiles(
                        long_table, b, out / f"layers_{n}", options=o
                    ),
                )
    return results


def _has_layers(long_table: pd.DataFrame, measure: str) -> bool:
    return bool((per_layer_rows(long_table)["measure"] == measure).any())


def _configurations(table: pd.DataFrame, axes: list[str]) -> tuple[pd.DataFrame, str]:
    """A column naming each combination of ``axes`` (at most ten), else the first axis."""
    combos = table[axes].map(str).agg(", ".join, axis=1) if len(axes) > 1 else None
    if combos is None or combos.nunique() > 10:
        return table, axes[0]
    column = " / ".join(axes)
    return table.assign(**{column: combos}), column
