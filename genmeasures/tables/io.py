"""Reading and writing result tables (.csv, .parquet, .json), always atomically.

Any table: the long score table (:mod:`genmeasures.tables.schema`), the wide table, a
correlation summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from genmeasures._io import atomic_write_text, atomic_write_with, check_output_file
from genmeasures.errors import DataError, OptionError

TABLE_SUFFIXES = (".csv", ".parquet", ".json")


def check_table_path(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a table path :func:`write_table` could not write: another
    suffix, a directory, a folder that is a file, parquet without pyarrow."""
    path = check_output_file(path, "output", OptionError, TABLE_SUFFIXES)
    if path.suffix.lower() == ".parquet":
        _require_pyarrow()
    return path


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise OptionError(
            "writing .parquet needs pyarrow: pip install 'genmeasures[parquet]'"
        ) from None


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path``; the format follows the suffix. Never leaves a partial file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, table.to_csv(index=False))
    elif suffix == ".json":
        atomic_write_text(path, table.to_json(orient="records", indent=1))
    elif suffix == ".parquet":
        _require_pyarrow()
        typed = _uniform_columns(table)
        atomic_write_with(path, lambda tmp: typed.to_parquet(tmp, index=False))
    else:
        raise OptionError(
            f"unsupported output type {path.suffix!r} for {path}; use {', '.join(TABLE_SUFFIXES)}"
        )
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table that :func:`write_table` (or ``genmeasures score``) wrote."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such table: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
        if suffix == ".json":
            return pd.read_json(path, orient="records")
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read table {path}: {str(exc).splitlines()[0]}") from None
    raise OptionError(f"unsupported table type {path.suffix!r}; use {', '.join(TABLE_SUFFIXES)}")


def _uniform_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: a column mixing types (a hyperparameter that is a
    number in one run's config and a string in another's) is written as strings."""
    mixed = [
        column
        for column in table.columns
        if table[column].dtype == object
        and len({type(v) for v in table[column] if v is not None and v == v}) > 1
    ]
    if not mixed:
        return table
    return table.assign(
        **{c: table[c].map(lambda v: v if v is None or v != v else str(v)) for c in mixed}
    )
