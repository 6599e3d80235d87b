"""The process pool behind every parallel map (sweeps, scoring, experiments).

Workers are spawned (never forked: torch's threads do not survive a fork) and die with the
process that started them: each worker watches its parent and exits as soon as it is gone,
so a sweep killed with kill -9 leaves no worker behind to start runs that had not begun.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

# How often a worker checks that its parent is alive (seconds).
PARENT_POLL_SECONDS = 0.25


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` spawned worker processes that exit when this process dies."""
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: exit this worker as soon as ``parent_pid`` is no longer its parent.

    A parent that dies, however it dies, leaves its children to another process (init or a
    subreaper), so the parent PID changes. ``os._exit`` skips cleanup on purpose: the run
    directory's lock is released by the kernel and every file the run writes is atomic.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="genmeasures-parent-watch", daemon=True).start()
