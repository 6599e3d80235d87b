"""Sweeps: expand a grid of fine-tuning configs into runs, run them, score them."""

from genmeasures.sweeps.executor import SweepReport, check_points, run_sweep, score_runs
from genmeasures.sweeps.grid import SweepPoint, SweepSettings, expand, load_sweep

__all__ = [
    "SweepPoint",
    "SweepReport",
    "SweepSettings",
    "check_points",
    "expand",
    "load_sweep",
    "run_sweep",
    "score_runs",
]
