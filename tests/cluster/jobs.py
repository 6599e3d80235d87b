"""The functions the cluster tests run as SLURM jobs. They travel by value (cloudpickle), so
they use nothing from tests/ or pytest."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import submitit


def tiny_fit(seed: int) -> dict:
    """Five SGD steps of a 4-to-2 linear model on seeded data: the weights, and where it ran."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    inputs, targets = torch.randn(16, 4), torch.randn(16, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
    return {
        "state": {name: t.detach().clone() for name, t in model.state_dict().items()},
        "array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "host": socket.gethostname(),
    }


def read_progress(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class CountTo(submitit.helpers.Checkpointable):
    """Counts steps 0..n-1, one every ``step_s`` seconds, appending each to the progress file,
    and on a restart goes on after the last step the file holds, the way a training run resumes
    from its last checkpoint.

    The first run (SLURM_RESTART_COUNT 0) stops counting after ``first_run_steps`` steps and
    then runs on, like a run longer than its time limit: only a signal ends it. submitit's
    handler (Checkpointable.checkpoint) then requeues the job; the rerun finishes the count.
    """

    def __call__(self, progress: str, n: int, step_s: float, first_run_steps: int) -> dict:
        path = Path(progress)
        restart = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        done = read_progress(path)
        start = done[-1]["step"] + 1 if done else 0
        for step in range(start, n):
            if restart == 0 and step >= first_run_steps:
                while True:  # past its time: waits for SLURM's signal
                    time.sleep(0.1)
            time.sleep(step_s)
            record = {
                "step": step,
                "restart": restart,
                "job": os.environ.get("SLURM_JOB_ID"),
                "time": time.time(),
            }
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        return {"restart": restart, "resumed_at": start}
