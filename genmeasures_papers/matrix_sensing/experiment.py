"""The matrix-sensing experiment: every (optimizer, seed) run, resumable, in parallel.

:class:`MatrixSensingExperiment` is data (problem size, optimizers, learning rate, epochs,
seeds) with the two members a figure needs (``name``, ``workdir``) and
:meth:`~MatrixSensingExperiment.run`, which trains each (optimizer, seed) into its own
directory and returns a :class:`~genmeasures.reproduce.FigureData` whose ``metrics`` has one
row per optimizer, seed and logged epoch:

    OUT/runs/nso_sigma_0.02-seed0/
        run.json       the run's config; ``complete`` once every epoch is done
        metrics.csv    epoch, train_mse, val_mse, distance, loss, u_norm, seconds
        state.pt       U, the noise generator and the log so far (to resume), then the final U

For a given seed every optimizer sees the same problem (ground truth, measurements,
validation set) and the same init. Every file is written atomically; a rerun skips finished
runs and continues interrupted ones from their last checkpoint, bit for bit.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from genmeasures._device import torch_threads
from genmeasures._io import atomic_open, atomic_write_json, atomic_write_text
from genmeasures.errors import GenMeasuresError, OptionError
from genmeasures.parallel import parallel_map
from genmeasures_papers.matrix_sensing.problem import (
    SensingProblem,
    check_shape,
    make_problem,
    resolve_dtype,
)
from genmeasures_papers.matrix_sensing.train import (
    Diverged,
    Optimizer,
    TrainSettings,
    TrainState,
    describe,
    make_optimizer,
    train,
)

if TYPE_CHECKING:
    from genmeasures.reproduce.study import FigureData

RUN_FILE, METRICS_FILE, STATE_FILE = "run.json", "metrics.csv", "state.pt"
COLUMNS = ("epoch", "train_mse", "val_mse", "distance", "loss", "u_norm", "seconds")


@dataclass(frozen=True)
class MatrixSensingExperiment:
    """GD, WP-GD and NSO (or any registered optimizers) on one problem size, over seeds."""

    name: str
    d: int = 100
    r: int = 5
    m: int | None = None  # training measurements; None: the paper's 5 d r
    methods: tuple[str, ...] = ("gd", "wp:sigma=0.02", "nso:sigma=0.02")
    lr: float = 0.0025
    epochs: int = 2000
    init_scale: float = 0.1
    seeds: tuple[int, ...] = (0, 1)
    log_every: int = 10
    dtype: str = "float32"
    device: str = "cpu"
    workdir: str | None = None  # figures naming the same workdir share the runs
    checkpoint_seconds: float = 30.0  # save the state for resuming at most this often
    description: str = ""

    def __post_init__(self) -> None:
        check_shape(self.d, self.r, self.m)
        resolve_dtype(self.dtype)
        if self.device not in ("cpu", "cuda", "auto") and not str(self.device).startswith("cuda:"):
            raise OptionError(
                f"matrix sensing: device must be cpu, cuda or auto, got {self.device!r}"
            )
        if not self.methods:
            raise OptionError("matrix sensing: no methods to run")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise OptionError(f"matrix sensing: seeds must be distinct and non-empty: {self.seeds}")
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise OptionError(f"matrix sensing: seeds must be integers, got {seed!r}")
        self.settings(self.seeds[0])  # validates lr, epochs, init_scale, log_every
        labels = [run_label(make_optimizer(spec)) for spec in self.methods]
        if len(set(labels)) != len(labels):
            raise OptionError(f"matrix sensing: methods repeat an optimizer: {self.methods}")

    def settings(self, seed: int) -> TrainSettings:
        return TrainSettings(self.lr, self.epochs, self.init_scale, seed, self.log_every)

    def runs(self) -> list[RunSpec]:
        """Every (method, seed), seed-major (runs of one seed share a problem)."""
        return [
            RunSpec(self, make_optimizer(spec), seed)
            for seed in self.seeds
            for spec in self.methods
        ]

    def run(self, out: str | Path, *, jobs: int = 2, progress: bool = True) -> FigureData:
        """Train every run not finished yet into ``out/runs`` and collect the metrics."""
        from genmeasures.reproduce.study import FigureData  # not at import: workers skip it

        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise OptionError(f"jobs must be a positive integer, got {jobs!r}")
        out = Path(out)
        specs = self.runs()
        failures = run_all(specs, out / "runs", jobs=jobs, progress=progress)
        metrics = collect_metrics([s for s in specs if (out / "runs" / s.dirname).is_dir()], out)
        empty = pd.DataFrame()
        return FigureData(out, empty, empty, metrics, tuple(failures))


@dataclass(frozen=True)
class RunSpec:
    """One (optimizer, seed) of an experiment."""

    experiment: MatrixSensingExperiment
    optimizer: Optimizer
    seed: int

    @property
    def dirname(self) -> str:
        return f"{run_label(self.optimizer)}-seed{self.seed}"

    def config(self) -> dict[str, Any]:
        """What determines the run's numbers (a run is reused only if this is unchanged)."""
        e = self.experiment
        return {
            "method": self.optimizer.name,
            "label": describe(self.optimizer),
            **{f"optimizer.{k}": v for k, v in self.optimizer.options().items()},
            "seed": self.seed,
            "d": e.d,
            "r": e.r,
            "m": e.m if e.m is not None else 5 * e.d * e.r,
            **{k: v for k, v in asdict(e.settings(self.seed)).items() if k != "seed"},
            "dtype": e.dtype,
            "device": e.device,
        }


def run_label(optimizer: Optimizer) -> str:
    """A directory-safe name: ``gd``, ``nso_sigma0.02``, ``wp_sigma0.01_k2``."""
    options = "_".join(f"{k}{v:g}" for k, v in optimizer.options().items() if k != "k" or v != 1)
    name = f"{optimizer.name}_{options}" if options else optimizer.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def run_all(
    specs: Sequence[RunSpec], runs_dir: Path, *, jobs: int = 2, progress: bool = True
) -> list[str]:
    """Train each spec not finished yet; return one line per failed run (others go on)."""
    todo, failures = [], []
    for spec in specs:
        status = run_status(spec, runs_dir / spec.dirname)
        if status == "complete":
            continue
        if status.startswith("failed: "):
            failures.append(f"{spec.dirname}: {status.removeprefix('failed: ')}")
            continue
        todo.append(spec)
    total = sum(spec.experiment.epochs for spec in specs)
    remaining = sum(spec.experiment.epochs - _epochs_done(runs_dir / s.dirname) for s in todo)
    bar = tqdm(
        total=total,
        initial=total - remaining,
        desc="matrix sensing",
        unit="epoch",
        disable=not progress,
        file=sys.stderr,
        smoothing=0.05,
    )
    with bar:
        if jobs == 1 or len(todo) <= 1:  # here: progress goes straight to the bar
            failures += _train_each(
                todo, partial(train_run, runs_dir=runs_dir, on_epochs=bar.update)
            )
        else:
            failures += _run_parallel(todo, runs_dir, jobs, bar)
    return failures


def _run_parallel(todo: list[RunSpec], runs_dir: Path, jobs: int, bar: tqdm) -> list[str]:
    """Train ``todo`` in ``jobs`` worker processes; their epochs reach the bar by a queue."""
    with multiprocessing.get_context("spawn").Manager() as manager:
        queue = manager.Queue()
        work = partial(_worker, runs_dir=runs_dir, queue=queue)
        return _train_each(todo, work, jobs=jobs, heartbeat=lambda: _drain(queue, bar))


def _train_each(
    todo: list[RunSpec], work: Callable[[RunSpec], str | None], **parallel: Any
) -> list[str]:
    """Train every spec with ``work`` (see :func:`~genmeasures.parallel.parallel_map` for
    ``parallel``); one line per failed run."""
    failures = []
    for spec, future in parallel_map(work, todo, **parallel):
        try:
            error = future.result()
        except Exception as exc:  # a crashed worker process
            error = f"{type(exc).__name__}: {exc}"
        if error:
            failures.append(f"{spec.dirname}: {error}")
    return failures


def _drain(queue: Any, bar: tqdm) -> None:
    while not queue.empty():
        bar.update(queue.get())


def _worker(spec: RunSpec, runs_dir: Path, queue: Any) -> str | None:
    return train_run(spec, runs_dir, on_epochs=queue.put)


_PROBLEMS: dict[tuple, SensingProblem] = {}


def problem_for(spec: RunSpec) -> SensingProblem:
    """The seed's problem, generated once per process (runs of a seed share it)."""
    e = spec.experiment
    key = (e.d, e.r, e.m, spec.seed, e.dtype, e.device)
    if key not in _PROBLEMS:
        _PROBLEMS.clear()  # one problem at a time: at the paper's size each is 50-100 MB
        _PROBLEMS[key] = make_problem(
            e.d, e.r, m=e.m, seed=spec.seed, dtype=e.dtype, device=e.device
        )
    return _PROBLEMS[key]


def train_run(
    spec: RunSpec, runs_dir: Path, *, on_epochs: Callable[[int], Any] | None = None
) -> str | None:
    """Train (or continue) one run into ``runs_dir/spec.dirname``; a one-line error or None.

    One torch thread, in a worker process or not, so the numbers do not depend on ``jobs``.
    """
    run_dir = runs_dir / spec.dirname
    config = spec.config()
    state = _load_state(run_dir, config)
    if state is None:  # a fresh start: nothing of an older config may be resumed later
        for stale in (STATE_FILE, METRICS_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        atomic_write_json(run_dir / RUN_FILE, {"config": config, "complete": False})
    last_saved = [time.monotonic()]
    interval = spec.experiment.checkpoint_seconds

    def checkpoint(snapshot: TrainState, *, force: bool = False) -> None:
        if force or time.monotonic() - last_saved[0] >= interval:
            _save_state(run_dir, snapshot)
            last_saved[0] = time.monotonic()

    try:
        with torch_threads(1):
            final = train(
                problem_for(spec),
                spec.optimizer,
                spec.experiment.settings(spec.seed),
                state=state,
                on_log=checkpoint,
                on_epochs=on_epochs,
            )
    except Diverged as exc:  # deterministic: remembered, so a rerun does not train it again
        failed = {"config": config, "complete": False, "failed": str(exc)}
        atomic_write_json(run_dir / RUN_FILE, failed)
        return str(exc)
    except GenMeasuresError as exc:  # e.g. no CUDA here: tried again on the next run
        return str(exc)
    checkpoint(final, force=True)
    atomic_write_json(
        run_dir / RUN_FILE, {"config": config, "complete": True, "epochs_done": final.epoch}
    )
    return None


def run_status(spec: RunSpec, run_dir: Path) -> str:
    """``complete``, ``failed: why``, ``partial`` (resumable) or ``new``."""
    info = _read_info(run_dir)
    if info.get("config") != spec.config():
        return "new"
    if info.get("complete"):
        return "complete"
    if info.get("failed"):
        return f"failed: {info['failed']}"
    return "partial"


def _read_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _epochs_done(run_dir: Path) -> int:
    path = run_dir / METRICS_FILE
    if not path.exists():
        return 0
    try:
        return int(pd.read_csv(path)["epoch"].max())
    except (OSError, ValueError, KeyError, pd.errors.EmptyDataError):
        return 0


def _save_state(run_dir: Path, state: TrainState) -> None:
    with atomic_open(run_dir / STATE_FILE) as handle:
        torch.save(state.to_dict(), handle)
    frame = pd.DataFrame(state.rows, columns=list(COLUMNS))
    atomic_write_text(run_dir / METRICS_FILE, frame.to_csv(index=False))


def _load_state(run_dir: Path, config: dict[str, Any]) -> TrainState | None:
    """The saved state of an interrupted run with this config, else None (start afresh)."""
    path = run_dir / STATE_FILE
    if _read_info(run_dir).get("config") != config or not path.exists():
        return None
    try:
        return TrainState.from_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception:  # an unreadable state: start the run again
        return None


def collect_metrics(specs: Sequence[RunSpec], out: Path) -> pd.DataFrame:
    """One row per run and logged epoch: the metrics plus the run's config columns."""
    frames = []
    for spec in specs:
        run_dir = out / "runs" / spec.dirname
        path = run_dir / METRICS_FILE
        if not path.exists():
            continue
        frame = pd.read_csv(path)
        for key, value in spec.config().items():
            frame[key] = value
        frame.insert(0, "run", str(run_dir))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", *COLUMNS, "method", "label", "seed"])
    return pd.concat(frames, ignore_index=True)
