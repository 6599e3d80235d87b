"""Scoring saved checkpoints in bulk: run directories or files, cached, failures collected.

``score_checkpoints`` turns paths into one tidy table (one row per checkpoint x measure x
layer) with each checkpoint's recorded metrics, its observed generalization gap and its run's
hyperparameters alongside. A checkpoint that cannot be scored (missing, corrupt, unsafe,
mismatched, NaN) is reported in ``failures`` and the others are still scored.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from genmeasures._device import Device, resolve_device
from genmeasures._io import check_output_dir, sha256_json
from genmeasures.checkpoints import (
    Checkpoint,
    FoundCheckpoint,
    ModelSpec,
    check_finite,
    check_matches_init,
    describe_difference,
    find_checkpoints,
    load_checkpoint,
    same_layout,
)
from genmeasures.checkpoints.run import flatten_config, read_labels
from genmeasures.curvature import distributed
from genmeasures.data.evalset import EvaluationSet
from genmeasures.errors import (
    GenMeasuresError,
    ModelError,
    OptionError,
    describe_failure,
    describe_os_error,
    is_bad_input,
    one_line,
)
from genmeasures.measures import (
    MeasureContext,
    MeasureResult,
    MeasureSpec,
    list_measures,
    resolve_requests,
)
from genmeasures.measures.registry import MeasureRequest
from genmeasures.scoring.cache import ResultCache, default_cache_dir, result_key
from genmeasures.scoring.engine import check_labels, uses_data, uses_model
from genmeasures.tables.schema import LONG_TABLE_COLUMNS


@dataclass(frozen=True)
class ScoreFailure:
    """One checkpoint (or one measure on it) that could not be scored, and why."""

    item: str
    message: str

    def __str__(self) -> str:
        return f"{self.item}: {self.message}"


@dataclass
class ScoreReport:
    """The table of results, what failed, and how many results were computed or cached."""

    table: pd.DataFrame
    failures: list[ScoreFailure] = field(default_factory=list)
    computed: int = 0
    cached: int = 0
    # Results neither read from the cache nor computed (``only_cached=True``).
    pending: int = 0
    # Warnings raised while computing (e.g. a budget that ran out), one entry per measure and
    # kind of message: [count, first message].
    warnings: dict[tuple[str, str], list] = field(default_factory=dict)
    # Measures of the default selection left out because an input is missing:
    # (measure, what it lacks) -> number of checkpoints.
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """One line per measure and kind of warning, with how often it was raised, and one
        per measure of the default selection that was skipped, with the reason."""
        return [
            f"{measure}: {count} time(s): {example}"
            for (measure, _), (count, example) in self.warnings.items()
        ] + [
            f"{measure} skipped on {count} checkpoint(s): it needs {lacking}"
            for (measure, lacking), count in self.skipped.items()
        ]

    def merge(self, other: ScoreReport) -> None:
        """Add ``other``'s failures, counts and warnings (not its table) to this report."""
        self.failures.extend(other.failures)
        self.computed += other.computed
        self.cached += other.cached
        self.pending += other.pending
        for key, (count, example) in other.warnings.items():
            entry = self.warnings.setdefault(key, [0, example])
            entry[0] += count
        for key, count in other.skipped.items():
            self.skipped[key] = self.skipped.get(key, 0) + count

    @property
    def ok(self) -> bool:
        return not self.failures


def score_checkpoints(
    paths: Sequence[str | os.PathLike],
    *,
    init: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    measures: Iterable[str] | Mapping[str, Mapping[str, Any] | None] | None = None,
    model: ModelSpec | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    device: Device = None,
    n_train: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    allow_import: bool = False,
    batch_size: int = 256,
    select: Literal["all", "last", "best"] = "all",
    only_cached: bool = False,
    progress: bool = True,
) -> ScoreReport:
    """Score checkpoints (files or run directories) and collect one table.

    Args:
        paths: run directories (their init is found automatically) and/or checkpoint files.
        init: the init checkpoint for all paths (overrides each run's own).
        data: a dataset spec ('digits-target:split=train') or path; default: the dataset
            each checkpoint records it was trained on, when a measure needs data.
        measures: as in :func:`genmeasures.score`; default: every measure whose inputs exist.
        model: the architecture, overriding what checkpoints record.
        use_cache, cache_dir: where results are cached (default ``~/.cache/genmeasures``).
        allow_import: allow model specs that import user code (``package.module:function``).
        select: score ``all`` checkpoints of each run directory, or only its ``last`` or
            ``best`` one.
        only_cached: compute nothing: return the cached results and count the others in
            ``ScoreReport.pending`` (to find out cheaply whether anything is left to do).

    Unusable inputs are reported in ``ScoreReport.failures``; the rest are scored.
    """
    if select not in ("all", "last", "best"):
        raise OptionError(f"unknown checkpoint selection {select!r}; valid: all, last, best")
    # By default every measure is asked for, and each checkpoint skips (and reports) those
    # whose inputs it lacks: a run directory records its dataset, a plain file may not.
    by_default = not measures
    requests = resolve_requests(measures or [spec.name for spec in list_measures()])
    device = resolve_device(device)
    cache = None
    if use_cache:
        root = check_output_dir(
            cache_dir or default_cache_dir(), "cache folder", OptionError, writable=False
        )
        cache = ResultCache(root)
    report = ScoreReport(table=pd.DataFrame())
    items, unusable = find_checkpoints(paths, init=init, select=select)
    report.failures += [ScoreFailure(str(path), describe_failure(exc)) for path, exc in unusable]
    shard = distributed.active()
    if shard is not None:
        _agree_on_the_run(requests, len(items), n_samples, seed, batch_size, device, n_train)
        if shard.rank != 0:
            cache = None  # rank 0 reads the cache for every rank and alone writes it
            progress = False
    explicit_init = _load_valid_init(Path(init)) if init is not None else None
    loader = _Loader(explicit_init, data, n_samples, seed, batch_size)
    if data is not None and uses_data(requests):
        loader.data(None, None)  # the user's --data serves every checkpoint: load it now

    bar = tqdm(
        total=len(items) * len(requests),
        desc="scoring",
        unit="measure",
        disable=not progress,
        file=sys.stderr,
    )
    scorer = _Scorer(
        requests,
        loader,
        model,
        device,
        n_train,
        seed,
        allow_import,
        cache,
        report,
        only_cached,
        by_default,
    )
    rows: list[dict[str, Any]] = []
    with bar:
        for item in items:
            bar.set_postfix_str(item.checkpoint.name, refresh=False)
            done_before = bar.n
            try:
                rows += scorer.score(item, bar)
            except distributed.DistributedError:
                raise  # the ranks disagree: the whole run is refused
            except Exception as exc:  # one bad checkpoint never costs the others
                if not is_bad_input(exc):
                    raise
                report.failures.append(ScoreFailure(str(item.checkpoint), describe_failure(exc)))
            bar.update(done_before + len(requests) - bar.n)
    report.table = _to_table(rows)
    return report


def _agree_on_the_run(
    requests: list[MeasureRequest],
    n_checkpoints: int,
    n_samples: int | None,
    seed: int,
    batch_size: int,
    device: torch.device,
    n_train: int | None,
) -> None:
    """Refuse a distributed run whose ranks were started with other settings: other measures
    or options, another number of checkpoints (each checkpoint's content, init and data are
    compared when it is loaded), other versions or thread counts (CPU reductions depend on
    the number of threads)."""
    import genmeasures

    distributed.agree(
        {
            "measures": sha256_json(
                [[spec.name, spec.version, dict(options)] for spec, options in requests]
            ),
            "n_checkpoints": n_checkpoints,
            "n_samples": n_samples,
            "seed": seed,
            "batch_size": batch_size,
            "device": device.type,
            "n_train": n_train,
            "versions": [torch.__version__, getattr(genmeasures, "__version__", "")],
            "threads": torch.get_num_threads(),
        }
    )


@dataclass
class _Scorer:
    """Scores one checkpoint at a time with the settings shared by the whole batch."""

    requests: list[MeasureRequest]
    loader: _Loader
    model_spec: ModelSpec | None
    device: torch.device
    n_train: int | None
    seed: int
    allow_import: bool
    cache: ResultCache | None
    report: ScoreReport
    only_cached: bool = False
    by_default: bool = False  # the measures are the default selection, not the user's

    def score(self, item: FoundCheckpoint, bar: tqdm) -> list[dict[str, Any]]:
        shard = distributed.active()
        if shard is None:
            return self._measure_all(*self._prepare(item), bar)
        # Distributed: the ranks compare what they loaded before anything is computed, and
        # also when loading failed, so that every rank takes the same path (the same failure,
        # or a refusal when one rank's files differ).
        try:
            prepared = self._prepare(item)
        except Exception as exc:
            distributed.agree({"failure": describe_failure(exc)}, shard)
            raise
        digests = prepared[1]
        distributed.agree({"failure": None, **digests}, shard)
        return self._measure_all(*prepared, bar)

    def _prepare(
        self, item: FoundCheckpoint
    ) -> tuple[MeasureContext, dict[str, Any], dict[str, Any], str]:
        """Load the checkpoint, its init and data: the context, the cache digests, the
        checkpoint's table columns, and why the data is missing ("" when it is not)."""
        init = self._own_names(self.loader.init(item.init))
        ckpt = self._own_names(load_checkpoint(item.checkpoint))
        assert ckpt is not None  # _own_names passes a loaded checkpoint through or renames it
        check_finite(ckpt.state, str(ckpt.path))
        spec, may_import = self._model_spec(ckpt, init)
        meta_model = _meta_model(spec, may_import)
        init_state, init_head = None, ""
        if init is not None:
            init_state, init_head = _init_with_head(ckpt.state, init.state, meta_model)
            check_matches_init(ckpt.state, init_state, str(ckpt.path))
        weights, order = _in_network_order(ckpt.state, ckpt.order, meta_model)
        init_weights = (
            _in_network_order(init_state, "recorded", meta_model)[0]
            if init_state is not None
            else None
        )
        n_train = self.n_train if self.n_train is not None else ckpt.meta.n_train
        evaluation, data_problem = None, ""
        if uses_data(self.requests):
            try:
                evaluation = self.loader.data(ckpt, item.run)
            except GenMeasuresError as exc:
                if not self.by_default:
                    raise
                # The default selection skips the data measures of a run whose recorded
                # dataset is not here (an archived run) and scores the rest.
                data_problem = f"evaluation data (the recorded dataset: {one_line(exc)})"
        factory = _model_factory(ckpt, spec, self.device, may_import) if spec else None
        ctx = MeasureContext(
            weights=weights,
            init=init_weights,
            model_factory=factory,
            data=evaluation,
            n_train=n_train,
            seed=self.seed,
            device=self.device,
            source=str(ckpt.path),
        )
        # (Cached results were checked when they were computed, from the same inputs.)
        checks_labels = evaluation is not None and spec is not None and uses_model(self.requests)
        if checks_labels and not self.only_cached:
            assert evaluation is not None  # checks_labels says so
            check_labels(ctx.model, evaluation, self.device)
        digests = {
            "checkpoint": ckpt.digest,
            "init": init.digest if init else None,
            "data": evaluation.fingerprint if evaluation is not None else None,
            "n_samples": len(evaluation) if evaluation is not None else None,
            # Curvature sums run over the evaluation batches: their size is an input too.
            "batch_size": self.loader.batch_size if evaluation is not None else None,
            "model": spec.to_json() if spec else None,
            # Per-layer results follow the tensor order (layerwise_distance's depth slope).
            "order": sha256_json(list(weights)),
            "device": self.device.type,
            "seed": self.seed,
            "n_train": n_train,
        }
        columns = _checkpoint_columns(ckpt, item.run, n_train)
        columns["tensor_order"] = order
        columns["init_head"] = init_head
        return ctx, digests, columns, data_problem

    def _measure_all(
        self,
        ctx: MeasureContext,
        digests: dict[str, Any],
        columns: dict[str, Any],
        data_problem: str,
        bar: tqdm,
    ) -> list[dict[str, Any]]:
        rows = []
        for measure, options in self.requests:
            bar.set_description_str(measure.name, refresh=True)
            lacking = ctx.missing_inputs(measure.needs) if self.by_default else []
            if data_problem:
                lacking = [data_problem if "--data" in what else what for what in lacking]
            if lacking:
                key = (measure.name, " and ".join(lacking))
                self.report.skipped[key] = self.report.skipped.get(key, 0) + 1
                result = None
            else:
                result = self._result(measure, options, ctx, digests)
            if result is not None:
                rows += [{**columns, **row} for row in result.rows()]
            bar.update()
        return rows

    def _own_names(self, ckpt: Checkpoint | None) -> Checkpoint | None:
        """A file renamed onto a registered model keeps its own names when the user's
        ``--model`` uses them (their own wrapper class, say)."""
        if ckpt is None or ckpt.original is None or self.model_spec is None:
            return ckpt
        model = _meta_model(self.model_spec, self.allow_import)
        if model is None or not same_layout(model.state_dict(), ckpt.original):
            return ckpt
        return replace(
            ckpt, state=ckpt.original, original=None, meta=replace(ckpt.meta, model=None)
        )

    def _model_spec(
        self, ckpt: Checkpoint, init: Checkpoint | None
    ) -> tuple[ModelSpec | None, bool]:
        """The architecture and whether it may import code: only the user's own ``--model``
        may (with ``--allow-import``); a factory named inside a file is never imported."""
        if self.model_spec is not None:
            return self.model_spec, self.allow_import
        spec = ckpt.meta.model or (init.meta.model if init else None)
        if spec is not None and ":" in spec.name:
            raise ModelError(
                f"{ckpt.path} names the model factory {spec.name!r}; genmeasures never imports "
                "code named inside a checkpoint or run directory. If it is your own code, pass "
                f"it yourself: --model '{spec.name}' --allow-import"
            )
        return spec, False

    def _result(
        self, measure: MeasureSpec, options: dict, ctx: MeasureContext, digests: dict
    ) -> MeasureResult | None:
        key = result_key(measure, options, digests)
        # Data without a fingerprint (a user's DataLoader) cannot be cached safely.
        cacheable = "data" not in measure.needs or digests["data"] is not None
        cache = self.cache if cacheable else None
        result = cache.get(key) if cache is not None else None
        shard = distributed.active()
        if shard is not None:  # rank 0 (the only one with a cache) decides for every rank
            result = shard.broadcast(result)
        if result is not None:
            self.report.cached += 1
            return result
        if self.only_cached:
            self.report.pending += 1
            return None
        failed: Exception | None = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = measure(ctx, **options)
        except distributed.DistributedError:
            raise  # the ranks disagree: the whole run is refused, not this measure
        except Exception as exc:  # one failing measure never costs the checkpoint's others
            if not is_bad_input(exc):
                raise
            failed = exc
        if shard is not None:
            self._compare_outcomes(shard, measure.name, failed, result)
        if failed is not None or result is None:
            assert failed is not None  # (a measure that returns gives a result)
            failure = ScoreFailure(f"{ctx.source} [{measure.name}]", describe_failure(failed))
            self.report.failures.append(failure)
            return None
        for warning in caught:
            if issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)):
                continue  # torch's own, not about the measure
            message = str(warning.message)
            kind = re.sub(r"[-+0-9.e]+", "#", message)  # one entry whatever the numbers
            entry = self.report.warnings.setdefault((measure.name, kind), [0, message])
            entry[0] += 1
        self.report.computed += 1
        if cache is not None:
            try:
                cache.put(key, result)
            except OSError as exc:  # a read-only or full cache: go on without it
                self.report.warnings.setdefault(
                    ("cache", "unwritable"),
                    [0, f"results are not cached: cannot write {describe_os_error(exc)}"],
                )[0] += 1
                self.cache = None
        return result

    def _compare_outcomes(
        self,
        shard: distributed.Shard,
        name: str,
        failed: Exception | None,
        result: MeasureResult | None,
    ) -> None:
        """Every rank must end a measure alike: the same failure (else the run is refused),
        and the same numbers (else a note says so; the table holds rank 0's). Each rank
        reduces the gathered per-batch results itself, so they agree unless some local
        computation differs between the processes (a thread count, a GPU's nondeterminism).
        """
        mine = (
            describe_failure(failed) if failed is not None else None,
            _result_digest(result) if failed is None and result is not None else None,
        )
        reports = shard.gather(mine)
        for rank, (failure, _) in enumerate(reports):
            if failure != reports[0][0]:
                raise distributed.DistributedError(
                    f"distributed run failed: measure {name} ended differently on rank 0 "
                    f"({reports[0][0] or 'computed'}) and rank {rank} ({failure or 'computed'})"
                )
        differing = [rank for rank, (_, digest) in enumerate(reports) if digest != reports[0][1]]
        if differing:
            message = (
                f"rank {differing[0]} computed other values than rank 0 "
                f"({len(differing)} of {shard.world - 1} other ranks); the table holds rank "
                "0's: some computation differs between the processes (set the same "
                "OMP_NUM_THREADS for every rank)"
            )
            entry = self.report.warnings.setdefault((name, "ranks differ"), [0, message])
            entry[0] += 1


def _result_digest(result: MeasureResult) -> str:
    """A digest of a result's numbers (all but its wall-clock seconds)."""
    data = result.to_json()
    data.pop("seconds", None)
    return sha256_json(data)


class _Loader:
    """Loads each init and each dataset once."""

    def __init__(
        self,
        explicit_init: Checkpoint | None,
        data: str | os.PathLike | None,
        n_samples: int | None,
        seed: int,
        batch_size: int,
    ) -> None:
        self._explicit_init = explicit_init
        self._inits: dict[Path, Checkpoint] = {}
        self._data = data
        self._n_samples, self._seed, self.batch_size = n_samples, seed, batch_size
        self._datasets: dict[tuple[str, str, str], EvaluationSet] = {}

    def init(self, path: Path | None) -> Checkpoint | None:
        if self._explicit_init is not None:
            return self._explicit_init
        if path is None:
            return None
        if path not in self._inits:
            self._inits[path] = _load_valid_init(path)
        return self._inits[path]

    def data(self, ckpt: Checkpoint | None, run: Path | None) -> EvaluationSet | None:
        """The evaluation sample: ``--data``, or the dataset the checkpoint was trained on,
        with the labels it was trained on (noisy or corrected) when the run stored them.
        """
        recorded = self._data is None
        spec = (ckpt.meta.data if ckpt else None) if recorded else self._data
        if spec is None:
            return None
        labels = ckpt.meta.labels if ckpt and recorded and run is not None else None
        key = (os.fspath(spec), str(run) if labels else "", labels or "")
        if key not in self._datasets:
            from genmeasures.data import load_dataset

            dataset = load_dataset(spec)
            if labels:
                assert run is not None  # labels are only read from a run directory
                dataset = dataset.with_targets(read_labels(run, labels))
            self._datasets[key] = EvaluationSet.from_dataset(
                dataset,
                n_samples=self._n_samples,
                seed=self._seed,
                batch_size=self.batch_size,
            )
        return self._datasets[key]


def _load_valid_init(path: Path) -> Checkpoint:
    init = load_checkpoint(path)
    check_finite(init.state, f"init {path}")
    return init


def _in_network_order(
    state: Mapping[str, torch.Tensor], order: str, model: nn.Module | None
) -> tuple[Mapping[str, torch.Tensor], str]:
    """The tensors in the order per-layer results use, and where that order comes from.

    A known model's own state-dict order comes first (``"model"``; the model is built on the
    meta device: no memory, no compute); without one, a file's recorded network order
    (``"recorded"``) or a foreign safetensors file's header order (``"file"``), as ``order``
    says. Never the order a reader happens to return, which for safetensors differs between
    processes.
    """
    own = list(model.state_dict()) if model is not None else []
    if set(own) != set(state):
        return state, order  # (no model known, or a mismatch reported when it is loaded)
    return {name: state[name] for name in own}, "model"


@functools.lru_cache(maxsize=16)
def _meta_model_of(name: str, kwargs_json: str, allow_import: bool) -> nn.Module | None:
    from genmeasures.models import build_model

    try:
        with torch.device("meta"):
            return build_model(name, json.loads(kwargs_json), allow_import=allow_import)
    except Exception:  # (an unknown or broken model is reported when it is really built)
        return None


def _meta_model(spec: ModelSpec | None, allow_import: bool) -> nn.Module | None:
    """The model built on the meta device (no memory; built once per spec), or None when no
    spec is known or it cannot be built there (a user's factory calling .item() on a
    tensor): callers then keep the file's order. Callers only read its names and shapes."""
    if spec is None:
        return None
    kwargs = json.dumps(dict(spec.kwargs), sort_keys=True, default=str)
    return _meta_model_of(spec.name, kwargs, allow_import)


def _init_with_head(
    state: Mapping[str, torch.Tensor],
    init: Mapping[str, torch.Tensor],
    model: nn.Module | None,
) -> tuple[Mapping[str, torch.Tensor], str]:
    """The init to measure from, and how its head was taken (``init_head`` column).

    When the init is the pretrained file a run started from (a torchvision ImageNet file), its
    head has another shape than the fine-tuned model's new head. If the head is all that
    differs, the backbone comes from the file and the new head is measured from zero, as the
    papers' scripts do (``"zero"``). That needs the checkpoint to fit its model exactly, so
    that the difference is the init's new head and not a damaged checkpoint; otherwise the
    init is used as it is (``"init"``) and a mismatch is reported.
    """
    if model is None or same_layout(state, init):
        return init, "init"
    if not same_layout(model.state_dict(), state):
        return init, "init"  # the checkpoint itself is off: not a new head, a mismatch
    from genmeasures.models import architecture_of

    prefix = architecture_of(model).head + "."
    differing = {
        n
        for n in set(state) | set(init)
        if n not in state or n not in init or state[n].shape != init[n].shape
    }
    if not all(n.startswith(prefix) and n in state for n in differing):
        return init, "init"
    return {
        n: torch.zeros_like(t) if n.startswith(prefix) else init[n] for n, t in state.items()
    }, "zero"


def _model_factory(
    ckpt: Checkpoint, spec: ModelSpec, device: torch.device, allow_import: bool
) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from genmeasures.models import build_model

        kwargs = dict(spec.kwargs)
        model = build_model(spec.name, kwargs, allow_import=allow_import)
        own = model.state_dict()
        difference = describe_difference(list(own), list(ckpt.state), "the model", "the file")
        shapes = [
            f"{name!r} is {tuple(ckpt.state[name].shape)} in the file, "
            f"{tuple(own[name].shape)} in the model"
            for name in own
            if name in ckpt.state and ckpt.state[name].shape != own[name].shape
        ]
        if difference or shapes:
            detail = difference or f"{len(shapes)} shape(s) differ: {shapes[0]}"
            raise ModelError(f"{ckpt.path} does not fit model {spec.name!r} {kwargs}: {detail}")
        model.load_state_dict(dict(ckpt.state), strict=True)
        return model.to(device)

    return build


def _checkpoint_columns(ckpt: Checkpoint, run: Path | None, n_train: int | None) -> dict:
    meta = ckpt.meta
    columns: dict[str, Any] = {
        "checkpoint": str(ckpt.path),
        "run": str(run) if run else "",
        "epoch": meta.epoch,
        "tag": meta.tag or "",
        "n_train": n_train,
    }
    metrics = dict(meta.metrics)
    if "gap_loss" not in metrics and _has(metrics, "test_loss", "train_loss"):
        metrics["gap_loss"] = metrics["test_loss"] - metrics["train_loss"]
    if "gap_acc" not in metrics and _has(metrics, "train_acc", "test_acc"):
        metrics["gap_acc"] = metrics["train_acc"] - metrics["test_acc"]
    # A recorded metric named like a table column (the epoch's training 'seconds' against the
    # measure's) keeps its value under 'recorded_NAME'.
    reserved = set(LONG_TABLE_COLUMNS)
    columns.update({f"recorded_{k}" if k in reserved else k: v for k, v in metrics.items()})
    for key, value in flatten_config(meta.config).items():
        columns.setdefault(key, value)
    return columns


def _has(metrics: Mapping[str, Any], *keys: str) -> bool:
    return all(isinstance(metrics.get(k), (int, float)) for k in keys)


def _to_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=list(LONG_TABLE_COLUMNS))
    table = pd.DataFrame(rows)
    first = [c for c in LONG_TABLE_COLUMNS if c in table.columns]
    rest = [c for c in table.columns if c not in first]
    return table[first + rest]
