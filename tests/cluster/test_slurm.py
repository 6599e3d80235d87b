"""submitit against a real SLURM cluster: a job array, and a job that SLURM signals, that
submitit requeues, and whose rerun resumes from its checkpoint.

Start a one-node cluster on 127.0.0.1 first (scripts/slurm/start-local-cluster.sh: about a
second once the packages are installed); without one every test here is skipped. Run them
with ``pytest -m slurm tests/cluster``. Measured on a busy two-core machine: the array 11-13 s
(each task imports torch), the signalled requeue 10 s, the requeue at SLURM's own time limit
10-40 s (marked slow: up to 30 s until slurmctld's time-limit check, then ~7 s to requeue).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

pytest.importorskip("submitit", reason="needs submitit: pip install 'genmeasures[slurm]'")

from tests.cluster.jobs import CountTo, read_progress, tiny_fit

pytestmark = pytest.mark.slurm


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, jobs: Sequence) -> None:
    """Polls ``condition``; on timeout cancels ``jobs`` and fails with SLURM's view of them.
    (Without slurmdbd, sacct knows no job, so submitit's own wait() would hang forever on a job
    that died without writing its result.)"""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            queue = subprocess.run(
                ["squeue", "-a", "-o", "%i %T %r %M %l"], capture_output=True, text=True
            ).stdout
            logs = "\n".join(f"--- {job.job_id} stderr:\n{job.stderr() or ''}" for job in jobs)
            for job in jobs:
                job.cancel(check=False)
            pytest.fail(f"{what}: not within {timeout_s} s\nsqueue:\n{queue}\n{logs[-4000:]}")
        time.sleep(0.25)


def test_a_job_array_returns_what_the_functions_return_here(slurm_executor) -> None:
    seeds = [0, 1]
    jobs = slurm_executor.map_array(tiny_fit, seeds)
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array, two tasks
    wait_until(lambda: all(job.done() for job in jobs), 120, "the array's tasks", jobs)
    results = [job.result() for job in jobs]
    assert [r["array_task"] for r in results] == ["0", "1"]
    for seed, result in zip(seeds, results, strict=True):
        here = tiny_fit(seed)["state"]
        assert here.keys() == result["state"].keys()
        for name, tensor in here.items():
            assert tensor.dtype == result["state"][name].dtype
            assert tensor.numpy().tobytes() == result["state"][name].numpy().tobytes()


def submitit_log(job) -> str:
    """The job's submitit log: INFO lines go to its stdout file, warnings to its stderr file
    (every run of a requeued job appends to the same two)."""
    return (job.stdout() or "") + (job.stderr() or "")


def check_resumed(progress: Path, n: int, first_run_steps: int, result: dict, log: str) -> None:
    records = read_progress(progress)
    # every step once, in order: the rerun went on from the checkpoint instead of starting over
    assert [r["step"] for r in records] == list(range(n))
    restarts = [r["restart"] for r in records]
    assert restarts[:first_run_steps] == [0] * first_run_steps
    assert restarts == sorted(restarts) and restarts[-1] >= 1
    assert len({r["job"] for r in records}) == 1  # requeued: the same job id
    assert result["restart"] == restarts[-1] and result["resumed_at"] >= first_run_steps
    assert "Caught signal SIGUSR2" in log and "this job is timed-out" in log
    assert "Requeued job" in log


def test_a_signalled_job_is_requeued_and_resumes(slurm_executor, tmp_path: Path) -> None:
    """The fast way to the time-limit path: the signal submitit asks SLURM for
    (--signal=USR2@90), sent at once with scancel, as submitit's own Job._interrupt(timeout=True)
    does. With timeout_min <= 50 submitit counts any such signal as a time-out."""
    progress, n, first = tmp_path / "progress.jsonl", 5, 2
    job = slurm_executor.submit(CountTo(), str(progress), n, 0.2, first)
    wait_until(lambda: len(read_progress(progress)) >= first, 120, "the first run's steps", [job])
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
    wait_until(job.done, 120, "the requeued run", [job])
    check_resumed(progress, n, first, job.result(), submitit_log(job))
    assert {r["restart"] for r in read_progress(progress)} == {0, 1}


@pytest.mark.slow
def test_the_time_limit_signal_requeues_and_the_rerun_resumes(
    slurm_executor, tmp_path: Path
) -> None:
    """SLURM's own time-limit signal. One minute is SLURM's smallest limit; submitit asks for
    USR2 90 s before the end, more than the whole limit, so slurmctld sends it at its first
    time-limit check (one every 30 s): within 30 s of the start, not after a minute."""
    slurm_executor.update_parameters(timeout_min=1)
    progress, n, first = tmp_path / "progress.jsonl", 5, 2
    job = slurm_executor.submit(CountTo(), str(progress), n, 0.2, first)
    wait_until(job.done, 180, "the time-limited job and its rerun", [job])
    check_resumed(progress, n, first, job.result(), submitit_log(job))
