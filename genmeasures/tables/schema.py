"""The long score table, declared once: its columns, their types and meaning, and its checks.

``genmeasures score`` (and :func:`genmeasures.score_checkpoints`) writes one row per
checkpoint x measure x layer. The columns come in this order:

1. the checkpoint columns (:data:`CHECKPOINT_COLUMNS`), the same on every row of a checkpoint;
2. the result columns (:data:`RESULT_COLUMNS`), one measure result each
   (:func:`genmeasures.score` returns only these);
3. then, per checkpoint, its recorded metrics (``train_loss``, ``test_acc``, ...; one named
   like a column above is renamed ``recorded_NAME``), its observed gaps (``gap_loss`` =
   test - train loss, ``gap_acc`` = train - test accuracy) and its run's configuration as
   dotted keys (``algorithm.name``, ``train.seed``, ...).

Tables written by earlier versions still read: before ``score_seed`` had its name, the
scoring seed was written as ``seed`` (:data:`LEGACY_RESULT_COLUMNS`). That name is not
renamed on reading, because ``seed`` is also what users call a run's seed in their own
tables; both are treated as :data:`SEED_COLUMNS` (kept in the wide table where constant
within every checkpoint).

The wide table (:func:`genmeasures.correlation.wide_table`) has one column per measure,
named ``measure[options]`` where a measure was scored with several options strings
(:func:`wide_column_name`, :func:`split_wide_column`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from genmeasures.errors import DataError

ColumnType = Literal["text", "integer", "number"]


@dataclass(frozen=True)
class Column:
    """One column of the long table: its name, type and meaning.

    ``dtype``: ``"text"``, ``"integer"`` or ``"number"`` (float); a missing value (empty in
    CSV, NaN once read) is allowed in every column but ``measure``, and ``missing`` says what
    it means.
    """

    name: str
    dtype: ColumnType
    meaning: str
    missing: str = ""

    @property
    def numeric(self) -> bool:
        return self.dtype != "text"


#: Columns that describe the checkpoint, the same on each of its rows.
CHECKPOINT_COLUMNS: tuple[Column, ...] = (
    Column("checkpoint", "text", "path of the checkpoint file"),
    Column("run", "text", "its run directory", "'' for a file outside a run"),
    Column("epoch", "integer", "the epoch it was saved at", "not recorded"),
    Column("tag", "text", "its tag (best, last, ...)", "''"),
    Column("n_train", "integer", "number of training samples of its run", "not recorded"),
    Column(
        "tensor_order",
        "text",
        "where the order of per-layer rows comes from: model, recorded or file",
    ),
    Column(
        "init_head",
        "text",
        "how the init's head was taken: init (as it is) or zero (a new head, from zero)",
        "'' without an init",
    ),
)

#: Columns of one measure result.
RESULT_COLUMNS: tuple[Column, ...] = (
    Column(
        "measure",
        "text",
        "the measure's name; a sub-quantity is MEASURE.KEY (distance_bound.log10_value)",
    ),
    Column("options", "text", "its options as canonical key=value,... text", "'' for none"),
    Column("layer", "text", "the layer of a per-layer value", "'' for the whole model"),
    Column("value", "number", "the measure's value", "not computable (NaN)"),
    Column("stderr", "number", "standard error of a stochastic estimate", "exact or unknown"),
    Column("n_samples", "integer", "number of evaluation samples used", "no data used"),
    Column("score_seed", "integer", "seed of a stochastic measure", "deterministic measure"),
    Column("seconds", "number", "wall-clock time of the measure", "unknown"),
    Column("n_matvecs", "integer", "Hessian (or GGN) vector products spent", "0"),
)

CHECKPOINT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKPOINT_COLUMNS)
RESULT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in RESULT_COLUMNS)
#: The declared columns in table order (the rest follow them).
LONG_TABLE_COLUMNS: tuple[str, ...] = CHECKPOINT_COLUMN_NAMES + RESULT_COLUMN_NAMES
COLUMNS: Mapping[str, Column] = {c.name: c for c in CHECKPOINT_COLUMNS + RESULT_COLUMNS}

#: The columns without which a table is not a long score table.
REQUIRED_COLUMNS: tuple[str, ...] = ("checkpoint", "measure", "value")
#: Earlier names of result columns, still read: old name -> current name.
LEGACY_RESULT_COLUMNS: Mapping[str, str] = {"seed": "score_seed"}
#: Per-result seed columns: kept in the wide table only where constant within every
#: checkpoint (then they belong to the checkpoint).
SEED_COLUMNS: tuple[str, ...] = ("score_seed", *LEGACY_RESULT_COLUMNS)
#: Columns that identify a checkpoint but are never hyperparameter axes (``seed``: the
#: run's seed in a user's table, or an old table's scoring seed).
ID_COLUMNS: tuple[str, ...] = (
    "checkpoint",
    "run",
    "epoch",
    "tag",
    "seed",
    "tensor_order",
    "init_head",
)

_WIDE_COLUMN = re.compile(r"^(?P<name>.+)\[(?P<options>.*)\]$")


def is_long(table: pd.DataFrame) -> bool:
    """Whether ``table`` is a long score table (it has :data:`REQUIRED_COLUMNS`)."""
    return set(REQUIRED_COLUMNS) <= set(table.columns)


def result_column_names(table: pd.DataFrame) -> list[str]:
    """The columns of ``table`` that belong to one result, not to the checkpoint: the
    declared result columns and the legacy names, where present."""
    per_result = set(RESULT_COLUMN_NAMES) | set(LEGACY_RESULT_COLUMNS)
    return [c for c in table.columns if c in per_result]


def whole_model_mask(table: pd.DataFrame) -> pd.Series:
    """Per row, whether it is a whole-model value (empty ``layer``; NaN once read from CSV)."""
    if "layer" not in table.columns:
        return pd.Series(True, index=table.index)
    layer = table["layer"]
    return layer.isna() | (layer.astype(str) == "")


def whole_model_rows(long_table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a long table with an empty ``layer`` (read back from CSV, empty is NaN)."""
    if "layer" not in long_table.columns:
        return long_table
    return long_table[whole_model_mask(long_table)]


def per_layer_rows(long_table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a long table that name a layer."""
    return long_table[~whole_model_mask(long_table)]


def wide_column_name(measure: str, options: str, several: bool) -> str:
    """A measure's column in the wide table: ``measure[options]`` where the measure was scored
    with ``several`` options strings, else its name."""
    return f"{measure}[{options}]" if several else measure


def split_wide_column(column: str) -> tuple[str, str | None]:
    """``measure[options]`` -> (measure, options); any other column -> (column, None)."""
    match = _WIDE_COLUMN.match(column)
    return (match["name"], match["options"]) if match else (column, None)


def check_long_table(table: pd.DataFrame, required: Iterable[str] = REQUIRED_COLUMNS) -> None:
    """Raise a one-line ``DataError`` unless ``table`` is a long score table.

    It needs the ``required`` columns, a name in every ``measure`` cell, and numbers (or
    missing values) in every numeric column it has (``value``, ``stderr``, ``epoch``, ...);
    the message names the column, the measure and the checkpoint of the first bad cell.
    Tables written by earlier versions pass (see the module docstring).
    """
    required = tuple(required)
    if not set(required) <= set(table.columns):
        raise DataError(f"not a long score table: it needs the columns {_and(required)}")
    if "measure" in table.columns:
        names = table["measure"]
        blank = names.isna() | (names.astype(str).str.strip() == "")
        if blank.any():
            raise DataError(
                f"the score table has {int(blank.sum())} row(s) without a measure name"
                f"{_where(table[blank].iloc[0], with_measure=False)}"
            )
    for column in [c for c in table.columns if c in COLUMNS and COLUMNS[c].numeric]:
        cells = table[column]
        numbers = pd.to_numeric(cells, errors="coerce")
        text = cells.astype(str).str.strip().str.lower()
        bad = numbers.isna() & cells.notna() & ~text.isin(["", "nan", "none"])
        if bad.any():
            row = table[bad].iloc[0]
            raise DataError(
                f"the {column} {row[column]!r}{_where(row)} is not a number "
                f"({int(bad.sum())} such cell(s))"
            )


def _where(row: pd.Series, *, with_measure: bool = True) -> str:
    parts = []
    if with_measure and "measure" in row.index:
        parts.append(f" of measure {row['measure']!r}")
    if "checkpoint" in row.index:
        parts.append(f" for checkpoint {row['checkpoint']}")
    return "".join(parts)


def _and(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
