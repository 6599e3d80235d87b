"""Jiang et al.'s conditional mutual information between the signs of measure and gap changes."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, permutations
from typing import Any

import numpy as np
import pandas as pd

from genmeasures.correlation._common import (
    check_axes,
    check_gap,
    level_codes,
    measure_columns,
    pairs,
    rows,
)
from genmeasures.errors import OptionError

CMI_VARIANTS = ("genmeasures", "pgdl")
PGDL_NOTE = "cmi_variant='pgdl'"  # in the note of every measure's row under that variant
EMPTY_SUBSET = "(none)"
SUMMARY_COLUMNS = ("measure", "cmi", "cmi_subset", "n", "n_dropped", "n_subsets", "note")
SUBSET_COLUMNS = ("measure", "subset", "size", "n_cells", "n_pairs", "mi_bits", "h_gap_bits", "cmi")
_BLOCK = 1 << 22  # ordered pairs handled at once


def conditional_mutual_information(
    table: pd.DataFrame,
    measures: str | Sequence[str] | None,
    gap: str,
    axes: str | Sequence[str] | None,
    *,
    max_subset_size: int = 2,
    cmi_variant: str = "genmeasures",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalized conditional mutual information K(mu) of Jiang et al. (ICLR 2020,
    "Fantastic generalization measures and where to find them").

    ``cmi_variant="pgdl"`` computes instead the score of the PGDL competition, exactly as
    its scoring program does: see :func:`pgdl_conditional_mutual_information`. The default,
    ``"genmeasures"``, computes:

    - **Pairs**: every ordered pair (i, j), i != j, of checkpoints where measure and gap are
      finite (no averaging over seeds). V_mu = sign(mu_i - mu_j) and V_g = sign(g_i - g_j),
      each in {-1, 0, +1} (ties are a value of their own; a constant measure has V_mu = 0).
    - **Conditioning**: for a subset S of the axes, the cell of a pair is
      U_S = (theta_S(i), theta_S(j)), the *ordered* pair of the two checkpoints' levels on S.
      So a hyperparameter that alone decides which of two checkpoints has the larger gap
      explains V_g within its cells, and a measure that merely tracks it gets no credit.
    - **Weighting of cells**: by their share of pairs, p(u) = pairs in u / all pairs (the
      joint distribution of a uniformly drawn pair; the PGDL scoring script instead weights
      the possible cells uniformly). In bits::

          I(V_mu; V_g | U_S) = sum_u p(u) sum_{a,b} p(a,b|u) log2 p(a,b|u) / (p(a|u) p(b|u))
          H(V_g | U_S)       = -sum_u p(u) sum_b p(b|u) log2 p(b|u)
          I_hat(S)           = I(V_mu; V_g | U_S) / H(V_g | U_S)   (in [0, 1])

    - **Subsets**: every S with |S| <= ``max_subset_size`` (default 2, as Jiang et al.),
      the empty set included (plain normalized mutual information), and
      K(mu) = min_S I_hat(S). A subset whose cells leave no uncertainty in V_g
      (H = 0: too few checkpoints per cell, or S decides the gap) has I_hat = NaN and is
      left out of the minimum.

    K is 0 for a measure independent of the gap given the hyperparameters and 1 for a
    measure whose changes always have the sign of the gap's (or always the opposite sign:
    mutual information does not see direction; read it with Kendall's tau).

    Returns ``(summary, per_subset)``: one row per measure (``cmi`` = K, ``cmi_subset`` =
    the minimizing S, ``(none)`` for the empty set) and one row per measure x subset.
    """
    if cmi_variant not in CMI_VARIANTS:
        raise OptionError(
            f"unknown cmi_variant {cmi_variant!r}; choose one of: {', '.join(CMI_VARIANTS)}"
        )
    if max_subset_size < 0:
        raise OptionError(f"max_subset_size must be >= 0, got {max_subset_size}")
    if cmi_variant == "pgdl":
        if max_subset_size != 2:
            raise OptionError(
                f"max_subset_size={max_subset_size} does not apply to cmi_variant='pgdl', "
                "which conditions on every pair of axes; leave it at 2"
            )
        return pgdl_conditional_mutual_information(table, measures, gap, axes)
    check_gap(table, gap)
    names = measure_columns(table, measures)
    axes = check_axes(table, axes)
    subsets = [
        s for size in range(min(max_subset_size, len(axes)) + 1) for s in combinations(axes, size)
    ]
    summary, detail = [], []
    for p in pairs(table, names, gap):
        record = {"measure": p.measure, "cmi": np.nan, "cmi_subset": "", "n": p.n}
        record.update(n_dropped=p.n_dropped, n_subsets=0, note=p.note)
        if not p.ok:
            summary.append(record)
            continue
        kept = table.loc[p.keep]
        mine: list[dict[str, Any]] = []
        for subset in subsets:
            mi, h, n_cells, n_pairs = _conditional_information(p.x, p.y, level_codes(kept, subset))
            row: dict[str, Any] = {
                "measure": p.measure,
                "subset": ",".join(subset) or EMPTY_SUBSET,
                "size": len(subset),
                "n_cells": n_cells,
                "n_pairs": n_pairs,
                "mi_bits": mi,
                "h_gap_bits": h,
                "cmi": mi / h if h > 1e-12 else np.nan,
            }
            detail.append(row)
            if np.isfinite(row["cmi"]):
                mine.append(row)
        if mine:
            best = min(mine, key=lambda d: d["cmi"])
            record.update(cmi=best["cmi"], cmi_subset=best["subset"], n_subsets=len(mine))
        else:
            record["note"] = f"no axis subset leaves the gap's sign uncertain for {p.measure!r}"
        summary.append(record)
    return rows(summary, SUMMARY_COLUMNS), rows(detail, SUBSET_COLUMNS)


def _conditional_information(
    x: np.ndarray, y: np.ndarray, cells: np.ndarray
) -> tuple[float, float, int, int]:
    """I(V_x; V_y | U) and H(V_y | U) in bits over ordered pairs, U = (cell_i, cell_j)."""
    n = len(x)
    n_levels = int(cells.max()) + 1 if n else 1
    counts = np.zeros(n_levels * n_levels * 9, dtype=np.int64)
    block = max(1, _BLOCK // max(n, 1))
    columns = np.arange(n)
    for start in range(0, n, block):
        i = np.arange(start, min(start + block, n))
        sx = np.sign(x[i, None] - x[None, :]).astype(np.int64) + 1
        sy = np.sign(y[i, None] - y[None, :]).astype(np.int64) + 1
        cell = cells[i, None] * n_levels + cells[None, :]
        key = cell * 9 + sy * 3 + sx
        off_diagonal = i[:, None] != columns[None, :]
        counts += np.bincount(key[off_diagonal], minlength=counts.size)
    table = counts.reshape(-1, 3, 3).astype(float)  # cell, V_y, V_x
    per_cell = table.sum(axis=(1, 2))
    table, per_cell = table[per_cell > 0], per_cell[per_cell > 0]
    total = per_cell.sum()
    if total == 0:
        return 0.0, 0.0, 0, 0
    joint = table / per_cell[:, None, None]
    p_y = joint.sum(axis=2, keepdims=True)
    p_x = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / (p_y * p_x)), 0.0)
        h_terms = np.where(p_y > 0, -p_y * np.log2(p_y), 0.0)
    weight = per_cell / total
    mi = float(np.clip(weight @ terms.sum(axis=(1, 2)), 0.0, None))
    h = float(weight @ h_terms.sum(axis=(1, 2)))
    return mi, h, len(per_cell), int(total)


def pgdl_conditional_mutual_information(
    table: pd.DataFrame,
    measures: str | Sequence[str] | None,
    gap: str,
    axes: str | Sequence[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The conditional mutual information score of the PGDL competition (NeurIPS 2020,
    "Predicting generalization in deep learning"), as its scoring program computes it
    (``scoring_program/mutual_information.py`` of the competition's starting kit), quirks
    included:

    - **Pairs**: every ordered pair (i, j) of checkpoints, i = j included (each checkpoint
      with itself); no averaging over seeds.
    - **Binary signs**: V_mu = + if mu_i > mu_j else -, V_g = + if g_i > g_j else - (a tie,
      and so every pair (i, i), counts as -; a constant measure has V_mu = - throughout).
    - **Conditioning on pairs of axes only**: every ordered pair (a, b) of distinct axes, in
      the order of ``axes`` (each unordered pair twice, with the same value up to
      rounding); never the empty set or a single axis. A pair's cell is named by the string
      str(a_i) + str(a_j) + str(b_i) + str(b_j) of the two checkpoints' levels.
    - **Uniform cell weights**: means over all L_a^2 * L_b^2 possible cells (L: the number
      of levels present), however many pairs each holds; in bits::

          I(a, b) = mean_u sum_{s,t} p(s,t|u) log2 p(s,t|u) / (p_g(s|u) p_mu(t|u))
          H(a, b) = mean_u -sum_s p_g(s|u) log2(p_g(s|u) + 1e-12)
          K = running minimum over (a, b) of I(a, b) / H(a, b)

    - **Degenerate cases, as the program has them**: a possible cell without a pair (a
      combination of levels missing from an incomplete grid, or two cells whose names
      coincide, e.g. levels ``1`` and ``11``) makes I and H NaN for that pair of axes. The
      minimum is Python's ``min(value, running)`` in loop order, so a NaN pair of axes
      replaces the running minimum and the next defined pair restarts it (K is NaN when
      the last pair is; the note names the NaN pairs). When every cell leaves V_g
      determined (e.g. two axes and one checkpoint per configuration: each cell holds one
      pair), H is about -1.44e-12 (the 1e-12 inside the log) and K = 0, not NaN. A
      constant measure gets K = 0. With fewer than two axes the program returns inf; here
      K is NaN with a note.

    The competition's gap is train accuracy - test accuracy (``gap="gap_acc"``), and it
    scores only complete grids with one model per configuration; this function applies the
    program's arithmetic to any table.

    Returns ``(summary, per_subset)`` as :func:`conditional_mutual_information` does; per
    axis pair ``a,b``: ``n_cells`` the possible cells, ``n_pairs`` = n^2, ``mi_bits`` and
    ``h_gap_bits`` the means over cells. ``n_subsets`` counts the axis pairs with a defined
    value, and every measure's ``note`` says ``cmi_variant='pgdl'``.
    """
    check_gap(table, gap)
    names = measure_columns(table, measures)
    axes = check_axes(table, axes)
    subsets = list(permutations(axes, 2))
    summary, detail = [], []
    for p in pairs(table, names, gap, need_variation=False):
        record = {"measure": p.measure, "cmi": np.nan, "cmi_subset": "", "n": p.n}
        record.update(n_dropped=p.n_dropped, n_subsets=0, note=_join(p.note, PGDL_NOTE))
        if not p.ok:
            summary.append(record)
            continue
        if not subsets:
            record["note"] = _join(
                PGDL_NOTE,
                f"it conditions on pairs of axes and there are {len(axes)}; "
                "the scoring program returns inf",
            )
            summary.append(record)
            continue
        kept = table.loc[p.keep]
        running, chosen, undefined = np.inf, "", []
        for first, second in subsets:
            mi, h, n_cells = _pgdl_information(p.x, p.y, kept[first], kept[second])
            with np.errstate(divide="ignore", invalid="ignore"):
                value = float(np.float64(mi) / np.float64(h)) + 0.0  # -0.0 -> 0.0
            name = f"{first},{second}"
            detail.append(
                {
                    "measure": p.measure,
                    "subset": name,
                    "size": 2,
                    "n_cells": n_cells,
                    "n_pairs": p.n * p.n,
                    "mi_bits": mi,
                    "h_gap_bits": h,
                    "cmi": value,
                }
            )
            if np.isnan(value):
                undefined.append(name)
            if not running < value:  # min(value, running), as the scoring program has it
                running, chosen = value, name
        record.update(cmi=running, n_subsets=len(subsets) - len(undefined))
        record["cmi_subset"] = chosen if np.isfinite(running) else ""
        if undefined:
            record["note"] = _join(
                PGDL_NOTE,
                f"axis pairs with an empty cell (NaN): {'; '.join(undefined)}; the scoring "
                "program's running minimum restarts after each",
            )
        summary.append(record)
    return rows(summary, SUMMARY_COLUMNS), rows(detail, SUBSET_COLUMNS)


def _pgdl_information(
    x: np.ndarray, y: np.ndarray, first: pd.Series, second: pd.Series
) -> tuple[float, float, int]:
    """The PGDL program's mean I(V_x; V_y | cell) and mean H(V_y | cell) over the possible
    cells of the axis pair (first, second); NaN when a possible cell holds no pair."""
    a, levels_a = pd.factorize(first, use_na_sentinel=False)
    b, levels_b = pd.factorize(second, use_na_sentinel=False)
    la, lb = len(levels_a), len(levels_b)
    n_cells, n = la * la * lb * lb, len(x)
    if n_cells > n * n:  # more possible cells than pairs: some cell is empty
        return np.nan, np.nan, n_cells
    counts = np.zeros(n_cells * 4, dtype=np.int64)
    block = max(1, _BLOCK // max(n, 1))
    for start in range(0, n, block):
        i = slice(start, min(start + block, n))
        cell = ((a[i, None] * la + a[None, :]) * lb + b[i, None]) * lb + b[None, :]
        gap_minus = (y[i, None] <= y[None, :]).astype(np.int64)  # index 0: +, 1: -
        measure_minus = (x[i, None] <= x[None, :]).astype(np.int64)
        key = cell * 4 + gap_minus * 2 + measure_minus
        counts += np.bincount(key.ravel(), minlength=counts.size)
    table = counts.reshape(n_cells, 2, 2).astype(float)  # cell, V_y, V_x
    per_cell = table.sum(axis=(1, 2))
    if (per_cell == 0).any() or not _distinct_cell_names(levels_a, levels_b):
        return np.nan, np.nan, n_cells
    joint = table / per_cell[:, None, None]
    p_y = table.sum(axis=2) / per_cell[:, None]
    p_x = table.sum(axis=1) / per_cell[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = joint / (p_y[:, :, None] * p_x[:, None, :])
        terms = np.where(joint > 0, joint * np.log2(ratio), 0.0)
    h = -(p_y * np.log2(p_y + 1e-12)).sum(axis=1)
    return float(terms.sum(axis=(1, 2)).mean()), float(h.mean()), n_cells


def _distinct_cell_names(levels_a, levels_b) -> bool:
    """Whether the program's cell names str(a) + str(a') + str(b) + str(b') are distinct.

    Only called once every possible cell holds a pair, so there are at most n^2 names."""
    single_a = [str(u) + str(v) for u in levels_a for v in levels_a]
    single_b = [str(u) + str(v) for u in levels_b for v in levels_b]
    names = {u + v for u in single_a for v in single_b}
    return len(names) == len(single_a) * len(single_b)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
