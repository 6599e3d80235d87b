"""One fine-tuning run, end to end: set up, train, export a run directory, resume.

The run directory (see :mod:`genmeasures.checkpoints.run`) gets the init checkpoint
(epoch 0: pretrained backbone + freshly initialized head), every ``save_every``-th epoch, the
last and the best (by validation accuracy), ``metrics.csv`` rewritten every epoch, the
training labels (noisy, and corrected for regsl) and ``train_state.pt`` (weights, optimizer,
schedule, labels, algorithm state) for resuming. Nothing in an existing directory is deleted:
rerunning the same config resumes after the last finished epoch; a finished run is reused.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from genmeasures._device import resolve_device, torch_threads
from genmeasures._io import atomic_open, check_output_dir
from genmeasures._rng import SeededGenerators, lend
from genmeasures.checkpoints import (
    CheckpointMeta,
    ModelSpec,
    RunWriter,
    load_checkpoint,
)
from genmeasures.checkpoints.backbone import backbone_tensors, load_backbone
from genmeasures.checkpoints.format import load_torch_file
from genmeasures.checkpoints.run import LOCK_FILE, read_run_info, run_lock
from genmeasures.data import (
    LabeledDataset,
    apply_label_noise,
    count_correct,
    evaluation_sample,
    load_dataset,
)
from genmeasures.errors import CheckpointError, OptionError, one_line
from genmeasures.finetune.algorithm import Algorithm, TrainState, build_options, get_algorithm
from genmeasures.finetune.blocks import freeze_first_blocks, frozen_modules, stage_function
from genmeasures.finetune.config import FinetuneConfig, config_difference
from genmeasures.finetune.randomness import (
    build_seeded,
    global_draws,
    route_dropout,
    warn_if_shared,
)
from genmeasures.finetune.trainer import TrainingData, epoch_seed, evaluate, train_one_epoch
from genmeasures.models import architecture_of, build_model

RUN_FORMAT = "genmeasures.run/1"
# Bumped when the same config and seed would train different numbers (a new noise stream,
# another thread count): a run resumed across versions cannot match an uninterrupted one.
TRAINER_VERSION = 2
STATE_FILE = "train_state.pt"


@dataclass
class _Data:
    train: LabeledDataset
    val: LabeledDataset | None
    test: LabeledDataset | None
    clean: torch.Tensor
    noisy: torch.Tensor
    transition: torch.Tensor


def run_is_finished(info: dict, config: FinetuneConfig) -> bool:
    """A run is finished when it trained all its epochs or early stopping ended it, with this
    config (a directory holding another config is not: training it raises a clear error)."""
    if _difference_from_run(info, config) is not None:
        return False
    return bool(info.get("complete")) and (
        bool(info.get("stopped_early")) or info.get("epochs_done", 0) >= config.train.epochs
    )


def finetune(config: FinetuneConfig, out: str | Path, *, progress: bool = True, log=None) -> Path:
    """Run (or resume, or reuse) the fine-tuning ``config`` describes, writing to ``out``."""
    out = Path(out)
    # A finished run is reused without taking the lock (it may lie on read-only storage).
    if out.is_dir():
        info = read_run_info(out)
        _check_same_run(info, config, out)
        if run_is_finished(info, config):
            _say(log, f"{out}: finished run reused")
            return out
    out = check_output_dir(out, "run directory", OptionError)
    with run_lock(out):
        # Decided under the lock: a directory that holds nothing but the lock is new.
        new = {p.name for p in out.iterdir()} <= {LOCK_FILE}
        try:
            info = read_run_info(out)
            _check_same_run(info, config, out)
            if run_is_finished(info, config):
                _say(log, f"{out}: finished run reused")
                return out
            # With torch's OpenMP backend the count holds for this thread only, so runs in
            # other threads keep theirs (tests/finetune/test_thread_safety.py).
            with torch_threads(config.train.threads):
                return _finetune(config, out, info, progress)
        except BaseException:
            # A new run that failed before writing anything (bad data, model, pretrained
            # file) leaves no directory behind; removed while the lock is still held.
            if new and out.is_dir() and {p.name for p in out.iterdir()} <= {LOCK_FILE}:
                shutil.rmtree(out, ignore_errors=True)
            raise


def _finetune(config: FinetuneConfig, out: Path, info: dict, progress: bool) -> Path:
    device = resolve_device(config.train.device)
    data = _load_data(config)
    algorithm_cls = get_algorithm(config.algorithm_name)
    model, spec, draws = _build_model(config, data.train.num_classes, device, algorithm_cls)
    head = architecture_of(model).head
    frozen = freeze_first_blocks(model, head, config.train.freeze)
    state = TrainState(
        model=model,
        init={n: p.detach().clone() for n, p in model.named_parameters()},
        labels=data.noisy.clone(),
        clean_labels=data.clean,
        num_classes=data.train.num_classes,
        device=device,
        head_prefix=head,
        stage_of=stage_function(model, head),
        seed=config.train.seed,
        train_dataset=data.train,
        noise_transition=data.transition,
    )
    options = build_options(
        algorithm_cls, {k: v for k, v in config.algorithm.items() if k != "name"}
    )
    # Until the first epoch (the init's metrics) a run on its own generators lends ones seeded
    # like the model, as the global generator was then.
    with _randomness(config.model.seed, draws, reseed=False):
        algorithm = algorithm_cls(options, state)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = _optimizer(config, trainable)
        schedule = _schedule(config, optimizer)
        writer = RunWriter(out)
        run = _Run(
            config, out, writer, data, state, algorithm, optimizer, schedule, spec, frozen, draws
        )
        run.start_or_resume()
    run.train(progress)
    return out


def _randomness(seed: int, draws: str | None, reseed: bool = True) -> AbstractContextManager:
    """Where the body's random numbers come from (see :mod:`.randomness`): the run's own
    generators, seeded with ``seed``; or, for a run with ``draws`` from torch's global
    generator, that generator, reseeded with ``seed`` when ``reseed`` (the old scheme)."""
    if draws is None:
        return lend(SeededGenerators(seed))
    if reseed:
        torch.manual_seed(seed)
    return nullcontext()


@dataclass
class _Run:
    config: FinetuneConfig
    out: Path
    writer: RunWriter
    data: _Data
    state: TrainState
    algorithm: Algorithm
    optimizer: torch.optim.Optimizer
    schedule: Any
    spec: ModelSpec
    frozen: list[str]
    draws: str | None  # what may draw from torch's global generator (None: nothing)
    epoch: int = 0
    best_acc: float = -math.inf
    bad_epochs: int = 0
    saved_labels: str = "initial"
    _trainer_version: int = TRAINER_VERSION  # of the epochs trained so far (older on resume)

    def start_or_resume(self) -> None:
        path = self.out / STATE_FILE
        if path.exists():
            self._resume(path)
            return
        label_files = {"clean": self.data.clean, "initial": self.data.noisy}
        self.writer.save_labels(label_files)
        self._write_info(complete=False)
        metrics = self._metrics({})
        self.writer.log_metrics({"epoch": 0, **metrics})
        self._save_checkpoint(0, metrics, "init", name=None)

    def train(self, progress: bool) -> None:
        cfg = self.config.train
        model = self.state.model
        frozen = frozen_modules(model, self.frozen)
        training = _training_data(self.config, self.data.train, self.state.device)
        bar = tqdm(
            range(self.epoch + 1, cfg.epochs + 1),
            desc=f"fine-tuning ({self.config.algorithm_name})",
            unit="epoch",
            disable=not progress,
            file=sys.stderr,
        )
        stopped_early = False
        for epoch in bar:
            self.state.epoch = epoch
            seed = epoch_seed(cfg.seed, epoch)
            self.state.generator = torch.Generator().manual_seed(seed)
            # The whole epoch: its evaluation and export too, as the global generator was.
            with _randomness(seed, self.draws):
                start = time.perf_counter()
                train_loss = train_one_epoch(
                    self.algorithm, self.optimizer, training, frozen, cfg.amp
                )
                if self.schedule is not None:
                    self.schedule.step()
                extra = self.algorithm.on_epoch_end()
                metrics = self._metrics(
                    {"train_objective": train_loss, "seconds": time.perf_counter() - start, **extra}
                )
                self.epoch = epoch
                self._export(epoch, metrics)
            bar.set_postfix(
                train_acc=f"{metrics['train_acc']:.3f}",
                test_acc=f"{metrics.get('test_acc', math.nan):.3f}",
            )
            patience = cfg.early_stopping if self.data.val is not None else 0
            if patience and self.bad_epochs >= patience:
                stopped_early = True
                break
        self._write_info(complete=True, stopped_early=stopped_early)

    # --- metrics and export ---------------------------------------------------------------
    def _metrics(self, extra: Mapping[str, float]) -> dict[str, float]:
        model, device = self.state.model, self.state.device
        batch = self.config.data.batch_size_eval
        noisy = not torch.equal(self.state.labels, self.state.clean_labels)
        train_loss, train_acc, probs = evaluate(
            model, self.data.train, self.state.labels, device, batch
        )
        metrics = {"train_loss": train_loss, "train_acc": train_acc}
        if noisy or self.config.data.noise != "none":
            clean = self.state.clean_labels
            metrics["train_loss_clean"] = float(
                nn.functional.nll_loss(probs.clamp_min(1e-30).log(), clean)
            )
            metrics["train_acc_clean"] = float((probs.argmax(1) == clean).float().mean())
            metrics["correct_labels"] = count_correct(self.state.labels, clean)
        for split in ("val", "test"):
            dataset = getattr(self.data, split)
            if dataset is not None:
                loss, acc, _ = evaluate(model, dataset, dataset.targets, device, batch)
                metrics |= {f"{split}_loss": loss, f"{split}_acc": acc}
        if "test_loss" in metrics:
            metrics["gap_loss"] = metrics["test_loss"] - metrics["train_loss"]
            metrics["gap_acc"] = metrics["train_acc"] - metrics["test_acc"]
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return {**metrics, **extra}

    def _export(self, epoch: int, metrics: dict[str, float]) -> None:
        cfg = self.config.train
        if not torch.equal(self.state.labels, self.data.noisy):
            key = f"epoch_{epoch:04d}"
            self.writer.save_labels({key: self.state.labels})
            self.saved_labels = key
        self.writer.log_metrics({"epoch": epoch, **metrics})
        if epoch % cfg.save_every == 0 or epoch == cfg.epochs:
            self._save_checkpoint(epoch, metrics, "epoch", name=None)
        self._save_checkpoint(epoch, metrics, "last", name="last")
        if self.data.val is not None:
            if metrics["val_acc"] > self.best_acc:
                self.best_acc, self.bad_epochs = metrics["val_acc"], 0
                self._save_checkpoint(epoch, metrics, "best", name="best")
            else:
                self.bad_epochs += 1
        self._save_state()
        self._write_info(complete=False)

    def _save_checkpoint(self, epoch: int, metrics, tag: str, name: str | None) -> None:
        meta = CheckpointMeta(
            model=self.spec,
            epoch=epoch,
            tag=tag,
            metrics=metrics,
            n_train=len(self.data.train),
            data=self.data.train.spec,
            config=self._hyperparameters(),
            labels=f"train_labels.safetensors#{self.saved_labels}"
            if not torch.equal(self.data.noisy, self.data.clean) or self.saved_labels != "initial"
            else None,
        )
        self.writer.save(self.state.model.state_dict(), meta, name=name)

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "method": self.config.algorithm_name,
            "seed": self.config.train.seed,
            **self.config.to_json(),
        }

    def _write_info(self, complete: bool, stopped_early: bool = False) -> None:
        self.writer.write_info(
            {
                "format": RUN_FORMAT,
                "trainer": self._trainer_version,
                "config": self.config.to_json(),
                "model": self.spec.to_json(),
                "data": self.data.train.spec,
                "n_train": len(self.data.train),
                "num_classes": self.data.train.num_classes,
                "frozen": self.frozen,
                "epochs_done": self.epoch,
                "complete": complete,
                "stopped_early": stopped_early,
            }
        )

    # --- resume -----------------------------------------------------------------------------
    def _save_state(self) -> None:
        state = {
            "epoch": self.epoch,
            "model": self.state.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else {},
            "labels": self.state.labels.cpu(),
            "algorithm": self.algorithm.state_dict(),
            "best_acc": self.best_acc,
            "bad_epochs": self.bad_epochs,
            "saved_labels": self.saved_labels,
        }
        with atomic_open(self.out / STATE_FILE) as handle:
            torch.save(state, handle)

    def _resume(self, path: Path) -> None:
        started = read_run_info(self.out).get("trainer", 1)
        if started != TRAINER_VERSION:
            warnings.warn(
                f"{self.out} was started by an earlier trainer (version {started}, now "
                f"{TRAINER_VERSION}); it resumes, but its remaining epochs will not match an "
                f"uninterrupted run (retrain it in a new --out for that)",
                RuntimeWarning,
                stacklevel=2,
            )
            self._trainer_version = started
        saved = load_torch_file(path, path, "training state")
        self._restore(saved, path)

    def _restore(self, saved: Any, path: Path) -> None:
        """Load a saved training state, every part checked: one line for a damaged file."""

        def damaged(what: str) -> CheckpointError:
            return CheckpointError(
                f"cannot resume from {path}: {what}; move the file away to restart the run "
                "from its init, or use another --out"
            )

        missing = [key for key in _STATE_KEYS if not isinstance(saved, Mapping) or key not in saved]
        if missing:
            kind = type(saved).__name__
            raise damaged(f"not a genmeasures training state ({kind} without {missing[0]!r})")
        epoch = saved["epoch"]
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise damaged(f"'epoch' is {epoch!r}, not an epoch number")
        if epoch > self.config.train.epochs:
            raise damaged(f"it is at epoch {epoch}, past train.epochs={self.config.train.epochs}")
        labels = saved["labels"]
        if not isinstance(labels, torch.Tensor) or labels.shape != self.state.labels.shape:
            raise damaged("its training labels do not fit the training data")
        try:
            self.state.model.load_state_dict(saved["model"])
        except Exception as exc:
            raise damaged(f"it holds another model's weights ({one_line(exc)[:200]})") from None
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
            if self.schedule is not None:
                self.schedule.load_state_dict(saved["schedule"])
            self.algorithm.load_state_dict(saved["algorithm"])
            self.best_acc = float(saved["best_acc"])
            self.bad_epochs = int(saved["bad_epochs"])
        except Exception as exc:
            raise damaged(
                f"its optimizer or algorithm state does not fit ({one_line(exc)[:200]})"
            ) from None
        self.state.labels = labels.to(self.state.labels.device)
        self.epoch = epoch
        self.saved_labels = str(saved["saved_labels"])


_STATE_KEYS = (
    "epoch",
    "model",
    "optimizer",
    "schedule",
    "labels",
    "algorithm",
    "best_acc",
    "bad_epochs",
    "saved_labels",
)


def _load_data(config: FinetuneConfig) -> _Data:
    cfg = config.data
    train = load_dataset(cfg.train)
    if cfg.train_size:
        if cfg.train_size > len(train):
            raise OptionError(
                f"data.train_size={cfg.train_size} but {cfg.train} has {len(train)} samples"
            )
        train = evaluation_sample(train, cfg.train_size, cfg.subset_seed)
    val = load_dataset(cfg.val) if cfg.val else None
    test = load_dataset(cfg.test) if cfg.test else None
    for name, dataset in (("data.val", val), ("data.test", test)):
        if dataset is not None and dataset.num_classes != train.num_classes:
            raise OptionError(
                f"{name} has {dataset.num_classes} classes, data.train has {train.num_classes}"
            )
    kind = cfg.noise if cfg.noise_rate > 0 else "none"  # a grid may include rate 0
    noise = apply_label_noise(
        train.targets, train.num_classes, kind=kind, rate=cfg.noise_rate, seed=cfg.noise_seed
    )
    return _Data(
        train,
        val,
        test,
        clean=train.targets.clone(),
        noisy=noise.noisy,
        transition=noise.transition,
    )


def _build_model(
    config: FinetuneConfig, num_classes: int, device: torch.device, algorithm: type[Algorithm]
) -> tuple[nn.Module, ModelSpec, str | None]:
    """The model, its spec and what in a run of ``algorithm`` on it may draw from torch's
    global generator (None: nothing; its dropout is then routed to the run's generators)."""
    kwargs = {**config.model.kwargs, "num_classes": num_classes}
    model = build_seeded(
        lambda: build_model(config.model.name, kwargs),
        config.model.seed,
        keep_seeded=lambda built: global_draws(built, algorithm) is not None,
    )
    draws = global_draws(model, algorithm)
    if draws is None:
        route_dropout(model)
    else:
        warn_if_shared(draws)
    if config.model.pretrained:
        load_backbone(model, config.model.pretrained)
    return model.to(device), ModelSpec(config.model.name, kwargs), draws


def check_runnable(config: FinetuneConfig, memo: dict[Any, Any] | None = None) -> None:
    """Check everything a run checks before its first step, without training: the datasets
    load and agree, the model builds (on the meta device: no memory), the pretrained file
    fits it and is finite, and ``train.freeze`` leaves something to train.

    ``memo`` shares loaded datasets and pretrained files between the configs of a sweep.
    """
    memo = {} if memo is None else memo
    data_key = ("data", json.dumps(config.to_json()["data"], sort_keys=True))
    if data_key not in memo:
        memo[data_key] = _load_data(config).train.num_classes
    kwargs = {**config.model.kwargs, "num_classes": memo[data_key]}
    with torch.device("meta"):
        model = build_model(config.model.name, kwargs)
    if config.model.pretrained:
        file_key = ("pretrained", config.model.pretrained)
        if file_key not in memo:
            memo[file_key] = load_checkpoint(config.model.pretrained).state
        backbone_tensors(model, memo[file_key], config.model.pretrained)
    freeze_first_blocks(model, architecture_of(model).head, config.train.freeze)
    if not any(p.requires_grad for p in model.parameters()):
        raise OptionError("every parameter is frozen: nothing to train (lower train.freeze)")


def _optimizer(config: FinetuneConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    cfg = config.train
    if not params:
        raise OptionError("every parameter is frozen: nothing to train (lower train.freeze)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _schedule(config: FinetuneConfig, optimizer: torch.optim.Optimizer):
    cfg = config.train
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, gamma=cfg.step_gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return None


def _training_data(config: FinetuneConfig, dataset, device: torch.device) -> TrainingData:
    return TrainingData(dataset, config.train.batch_size, device, config.data.workers)


def _check_same_run(info: Mapping[str, Any], config: FinetuneConfig, out: Path) -> None:
    """A run directory belongs to one config; only train.epochs may grow on a rerun."""
    key = _difference_from_run(info, config)
    if key is not None:
        raise OptionError(
            f"{out} holds a run with another config ({key} differs); use another --out"
        )


def _difference_from_run(info: Mapping[str, Any], config: FinetuneConfig) -> str | None:
    """Where the config recorded in a run's ``run.json`` differs from ``config`` (None for a
    new run, which records none yet)."""
    return config_difference(info["config"], config) if "config" in info else None


def _say(log, message: str) -> None:
    if log is not None:
        log(message)
    else:
        print(message, file=sys.stderr)


def pretrain(config: FinetuneConfig, out: str | Path, *, progress: bool = True) -> Path:
    """Train a source model (ERM from the random init) and save it as pretrained weights.

    The training itself is an ordinary run in ``OUT.run/`` (resumable, with metrics); its last
    checkpoint is then written to ``out`` (``.safetensors`` + sidecar, tag ``pretrained``),
    the file that ``model.pretrained`` of a fine-tuning config points to.
    """
    from genmeasures.checkpoints import save_checkpoint

    out = Path(out)
    if out.suffix != ".safetensors":
        raise OptionError(f"pretrained weights are written as .safetensors, got {out}")
    if config.model.pretrained:
        raise OptionError("pretraining starts from the random init; leave model.pretrained empty")
    run_dir = out.with_name(out.stem + ".run")
    finetune(config, run_dir, progress=progress)
    last = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    meta = CheckpointMeta(
        model=last.meta.model,
        epoch=last.meta.epoch,
        tag="pretrained",
        metrics=last.meta.metrics,
        n_train=last.meta.n_train,
        data=last.meta.data,
        config=last.meta.config,
    )
    return save_checkpoint(out, last.state, meta)
