"""Ordinary least squares of the gap on a measure, and its group K-fold cross-validated R^2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.model_selection import GroupKFold

from genmeasures.correlation._common import (
    check_axes,
    check_gap,
    level_codes,
    measure_columns,
    pairs,
    rows,
)
from genmeasures.errors import OptionError

OLS_COLUMNS = (
    "measure",
    "n",
    "n_dropped",
    *(
        f"{term}{suffix}"
        for term in ("slope", "intercept")
        for suffix in ("", "_se", "_lo", "_hi", "_p")
    ),
    "r2",
    "adj_r2",
    "rmse",
    "note",
)
CV_COLUMNS = (
    "measure",
    "group",
    "n",
    "n_dropped",
    "n_groups",
    "n_folds",
    "cv_r2",
    "cv_rmse",
    "note",
)


def regression(
    table: pd.DataFrame,
    measures: str | Sequence[str] | None,
    gap: str,
    *,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """OLS fit ``gap = intercept + slope * measure + error`` per measure (statsmodels).

    Reports slope and intercept with standard errors, ``confidence`` intervals
    (t distribution, n - 2 degrees of freedom) and two-sided p-values, R^2 = 1 - SSE / SST,
    adjusted R^2 and the residual RMSE = sqrt(SSE / (n - 2)). Checkpoints with NaN are
    dropped and counted in ``n_dropped``; a constant measure gets NaN and a ``note``.
    """
    if not 0 < confidence < 1:
        raise OptionError(f"confidence must be in (0, 1), got {confidence}")
    check_gap(table, gap)
    names = measure_columns(table, measures)
    records = []
    for p in pairs(table, names, gap):
        record: dict[str, Any] = dict.fromkeys(OLS_COLUMNS, np.nan)
        record.update(measure=p.measure, n=p.n, n_dropped=p.n_dropped, note=p.note)
        if p.ok:
            fit = fit_ols(p.x, p.y)
            ci = fit.conf_int(alpha=1 - confidence)
            for k, term in enumerate(("intercept", "slope")):
                record[term] = float(fit.params[k])
                record[f"{term}_se"] = float(fit.bse[k])
                record[f"{term}_lo"], record[f"{term}_hi"] = (float(v) for v in ci[k])
                record[f"{term}_p"] = float(fit.pvalues[k])
            record.update(
                r2=float(fit.rsquared),
                adj_r2=float(fit.rsquared_adj),
                rmse=float(np.sqrt(fit.mse_resid)) if p.n > 2 else np.nan,
            )
        records.append(record)
    return rows(records, OLS_COLUMNS)


def fit_ols(x: np.ndarray, y: np.ndarray):
    """statsmodels' OLS results for ``y ~ 1 + x`` (params: intercept, slope)."""
    return sm.OLS(np.asarray(y, dtype=float), sm.add_constant(np.asarray(x, dtype=float))).fit()


def cross_validated_r2(
    table: pd.DataFrame,
    measures: str | Sequence[str] | None,
    gap: str,
    *,
    group: str,
    n_splits: int = 5,
) -> pd.DataFrame:
    """Out-of-sample R^2 of ``gap ~ measure`` with folds that hold out whole groups.

    The checkpoints are split by the levels of the hyperparameter column ``group`` (NaN is a
    level) into ``min(n_splits, levels)`` folds with scikit-learn's ``GroupKFold``, so a fold
    never sees the level it is tested on. Each fold is predicted by an OLS line fitted on the
    other folds (the training mean if the measure is constant there), and the pooled
    out-of-fold predictions give::

        cv_r2 = 1 - sum_i (g_i - g_hat_i)^2 / sum_i (g_i - mean(g))^2

    (negative when the line predicts held-out groups worse than the overall mean) and
    ``cv_rmse`` = sqrt(mean (g_i - g_hat_i)^2).
    """
    if n_splits < 2:
        raise OptionError(f"n_splits must be >= 2, got {n_splits}")
    check_gap(table, gap)
    names = measure_columns(table, measures)
    check_axes(table, [group])
    records = []
    for p in pairs(table, names, gap):
        record: dict[str, Any] = dict.fromkeys(CV_COLUMNS, np.nan)
        record.update(measure=p.measure, group=group, n=p.n, n_dropped=p.n_dropped, note=p.note)
        groups = level_codes(table.loc[p.keep], [group])
        n_groups = len(np.unique(groups))
        record.update(n_groups=n_groups, n_folds=0)
        if p.ok and n_groups < 2:
            record["note"] = f"{group!r} has one level where {p.measure!r} is finite"
        elif p.ok:
            folds = min(n_splits, n_groups)
            predicted = np.empty_like(p.y)
            for train, test in GroupKFold(n_splits=folds).split(p.x, p.y, groups):
                predicted[test] = _predict(p.x[train], p.y[train], p.x[test])
            residual = np.sum((p.y - predicted) ** 2)
            total = np.sum((p.y - p.y.mean()) ** 2)
            record.update(
                n_folds=folds,
                cv_r2=float(1 - residual / total),
                cv_rmse=float(np.sqrt(residual / p.n)),
            )
        records.append(record)
    return rows(records, CV_COLUMNS)


def _predict(x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    if len(x) < 2 or np.ptp(x) == 0:
        return np.full(len(x_new), y.mean())
    slope, intercept = np.polyfit(x, y, 1)
    return intercept + slope * x_new
