"""Data-parallel curvature: the evaluation batches shared among processes, the numbers exactly
those of one process.

The rule: a number must not depend on how many processes computed it. An ``all_reduce`` sum
adds the ranks' partial sums in an order of its own, so its result differs from one process's
in the last bits (and between backends and world sizes). Nothing here all-reduces floats.
Instead the unit of work is one batch of the single-process batch list, and every sum over
batches is added in the single-process order:

* **Ownership.** Rank r owns a contiguous range of the batch list (:meth:`Shard.owned`; the
  first ``count % world`` ranks one batch more, ranks past the last batch none). Every rank
  holds the whole evaluation sample (it is read from the same files); only the work is
  shared.
* **Products** (:func:`ordered_sum`, used by
  :meth:`~genmeasures.curvature.operators.CurvatureOperator.matmat`): each rank computes its
  batches' contributions to ``[A v for v in vectors]``; then the running sum travels along
  the ranks, rank 0 -> 1 -> ..., each adding its own contributions one batch at a time exactly
  as the single process's loop does (``total + part``, batch by batch), and the last rank
  holding a batch broadcasts the total. Bit for bit the single-process left fold; the price
  is that a rank keeps its own batches' contributions until the running sum reaches it.
* **Per-batch results** (:func:`map_batches`: per-sample values, maxima, per-batch traces):
  each rank maps its own batches, the results are gathered in batch order, and the caller
  reduces the whole list with the single-process code (a max, a ``torch.cat``, an ``fsum``),
  so the reduction is the single process's by construction. Warnings raised while mapping are
  raised again on every rank, in batch order; an exception raised on some batch is raised on
  every rank (the first in batch order), so that ranks never part ways.
* **Decisions** (:func:`on_rank_zero`: the product method, the structure probe): taken on
  rank 0 and broadcast, never taken per process (a timing, say, would differ between ranks).
  Probe vectors need nothing: they are drawn on the CPU from generators seeded by the
  measure's seed, identical on every rank; :func:`ordered_sum` checks that every rank passed
  the same vectors (a checksum per product), so a rank that drifted fails loudly instead of
  adding products of other vectors.
* **Agreement** (:func:`agree`): before anything is computed the ranks compare digests of
  what they were given (checkpoint, init, evaluation data, options, versions); a difference
  is refused with a one-line :class:`DistributedError`.

A process takes part while a :class:`Shard` is active (:func:`sharding`, or
:func:`from_environment` under ``torchrun``); without one every function here is the
single-process code. Backends: gloo for the CPU, NCCL for CUDA (one GPU per process,
``LOCAL_RANK``). The results are bit-identical to one process running with the same number
of threads on the same kind of device (CPU reductions depend on the thread count; torchrun
sets ``OMP_NUM_THREADS=1`` unless it is set).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from genmeasures._io import tensor_bytes
from genmeasures.curvature.vectors import Vector, add
from genmeasures.errors import GenMeasuresError, MeasureError, describe_failure, one_line

T = TypeVar("T")
R = TypeVar("R")

# torchrun's (and env://'s) variables: all four present means "launched as one of several".
ENVIRONMENT = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(GenMeasuresError):
    """The processes of a distributed run disagree (other data, checkpoint or options), or
    the process group cannot be formed: the whole run is refused, in one line."""


@dataclass(frozen=True)
class Shard:
    """This process's place in the process group: ``rank`` of ``world``, the ``backend``
    (gloo, nccl) and the ``device`` the computation (and NCCL's messages) live on."""

    rank: int
    world: int
    backend: str = "gloo"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def owned(self, count: int) -> range:
        """The contiguous range of ``count`` batches this rank computes."""
        return owned_range(count, self.rank, self.world)

    def last_owner(self, count: int) -> int:
        """The highest rank holding a batch of ``count`` (ranks past it hold none)."""
        return max(0, min(self.world, count) - 1)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (pickled)."""
        if self.world == 1:
            return [obj]
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank (pickled)."""
        if self.world == 1:
            return obj
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]


def owned_range(count: int, rank: int, world: int) -> range:
    """Batches ``[start, stop)`` of ``count`` for ``rank`` of ``world``: contiguous, the first
    ``count % world`` ranks one more, so that rank 0 always holds batch 0 and the ranks past
    the last batch hold none."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


_ACTIVE: Shard | None = None


def active() -> Shard | None:
    """The shard this process computes in, or None (one process: the plain code)."""
    return _ACTIVE


@contextmanager
def sharding(shard: Shard | None) -> Iterator[Shard | None]:
    """Run the body with ``shard`` active (None: as one process), then restore the previous."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, shard
    try:
        yield shard
    finally:
        _ACTIVE = previous


def unsharded() -> AbstractContextManager[Shard | None]:
    """Run the body as one process: used where the caller has already shared the work out
    (one mini-batch's whole trace per rank) and the computation inside must stay local."""
    return sharding(None)


def launched() -> bool:
    """Whether torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) is set."""
    return all(os.environ.get(name) for name in ENVIRONMENT)


@contextmanager
def from_environment(device: torch.device, timeout_s: float = 1800.0) -> Iterator[Shard]:
    """Join the process group torchrun describes (env://), make its shard active, leave it
    on exit.

    gloo when ``device`` is the CPU, NCCL when it is CUDA (then this process uses GPU
    ``LOCAL_RANK``; not yet run on a multi-GPU machine). A missing or malformed variable,
    or a group that cannot be formed, is a :class:`DistributedError`.
    """
    missing = [name for name in ENVIRONMENT if not os.environ.get(name)]
    if missing:
        raise DistributedError(
            f"distributed scoring needs torchrun's environment ({', '.join(missing)} not set); "
            "launch it as: torchrun --nproc_per_node N -m genmeasures score ..."
        )
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise DistributedError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} is not a rank of WORLD_SIZE={world}")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA device(s) "
                "are visible: one GPU per process (or --device cpu: gloo on the CPU)"
            )
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    try:
        dist.init_process_group(
            backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
        )
    except Exception as exc:  # torch's DistNetworkError, RuntimeError: one line
        raise DistributedError(
            f"cannot join the process group ({backend}, rank {rank} of {world}): "
            f"{describe_failure(exc)}"
        ) from None
    try:
        with sharding(Shard(rank, world, backend, device)) as shard:
            assert shard is not None
            yield shard
    finally:
        dist.destroy_process_group()


# -- agreement ---------------------------------------------------------------------------

_LABELS = {
    "checkpoint": "the checkpoint",
    "init": "the init checkpoint",
    "data": "the evaluation data",
    "n_samples": "the number of evaluation samples",
    "batch_size": "the evaluation batch size",
    "model": "the model",
    "order": "the tensor order",
    "device": "the device type",
    "seed": "the seed",
    "n_train": "the training-set size",
    "measures": "the measures and their options",
    "n_checkpoints": "the number of checkpoints",
    "versions": "the torch and genmeasures versions",
    "threads": "the number of torch threads",
    "failure": "whether the checkpoint loads",
    "sample": "the evaluation sample (inputs and targets, batch by batch)",
    "weights": "the model's weights",
    "layers": "the selected layers",
    "loss": "the loss function",
}


def agree(values: Mapping[str, Any], shard: Shard | None = None) -> None:
    """Raise :class:`DistributedError` unless every rank passed the same ``values``.

    ``values`` maps what is compared (``data``, ``checkpoint``, ...) to a digest or a small
    value; the message names the first difference, so that a run with other data on one
    rank is refused before anything is computed, on every rank alike.
    """
    shard = shard or active()
    if shard is None or shard.world == 1:
        return
    reports = shard.gather(dict(values))
    first = reports[0]
    for rank, report in enumerate(reports):
        for key in [*first, *(k for k in report if k not in first)]:
            if report.get(key) != first.get(key):
                what = _LABELS.get(key, key)
                raise DistributedError(
                    f"distributed run refused: {what} differs between rank 0 and rank {rank}; "
                    "every process must be given the same checkpoints, data and options"
                )


def tensor_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes): what a rank was given."""
    digest = hashlib.sha256()
    for name, tensor in named:
        digest.update(f"{name}:".encode() + tensor_bytes(tensor))
    return digest.hexdigest()


def checksum(vectors: Sequence[Sequence[torch.Tensor]]) -> tuple[int, ...]:
    """A cheap exact checksum of vectors: per tensor, the integer sum of its bit patterns (on
    the device, no copy). Two ranks passing other vectors to one product differ here."""
    sums = []
    for vector in vectors:
        for tensor in vector:
            flat = tensor.detach().contiguous().reshape(-1)
            size = flat.element_size()
            view = torch.int32 if size % 4 == 0 else torch.int16 if size == 2 else torch.uint8
            sums.append(flat.view(view).to(torch.int64).sum())
    if not sums:
        return ()
    return tuple(int(s) for s in torch.stack(sums).cpu().tolist())


# -- per-batch results ------------------------------------------------------------------


def map_batches(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, each rank mapping the items it owns.

    The results are gathered in item order on every rank (tensors travel through the CPU and
    come back to this rank's device), so the caller's reduction of the list is the single
    process's. Warnings are raised again on every rank in item order; an exception is raised
    on every rank (the first in item order, after the warnings before it). ``fn`` runs
    unsharded: whatever it computes is this rank's alone (a collective inside it would wait
    for ranks that are not there).
    """
    shard = active()
    if shard is None:
        return [fn(item) for item in items]
    results: list[Any] = []
    caught: list[tuple[str, type[Warning]]] = []
    error = None
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        try:
            with unsharded():
                for index in shard.owned(len(items)):
                    results.append(_to_cpu(fn(items[index])))
        except Exception as exc:
            error = portable(exc)
        caught = [(str(w.message), w.category) for w in records]
    merged: list[R] = []
    for rank_results, rank_warnings, rank_error in shard.gather((results, caught, error)):
        for message, category in rank_warnings:
            warnings.warn(message, category, stacklevel=2)
        if rank_error is not None:
            raise rank_error
        merged.extend(_to_device(r, shard.device) for r in rank_results)
    return merged


def on_rank_zero(fn: Callable[[], R]) -> R:
    """``fn()`` computed on rank 0 (unsharded) and broadcast, its warnings and its exception
    raised again on every rank: for decisions that must not differ between ranks."""
    shard = active()
    if shard is None:
        return fn()
    payload: tuple[Any, list, BaseException | None] = (None, [], None)
    if shard.rank == 0:
        result, error = None, None
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            try:
                with unsharded():
                    result = _to_cpu(fn())
            except Exception as exc:
                error = portable(exc)
            caught = [(str(w.message), w.category) for w in records]
        payload = (result, caught, error)
    result, caught, error = shard.broadcast(payload)
    for message, category in caught:
        warnings.warn(message, category, stacklevel=2)
    if error is not None:
        raise error
    return _to_device(result, shard.device)


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else an exception of the same kind of failure (a
    toolkit error stays a one-line input error, anything else a RuntimeError)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        if isinstance(exc, GenMeasuresError):
            return MeasureError(one_line(exc))
        return RuntimeError(describe_failure(exc))


@dataclass(frozen=True)
class _Moved:
    tensor: torch.Tensor
    cuda: bool


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return _Moved(obj.detach().cpu(), obj.device.type == "cuda")
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_to_cpu(x) for x in obj)
    if isinstance(obj, list):
        return [_to_cpu(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, _Moved):
        return obj.tensor.to(device) if obj.cuda and device.type == "cuda" else obj.tensor
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_to_device(x, device) for x in obj)
    if isinstance(obj, list):
        return [_to_device(x, device) for x in obj]
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


# -- products ---------------------------------------------------------------------------


def ordered_sum(
    shard: Shard,
    count: int,
    contribution: Callable[[int], list[Vector]],
    like: Sequence[torch.Tensor],
    vectors: Sequence[Sequence[torch.Tensor]],
) -> list[Vector]:
    """``sum_b contribution(b)`` over batches ``b = 0..count-1``, each a list of
    ``len(vectors)`` vectors shaped like ``like``, added in batch order: bit for bit the
    single process's ``total = total + part`` loop, on every rank.

    Each rank computes the contributions of the batches it owns; the ranks then compare the
    vectors' checksums and any exception (raised on every rank, the first in batch order);
    the running sum goes from rank to rank (point-to-point), each adding its own parts in
    order, and the last rank holding a batch broadcasts the total.
    """
    own = shard.owned(count)
    layout = _Layout(like, len(vectors))
    running: list[torch.Tensor] | None = None
    parts: list[list[torch.Tensor]] = []
    error = None
    try:
        for index in own:
            packed = layout.pack(contribution(index))
            if shard.rank == 0:  # the start of the chain adds as it goes
                running = packed if running is None else list(add(running, packed))
            else:
                parts.append(packed)
    except Exception as exc:
        error = portable(exc)
    reports = shard.gather((checksum(vectors), error))
    for _, rank_error in reports:
        if rank_error is not None:
            raise rank_error
    if any(report[0] != reports[0][0] for report in reports):
        raise DistributedError(
            "distributed run failed: the ranks passed different vectors to one curvature "
            "product (a rank's computation has drifted); rerun with the same number of "
            "threads on every rank"
        )
    last = shard.last_owner(count)
    if 0 < shard.rank <= last:
        running = layout.empty()
        for buffer in running:
            dist.recv(buffer, src=shard.rank - 1)
        for packed in parts:
            running = list(add(running, packed))
    if shard.rank < last:
        assert running is not None
        for buffer in running:
            dist.send(buffer, dst=shard.rank + 1)
    if shard.world > 1:
        if running is None or shard.rank != last:
            running = layout.empty()
        for buffer in running:
            dist.broadcast(buffer, src=last)
    assert running is not None
    return layout.unpack(running)


class _Layout:
    """``count`` vectors shaped like ``like`` as one flat buffer per dtype (elementwise sums
    of the buffers are the elementwise sums of the tensors: the same additions)."""

    def __init__(self, like: Sequence[torch.Tensor], count: int) -> None:
        self.like = [(t.shape, t.dtype, t.numel()) for t in like]
        self.count = count
        self.device = like[0].device if like else torch.device("cpu")
        self.dtypes = list(dict.fromkeys(t.dtype for t in like))

    def pack(self, vectors: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
        groups: dict[torch.dtype, list[torch.Tensor]] = {dtype: [] for dtype in self.dtypes}
        for vector in vectors:
            for tensor, (shape, dtype, _) in zip(vector, self.like, strict=True):
                if tensor.dtype != dtype or tensor.shape != shape:
                    raise RuntimeError(
                        f"a product has a {tensor.dtype} tensor of shape {tuple(tensor.shape)} "
                        f"where the parameter is {dtype} {tuple(shape)}"
                    )
                groups[dtype].append(tensor.reshape(-1))
        return [torch.cat(groups[dtype]) for dtype in self.dtypes]

    def empty(self) -> list[torch.Tensor]:
        sizes = dict.fromkeys(self.dtypes, 0)
        for _, dtype, numel in self.like:
            sizes[dtype] += numel * self.count
        return [torch.empty(sizes[d], dtype=d, device=self.device) for d in self.dtypes]

    def unpack(self, buffers: Sequence[torch.Tensor]) -> list[Vector]:
        by_dtype = dict(zip(self.dtypes, buffers, strict=True))
        offsets = dict.fromkeys(self.dtypes, 0)
        vectors = []
        for _ in range(self.count):
            vector = []
            for shape, dtype, numel in self.like:
                start = offsets[dtype]
                vector.append(by_dtype[dtype][start : start + numel].reshape(shape))
                offsets[dtype] = start + numel
            vectors.append(tuple(vector))
        return vectors
