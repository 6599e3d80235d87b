"""The one parallel map behind sweeps, run scoring and experiments.

:func:`parallel_map` calls a function on every item through a
:class:`concurrent.futures.Executor` and yields each item with its finished future as it
completes. By default the executor is :func:`spawn_pool`, local worker processes; any other
``Executor`` (a cluster's, a thread pool, a test's inline stand-in) plugs into the same seam.

Workers of :func:`spawn_pool` are spawned (never forked: torch's threads do not survive a
fork) and die with the process that started them: each worker watches its parent and exits
as soon as it is gone, so a sweep killed with kill -9 leaves no worker behind to start runs
that had not begun.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# How often a worker checks that its parent is alive (seconds).
PARENT_POLL_SECONDS = 0.25


def spawn_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` spawned worker processes that exit when this process dies."""
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )


def parallel_map(
    fn: Callable[[Item], Result],
    items: Iterable[Item],
    *,
    jobs: int = 1,
    executor: Executor | None = None,
    heartbeat: Callable[[], object] | None = None,
    heartbeat_seconds: float = 0.5,
) -> Iterator[tuple[Item, Future[Result]]]:
    """Call ``fn(item)`` for every item; yield ``(item, future)`` as each call finishes.

    Each yielded future is done: ``future.result()`` returns the call's value or raises
    what the call raised (a crashed worker process included), so the caller decides whether
    one failure stops the rest.

    - ``executor`` given: every item is submitted to it (``fn`` and the items must then
      pickle for a process-based executor); the executor stays open, it is the caller's.
    - otherwise, ``jobs > 1``: a :func:`spawn_pool` of ``jobs`` workers, started only if
      there is an item and shut down at the end;
    - otherwise (``jobs == 1``): each call runs here, when the iteration reaches it, and an
      exception it raises propagates at once, as from a plain loop (a bug shows its
      traceback).

    While waiting for workers, ``heartbeat`` (if given) is called about every
    ``heartbeat_seconds`` and once when all calls are done, e.g. to forward their progress.
    A caller that stops iterating early cancels the calls that have not started.
    """
    items = list(items)
    if executor is not None:
        yield from _completed(executor, fn, items, heartbeat, heartbeat_seconds)
    elif jobs > 1:
        if items:
            with spawn_pool(jobs) as pool:
                yield from _completed(pool, fn, items, heartbeat, heartbeat_seconds)
    else:
        for item in items:
            future: Future[Result] = Future()
            future.set_result(fn(item))
            yield item, future


def _completed(
    executor: Executor,
    fn: Callable[[Item], Result],
    items: list[Item],
    heartbeat: Callable[[], object] | None,
    heartbeat_seconds: float,
) -> Iterator[tuple[Item, Future[Result]]]:
    """Submit every item to ``executor``; yield each with its future in completion order."""
    pending = {executor.submit(fn, item): item for item in items}
    timeout = heartbeat_seconds if heartbeat is not None else None
    try:
        while pending:
            done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if heartbeat is not None:
                heartbeat()
            for future in done:
                yield pending.pop(future), future
        if heartbeat is not None:
            heartbeat()
    finally:
        for future in pending:  # left early: what has not started never will
            future.cancel()


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
