"""The calling thread's random generators: how a fine-tuning run lends its own to what it calls.

torch draws from one process-wide generator whenever a call names none, and two of its draws
name none: every dropout mask (``F.dropout`` takes no generator) and a ``DataLoader``'s worker
seed. Two runs in one process (thread workers) would race on that generator, and any other
code drawing from it would change a run's numbers. So a run lends a :class:`SeededGenerators`
for the stretch of work it owns (:func:`lend`, through a ``ContextVar``: per thread, so a run
in another thread never sees it), and the code that would have drawn from the global generator
asks :func:`current_generator` instead. With nothing lent (scoring, tests, any other caller)
everything here behaves exactly as torch does.

The lent generators are seeded exactly as ``torch.manual_seed(seed)`` seeds the global ones,
and the dropout here draws its mask exactly as torch's does, so a run that used to reseed the
global generator with ``seed`` draws bit-identical numbers from the lent ones.

This module sits below :mod:`genmeasures.models` and :mod:`genmeasures.finetune` (a model
imports its dropout from here; the fine-tuner lends the generators) and imports neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn


class SeededGenerators:
    """One ``torch.Generator`` per device, made on first use and seeded with ``seed`` as
    ``torch.manual_seed(seed)`` seeds that device's global generator (the CPU's Mersenne
    Twister, each GPU's Philox at offset 0), so its stream is the one the global generator
    would have given after that call. Devices other than the CPU and CUDA get none.

    Used by one thread at a time (the run that lends it), like a generator itself.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device | str) -> torch.Generator | None:
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        elif device.type != "cpu" and device.type != "cuda":
            return None
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(self.seed)
            self._generators[device] = generator
        return generator


_LENT: ContextVar[SeededGenerators | None] = ContextVar("genmeasures_lent_generators", default=None)


@contextmanager
def lend(generators: SeededGenerators) -> Iterator[None]:
    """Make ``generators`` the calling thread's current ones for the body (nested lends
    stack: the outer ones are current again after the body)."""
    token = _LENT.set(generators)
    try:
        yield
    finally:
        _LENT.reset(token)


def current_generator(device: torch.device | str) -> torch.Generator | None:
    """The lent generator for ``device``, or ``None`` (torch's global one) when none is lent."""
    lent = _LENT.get()
    return None if lent is None else lent.generator(device)


# A CUDA tensor's (out-of-place) dropout is torch's fused kernel, whose only entry point that
# takes a generator is this one (native_dropout has none). Same kernel, same Philox draws.
_fused_dropout = getattr(torch, "_fused_dropout", None)


def dropout(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> torch.Tensor:
    """``F.dropout`` with its mask drawn from the lent generator of ``input``'s device.

    Outside a run (nothing lent), in eval mode, and where it draws nothing (``p`` 0 or 1, an
    empty input) it *is* ``F.dropout``. Otherwise it computes what ``F.dropout`` computes
    after ``torch.manual_seed(seed)`` when the lent generator is seeded with ``seed``: on the
    CPU (and in place anywhere) a Bernoulli(1 - p) mask scaled by 1 / (1 - p) and multiplied
    in, on CUDA torch's fused kernel; values, gradients and strides are the same.
    """
    if not training or not 0.0 < p < 1.0 or input.numel() == 0 or input.is_nested:
        return F.dropout(input, p, training, inplace)
    generator = current_generator(input.device)
    if generator is None:
        return F.dropout(input, p, training, inplace)
    if input.is_cuda and not inplace and _fused_dropout is not None:
        return _fused_dropout(input, 1.0 - p, generator)[0]
    noise = torch.empty_like(input).bernoulli_(1.0 - p, generator=generator)
    noise.div_(1.0 - p)
    return input.mul_(noise) if inplace else input * noise


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose mask comes from :func:`dropout` (the lent generator, when one is
    lent). It adds no state: names, state dict and ``isinstance(m, nn.Dropout)`` are those of
    an ``nn.Dropout``, so a plain one can be turned into one in place."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout(input, self.p, self.training, self.inplace)
