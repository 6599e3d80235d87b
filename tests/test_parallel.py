"""parallel_map: one map over any Executor, inline for one job, spawned workers by default."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from genmeasures import parallel
from genmeasures.parallel import parallel_map


def fails_on_three(value: int) -> int:
    if value == 3:
        raise ValueError("three")
    return value * value


def test_one_job_runs_each_call_here_in_order_as_the_iteration_reaches_it() -> None:
    calls = []

    def record(value: int) -> int:
        calls.append(value)
        return -value

    results = parallel_map(record, [1, 2, 3], jobs=1)
    assert calls == []  # nothing runs before the first item is asked for
    item, future = next(results)
    assert (item, future.result(), calls) == (1, -1, [1])
    assert [(i, f.result()) for i, f in results] == [(2, -2), (3, -3)]


def test_one_job_lets_an_exception_propagate_as_a_loop_would() -> None:
    with pytest.raises(ValueError, match="three"):
        list(parallel_map(fails_on_three, [1, 3, 5], jobs=1))


def test_a_given_executor_runs_every_item_and_stays_open() -> None:
    with ThreadPoolExecutor(2) as pool:
        done = {
            item: future for item, future in parallel_map(fails_on_three, [1, 2, 3], executor=pool)
        }
        assert set(done) == {1, 2, 3}
        assert done[1].result() == 1 and done[2].result() == 4
        with pytest.raises(ValueError, match="three"):
            done[3].result()  # the caller decides what a failure means
        assert pool.submit(math.sqrt, 4.0).result() == 2.0  # not shut down


def test_heartbeat_is_called_while_waiting_and_at_the_end() -> None:
    release = threading.Event()
    beats = []

    def wait_for_release(value: int) -> int:
        release.wait(5)
        return value

    def beat() -> None:
        beats.append(1)
        release.set()

    with ThreadPoolExecutor(1) as pool:
        items = [
            item
            for item, _ in parallel_map(
                wait_for_release, [7], executor=pool, heartbeat=beat, heartbeat_seconds=0.01
            )
        ]
    assert items == [7] and len(beats) >= 2


def test_leaving_early_cancels_the_calls_that_have_not_started() -> None:
    started, release = [], threading.Event()

    def work(value: int) -> int:
        started.append(value)
        if value > 0:
            release.wait(5)  # holds the only thread until the map has been left
        return value

    with ThreadPoolExecutor(1) as pool:
        results = parallel_map(work, range(5), executor=pool)
        assert next(results)[0] == 0
        results.close()
        release.set()
    assert started in ([0], [0, 1])  # the three calls still queued never ran


def test_no_items_start_no_pool(monkeypatch) -> None:
    def no_pool(jobs: int):
        raise AssertionError("a pool was started for nothing")

    monkeypatch.setattr(parallel, "spawn_pool", no_pool)
    assert list(parallel_map(abs, [], jobs=4)) == []


def test_several_jobs_run_in_spawned_worker_processes() -> None:
    done = dict(parallel_map(fails_on_three, [1, 2, 3, 4], jobs=2))
    assert {i: done[i].result() for i in (1, 2, 4)} == {1: 1, 2: 4, 4: 16}
    with pytest.raises(ValueError, match="three"):
        done[3].result()
