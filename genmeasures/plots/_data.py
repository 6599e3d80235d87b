"""Table helpers the plots share: matching a level, and the statistics of replicates."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Band = Literal["sd", "range"]
StderrMean = Literal["independent", "shared"]


def matches(column: pd.Series, level) -> pd.Series:
    """``column == level``, where a NaN level matches the missing values."""
    return column.isna() if pd.isna(level) else column == level


def replicate_stats(
    x: pd.Series,
    y: pd.Series,
    band: Band | None,
    errors: pd.Series | None = None,
    stderr_mean: StderrMean = "independent",
) -> pd.DataFrame:
    """Per distinct ``x`` (sorted): the mean of ``y`` over its replicates, a band ``lo..hi``,
    the count ``n`` and ``stderr``, the standard error of the mean from the replicates' own
    ``errors`` (NaN without them).

    The band is mean +- one standard deviation (``"sd"``), min..max (``"range"``), or,
    with ``band=None``, mean +- ``stderr`` (flat at the mean without ``errors``). The
    replicates' errors combine as independent (sqrt(sum se^2) / n) or ``"shared"`` (mean se:
    the replicates share their noise draws); one missing error makes the mean's unknown.
    Rows with a missing x or y are left out.
    """
    frame = pd.DataFrame({"x": x, "y": y})
    frame["se"] = np.nan if errors is None else errors.to_numpy(dtype=float)
    frame = frame.dropna(subset=["x", "y"])
    if frame.empty:
        return pd.DataFrame(columns=["x", "mean", "lo", "hi", "n", "stderr"])
    grouped = frame.groupby("x", sort=True)
    stats = grouped["y"].agg(["mean", "std", "min", "max", "count"]).reset_index()
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
