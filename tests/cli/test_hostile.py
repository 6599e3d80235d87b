"""Hostile and careless inputs through the command line, each in its own process.

Every case builds its bad input itself (a damaged sidecar, a pickle that would run code, a
symbolic-link loop, a NaN learning rate, an output path that is a directory, ...) and runs
`genmeasures` as a user would, without ``GENMEASURES_DEBUG``. For each it asserts the exit
status, that every message is one line (and the expected one), that no traceback reaches the
user, that nothing is half-written (no output where none is due, no temporary files left),
that a batch still delivers its good items, and that no code from a file ran (no marker file).

Each case runs in a process of its own, forked from one warm parent (tests/cli/forkrunner.py:
a fresh interpreter would import torch again for every case), two at a time; each test then
checks one case's outcome.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from genmeasures.checkpoints import CheckpointMeta, ModelSpec, save_checkpoint
from genmeasures.errors import DEBUG_ENV
from tests.conftest import tiny_mlp, write_run

RUN_DATA = "digits-target:split=train,n_per_class=6"
RUNNER = Path(__file__).with_name("forkrunner.py")
# Words of torch's and numpy's advice on loading a file unsafely: never passed on to a user.
UNSAFE_ADVICE = ("weights_only", "allow_pickle", "pickle.load", "safe_globals", "trust")


class _RunsCode:
    """Pickles to a call of os.system that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Workspace:
    """One case's private folder, with copies of the shared inputs made on request."""

    root: Path
    base: Path

    @property
    def marker(self) -> Path:
        return self.root / "CODE_RAN"

    @property
    def out(self) -> Path:
        return self.root / "out" / "scores.csv"

    def run(self) -> Path:
        """A copy of the scored run: init, epoch 1, epoch 2 (a tiny MLP on digits)."""
        target = self.root / "run"
        if not target.exists():
            shutil.copytree(self.base / "run", target)
        return target

    def trained(self) -> Path:
        """A copy of a run really trained for 1 epoch (resumable with train.epochs=2)."""
        target = self.root / "trained"
        if not target.exists():
            shutil.copytree(self.base / "trained", target)
        return target

    def config(self, extra: str = "") -> Path:
        path = self.root / "ft.toml"
        path.write_text((self.base / "ft.toml").read_text() + extra)
        return path

    def sweep(self, settings: str, extra: str = "") -> Path:
        path = self.root / "sweep.toml"
        base = (self.base / "ft.toml").read_text()
        path.write_text(f'[sweep]\nout = "{self.root / "sweep"}"\n{settings}\n{base}{extra}')
        return path

    def sidecar(self, which: int = 2) -> Path:
        return self.run() / "checkpoints" / f"epoch_{which:04d}.json"

    def edit_sidecar(self, which: int = 2, **fields) -> None:
        path = self.sidecar(which)
        obj = json.loads(path.read_text())
        obj.update(fields)
        path.write_text(json.dumps(obj))

    def scores_table(self) -> Path:
        """A long score table of the run (written by the library, not the CLI)."""
        from genmeasures.scoring import score_checkpoints, write_table

        report = score_checkpoints(
            [self.base / "run"], measures=["distance_from_init"], use_cache=False, progress=False
        )
        path = self.root / "long.csv"
        write_table(report.table, path)
        return path


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Workspace], list]
    message: str  # expected in the (one-line) error or failure message
    exit_code: int = 1
    # "error": the command stops with one `error:` line and writes nothing; "batch": the good
    # checkpoints epoch 1 and epoch 2 minus `lost` are in --out and the bad one is a failure
    kind: str = "error"
    lost: tuple[str, ...] = ("epoch_0002.safetensors",)
    not_created: tuple[str, ...] = ()  # paths (relative to the workspace) that must not exist


SCORE = ("score", "--measures", "distance_from_init", "-q")


def score_run(w: Workspace, *extra: str) -> list:
    return [*SCORE, w.run(), "--out", w.out, *extra]


def score_with_data(w: Workspace, *extra: str) -> list:
    measure = "noise_stability:draws=1"
    return ["score", "--measure", measure, "-q", "--samples", "8", w.run(), "--out", w.out, *extra]


def _garbage(path: Path, size: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(size))
    return path


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def _labels_file(w: Workspace, where: Path, n: int = 30) -> str:
    from safetensors.torch import save_file

    where.parent.mkdir(parents=True, exist_ok=True)
    save_file({"x": torch.zeros(n, dtype=torch.int64)}, str(where))
    return str(where)


def _malicious_torch_file(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": _RunsCode(marker)}, path)
    return path


def _mlp_file(path: Path, *, nan_buffer: bool = False, nan_weight: bool = False) -> Path:
    state = tiny_mlp().state_dict()
    if nan_weight:
        first = next(iter(state))
        state[first] = torch.full_like(state[first], float("nan"))
    if nan_buffer:
        state["extra_buffer"] = torch.tensor([float("nan")])
    save_checkpoint(path, state, CheckpointMeta(model=ModelSpec("mlp", {"in_features": 64})))
    return path


def _resnet_file(path: Path) -> Path:
    from genmeasures.models import build_model

    kwargs = {"num_classes": 5, "width_multiplier": 0.0625}
    torch.manual_seed(0)
    state = build_model("resnet18", kwargs).state_dict()
    meta = CheckpointMeta(model=ModelSpec("resnet18", kwargs))
    save_checkpoint(path / "init.safetensors", state, meta)
    return save_checkpoint(path / "moved.safetensors", state, meta)


def _image_folder_with_loop(root: Path) -> Path:
    from PIL import Image

    for label in ("a", "b"):
        folder = root / "images" / label
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), color=40 * i).save(folder / f"{i}.png")
    (root / "images" / "a" / "loop").symlink_to(".")
    return root / "images"


def _npz_with_objects(path: Path, marker: Path) -> Path:
    inputs = np.empty(2, dtype=object)
    inputs[0], inputs[1] = _RunsCode(marker), 1
    np.savez(path, inputs=inputs, labels=np.array([0, 1]))
    return path


def _long_table_with_text(w: Workspace) -> Path:
    from genmeasures.scoring import read_table, write_table

    path = w.scores_table()
    table = read_table(path)
    table["value"] = table["value"].astype(object)
    table.loc[table.index[table["layer"].fillna("") == ""][0], "value"] = "lots"
    write_table(table, path)
    return path


def _resume(w: Workspace, damage: Callable[[Path], None]) -> list:
    run = w.trained()
    damage(run)
    return ["finetune", "--config", w.config(), "train.epochs=2", "--out", run, "-q"]


def _write_state(run: Path, obj) -> None:
    torch.save(obj, run / "train_state.pt")


def _another_model_state(run: Path) -> None:
    state = torch.load(run / "train_state.pt", weights_only=True)
    state["model"] = {"other.weight": torch.zeros(3)}
    _write_state(run, state)


CASES: list[Case] = [
    # --- one bad checkpoint among good ones: the others are scored and written ----------
    Case(
        "sidecar-n_train-string",
        lambda w: (w.edit_sidecar(n_train="many"), score_run(w))[1],
        "'n_train' must be an integer",
        kind="batch",
    ),
    Case(
        "sidecar-n_train-zero",
        lambda w: (w.edit_sidecar(n_train=0), score_run(w))[1],
        "'n_train' must be positive",
        kind="batch",
    ),
    Case(
        "sidecar-epoch-string",
        lambda w: (w.edit_sidecar(epoch="three"), score_run(w))[1],
        "'epoch' must be an integer",
        kind="batch",
    ),
    Case(
        "sidecar-metric-string",
        lambda w: (w.edit_sidecar(metrics={"train_loss": "low"}), score_run(w))[1],
        "metrics['train_loss'] must be a number",
        kind="batch",
    ),
    Case(
        "sidecar-metric-string-parquet",
        lambda w: (
            w.edit_sidecar(metrics={"test_acc": "high"}),
            [*SCORE, w.run(), "--out", w.out.with_suffix(".parquet")],
        )[1],
        "metrics['test_acc'] must be a number",
        kind="batch",
    ),
    Case(
        "sidecar-config-list",
        lambda w: (w.edit_sidecar(config=[1, 2]), score_run(w))[1],
        "'config' must be an object",
        kind="batch",
    ),
    Case(
        "sidecar-model-list",
        lambda w: (w.edit_sidecar(model=[1]), score_run(w))[1],
        "'model' must be a name",
        kind="batch",
    ),
    Case(
        "sidecar-model-kwargs-string",
        lambda w: (w.edit_sidecar(model={"name": "mlp", "kwargs": "x"}), score_run(w))[1],
        "'model.kwargs' must be an object",
        kind="batch",
    ),
    Case(
        "sidecar-top-level-list",
        lambda w: (w.sidecar().write_text("[1, 2]"), score_run(w))[1],
        "top level is not an object",
        kind="batch",
    ),
    Case(
        "sidecar-not-json",
        lambda w: (_garbage(w.sidecar()), score_run(w))[1],
        "epoch_0002.json is not UTF-8 text",
        kind="batch",
    ),
    Case(
        "sidecar-json-syntax",
        lambda w: (w.sidecar().write_text("{'epoch': 2"), score_run(w))[1],
        "cannot read sidecar",
        kind="batch",
    ),
    Case(
        "sidecar-deeply-nested",
        lambda w: (w.sidecar().write_text("[" * 100000 + "]" * 100000), score_run(w))[1],
        "cannot read sidecar",
        kind="batch",
    ),
    Case(
        "sidecar-sparse-50GB",
        lambda w: (_sparse(w.sidecar(), 50 * 2**30), score_run(w))[1],
        "more than the",
        kind="batch",
    ),
    Case(
        "sidecar-dev-zero",
        lambda w: (w.sidecar().unlink(), w.sidecar().symlink_to("/dev/zero"), score_run(w))[2],
        "not a regular file",
        kind="batch",
    ),
    Case(
        "sidecar-is-directory",
        lambda w: (w.sidecar().unlink(), w.sidecar().mkdir(), score_run(w))[2],
        "is a directory",
        kind="batch",
    ),
    Case(
        "labels-is-directory",
        lambda w: ((w.run() / "lbl").mkdir(), w.edit_sidecar(labels="lbl#x"), score_with_data(w))[
            2
        ],
        "is not a file",
        kind="batch",
    ),
    Case(
        "labels-escape-relative",
        lambda w: (
            _labels_file(w, w.root / "outside" / "x.safetensors"),
            w.edit_sidecar(labels="../outside/x.safetensors#x"),
            score_with_data(w),
        )[2],
        "must lie inside the run directory",
        kind="batch",
    ),
    Case(
        "labels-escape-absolute",
        lambda w: (
            w.edit_sidecar(labels=_labels_file(w, w.root / "outside" / "x.safetensors") + "#x"),
            score_with_data(w),
        )[1],
        "must lie inside the run directory",
        kind="batch",
    ),
    Case(
        "labels-escape-symlink",
        lambda w: (
            _labels_file(w, w.root / "outside" / "x.safetensors"),
            (w.run() / "l.safetensors").symlink_to(w.root / "outside" / "x.safetensors"),
            w.edit_sidecar(labels="l.safetensors#x"),
            score_with_data(w),
        )[3],
        "must lie inside the run directory",
        kind="batch",
    ),
    Case(
        "labels-missing-key",
        lambda w: (
            _labels_file(w, w.run() / "l.safetensors"),
            w.edit_sidecar(labels="l.safetensors#nope"),
            score_with_data(w),
        )[2],
        "has no tensor 'nope'",
        kind="batch",
    ),
    Case(
        "labels-garbage-file",
        lambda w: (
            _garbage(w.run() / "l.safetensors"),
            w.edit_sidecar(labels="l.safetensors#x"),
            score_with_data(w),
        )[2],
        "cannot read l.safetensors",
        kind="batch",
    ),
    Case(
        "labels-wrong-length",
        lambda w: (
            _labels_file(w, w.run() / "l.safetensors", n=31),
            w.edit_sidecar(labels="l.safetensors#x"),
            score_with_data(w),
        )[2],
        "31",
        kind="batch",
    ),
    Case(
        "sidecar-names-os-system",
        lambda w: (
            w.edit_sidecar(model={"name": "os:system", "kwargs": {"command": f"touch {w.marker}"}}),
            score_with_data(w),
        )[1],
        "never imports code named inside",
        kind="batch",
    ),
    Case(
        "sidecar-names-os-system-allow-import",
        lambda w: (
            w.edit_sidecar(model={"name": "os:system", "kwargs": {"command": f"touch {w.marker}"}}),
            score_with_data(w, "--allow-import"),
        )[1],
        "--model 'os:system' --allow-import",
        kind="batch",
    ),
    Case(
        "checkpoint-garbage",
        lambda w: (_garbage(w.sidecar().with_suffix(".safetensors")), score_run(w))[1],
        "corrupt or truncated safetensors",
        kind="batch",
    ),
    Case(
        "checkpoint-empty",
        lambda w: (w.sidecar().with_suffix(".safetensors").write_bytes(b""), score_run(w))[1],
        "is empty",
        kind="batch",
    ),
    Case(
        "checkpoint-dev-zero",
        lambda w: (
            w.sidecar().with_suffix(".safetensors").unlink(),
            w.sidecar().with_suffix(".safetensors").symlink_to("/dev/zero"),
            score_run(w),
        )[2],
        "not a regular file",
        kind="batch",
    ),
    Case(
        "checkpoint-nan",
        lambda w: (
            _mlp_file(w.sidecar().with_suffix(".safetensors"), nan_weight=True),
            w.sidecar().write_text(json.dumps({"epoch": 2, "tag": "epoch"})),
            score_run(w),
        )[2],
        "contains NaN values",
        kind="batch",
    ),
    Case(
        "checkpoint-other-shapes",
        lambda w: (
            save_checkpoint(
                w.sidecar().with_suffix(".safetensors"),
                {"layers.0.weight": torch.zeros(3, 3)},
                CheckpointMeta(),
            ),
            w.sidecar().write_text(json.dumps({"epoch": 2, "tag": "epoch"})),
            score_run(w),
        )[2],
        "does not match the init",
        kind="batch",
    ),
    Case(
        "checkpoint-pickle-runs-code",
        lambda w: (
            (w.run() / "checkpoints" / "epoch_0002.safetensors").unlink(),
            _malicious_torch_file(w.run() / "checkpoints" / "epoch_0002.pt", w.marker),
            w.sidecar().write_text(json.dumps({"epoch": 2, "tag": "epoch"})),
            score_run(w),
        )[3],
        "would run code",
        kind="batch",
        lost=("epoch_0002.pt", "epoch_0002.safetensors"),
    ),
    Case(
        "checkpoint-pt-garbage",
        lambda w: (_garbage(w.run() / "checkpoints" / "epoch_0003.pt"), score_run(w))[1],
        "cannot read checkpoint",
        kind="batch",
        lost=("epoch_0003.pt",),
    ),
    Case(
        "checkpoint-pt-plain-pickle",
        lambda w: (
            (w.run() / "checkpoints" / "epoch_0003.pt").write_bytes(
                pickle.dumps({"w": _RunsCode(w.marker)})
            ),
            score_run(w),
        )[1],
        "checkpoint",
        kind="batch",
        lost=("epoch_0003.pt",),
    ),
    Case(
        "file-list-with-missing-one",
        lambda w: [
            *SCORE,
            w.run() / "checkpoints" / "epoch_0001.safetensors",
            w.root / "nope.safetensors",
            "--init",
            w.run() / "checkpoints" / "epoch_0000.safetensors",
            "--out",
            w.out,
        ],
        "no such checkpoint",
        kind="batch",
        lost=("epoch_0002.safetensors",),
    ),
    # --- data that does not fit the model --------------------------------------------------
    Case(
        "data-1-channel-on-3-channel-model",
        lambda w: (
            _resnet_file(w.root),
            [
                "score",
                "--measure",
                "noise_stability:draws=1",
                "-q",
                "--samples",
                "4",
                w.root / "moved.safetensors",
                "--init",
                w.root / "init.safetensors",
                "--data",
                "digits-target:split=train",
                "--out",
                w.out,
            ],
        )[1],
        "data has 1 channel(s), the model expects 3",
        kind="failure",
    ),
    Case(
        "data-labels-outside-classes",
        lambda w: score_with_data(w, "--data", "digits:split=train"),
        "is outside the model's 5 classes",
        kind="failure",
    ),
    Case(
        "data-npz-object-arrays",
        lambda w: score_with_data(w, "--data", _npz_with_objects(w.root / "d.npz", w.marker)),
        "object arrays",
    ),
    Case(
        "data-npz-garbage",
        lambda w: score_with_data(w, "--data", _garbage(w.root / "d.npz")),
        "cannot read npz file",
    ),
    Case(
        "data-image-folder-symlink-loop",
        lambda w: score_with_data(w, "--data", f"{_image_folder_with_loop(w.root)}"),
        "symbolic-link loop",
    ),
    Case(
        "data-unknown-dataset",
        lambda w: score_with_data(w, "--data", "nosuchdata:split=train"),
        "nosuchdata",
    ),
    Case(
        "data-missing-path",
        lambda w: score_with_data(w, "--data", str(w.root / "none.npz")),
        "none.npz",
    ),
    # --- options and output paths checked before any work -------------------------------
    Case(
        "score-out-directory",
        lambda w: (w.out.mkdir(parents=True), score_run(w))[1],
        "is a directory",
    ),
    Case(
        "score-out-under-file",
        lambda w: (
            (w.root / "f").write_text("x"),
            [*SCORE, w.run(), "--out", w.root / "f" / "s.csv"],
        )[1],
        "/f/s.csv is a file",
    ),
    Case(
        "score-out-txt",
        lambda w: [*SCORE, w.run(), "--out", w.root / "s.txt"],
        "unsupported output type '.txt'",
    ),
    Case(
        "score-cache-dir-file",
        lambda w: (
            (w.root / "cache").write_text("x"),
            score_run(w, "--cache-dir", w.root / "cache"),
        )[1],
        "cache folder",
    ),
    Case(
        "score-init-garbage",
        lambda w: [
            *SCORE,
            w.run() / "checkpoints" / "epoch_0001.safetensors",
            "--init",
            _garbage(w.root / "init.safetensors"),
            "--out",
            w.out,
        ],
        "corrupt or truncated",
    ),
    Case(
        "score-init-nan",
        lambda w: [
            *SCORE,
            w.run() / "checkpoints" / "epoch_0001.safetensors",
            "--init",
            _mlp_file(w.root / "init.safetensors", nan_weight=True),
            "--out",
            w.out,
        ],
        "contains NaN values",
    ),
    Case("score-unknown-measure", lambda w: ["score", "--measures", "nope", w.run()], "nope"),
    Case(
        "score-measure-option-nan",
        lambda w: ["score", "--measure", "noise_stability:sigma=nan", w.run()],
        "must be finite",
    ),
    Case(
        "score-measure-option-inf",
        lambda w: ["score", "--measure", "noise_stability:sigma=inf", w.run()],
        "must be finite",
    ),
    Case(
        "score-measure-option-type",
        lambda w: ["score", "--measure", "noise_stability:draws=many", w.run()],
        "draws",
    ),
    Case(
        "score-measure-option-out-of-range",
        lambda w: ["score", "--measure", "noise_stability:sigma=0", w.run()],
        "error: measure 'noise_stability': sigma must be > 0, got 0",
    ),
    Case(
        "score-unknown-model",
        lambda w: score_with_data(w, "--model", "nosuchnet"),
        "nosuchnet",
        kind="failure",
    ),
    Case(
        "score-import-model-without-flag",
        lambda w: score_with_data(w, "--model", "os:system"),
        "--allow-import",
        kind="failure",
    ),
    # --- fine-tuning: settings, pretrained files, paths, damaged resume state -------------
    Case(
        "finetune-lr-nan",
        lambda w: ["finetune", "--config", w.config(), "train.lr=nan", "--out", w.root / "r"],
        "train.lr must be finite",
        not_created=("r",),
    ),
    Case(
        "finetune-lr-inf",
        lambda w: ["finetune", "--config", w.config(), "train.lr=inf", "--out", w.root / "r"],
        "train.lr must be finite",
        not_created=("r",),
    ),
    Case(
        "finetune-momentum-nan",
        lambda w: ["finetune", "--config", w.config(), "train.momentum=nan", "--out", w.root / "r"],
        "train.momentum must be finite",
        not_created=("r",),
    ),
    Case(
        "finetune-algorithm-option-nan",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "algorithm.name=l2sp",
            "algorithm.alpha=nan",
            "--out",
            w.root / "r",
        ],
        "must be finite",
        not_created=("r",),
    ),
    Case(
        "finetune-model-kwarg-nan",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "model.kwargs.dropout=nan",
            "--out",
            w.root / "r",
        ],
        "must be finite",
        not_created=("r",),
    ),
    Case(
        "finetune-noise-rate-above-one",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "data.noise_rate=1.5",
            "--out",
            w.root / "r",
        ],
        "data.noise_rate",
        not_created=("r",),
    ),
    # One wording for every refused option: "<where>: <name> must be ..., got <value>".
    Case(
        "finetune-config-value-out-of-range",
        lambda w: ["finetune", "--config", w.config(), "train.epochs=0", "--out", w.root / "r"],
        "error: config: train.epochs must be > 0, got 0",
        not_created=("r",),
    ),
    Case(
        "finetune-algorithm-option-out-of-range",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "algorithm.name=nso",
            "algorithm.k=0",
            "--out",
            w.root / "r",
        ],
        "error: config: algorithm.k must be > 0, got 0",
        not_created=("r",),
    ),
    Case(
        "finetune-algorithm-option-interval",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "algorithm.name=regsl",
            "algorithm.correct_threshold=1.5",
            "--out",
            w.root / "r",
        ],
        "error: config: algorithm.correct_threshold must be in (0, 1], got 1.5",
        not_created=("r",),
    ),
    Case(
        "finetune-dataset-option-out-of-range",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "data.train=digits-target:split=train,n_per_class=0",
            "--out",
            w.root / "r",
        ],
        "error: dataset 'digits-target': n_per_class must be >= 1, got 0",
    ),
    Case(
        "finetune-ten-class-source-fraction",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "data.train=digits10-target:split=train,source_fraction=1.5",
            "--out",
            w.root / "r",
        ],
        "error: dataset 'digits10-target': source_fraction must be in (0, 1), got 1.5",
    ),
    Case(
        "finetune-model-unknown-activation",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "model.kwargs.activation=swish",
            "--out",
            w.root / "r",
        ],
        "mlp: unknown activation 'swish'; valid: relu, gelu, silu, tanh",
        not_created=("r",),
    ),
    Case(
        "finetune-dataset-option-choice",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            "data.test=teacher-student:split=val",
            "--out",
            w.root / "r",
        ],
        "error: dataset 'teacher-student': split must be one of train|test, got 'val'",
    ),
    Case(
        "finetune-unknown-key",
        lambda w: ["finetune", "--config", w.config(), "train.lrr=0.1", "--out", w.root / "r"],
        "train.lrr",
        not_created=("r",),
    ),
    Case(
        "finetune-pretrained-nan-buffer",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            f"model.pretrained={_mlp_file(w.root / 'p.safetensors', nan_buffer=True)}",
            "--out",
            w.root / "r",
        ],
        "contains NaN values",
    ),
    Case(
        "finetune-pretrained-garbage",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            f"model.pretrained={_garbage(w.root / 'p.safetensors')}",
            "--out",
            w.root / "r",
        ],
        "corrupt or truncated",
    ),
    Case(
        "finetune-pretrained-pickle",
        lambda w: [
            "finetune",
            "--config",
            w.config(),
            f"model.pretrained={_malicious_torch_file(w.root / 'p.pt', w.marker)}",
            "--out",
            w.root / "r",
        ],
        "would run code",
    ),
    Case(
        "finetune-config-directory",
        lambda w: (
            (w.root / "c.toml").mkdir(),
            ["finetune", "--config", w.root / "c.toml", "--out", w.root / "r"],
        )[1],
        "is a directory",
    ),
    Case(
        "finetune-config-binary",
        lambda w: ["finetune", "--config", _garbage(w.root / "c.toml"), "--out", w.root / "r"],
        "not UTF-8 text",
    ),
    Case(
        "finetune-config-yaml-python-tag",
        lambda w: (
            (w.root / "c.yaml").write_text(
                f"model: !!python/object/apply:os.system ['touch {w.marker}']\n"
            ),
            ["finetune", "--config", w.root / "c.yaml", "--out", w.root / "r"],
        )[1],
        "cannot parse config",
    ),
    Case(
        "finetune-out-is-file",
        lambda w: (
            (w.root / "r").write_text("x"),
            ["finetune", "--config", w.config(), "--out", w.root / "r"],
        )[1],
        "is a file",
    ),
    Case(
        "resume-state-empty-dict",
        lambda w: _resume(w, lambda r: _write_state(r, {})),
        "not a genmeasures training state",
    ),
    Case(
        "resume-state-other-model",
        lambda w: _resume(w, _another_model_state),
        "another model's weights",
    ),
    Case(
        "resume-state-garbage",
        lambda w: _resume(w, lambda r: _garbage(r / "train_state.pt")),
        "cannot read",
    ),
    Case(
        "resume-state-pickle-runs-code",
        lambda w: _resume(w, lambda r: _malicious_torch_file(r / "train_state.pt", w.marker)),
        "would run code",
    ),
    Case(
        "resume-run-json-list",
        lambda w: _resume(w, lambda r: (r / "run.json").write_text("[1, 2]")),
        "not an object",
    ),
    Case(
        "resume-metrics-binary",
        lambda w: _resume(w, lambda r: _garbage(r / "metrics.csv")),
        "not UTF-8 text",
    ),
    # --- sweeps: settings checked exactly, and before the first run trains ---------------
    Case(
        "sweep-score-string",
        lambda w: ["sweep", "--config", w.sweep('score = "false"')],
        "sweep.score must be bool",
        not_created=("sweep",),
    ),
    Case(
        "sweep-jobs-bool",
        lambda w: ["sweep", "--config", w.sweep("jobs = true")],
        "sweep.jobs must be int",
        not_created=("sweep",),
    ),
    Case(
        "sweep-jobs-zero",
        lambda w: ["sweep", "--config", w.sweep("jobs = 0")],
        "error: config: sweep.jobs must be >= 1, got 0",
        not_created=("sweep",),
    ),
    Case(
        "sweep-score-samples-negative",
        lambda w: ["sweep", "--config", w.sweep("score_samples = -1")],
        "error: config: sweep.score_samples must be >= 0, got -1",
        not_created=("sweep",),
    ),
    Case(
        "sweep-measures-number",
        lambda w: ["sweep", "--config", w.sweep("measures = 5")],
        "sweep.measures",
        not_created=("sweep",),
    ),
    Case(
        "sweep-unknown-measure",
        lambda w: ["sweep", "--config", w.sweep('measures = ["nope"]')],
        "nope",
        not_created=("sweep",),
    ),
    Case(
        "sweep-unknown-score-checkpoints",
        lambda w: ["sweep", "--config", w.sweep('score_checkpoints = "some"')],
        "sweep.score_checkpoints",
        not_created=("sweep",),
    ),
    Case(
        "sweep-seeds-strings",
        lambda w: ["sweep", "--config", w.sweep('seeds = ["a"]')],
        "sweep.seeds",
        not_created=("sweep",),
    ),
    Case(
        "sweep-dry-run-unknown-model",
        lambda w: [
            "sweep",
            "--dry-run",
            "--config",
            w.sweep("", '[grid]\n"model.name" = ["mlp", "nosuchnet"]\n'),
        ],
        "nosuchnet",
        not_created=("sweep",),
    ),
    Case(
        "sweep-unknown-model-before-training",
        lambda w: [
            "sweep",
            "--config",
            w.sweep("", '[grid]\n"model.name" = ["mlp", "nosuchnet"]\n'),
        ],
        "nosuchnet",
        not_created=("sweep",),
    ),
    Case(
        "sweep-dry-run-missing-pretrained",
        lambda w: [
            "sweep",
            "--dry-run",
            "--config",
            w.sweep("", '[grid]\n"model.pretrained" = ["nope.safetensors"]\n'),
        ],
        "nope.safetensors",
        not_created=("sweep",),
    ),
    Case(
        "sweep-out-is-file",
        lambda w: ((w.root / "sweep").write_text("x"), ["sweep", "--config", w.sweep("")])[1],
        "is a file",
    ),
    # --- correlate ----------------------------------------------------------------------
    Case(
        "correlate-text-value",
        lambda w: ["correlate", _long_table_with_text(w)],
        "'lots' of measure 'distance_from_init'",
    ),
    Case(
        "correlate-plots-is-file",
        lambda w: (
            (w.root / "p").write_text("x"),
            ["correlate", w.scores_table(), "--plots", w.root / "p"],
        )[1],
        "plots folder",
    ),
    Case(
        "correlate-out-directory",
        lambda w: (
            (w.root / "o.csv").mkdir(),
            ["correlate", w.scores_table(), "--out", w.root / "o.csv"],
        )[1],
        "is a directory",
    ),
    Case("correlate-binary-table", lambda w: ["correlate", _garbage(w.root / "t.csv")], "t.csv"),
    Case("correlate-missing-table", lambda w: ["correlate", w.root / "none.csv"], "none.csv"),
]


@dataclass
class Outcome:
    case: Case
    workspace: Workspace
    code: int
    stdout: str
    stderr: str
    setup_error: BaseException | None = None


def _tiny_config() -> str:
    return (
        '[model]\nname = "mlp"\nkwargs = { in_features = 64, hidden = [8] }\n'
        f'[data]\ntrain = "{RUN_DATA}"\ntest = "digits-target:split=test"\n'
        '[train]\nepochs = 1\nbatch_size = 10\ndevice = "cpu"\n'
    )


@pytest.fixture(scope="session")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    from genmeasures.finetune import finetune, load_config

    base = tmp_path_factory.mktemp("hostile-base")
    write_run(base / "run", n_epochs=2, data=RUN_DATA)
    (base / "ft.toml").write_text(_tiny_config())
    finetune(load_config(base / "ft.toml"), base / "trained", progress=False, log=lambda _: None)
    cache = tmp_path_factory.mktemp("hostile-cache")
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    env["GENMEASURES_CACHE_DIR"] = str(cache)

    outcomes: dict[str, Outcome] = {}
    jobs = []
    for case in CASES:
        root = tmp_path_factory.mktemp(case.id)
        workspace = Workspace(root, base)
        try:
            argv = [str(a) for a in case.argv(workspace)]
        except Exception as exc:  # a broken case fails its own test, not every test
            outcomes[case.id] = Outcome(case, workspace, -1, "", "", setup_error=exc)
            continue
        outcomes[case.id] = Outcome(case, workspace, -1, "", "")
        streams = tmp_path_factory.mktemp(f"{case.id}-streams")
        jobs.append(
            {
                "id": case.id,
                "argv": argv,
                "stdout": str(streams / "stdout"),
                "stderr": str(streams / "stderr"),
            }
        )
    control = tmp_path_factory.mktemp("hostile-control")
    (control / "cases.json").write_text(json.dumps(jobs))
    subprocess.run(
        [sys.executable, str(RUNNER), control / "cases.json", control / "results.json", "2"],
        env=env,
        check=True,
        timeout=900,
    )
    codes = json.loads((control / "results.json").read_text())
    for job in jobs:
        outcome = outcomes[job["id"]]
        outcome.code = codes[job["id"]]
        outcome.stdout = Path(job["stdout"]).read_text()
        outcome.stderr = Path(job["stderr"]).read_text()
    return outcomes


def test_there_are_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    if outcome.setup_error is not None:
        raise outcome.setup_error
    w = outcome.workspace
    shown = f"exit {outcome.code}\nstdout:\n{outcome.stdout}\nstderr:\n{outcome.stderr}"
    assert "Traceback" not in outcome.stderr + outcome.stdout, shown
    assert outcome.code == case.exit_code, shown
    assert not w.marker.exists(), "code from a file ran"
    assert not any(advice in outcome.stderr for advice in UNSAFE_ADVICE), shown
    assert "Warning" not in outcome.stderr, shown
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    for path in case.not_created:
        assert not (w.root / path).exists(), f"{path} was created\n{shown}"
    leftovers = [p for p in w.root.rglob(".*") if p.suffix in (".tmp", ".csv", ".parquet")]
    assert not leftovers, f"temporary files left: {leftovers}"
    if case.kind == "error":
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and len(lines) == 1, shown
        assert case.message in errors[0], shown
        assert not w.out.is_file(), shown
        return
    # A failure of one item: reported on one line of its own, with the reason.
    failures = [line for line in lines if line.startswith("  ") and case.message in line]
    assert failures and not any(line.startswith("error: ") for line in lines), shown
    if case.kind == "failure":
        assert not w.out.exists(), shown
    if case.kind == "batch":
        from genmeasures.scoring import read_table

        out = next(w.out.parent.glob("scores.*"))
        scored = {Path(p).name for p in read_table(out)["checkpoint"]}
        good = {"epoch_0001.safetensors", "epoch_0002.safetensors"} - set(case.lost)
        assert scored == good, shown
        assert len(failures) == 1, shown


def test_a_run_directory_is_trained_by_one_process_at_a_time(tmp_path: Path) -> None:
    """A second `finetune` on a run directory whose lock is held refuses, naming the PID."""
    (tmp_path / "ft.toml").write_text(_tiny_config())
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from genmeasures.checkpoints.run import run_lock\n"
            "with run_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "genmeasures",
                "finetune",
                "--config",
                tmp_path / "ft.toml",
                "--out",
                run,
                "-q",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert f"being trained by another process (PID {holder.pid})" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (run / "checkpoints").exists()
        assert (run / ".lock").exists()  # the refused one removed nothing of the holder's
    finally:
        holder.kill()
        holder.wait()
