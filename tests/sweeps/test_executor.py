"""score_runs: worker processes only for runs that have something left to compute."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import ClassVar

import pytest

from genmeasures import parallel
from genmeasures.sweeps import executor
from tests.conftest import write_run


class InlinePool:
    """Stands in for the worker pool: runs each job at once and records its run dir."""

    submitted: ClassVar[list[Path]] = []

    def __init__(self, jobs: int) -> None:
        pass

    def __enter__(self) -> InlinePool:
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def submit(self, fn, run_dir, *args) -> Future:
        InlinePool.submitted.append(run_dir)
        future: Future = Future()
        future.set_result(fn(run_dir, *args))
        return future


def score(runs: list[Path], jobs: int):
    return executor.score_runs(
        runs,
        measures=["distance_from_init"],
        n_samples=None,
        select="all",
        jobs=jobs,
        progress=False,
    )


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [write_run(tmp_path / f"run{i}", n_epochs=2, seed=i) for i in range(3)]


def test_a_fully_cached_sweep_starts_no_worker_process(runs, monkeypatch) -> None:
    first = score(runs, jobs=1)
    assert first.computed == 6 and first.cached == 0  # two epochs per run; the init is not scored

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started although every score is cached")

    monkeypatch.setattr(parallel, "spawn_pool", no_pool)
    again = score(runs, jobs=2)
    assert again.cached == 6 and again.computed == 0 and again.pending == 0
    columns = [c for c in first.table.columns if c != "seconds"]
    assert again.table[columns].equals(first.table[columns])


def test_runs_from_the_first_uncached_one_on_go_to_the_workers(runs, monkeypatch) -> None:
    score(runs[:1], jobs=1)  # the first run was scored before an interruption
    InlinePool.submitted = []
    monkeypatch.setattr(parallel, "spawn_pool", InlinePool)
    report = score(runs, jobs=2)
    assert InlinePool.submitted == runs[1:]
    assert report.cached == 2 and report.computed == 4
    assert report.table.checkpoint.nunique() == 6


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    """kill -9 of the process that owns a worker pool ends its workers within a second, so
    none goes on to start the runs that were still queued."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from genmeasures.parallel import spawn_pool\n"
        "pool = spawn_pool(2)\n"
        "futures = [pool.submit(time.sleep, 60) for _ in range(4)]\n"
        "print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "while len(pool._processes) < 2:\n"
        "    time.sleep(0.05)\n"
        "print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    parent.stdout.readline()
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its parent"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, awaiting its reaper, counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False
