"""What to score, from the paths a user names: run directories and checkpoint files.

A run directory gives its checkpoints (all, or its last or best one) and its init; a folder
of checkpoints without an init is accepted when the user names the init; a checkpoint file
inside a run directory finds the init of its run. Each checkpoint found comes with the init it
is measured from and the run directory it belongs to (whose recorded labels and config the
scores use).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genmeasures.checkpoints.run import (
    CHECKPOINT_DIR,
    checkpoint_files_in,
    find_run_files,
    is_run_dir,
)
from genmeasures.errors import CheckpointError, is_bad_input


@dataclass(frozen=True)
class FoundCheckpoint:
    """One checkpoint to score, the init it is measured from and the run it belongs to.

    ``init`` is None when the user named one init for every path (or none was needed:
    a folder of checkpoints scored against the user's init); ``run`` is None for a file
    outside any run directory.
    """

    checkpoint: Path
    init: Path | None
    run: Path | None


def find_checkpoints(
    paths: Sequence[str | os.PathLike],
    *,
    init: str | os.PathLike | None = None,
    select: Literal["all", "last", "best"] = "all",
) -> tuple[list[FoundCheckpoint], list[tuple[Path, Exception]]]:
    """The checkpoints the ``paths`` name, in order, and the paths that name none usable.

    Args:
        paths: run directories (their checkpoints, init found from the sidecars), folders of
            checkpoint files (when ``init`` is given) and checkpoint files (their init is
            their run's, when they lie in a run directory).
        init: one init for all paths; each found checkpoint's ``init`` is then None.
        select: ``all`` checkpoints of each run directory, or its ``last`` or ``best`` one
            (see :meth:`RunFiles.select`); files named directly are always kept.

    Returns:
        The checkpoints found, and for each path that could not be used (missing, a run
        without init and no ``init`` given, ...) the path and its error, to report in one
        line; the other paths are still searched. Errors that are not bad input propagate.
    """
    found: list[FoundCheckpoint] = []
    unusable: list[tuple[Path, Exception]] = []
    for raw in paths:
        path = Path(raw)
        try:
            found += _checkpoints_of(path, init, select)
        except Exception as exc:
            if not is_bad_input(exc):
                raise
            unusable.append((path, exc))
    return found, unusable


def _checkpoints_of(
    path: Path, init: str | os.PathLike | None, select: str
) -> list[FoundCheckpoint]:
    if path.is_dir():
        try:
            run = find_run_files(path)
            files, run_init = list(run.select(select)), run.init
        except CheckpointError:
            if init is None:
                raise
            folder = path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir() else path
            files, run_init = sorted(checkpoint_files_in(folder)), None
        return [FoundCheckpoint(f, None if init else run_init, path) for f in files]
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    return [FoundCheckpoint(path, None if init else _init_beside(path), _run_of(path))]


def _run_of(path: Path) -> Path | None:
    """The run directory a checkpoint file lies in (in its ``checkpoints/`` or at its top)."""
    parent = path.parent
    root = parent.parent if parent.name == CHECKPOINT_DIR else parent
    return root if is_run_dir(root) else None


def _init_beside(path: Path) -> Path:
    """The init of the run a checkpoint file lies in."""
    root = _run_of(path)
    if root is not None:
        try:
            return find_run_files(root).init
        except CheckpointError:
            pass
    raise CheckpointError(f"no init found for {path}; pass --init")
