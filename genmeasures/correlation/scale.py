"""Scale agreement: is a measure (a bound) on the scale of the gap, or vacuous?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from genmeasures.correlation._common import check_gap, measure_columns, pairs, rows

COLUMNS = (
    "measure",
    "n",
    "n_dropped",
    "n_gap_nonpositive",
    "ratio_median",
    "ratio_q25",
    "ratio_q75",
    "ratio_iqr",
    "log10_ratio_median",
    "frac_measure_ge_gap",
    "note",
)


def scale_agreement(
    table: pd.DataFrame,
    measures: str | Sequence[str] | None,
    gap: str,
) -> pd.DataFrame:
    """The ratio measure / gap over checkpoints: median, quartiles and IQR = q75 - q25.

    Ju, Li & Zhang (ICML 2022) claim their Hessian bound is on the scale of the observed
    gap: a ratio near 1 supports that, a ratio of 10^3 says the bound is vacuous however well
    it ranks. The ratio is taken over checkpoints with a positive gap only (a zero or
    negative gap makes it meaningless); those are counted in ``n_gap_nonpositive``, NaNs in
    ``n_dropped``. ``frac_measure_ge_gap`` is the fraction of them where measure >= gap, i.e.
    where the measure, read as a bound, holds. Unlike the correlations, a constant measure
    has a defined ratio.
    """
    check_gap(table, gap)
    names = measure_columns(table, measures)
    records = []
    for p in pairs(table, names, gap, need_variation=False):
        record: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
        positive = p.y > 0
        record.update(
            measure=p.measure,
            n=int(positive.sum()),
            n_dropped=p.n_dropped,
            n_gap_nonpositive=int((~positive).sum()),
            note="",
        )
        if not p.ok:
            record["note"] = p.note
        elif positive.any():
            ratio = p.x[positive] / p.y[positive]
            q25, median, q75 = np.quantile(ratio, [0.25, 0.5, 0.75])
            record.update(
                ratio_median=float(median),
                ratio_q25=float(q25),
                ratio_q75=float(q75),
                ratio_iqr=float(q75 - q25),
                log10_ratio_median=float(np.log10(median)) if median > 0 else np.nan,
                frac_measure_ge_gap=float(np.mean(ratio >= 1)),
            )
        else:
            record["note"] = f"gap {gap!r} is never positive where {p.measure!r} is finite"
        records.append(record)
    return rows(records, COLUMNS)
