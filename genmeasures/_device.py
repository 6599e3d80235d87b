"""Choosing the compute device."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from genmeasures.errors import OptionError

Device = torch.device | str | None


def resolve_device(device: Device) -> torch.device:
    """``None``/``'auto'`` -> CUDA when present, else CPU; ``'cuda'`` without CUDA is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' requested but no CUDA device is available")
    return device


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with ``count`` torch intra-op threads (0: leave the setting alone), then
    restore the previous setting.

    On the CPU the thread count changes how reductions are split, so it changes results in
    the last bits, and training amplifies that: pinning it makes a run's numbers depend on
    its config only, not on how many runs shared the machine.
    """
    if count <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
