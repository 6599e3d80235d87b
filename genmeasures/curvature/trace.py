"""Trace estimators: Hutchinson, Hutch++ and exact, with per-block (per-layer) traces.

All take a curvature operator A (``matmat``) and return a :class:`TraceEstimate`. Every
estimator also yields the trace of each diagonal block A_ii (one per selected parameter) from
the same products: for a probe g, g_i^T (A g)_i is an unbiased estimate of Tr(A_ii).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from genmeasures.curvature.vectors import (
    Vector,
    blockwise_dot,
    flatten,
    rademacher_like,
    unflatten,
)


class Operator(Protocol):
    """What the estimators need of a curvature operator: its parameters (the probes' shape),
    its product count, and products with a batch of vectors."""

    @property
    def params(self) -> Vector: ...

    @property
    def n_matvecs(self) -> int: ...

    def matmat(self, vectors: Sequence[Sequence[torch.Tensor]]) -> list[Vector]: ...


@dataclass(frozen=True)
class TraceEstimate:
    """Tr(A) with its standard error, per-block traces, the probe samples and the cost.

    ``stderr`` is NaN for the exact method. ``samples`` holds each probe's estimate of the
    whole trace (for Hutch++, the exact part plus the probe's residual part). ``converged``
    is False when the matvec budget ran out before the relative standard error reached the
    tolerance.
    """

    value: float
    stderr: float
    blocks: tuple[float, ...]
    block_stderrs: tuple[float, ...]
    samples: tuple[float, ...]
    n_matvecs: int
    converged: bool
    method: str
    # Per block: computed exactly (estimator=auto on a block the outputs are affine in).
    exact_blocks: tuple[bool, ...] = ()
    # What estimator=auto chose (exact_route, control_variate: 1 or 0), for the table.
    choices: Mapping[str, float] = field(default_factory=dict)


def hutchinson(
    op: Operator,
    *,
    rtol: float = 0.01,
    max_matvecs: int = 200,
    min_probes: int = 10,
    block_size: int = 4,
    generator: torch.Generator,
    initial: Sequence[Sequence[float]] = (),
    offset: Sequence[float] = (),
    known_elsewhere: float = 0.0,
    deflation: Deflation | None = None,
    sunk: int = 0,
) -> TraceEstimate:
    """Hutchinson's estimator with Rademacher probes g: Tr(A) = E[g^T A g].

    Probes are drawn in blocks of ``block_size`` (one ``matmat`` each); after at least
    ``min_probes`` it stops when stderr <= rtol * |estimate|, or when ``max_matvecs`` probes
    are spent (then it warns and returns the estimate with its standard error; ``rtol=0``
    spends the whole budget by design and does not warn).

    ``initial``: per-block samples g_i^T (A g)_i of probes already drawn from ``generator``
    (they count towards the budget, not towards ``n_matvecs``); ``offset``: a known part of
    each block's trace, added to its estimate and to each probe's ``samples`` (a control
    variate's exact trace); ``known_elsewhere``: the trace of blocks outside A, known
    exactly: the tolerance is relative to the whole trace, A's plus this. ``deflation``:
    Hutch++'s residual step; every probe is projected off the deflation's basis Q,
    g' = (I - QQ^T) g, and the exact Tr(Q^T A Q) is the offset (see :func:`deflate`).
    ``sunk``: products spent before this call (a sketch), in ``n_matvecs`` and in the
    budget a warning names.
    """
    if deflation is not None:
        offset = [
            a + b for a, b in zip(offset or [0.0] * len(op.params), deflation.exact, strict=True)
        ]
    offset = list(offset) or [0.0] * len(op.params)
    reference = [*offset, known_elsewhere]
    per_probe: list[list[float]] = [list(row) for row in initial]
    while len(per_probe) < max_matvecs:
        if len(per_probe) >= min_probes and _relative_stderr(per_probe, reference) <= rtol:
            break
        count = min(block_size, max_matvecs - len(per_probe))
        probes = [rademacher_like(op.params, generator) for _ in range(count)]
        if deflation is not None:
            probes = [deflation.project(probe) for probe in probes]
        for probe, product in zip(probes, op.matmat(probes), strict=True):
            per_probe.append(blockwise_dot(probe, product))
    reached = _relative_stderr(per_probe, reference)
    method = "hutchinson" if deflation is None else "hutchpp"
    if not reached <= rtol:
        _warn_budget(_TITLES[method], sunk + max_matvecs, reached, rtol)
    est = _summarize(
        per_probe, sunk + len(per_probe) - len(initial), reached <= rtol, method, offset=offset
    )
    return replace(est, samples=tuple(math.fsum(offset) + s for s in est.samples))


_TITLES = {"hutchinson": "Hutchinson trace", "hutchpp": "Hutch++ trace"}


@dataclass(frozen=True)
class Deflation:
    """Hutch++'s exact part: an orthonormal basis Q of A S (flat, (dim, k)) and each block's
    share of Tr(Q^T A Q), sum_k <(q_k)_i, (A q_k)_i>; ``n_matvecs``: the k products A Q."""

    basis: torch.Tensor
    exact: tuple[float, ...]
    like: Vector
    n_matvecs: int

    def project(self, vector: Sequence[torch.Tensor]) -> Vector:
        """(I - QQ^T) v."""
        flat = flatten(vector)
        return unflatten(flat - self.basis @ (self.basis.T @ flat), self.like)


def deflate(op: Operator, sketch_products: Sequence[Sequence[torch.Tensor]]) -> Deflation:
    """The :class:`Deflation` of ``op`` from the products A S of a sketch S (k products more).

    With probes g' = (I - QQ^T) g, Tr(A_ii) = sum_k <(q_k)_i, (A q_k)_i> + E[<g'_i, (A g')_i>]
    per block (Meyer, Musco, Musco & Woodruff, SOSA 2021): the first term is exact and takes
    A's dominant eigendirections out of the second, whose variance is what Hutchinson pays.
    """
    like = op.params
    basis = torch.stack([flatten(v) for v in sketch_products], dim=1)
    q, _ = torch.linalg.qr(basis.double())
    q = q.to(like[0].dtype)
    columns = [unflatten(q[:, k], like) for k in range(q.shape[1])]
    exact = [0.0] * len(like)
    for column, product in zip(columns, op.matmat(columns), strict=True):
        exact = [a + b for a, b in zip(exact, blockwise_dot(column, product), strict=True)]
    return Deflation(q, tuple(exact), tuple(like), len(columns))


class Difference:
    """The operator A - B (same parameters): products of both, subtracted."""

    def __init__(self, a: Operator, b: Operator) -> None:
        self.a, self.b = a, b
        self.params = a.params

    @property
    def n_matvecs(self) -> int:
        return self.a.n_matvecs + self.b.n_matvecs

    def matmat(self, vectors: Sequence[Sequence[torch.Tensor]]) -> list[Vector]:
        return [
            tuple(x - y for x, y in zip(pa, pb, strict=True))
            for pa, pb in zip(self.a.matmat(vectors), self.b.matmat(vectors), strict=True)
        ]


def hutchpp(
    op: Operator,
    *,
    rtol: float = 0.01,
    max_matvecs: int = 200,
    sketch_size: int | None = None,
    min_probes: int = 10,
    block_size: int = 4,
    generator: torch.Generator,
) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021).

    Tr(A) = Tr(Q^T A Q) + Tr((I - QQ^T) A (I - QQ^T)), with Q an orthonormal basis of A S for
    a Rademacher sketch S of ``sketch_size`` columns (default: a third of the budget): the
    first term is exact (:func:`deflate`), the second is estimated by :func:`hutchinson` on
    deflated probes, with its stopping rule. Per-block traces use the same split.
    """
    sketch_size = sketch_size or max(1, max_matvecs // 3)
    if 2 * sketch_size + min_probes > max_matvecs:
        sketch_size = max(1, (max_matvecs - min_probes) // 2)
    sketch = [rademacher_like(op.params, generator) for _ in range(sketch_size)]
    deflation = deflate(op, op.matmat(sketch))
    return hutchinson(
        op,
        rtol=rtol,
        max_matvecs=max_matvecs - 2 * sketch_size,
        min_probes=min_probes,
        block_size=block_size,
        generator=generator,
        deflation=deflation,
        sunk=2 * sketch_size,
    )


def exact_trace(op: Operator, *, block_size: int = 16) -> TraceEstimate:
    """Tr(A) = sum_k e_k^T A e_k over every coordinate: exact, ``dim`` products."""
    like = op.params
    dim = sum(p.numel() for p in like)
    blocks = [0.0] * len(like)
    flat_zero = torch.zeros(dim, dtype=like[0].dtype, device=like[0].device)
    for start in range(0, dim, block_size):
        units = []
        for k in range(start, min(dim, start + block_size)):
            e = flat_zero.clone()
            e[k] = 1.0
            units.append(unflatten(e, like))
        for unit, product in zip(units, op.matmat(units), strict=True):
            blocks = [a + b for a, b in zip(blocks, blockwise_dot(unit, product), strict=True)]
    return TraceEstimate(
        value=math.fsum(blocks),
        stderr=math.nan,
        blocks=tuple(blocks),
        block_stderrs=tuple(math.nan for _ in blocks),
        samples=(),
        n_matvecs=dim,
        converged=True,
        method="exact",
    )


def _summarize(
    per_probe: list[list[float]],
    n_matvecs: int,
    converged: bool,
    method: str,
    offset: Sequence[float] | None = None,
) -> TraceEstimate:
    data = torch.tensor(per_probe, dtype=torch.float64)  # (probes, blocks)
    n = data.shape[0]
    base = torch.tensor(offset or [0.0] * data.shape[1], dtype=torch.float64)
    blocks = base + data.mean(dim=0)
    totals = data.sum(dim=1)
    block_err = data.std(dim=0, correction=1) / math.sqrt(n) if n > 1 else blocks * math.nan
    return TraceEstimate(
        value=float(base.sum() + totals.mean()),
        stderr=float(totals.std(correction=1) / math.sqrt(n)) if n > 1 else math.nan,
        blocks=tuple(blocks.tolist()),
        block_stderrs=tuple(block_err.tolist()),
        samples=tuple(totals.tolist()),
        n_matvecs=n_matvecs,
        converged=converged,
        method=method,
    )


def _relative_stderr(per_probe: list[list[float]], offset: Sequence[float] = ()) -> float:
    if len(per_probe) < 2:
        return math.inf
    totals = [math.fsum(row) for row in per_probe]
    mean = math.fsum(totals) / len(totals) + math.fsum(offset)
    var = math.fsum((t - math.fsum(totals) / len(totals)) ** 2 for t in totals) / (len(totals) - 1)
    stderr = math.sqrt(var / len(totals))
    return stderr / abs(mean) if mean != 0 else math.inf


def _warn_budget(what: str, budget: int, reached: float, wanted: float) -> None:
    if wanted == 0:
        return  # rtol=0 asks for the whole budget (PyHessian's tol=0): nothing to warn about
    warnings.warn(
        f"{what}: the budget of {budget} matrix-vector products ran out at relative standard "
        f"error {reached:.3g} (tolerance {wanted:.3g}); returning the estimate with its stderr",
        RuntimeWarning,
        stacklevel=3,
    )
