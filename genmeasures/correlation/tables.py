"""From the long score table to one row per checkpoint, and which columns are hyperparameters."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from genmeasures.correlation._common import as_list
from genmeasures.errors import DataError
from genmeasures.tables.schema import (
    ID_COLUMNS,
    SEED_COLUMNS,
    check_long_table,
    is_long,
    result_column_names,
    whole_model_rows,
    wide_column_name,
)

__all__ = ["hyperparameter_axes", "is_long", "whole_model_rows", "wide_table"]

_METRIC = re.compile(
    r"^(train|test|val|valid|validation|gap|recorded)_|_(loss|acc|accuracy|error|err)$"
)


def wide_table(
    long_table: pd.DataFrame, measures: Sequence[str] | str | None = None
) -> pd.DataFrame:
    """Pivot the long score table to one row per checkpoint and one column per measure.

    Only whole-model rows (empty ``layer``) are used. A measure scored with several different
    ``options`` strings gets one column per options string, named ``measure[options]``;
    otherwise the column is the measure's name (sub-quantities keep theirs, e.g.
    ``distance_bound.log10_value``). Every per-checkpoint column is kept (``run``, ``epoch``,
    ``n_train``, the metrics and gaps, the run's hyperparameters); the per-result columns of
    :mod:`genmeasures.tables.schema` (``options``, ``stderr``, ``seconds``, ...) are not,
    except the seed columns (``score_seed``, and ``seed`` as older tables name it) where set
    and constant within every checkpoint. Checkpoints keep their order of first appearance;
    seeds and epochs are left as they are (no averaging).

    ``measures`` selects measures by name (``distance_from_init`` selects all its options)
    or by column name (``distance_from_init[norm=mars]``). The measure columns are recorded in
    ``result.attrs["measures"]`` for :func:`~genmeasures.correlation.correlate`.
    """
    check_long_table(long_table)
    whole = whole_model_rows(long_table)
    if whole.empty:
        raise DataError("the score table has no whole-model rows (every row names a layer)")
    whole = whole.assign(
        options=whole["options"].fillna("").astype(str) if "options" in whole else "",
        measure=whole["measure"].astype(str),
    )
    whole = whole.assign(value=pd.to_numeric(whole["value"], errors="coerce"))
    names = _column_names(whole)
    whole = whole.assign(_column=names)
    wanted = as_list(measures)
    if wanted is not None:
        whole = whole[_select(whole, wanted)]
    columns = list(dict.fromkeys(whole["_column"]))

    duplicated = whole.duplicated(["checkpoint", "_column"])
    if duplicated.any():
        first = whole[duplicated].iloc[0]
        raise DataError(
            f"measure {first['_column']!r} appears twice for checkpoint {first['checkpoint']}; "
            "the table holds the same checkpoint scored twice"
        )
    values = whole.pivot(index="checkpoint", columns="_column", values="value")

    per_result = set(result_column_names(long_table))
    per_checkpoint = [c for c in long_table.columns if c not in per_result]
    source = long_table.drop_duplicates("checkpoint")
    info = source[per_checkpoint].set_index("checkpoint", drop=False)
    for seed in [c for c in SEED_COLUMNS if c in long_table.columns]:
        seeds = long_table.groupby("checkpoint", sort=False)[seed].nunique(dropna=False)
        if (seeds <= 1).all() and long_table[seed].notna().any():
            info = info.assign(**{seed: source.set_index("checkpoint")[seed]})
    clash = sorted(set(columns) & set(info.columns))
    if clash:
        raise DataError(f"measure {clash[0]!r} has the name of a checkpoint column")
    values = values.reindex(index=info.index, columns=columns)
    result = pd.concat([info, values.astype(float)], axis=1).reset_index(drop=True)
    result.columns.name = None
    result.attrs["measures"] = columns
    return result


def _column_names(whole: pd.DataFrame) -> pd.Series:
    n_options = whole.groupby("measure")["options"].nunique()
    several = whole["measure"].map(n_options) > 1
    names = [
        wide_column_name(measure, options, bool(many))
        for measure, options, many in zip(whole["measure"], whole["options"], several, strict=True)
    ]
    return pd.Series(names, index=whole.index, dtype=object)


def _select(whole: pd.DataFrame, wanted: list[str]) -> pd.Series:
    known_measures, known_columns = set(whole["measure"]), set(whole["_column"])
    for name in wanted:
        if name not in known_measures and name not in known_columns:
            available = ", ".join(sorted(known_columns))
            raise DataError(f"no measure {name!r} in the table; measures: {available}")
    return whole["measure"].isin(wanted) | whole["_column"].isin(wanted)


def hyperparameter_axes(
    table: pd.DataFrame,
    *,
    exclude: Sequence[str] = (),
) -> list[str]:
    """The run-configuration columns that vary: the default hyperparameter axes.

    Tables that ``genmeasures score`` writes for genmeasures runs carry the run config as
    dotted columns (``algorithm.name``, ``data.noise_rate``, ``algorithm.distance``, ...) plus
    ``method``; then only those are candidates. Otherwise a candidate is any column but
    ``checkpoint``, ``run``, ``epoch``, ``tag``, the seeds, the measure columns
    (``table.attrs["measures"]``), ``exclude`` and metric-like names (``train_*``, ``test_*``,
    ``val_*``, ``gap_*``, ``*_loss``, ``*_acc``, ``*_error``).

    A candidate is an axis when its non-missing values take at least two levels (an option
    that does not apply to some algorithms is missing there, not a level) and it is constant
    within every run (``run`` column) — metrics change from epoch to epoch, hyperparameters do
    not. Seeds (``*seed``) are never axes, a column that splits the checkpoints exactly
    as an earlier axis does (``method`` and ``algorithm.name``) is kept once, and a column
    that takes one value within every level of an earlier axis is nested in it, not an axis
    of its own (``algorithm.gamma`` when every constraint run has gamma 2: fixed by
    ``method``).
    """
    skip = set(ID_COLUMNS) | set(table.attrs.get("measures", [])) | set(exclude)
    columns = [c for c in table.columns if c not in skip and not str(c).endswith("seed")]
    dotted = [c for c in columns if "." in str(c) and c not in table.attrs.get("measures", [])]
    if dotted:
        candidates = (["method"] if "method" in columns else []) + dotted
    else:
        candidates = [c for c in columns if not _METRIC.search(str(c))]
    runs = None
    if "run" in table.columns:
        named = table["run"].notna() & (table["run"].astype(str) != "")
        runs = table[named] if named.any() else None
    axes: list[str] = []
    partitions: list[pd.Series] = []
    for column in candidates:
        if table[column].dropna().nunique() < 2:
            continue
        if runs is not None:
            within = runs.groupby("run")[column].nunique(dropna=False)
            if (within > 1).any():
                continue
        codes = pd.Series(pd.factorize(table[column].map(str))[0], index=table.index)
        if any(_determined_by(codes, earlier) for earlier in partitions):
            continue
        partitions.append(codes)
        axes.append(column)
    return axes


def _determined_by(codes: pd.Series, earlier: pd.Series) -> bool:
    """Whether ``codes`` takes one value within each level of ``earlier`` (the same
    partition, or a coarser one: a column nested in an earlier axis)."""
    pairs = pd.DataFrame({"codes": codes, "earlier": earlier}).drop_duplicates()
    return bool(pairs["earlier"].is_unique)
