"""Running a sweep: runs in parallel through :func:`genmeasures.parallel.parallel_map`
(local worker processes by default), finished runs skipped, failures collected, then scoring.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm

from genmeasures._device import torch_threads
from genmeasures._io import check_output_dir
from genmeasures.checkpoints.run import read_run_info
from genmeasures.errors import GenMeasuresError, OptionError, describe_failure, is_bad_input
from genmeasures.finetune.run import check_runnable, run_is_finished
from genmeasures.parallel import parallel_map
from genmeasures.sweeps.grid import SweepPoint, SweepSettings

# Scoring of a sweep's runs uses one torch thread in and out of worker processes, so that
# stochastic measures with stopping rules give the same numbers whatever --jobs is.
SCORING_THREADS = 1


@dataclass
class SweepReport:
    """Which runs finished (trained now or earlier) and which failed, with the reason."""

    finished: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)


def is_finished(run_dir: Path, point: SweepPoint) -> bool:
    info = read_run_info(run_dir) if run_dir.exists() else {}
    return run_is_finished(info, point.config)


def check_points(points: Sequence[SweepPoint], settings: SweepSettings) -> None:
    """Check, before the first run trains, everything each run would check at its start
    (datasets, model, pretrained file, freezing), and that the output folder can be written.
    Raises the first problem as a one-line error naming the run."""
    check_output_dir(settings.out, "sweep folder", OptionError)
    memo: dict = {}
    for point in points:
        if is_finished(settings.out / point.name, point):
            continue  # reused as it is: its inputs need not be here any more
        try:
            check_runnable(point.config, memo)
        except GenMeasuresError as exc:
            raise type(exc)(f"run {point.name}: {exc}") from None


def run_sweep(
    points: Sequence[SweepPoint], settings: SweepSettings, *, progress: bool = True
) -> SweepReport:
    """Train every point (``settings.jobs`` at a time) into ``settings.out / point.name``."""
    report = SweepReport()
    todo = []
    for point in points:
        run_dir = settings.out / point.name
        if is_finished(run_dir, point):
            report.skipped.append(run_dir)
        else:
            todo.append(point)
    bar = tqdm(
        total=len(points),
        initial=len(report.skipped),
        desc="sweep",
        unit="run",
        disable=not progress,
        file=sys.stderr,
    )
    # one run at a time shows its own progress; parallel runs show only the sweep's bar
    train = partial(_train_one, out=settings.out, progress=progress and settings.jobs == 1)
    with bar:
        for point, future in parallel_map(train, todo, jobs=settings.jobs):
            try:
                error = future.result()
            except Exception as exc:  # a crashed worker process
                error = f"{type(exc).__name__}: {exc}"
            _record(report, settings.out / point.name, error)
            bar.update()
    return report


def _record(report: SweepReport, run_dir: Path, error: str | None) -> None:
    if error is None:
        report.finished.append(run_dir)
    else:
        report.failures.append((run_dir, error))


def _train_one(point: SweepPoint, out: Path, progress: bool):
    """Train one point (with its config's ``train.threads``, so the numbers do not depend on
    ``jobs``); return None on success or a one-line reason (never raises)."""
    from genmeasures.finetune import finetune

    try:
        finetune(point.config, out / point.name, progress=progress, log=lambda _: None)
    except Exception as exc:  # keep the sweep going; report the run
        if not is_bad_input(exc):
            raise
        return describe_failure(exc)
    return None


def score_runs(
    run_dirs: Sequence[Path],
    *,
    measures: Sequence[str] | None,
    n_samples: int | None,
    select: str,
    jobs: int = 1,
    progress: bool = True,
):
    """Score run directories, ``jobs`` processes at a time; one table, failures collected.

    Results go through the shared on-disk cache, so an interrupted scoring resumes.
    """
    import pandas as pd

    from genmeasures.scoring import ScoreReport

    run_dirs = [Path(d) for d in run_dirs]
    merged = ScoreReport(table=pd.DataFrame())
    tables = []
    bar = tqdm(
        total=len(run_dirs), desc="scoring runs", unit="run", disable=not progress, file=sys.stderr
    )

    def add(report) -> None:
        tables.append(report.table)
        merged.merge(report)
        bar.update()

    score = partial(_score_one, measures=measures, n_samples=n_samples, select=select)
    with bar:
        # in parallel, runs whose scores are all cached are read here (see _collect_cached)
        todo = (
            run_dirs if jobs == 1 else _collect_cached(run_dirs, measures, n_samples, select, add)
        )
        for _, future in parallel_map(score, todo, jobs=jobs):
            add(future.result())
    merged.table = (
        pd.concat([t for t in tables if len(t)], ignore_index=True) if tables else (pd.DataFrame())
    )
    if len(merged.table):
        merged.table = merged.table.sort_values(["run", "epoch"], kind="stable").reset_index(
            drop=True
        )
    return merged


def _collect_cached(run_dirs: Sequence[Path], measures, n_samples, select, add) -> list[Path]:
    """Take the runs whose every score is cached, in order, in this process; return the rest.

    Worker processes cost seconds to start (each imports torch), more than reading a run's
    cached scores, and a rerun usually finds everything cached. The first run with something
    left to compute ends the probing: in a sweep scored from scratch (or resumed after an
    interruption, in the same order) the later runs have work too.
    """
    for index, run_dir in enumerate(run_dirs):
        probe = _score_one(run_dir, measures, n_samples, select, only_cached=True)
        if probe.pending or probe.failures:
            return list(run_dirs[index:])
        add(probe)
    return []


def _score_one(run_dir: Path, measures, n_samples, select, only_cached: bool = False):
    """Score one run directory with the sweep's thread count (in or out of a worker)."""
    from genmeasures.scoring import score_checkpoints

    with torch_threads(SCORING_THREADS):
        return score_checkpoints(
            [run_dir],
            measures=measures,
            n_samples=n_samples,
            select=select,
            only_cached=only_cached,
            progress=False,
        )
