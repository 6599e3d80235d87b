"""Result tables: the long score table's schema (:mod:`genmeasures.tables.schema`) and
reading and writing tables atomically (:mod:`genmeasures.tables.io`).

Scoring writes the long table, correlation pivots it to one row per checkpoint, and the
plots draw from either; all three take the column names from the schema here.
"""

from genmeasures.tables.io import TABLE_SUFFIXES, check_table_path, read_table, write_table
from genmeasures.tables.schema import (
    CHECKPOINT_COLUMN_NAMES,
    CHECKPOINT_COLUMNS,
    COLUMNS,
    ID_COLUMNS,
    LEGACY_RESULT_COLUMNS,
    LONG_TABLE_COLUMNS,
    REQUIRED_COLUMNS,
    RESULT_COLUMN_NAMES,
    RESULT_COLUMNS,
    SEED_COLUMNS,
    Column,
    check_long_table,
    is_long,
    per_layer_rows,
    split_wide_column,
    whole_model_rows,
    wide_column_name,
)

__all__ = [
    "CHECKPOINT_COLUMNS",
    "CHECKPOINT_COLUMN_NAMES",
    "COLUMNS",
    "ID_COLUMNS",
    "LEGACY_RESULT_COLUMNS",
    "LONG_TABLE_COLUMNS",
    "REQUIRED_COLUMNS",
    "RESULT_COLUMNS",
    "RESULT_COLUMN_NAMES",
    "SEED_COLUMNS",
    "TABLE_SUFFIXES",
    "Column",
    "check_long_table",
    "check_table_path",
    "is_long",
    "per_layer_rows",
    "read_table",
    "split_wide_column",
    "whole_model_rows",
    "wide_column_name",
    "write_table",
]
