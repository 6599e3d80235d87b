"""The ``slurm`` marker and the fixtures of the cluster tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SINFO_TIMEOUT_S = 5
START = "scripts/slurm/start-local-cluster.sh starts a local one"


def pytest_configure(config: pytest.Config) -> None:
    # Until pyproject.toml lists it next to "slow" and "gpu".
    config.addinivalue_line(
        "markers",
        "slurm: needs a SLURM cluster (scripts/slurm/start-local-cluster.sh starts one); "
        "runs where sinfo answers, skipped with the reason otherwise",
    )


def slurm_unavailable() -> str | None:
    """Why no SLURM cluster can take jobs here, or None when one can."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return f"no SLURM client (sinfo, sbatch) on PATH; {START}"
    try:
        answer = subprocess.run(
            ["sinfo", "-h", "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=SINFO_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within {SINFO_TIMEOUT_S} s (no slurmctld?); {START}"
    if answer.returncode != 0:
        lines = (answer.stderr or answer.stdout).strip().splitlines()
        detail = lines[-1].strip() if lines else f"exit status {answer.returncode}"
        return f"sinfo failed ({detail[:200]}); {START}"
    states = {s.strip().rstrip("*~#!%$@^-") for s in answer.stdout.split()}
    if not states & {"idle", "mixed", "allocated", "completing"}:
        return f"no SLURM node can take jobs (node states: {', '.join(sorted(states)) or 'none'})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    reason = slurm_unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def slurm_executor(slurm_cluster, tmp_path: Path) -> Iterator:
    """A submitit executor on partition ``debug``, one CPU a task, whose job functions travel
    by value (the job does not import tests/ from its working directory)."""
    submitit = pytest.importorskip("submitit", reason="submitit is not installed")
    import cloudpickle

    from tests.cluster import jobs

    cloudpickle.register_pickle_by_value(jobs)
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_partition="debug", cpus_per_task=1, timeout_min=5)
    try:
        yield executor
    finally:
        cloudpickle.unregister_pickle_by_value(jobs)
