"""Run directories: where one fine-tuning run keeps its checkpoints and metrics.

Layout::

    RUN/
      run.json                      model spec, dataset spec, n_train and the run config
      metrics.csv                   one row per epoch, rewritten atomically every epoch
      checkpoints/
        epoch_0000.safetensors/.json   the init: pretrained backbone + freshly initialised head
        epoch_0005.safetensors/.json   every k-th epoch
        last.safetensors/.json         the last epoch
        best.safetensors/.json         the best epoch by validation metric

``score`` takes RUN (the init is found as the checkpoint whose sidecar says epoch 0) or
checkpoint files plus an explicit init.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from genmeasures._io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_small_text,
)
from genmeasures.checkpoints.format import (
    SAFETENSORS_SUFFIX,
    TORCH_SUFFIXES,
    CheckpointMeta,
    load_checkpoint,
    read_sidecar_fields,
    save_checkpoint,
    sidecar_path,
)
from genmeasures.errors import (
    CheckpointError,
    GenMeasuresError,
    OptionError,
    RunBusyError,
    one_line,
)

CHECKPOINT_DIR = "checkpoints"
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
METRICS_FILE = "metrics.csv"
LABELS_FILE = "train_labels.safetensors"
# A metrics.csv has one short row per epoch: 256 MB is far more than any run writes.
MAX_METRICS_BYTES = 256 * 2**20
CHECKPOINT_SUFFIXES = (SAFETENSORS_SUFFIX, *TORCH_SUFFIXES)


@dataclass(frozen=True)
class RunFiles:
    """The checkpoint files of one run directory: its init and the checkpoints to score."""

    root: Path
    init: Path
    checkpoints: tuple[Path, ...]

    def select(self, which: str) -> tuple[Path, ...]:
        """``all`` checkpoints, or just the ``last`` (latest epoch) or the ``best`` one.

        ``best`` is the checkpoint whose epoch ``best.json`` names (the last one when the run
        kept no best, e.g. it had no validation split).
        """
        if which == "all" or not self.checkpoints:
            return self.checkpoints
        if which == "last":
            return self.checkpoints[-1:]
        if which == "best":
            best_epoch = _peek_sidecar(self.root / CHECKPOINT_DIR / "best.safetensors").get("epoch")
            for path in self.checkpoints:
                if path.name == "best.safetensors" or (
                    best_epoch is not None and _peek_sidecar(path).get("epoch") == best_epoch
                ):
                    return (path,)
            return self.checkpoints[-1:]
        raise OptionError(f"unknown checkpoint selection {which!r}; valid: all, last, best")


def epoch_filename(epoch: int) -> str:
    return f"epoch_{epoch:04d}{SAFETENSORS_SUFFIX}"


def is_run_dir(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / CHECKPOINT_DIR).is_dir() or any(checkpoint_files_in(path)))


def find_run_files(run_dir: str | os.PathLike) -> RunFiles:
    """List a run directory's init and its other checkpoints in epoch order.

    ``last``/``best`` are skipped when their sidecar names an epoch that has its own file, so
    no checkpoint is scored twice.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise CheckpointError(f"no such run directory: {root}")
    folder = root / CHECKPOINT_DIR if (root / CHECKPOINT_DIR).is_dir() else root
    files = sorted(checkpoint_files_in(folder))
    if not files:
        raise CheckpointError(f"run directory {root} holds no checkpoint files")
    described = [(path, _peek_sidecar(path)) for path in files]
    inits = [p for p, side in described if side.get("epoch") == 0 or side.get("tag") == "init"]
    if not inits:
        raise CheckpointError(
            f"run directory {root} has no init checkpoint (a sidecar with epoch 0); pass --init"
        )
    init = inits[0]
    epochs_on_disk = {side.get("epoch") for p, side in described if side.get("tag") == "epoch"}
    scored = []
    for path, side in described:
        if path == init or side.get("epoch") == 0:
            continue
        if side.get("tag") in ("last", "best") and side.get("epoch") in epochs_on_disk:
            continue
        scored.append((side.get("epoch") if isinstance(side.get("epoch"), int) else 1 << 30, path))
    scored.sort(key=lambda item: (item[0], item[1].name))
    return RunFiles(root=root, init=init, checkpoints=tuple(path for _, path in scored))


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``run.json`` (an empty dict if the run has none)."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        info = json.loads(read_small_text(path, "run file", CheckpointError))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"cannot read {path}: {one_line(exc)}") from None
    if not isinstance(info, dict):
        raise CheckpointError(
            f"cannot read {path}: it holds a {type(info).__name__}, not an object"
        )
    if not isinstance(info.get("config", {}), dict):
        raise CheckpointError(f"cannot read {path}: 'config' is not an object")
    return info


def read_labels(run_dir: str | os.PathLike, reference: str) -> torch.Tensor:
    """The label tensor a checkpoint's ``labels`` field refers to ("FILE#KEY").

    FILE must lie inside the run directory: a sidecar never makes genmeasures read a file
    elsewhere (``../x`` and absolute paths are refused).
    """
    from safetensors import safe_open

    filename, _, key = reference.partition("#")
    root = Path(run_dir)
    path = root / filename
    where = f"training labels {reference!r} of {run_dir}"
    if not filename or Path(filename).is_absolute() or not _inside(path, root):
        raise CheckpointError(f"{where}: the file must lie inside the run directory")
    if not path.is_file():
        raise CheckpointError(f"{where}: {path} is not a file")
    try:
        with safe_open(path, framework="pt") as handle:
            if key not in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                raise CheckpointError(f"{where}: {path.name} has no tensor {key!r}")
            labels = handle.get_tensor(key)
    except GenMeasuresError:
        raise
    except Exception as exc:  # safetensors raises its own errors, OSError, ...
        raise CheckpointError(f"{where}: cannot read {path.name} ({one_line(exc)})") from None
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex():
        raise CheckpointError(
            f"{where}: expected a 1-d integer tensor, got {labels.dtype} of shape "
            f"{tuple(labels.shape)}"
        )
    return labels


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symbolic links resolved) lies inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def metrics_table(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Every run's per-epoch metrics in one table: one row per run and epoch.

    Columns: ``run`` (the directory), the ``metrics.csv`` columns, then the run's config as
    dotted keys (``algorithm.name``, ``data.noise_rate``, ...) plus ``method`` and ``seed``,
    so curves can be grouped by any hyperparameter. Runs without metrics contribute nothing.
    """
    frames = []
    for run_dir in run_dirs:
        rows = read_metrics(run_dir)
        if not rows:
            continue
        config = read_run_info(run_dir).get("config", {})
        hyper = {"method": config.get("algorithm", {}).get("name", ""), "seed": None}
        hyper["seed"] = config.get("train", {}).get("seed")
        hyper.update(flatten_config(config))
        frame = pd.DataFrame(rows)
        for key, value in hyper.items():
            if key not in frame.columns:
                frame[key] = value
        frame.insert(0, "run", str(run_dir))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", "epoch"])
    return pd.concat(frames, ignore_index=True)


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of the run's ``metrics.csv`` with numbers parsed (empty if there is none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists() and not path.is_symlink():
        return []
    text = read_small_text(path, "metrics file", CheckpointError, limit=MAX_METRICS_BYTES)
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CheckpointError(f"cannot read metrics file {path}: {one_line(exc)}") from None
    if any(None in row for row in rows):
        raise CheckpointError(
            f"cannot read metrics file {path}: a row has more cells than the header"
        )
    return [{key: _number(value) for key, value in row.items()} for row in rows]


@contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the run directory's lock: no two processes train one run at once.

    An exclusive ``flock`` on ``RUN/.lock``, which holds the holder's PID. The kernel releases
    it when the holder exits, however it exits (kill -9 included), so a stale lock never blocks
    a rerun. A second process refuses at once with :class:`RunBusyError` naming the holder.
    (On systems without ``fcntl`` the lock is not taken.)
    """
    root = Path(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunBusyError(
                f"{root} is being trained by another process (PID {holder}); wait for it to "
                "finish or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


class RunWriter:
    """Writes a run directory. Never deletes anything that is already there.

    Every file is written atomically, so a run killed at any moment leaves a directory whose
    every file is complete and readable.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.checkpoint_dir = self.root / CHECKPOINT_DIR
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._metrics: list[dict[str, Any]] = read_metrics(self.root)

    def write_info(self, info: Mapping[str, Any]) -> None:
        atomic_write_json(self.root / RUN_FILE, dict(info))

    def save(
        self, state: Mapping[str, torch.Tensor], meta: CheckpointMeta, name: str | None = None
    ) -> Path:
        """Save a checkpoint as ``epoch_NNNN`` (or ``name``, e.g. 'last' or 'best')."""
        if name is None:
            if meta.epoch is None:
                raise ValueError("a checkpoint without a name needs an epoch")
            filename = epoch_filename(meta.epoch)
        else:
            filename = name + SAFETENSORS_SUFFIX
        return save_checkpoint(self.checkpoint_dir / filename, state, meta)

    def save_labels(self, labels: Mapping[str, torch.Tensor]) -> str:
        """Store named label tensors (merged with those already stored); return the file name."""
        from safetensors.torch import load_file, save

        path = self.root / LABELS_FILE
        stored = load_file(path) if path.exists() else {}
        stored.update({k: v.detach().cpu().contiguous() for k, v in labels.items()})
        atomic_write_bytes(path, save(stored))
        return LABELS_FILE

    def log_metrics(self, row: Mapping[str, Any]) -> None:
        """Add (or replace, for an epoch logged again after a resume) one epoch's metrics."""
        epoch = row.get("epoch")
        self._metrics = [r for r in self._metrics if r.get("epoch") != epoch] + [dict(row)]
        self._metrics.sort(key=lambda r: (r.get("epoch") is None, r.get("epoch") or 0))
        atomic_write_text(self.root / METRICS_FILE, _to_csv(self._metrics))


def checkpoint_files_in(folder: Path) -> list[Path]:
    """Checkpoint files directly in ``folder`` (hidden temporary files excluded).

    Anything with a checkpoint's suffix but a folder is listed, devices and broken links
    included: loading it then reports what it is, instead of the run silently losing it.
    """
    return [
        p
        for p in folder.iterdir()
        if p.suffix in CHECKPOINT_SUFFIXES and not p.name.startswith(".") and not p.is_dir()
    ]


def _peek_sidecar(path: Path) -> dict[str, Any]:
    sidecar = sidecar_path(path)
    if sidecar.exists() or sidecar.is_symlink():
        return read_sidecar_fields(path)
    if path.suffix in TORCH_SUFFIXES and path.stem in ("init", "epoch_0000", "pretrained"):
        return {"epoch": 0, "tag": "init"}
    if path.suffix in TORCH_SUFFIXES:
        try:
            return {"epoch": load_checkpoint(path).meta.epoch}
        except CheckpointError:
            return {}
    return {}


def _to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text
