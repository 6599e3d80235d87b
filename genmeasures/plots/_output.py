"""Writing a figure as PNG and PDF, atomically, and what a plot function returns."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from genmeasures._io import atomic_write_with
from genmeasures.errors import DataError

FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class PlotResult:
    """The files written and exactly the numbers drawn.

    ``data`` is read back from the figure's artists (scatter offsets, line vertices, error
    bar segments), so comparing it with the input table checks what was drawn. ``extra``
    holds secondary layers (a fitted line and its band) where a plot has them.
    """

    png: Path
    pdf: Path
    data: pd.DataFrame
    extra: pd.DataFrame | None = None

    @property
    def paths(self) -> tuple[Path, Path]:
        return (self.png, self.pdf)


def save(figure: Figure, stem: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``stem.png`` and ``stem.pdf`` (temporary file + ``os.replace``), then clear."""
    stem = Path(stem)
    paths = []
    try:
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            metadata = {"CreationDate": None} if fmt == "pdf" else None

            def write(tmp: str, fmt: str = fmt, md: dict[str, None] | None = metadata) -> None:
                figure.savefig(tmp, format=fmt, metadata=md)

            atomic_write_with(path, write)
            paths.append(path)
    finally:
        figure.clear()
    return paths[0], paths[1]


def safe_name(text: str) -> str:
    """A file-name-safe version of a measure or column name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "plot"


def require_columns(table: pd.DataFrame, *columns: str | None) -> None:
    for column in columns:
        if column is not None and column not in table.columns:
            raise DataError(f"no column {column!r} in the table to plot")
