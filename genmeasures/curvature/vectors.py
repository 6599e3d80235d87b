"""Vectors in parameter space: tuples of tensors, one per selected parameter.

Keeping one tensor per parameter (rather than one flat vector) avoids copies and keeps the
per-layer structure that layer-wise measures need. Reductions accumulate in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Vector = tuple[torch.Tensor, ...]


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b, strict=True)))


def blockwise_dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> list[float]:
    """<a_i, b_i> for each parameter i."""
    return [float((x.double() * y.double()).sum()) for x, y in zip(a, b, strict=True)]


def norm(a: Sequence[torch.Tensor]) -> float:
    return dot(a, a) ** 0.5


def add(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], alpha: float = 1.0) -> Vector:
    """a + alpha * b."""
    return tuple(x + alpha * y for x, y in zip(a, b, strict=True))


def scale(a: Sequence[torch.Tensor], alpha: float) -> Vector:
    return tuple(alpha * x for x in a)


def zeros_like(a: Sequence[torch.Tensor]) -> Vector:
    return tuple(torch.zeros_like(x) for x in a)


def rademacher_like(a: Sequence[torch.Tensor], generator: torch.Generator) -> Vector:
    """Independent +-1 entries (drawn on the CPU so results do not depend on the device)."""
    return tuple(
        (torch.randint(0, 2, x.shape, generator=generator, dtype=x.dtype) * 2 - 1).to(x.device)
        for x in a
    )


def gaussian_like(a: Sequence[torch.Tensor], generator: torch.Generator) -> Vector:
    """Independent standard normal entries (drawn on the CPU, then moved)."""
    return tuple(torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) for x in a)


def flatten(a: Sequence[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
    """The tensors of ``a`` as one flat vector (written into ``out`` when given)."""
    parts = [x.reshape(-1) for x in a]
    return torch.cat(parts) if out is None else torch.cat(parts, out=out)


def unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> Vector:
    out, start = [], 0
    for x in like:
        out.append(flat[start : start + x.numel()].reshape(x.shape).to(x.dtype))
        start += x.numel()
    return tuple(out)
