"""Keeping normalization running statistics out of perturbed forward passes.

SAM's ascent pass and NSO's / RWP's perturbed passes run the model in train mode at weights
that are not the current ones. Batch normalization then normalizes with the batch statistics
(as it should) but would also fold them into its running mean/variance (and count the batch
in ``num_batches_tracked``), so evaluation would use statistics of weights the model never
has. :func:`frozen_norm_statistics` saves every running-statistics buffer and copies it back on
exit, so passes inside it leave them exactly (bitwise) as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.parameter import UninitializedBuffer


def norm_statistics(model: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """(module, buffer name, buffer) for every running-statistics buffer of ``model``.

    Covers the modules deriving from torch's ``_NormBase``: BatchNorm1d/2d/3d, SyncBatchNorm
    and InstanceNorm with ``track_running_stats=True`` (running_mean, running_var,
    num_batches_tracked). Buffers that are ``None`` (no tracking) or not yet materialized
    (lazy modules) are skipped.
    """
    found: list[tuple[nn.Module, str, torch.Tensor]] = []
    for module in model.modules():
        if not isinstance(module, _NormBase):
            continue
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is None or isinstance(buffer, UninitializedBuffer):
                continue
            found.append((module, name, buffer))
    return found


@contextmanager
def frozen_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Run the body without changing ``model``'s normalization running statistics.

    The buffers are saved on entry and copied back on exit (also when the body raises);
    the buffer tensors themselves stay the same objects, so references to them stay valid.
    """
    found = norm_statistics(model)
    saved = [buffer.detach().clone() for _, _, buffer in found]
    try:
        yield
    finally:
        if saved:
            with torch.no_grad():
                torch._foreach_copy_([getattr(module, name) for module, name, _ in found], saved)
