"""Where a fine-tuning run's random numbers come from, so that runs sharing a process (thread
workers) train exactly as they do alone.

A run used to seed torch's process-wide generator (``torch.manual_seed``) before building its
model and at the start of every epoch, and its dropout masks and data loader drew from it: two
runs in one process raced on it. Now:

* **Model construction** (:func:`build_seeded`) stays on the global generator, because module
  constructors take no generator and a model's init is whatever its constructors draw (plugins
  and torchvision models included); re-deriving every init with explicit generators would not
  reproduce those draws. Instead it is serialized under one process-wide lock that seeds the
  CPU generator, builds and then restores the caller's generator state: no other run can
  interleave, the init is exactly the old one, and the global state is left as it was.
* **Training** draws from the run's own generators: every epoch lends a
  :class:`~genmeasures._rng.SeededGenerators` seeded with the epoch seed (where the global
  generator used to be reseeded) to the dropout of the model and to the data loaders. It gets
  the very draws the global generator gave, in the same order, so every existing run's weights
  are bit-identical (and a run resumed after a kill still matches an uninterrupted one).

That holds for a run whose every random draw is known: the built-in algorithms draw from
``TrainState.generator``, and a model is known when each module is genmeasures' own, or one of
torch.nn's (plain ``nn.Dropout`` modules are routed to the run's generators by
:func:`route_dropout`; torch's other dropouts, ``RReLU`` and the dropout of
``MultiheadAttention`` and the RNNs draw inside torch and cannot be). A run with anything else
(a plugin algorithm, a model module from elsewhere that may call ``F.dropout`` or
``torch.rand`` itself) keeps the old scheme, where the global generator is reseeded every
epoch: its numbers do not change either and it resumes exactly, but it is not safe beside
another run in the same process (a warning says so when it starts outside the main thread).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from genmeasures._rng import Dropout

T = TypeVar("T")

_CONSTRUCTION = threading.Lock()

# torch.nn modules that draw from the global generator inside torch's own code, when they draw.
_DRAWS_IN_TORCH: tuple[type[nn.Module], ...] = (
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.RReLU,
    nn.MultiheadAttention,
    nn.RNNBase,  # the dropout between an RNN's layers
)


def build_seeded(
    build: Callable[[], T], seed: int, keep_seeded: Callable[[T], bool] = lambda _: False
) -> T:
    """``build()`` with torch's CPU generator seeded with ``seed``, under a process-wide lock;
    the caller's generator state is restored afterwards unless ``keep_seeded(result)``.

    The result is exactly that of ``torch.manual_seed(seed); build()`` (models are built on the
    CPU, then moved). ``keep_seeded`` leaves the generators as that sequence did (the CPU's
    where construction left it, the GPUs' seeded) for a run that goes on drawing from them
    (see :func:`global_draws`).
    """
    with _CONSTRUCTION:
        saved = torch.random.get_rng_state()
        torch.random.default_generator.manual_seed(seed)
        keep = False
        try:
            result = build()
            keep = keep_seeded(result)
            if keep:
                torch.cuda.manual_seed_all(seed)  # deferred until CUDA starts, as manual_seed
            return result
        finally:
            if not keep:
                torch.random.set_rng_state(saved)


def global_draws(model: nn.Module, algorithm: type) -> str | None:
    """What in a run of ``algorithm`` on ``model`` may draw from torch's global generator, or
    ``None`` when every draw it makes comes from the run's own generators (after
    :func:`route_dropout`)."""
    if not algorithm.__module__.startswith("genmeasures.finetune."):
        return f"algorithm {algorithm.__module__}.{algorithm.__qualname__}"
    for name, module in model.named_modules():
        cls = type(module)
        where = f"module {name or '(the model)'} ({cls.__module__}.{cls.__qualname__})"
        if cls.__module__.startswith("genmeasures.models."):
            continue  # genmeasures' own: they draw through genmeasures._rng only (keep it so)
        if not cls.__module__.startswith("torch.nn."):
            return where
        if isinstance(module, _DRAWS_IN_TORCH) and _may_draw(module):
            return where
    return None


def _may_draw(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention | nn.RNNBase):
        return float(module.dropout) > 0
    if isinstance(module, nn.RReLU):
        return True
    return float(getattr(module, "p", 1.0)) > 0


def route_dropout(model: nn.Module) -> None:
    """Turn every plain ``nn.Dropout`` of ``model`` into a :class:`~genmeasures._rng.Dropout`,
    which draws from the lent generators: the same module with the same state dict (none),
    names and ``isinstance``, only its class changes."""
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = Dropout


def warn_if_shared(draws: str) -> None:
    """A run on the global generator warns when it may share the process with another run."""
    if threading.current_thread() is not threading.main_thread():
        warnings.warn(
            f"{draws} may draw from torch's global generator: this run trains as it does "
            "alone only in a process of its own (worker processes, not threads)",
            RuntimeWarning,
            stacklevel=3,
        )
