"""Jiang et al.'s granulated Kendall coefficient Psi, defined on incomplete grids too."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from genmeasures.correlation._common import (
    check_axes,
    check_gap,
    measure_columns,
    pairs,
    rows,
)
from genmeasures.correlation.rank import kendall_tau_b_rows
from genmeasures.errors import DataError, OptionError

PSI_VARIANTS = ("genmeasures", "jiang")
JIANG_NOTE = "psi_variant='jiang'"  # in the note of every measure's row under that variant
PSI_COLUMNS = ("measure", "psi", "n_axes", "n", "n_dropped", "n_configs", "note")
AXIS_COLUMNS = (
    "measure",
    "axis",
    "psi_axis",
    "n_groups",
    "n_groups_skipped",
    "n_groups_undefined",
    "n_levels",
)
_TAU_BLOCK = 1 << 22  # ordered pairs handled at once by jiang_tau


def granulated_kendall(
    table: pd.DataFrame,
    measures: str | Sequence[str] | None,
    gap: str,
    axes: str | Sequence[str],
    *,
    average_seeds: bool = True,
    seed_column: str = "seed",
    fixed: Sequence[str] = ("epoch",),
    psi_variant: str = "genmeasures",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Granulated Kendall coefficient (Jiang et al., ICLR 2020, "Fantastic generalization
    measures and where to find them").

    For hyperparameter axis i, the checkpoints are grouped by the values of every *other*
    axis (and of the ``fixed`` columns, e.g. ``epoch``, unless they are themselves axes), so
    that within a group only axis i varies. With tau_g a Kendall tau between measure and gap
    inside group g::

        psi_i = (1 / m_i) * sum_g tau_g        Psi = (1 / k) * sum_i psi_i

    Groups in which axis i takes fewer than two levels are skipped and counted in
    ``n_groups_skipped`` (the grid may be incomplete); k counts the axes with a defined
    psi_i. ``psi_variant`` chooses tau_g and m_i:

    - ``"genmeasures"`` (default): tau_g is Kendall's tau-b (ties corrected) and a group
      where the measure or the gap is constant has no tau_g: it is left out of m_i and
      counted in ``n_groups_undefined``, so a measure that varies along one axis only gets
      that axis's psi as its Psi.
    - ``"jiang"``: Jiang et al.'s formula. tau_g is their tau, the mean of
      sign(mu_a - mu_b) * sign(g_a - g_b) over the ordered pairs a != b of the group
      (tau-a: a tied pair counts 0 and stays in the denominator), so a group where the
      measure or the gap is constant has tau_g = 0 and counts in m_i (and in
      ``n_groups_undefined``, which then counts the constant groups that scored 0). A
      measure constant over every checkpoint gets Psi = 0 rather than NaN.

    On a complete grid with one checkpoint (or seed mean) per configuration, m_i is the
    number of combinations of the other axes, as in the paper, and ``"jiang"`` is exactly
    Jiang et al.'s Psi; ``"genmeasures"`` equals it when no group has a tie in the measure
    or the gap (then tau-b = tau-a and no group is constant).

    ``average_seeds``: first replace the checkpoints of one configuration (same axes and
    ``fixed`` values; ``seed_column`` and any column that is not an axis are what differ
    between them) by the mean measure and mean gap, as Jiang et al. do. NaN in an axis
    column is a level of its own. Checkpoints with a NaN measure or gap are dropped and
    counted (``n_dropped``).

    Returns ``(psi, per_axis)``: one row per measure (``psi``, ``n_axes``, ``n`` checkpoints
    used, ``n_configs`` after averaging, ``note``; with ``psi_variant="jiang"`` the note
    says ``psi_variant='jiang'``) and one row per measure x axis.
    """
    check_psi_variant(psi_variant)
    jiang = psi_variant == "jiang"
    check_gap(table, gap)
    names = measure_columns(table, measures)
    axes = check_axes(table, axes)
    if not axes:
        raise DataError("granulated Kendall needs at least one hyperparameter axis")
    if average_seeds and seed_column in axes:
        raise OptionError(
            f"seed column {seed_column!r} is an axis; pass average_seeds=False to keep it"
        )
    fixed = [c for c in fixed if c in table.columns and c not in axes]
    psi_records, axis_records = [], []
    tag = JIANG_NOTE if jiang else ""
    for p in pairs(table, names, gap, need_variation=not jiang):
        record = {"measure": p.measure, "psi": np.nan, "n_axes": 0, "n": p.n}
        record.update(n_dropped=p.n_dropped, n_configs=np.nan, note=_join(p.note, tag))
        if not p.ok:
            psi_records.append(record)
            axis_records += [_axis_record(p.measure, axis) for axis in axes]
            continue
        frame = table.loc[p.keep, [*axes, *fixed]].assign(_measure=p.x, _gap=p.y)
        if average_seeds:
            frame = (
                frame.groupby([*axes, *fixed], dropna=False, sort=False)[["_measure", "_gap"]]
                .mean()
                .reset_index()
            )
        record["n_configs"] = len(frame)
        per_axis = []
        for axis in axes:
            others = [a for a in axes if a != axis] + fixed
            axis_record = _one_axis(frame, axis, others, jiang)
            axis_records.append({"measure": p.measure, **axis_record})
            per_axis.append(axis_record["psi_axis"])
        defined = [v for v in per_axis if np.isfinite(v)]
        record["n_axes"] = len(defined)
        if defined:
            record["psi"] = float(np.mean(defined))
        else:
            why = "two levels of" if jiang else "a defined Kendall tau on"
            record["note"] = _join(f"no group of {p.measure!r} has {why} any axis", tag)
        psi_records.append(record)
    return rows(psi_records, PSI_COLUMNS), rows(axis_records, AXIS_COLUMNS)


def check_psi_variant(psi_variant: str) -> None:
    if psi_variant not in PSI_VARIANTS:
        raise OptionError(
            f"unknown psi_variant {psi_variant!r}; choose one of: {', '.join(PSI_VARIANTS)}"
        )


def _one_axis(frame: pd.DataFrame, axis: str, others: list[str], jiang: bool) -> dict:
    taus, skipped, undefined = [], 0, 0
    groups = frame.groupby(others, dropna=False, sort=False) if others else [((), frame)]
    for _, group in groups:
        if group[axis].nunique(dropna=False) < 2:
            skipped += 1
            continue
        x = group["_measure"].to_numpy(dtype=float)
        y = group["_gap"].to_numpy(dtype=float)
        if jiang:
            undefined += int(np.ptp(x) == 0 or np.ptp(y) == 0)
            taus.append(jiang_tau(x, y))
            continue
        tau = kendall_tau_b_rows(x[None, :], y[None, :])[0]
        if np.isfinite(tau):
            taus.append(tau)
        else:
            undefined += 1
    return {
        "axis": axis,
        "psi_axis": float(np.mean(taus)) if taus else np.nan,
        "n_groups": len(taus),
        "n_groups_skipped": skipped,
        "n_groups_undefined": undefined,
        "n_levels": int(frame[axis].nunique(dropna=False)),
    }


def jiang_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Jiang et al.'s tau: sum over ordered pairs a != b of sign(x_a - x_b) sign(y_a - y_b),
    divided by n (n - 1) (Kendall's tau-a; 0 when x or y is constant)."""
    n = len(x)
    total = 0
    block = max(1, _TAU_BLOCK // max(n, 1))
    for start in range(0, n, block):
        sx = np.sign(x[start : start + block, None] - x[None, :])
        sy = np.sign(y[start : start + block, None] - y[None, :])
        total += int((sx * sy).sum())  # the diagonal contributes sign(0) = 0
    return total / (n * (n - 1))


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _axis_record(measure: str, axis: str) -> dict:
    return {
        "measure": measure,
        "axis": axis,
        "psi_axis": np.nan,
        "n_groups": 0,
        "n_groups_skipped": 0,
        "n_groups_undefined": 0,
        "n_levels": 0,
    }
