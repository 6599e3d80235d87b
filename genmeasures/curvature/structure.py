"""Which layer blocks the network's outputs are affine in: decided by a numerical probe.

When the outputs f(x; W) are affine in one block W_i for fixed other weights (ReLU/LeakyReLU,
max-pool, eval-mode BatchNorm, linear layers and residual sums after it, but no smooth
nonlinearity), the second derivative of f inside that block vanishes, so for every sample

    H_ii(x) = J_i(x)^T Lambda(x) J_i(x),

J_i the outputs' Jacobian in W_i and Lambda the Hessian of the loss in the outputs: the block
is its own Gauss-Newton block, positive semi-definite when the loss is convex in the outputs
(cross-entropy). Then v^T H_ii^+(x) v = ||Lambda^(1/2) J_i v||^2 costs one forward-mode pass
for the whole sample instead of a per-sample Lanczos quadrature.

The decision is numerical, never by module type: a smooth activation written functionally
inside ``forward`` (F.gelu, x * sigmoid(x), x * x) is caught the same way as a module. For
each block the probe takes the block's displacement and random directions u, computes the
second directional derivative D^2 f[u, u] of the outputs over the evaluation sample by
forward mode twice (jvp of jvp), and calls the block affine only when it is zero to rounding
relative to the outputs and their first derivative. Any doubt (a probe that fails, a
non-zero second derivative, a loss that is not convex in the outputs) means "general".
All blocks' directions go through one vmapped pass (in chunks of bounded tangent memory),
which costs a ResNet-18's 62 blocks about a third of one pass per block; a model vmap cannot
batch is probed block by block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.func import jvp, vmap

from genmeasures.curvature import distributed
from genmeasures.curvature.functional import FunctionalModel
from genmeasures.curvature.operators import first_line, is_transform_gap, warn_unsupported

# A block is affine when max|D^2 f[u, u]| <= _TOLERANCE * eps(dtype) * scale, scale the largest
# of max|f| and max|D f[u]| over the sample (u scaled to the block's own norm). For an exactly
# affine block forward mode returns exact zeros; smooth activations give values of order the
# first derivative. 64 eps leaves room for rounding in the second tangent and none for a
# nonlinearity of any size that matters.
_TOLERANCE = 64.0
_RANDOM_DIRECTIONS = 1  # beside the displacement: a non-affine block fails almost surely
PROBE_SAMPLES = 8
_TANGENT_MEMORY = 64 * 2**20  # bytes of stacked tangents per vmapped probe pass


@dataclass(frozen=True)
class BlockStructure:
    """One block's probe: whether the outputs are affine in it, and the measured ratio
    max|D^2 f[u, u]| / (eps * scale) (0 for an exactly affine block)."""

    name: str
    affine: bool
    ratio: float
    # Why the probe could not run (forward mode missing for some operation), else "".
    failure: str = ""

    @property
    def route(self) -> str:
        return "affine" if self.affine else "general"


def probe_blocks(
    fmodel: FunctionalModel,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    directions: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
) -> dict[str, BlockStructure]:
    """Probe every parameter block of ``fmodel`` (its ``names``) on all ``batches``.

    ``directions`` (e.g. each block's displacement W_i - W_i^(0)) are probed besides
    ``_RANDOM_DIRECTIONS`` random ones drawn from ``seed``, on the first ``PROBE_SAMPLES``
    samples: a smooth operation gives a non-zero second derivative on any sample it acts
    on (every sample of a ReLU network has some negative pre-activations for an ELU to act
    on, every token passes a GELU), so more samples would cost passes without changing a
    decision. (A branch that switches a smooth operation on for rare samples only could
    escape any sample-based probe; ``route=general`` is the check for such a model.)

    In a distributed run the probe runs on rank 0 and its decisions are broadcast
    (:func:`~genmeasures.curvature.distributed.on_rank_zero`): a route is a decision, and
    ranks that decided differently would compute different quantities.
    """
    return distributed.on_rank_zero(lambda: _probe_blocks(fmodel, batches, directions, seed))


def _probe_blocks(
    fmodel: FunctionalModel,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    directions: Mapping[str, torch.Tensor] | None,
    seed: int,
) -> dict[str, BlockStructure]:
    generator = torch.Generator().manual_seed(seed)
    batches = _first_samples(batches, PROBE_SAMPLES)
    jobs: list[tuple[int, torch.Tensor]] = []  # (block index, direction scaled to the block)
    for index, name in enumerate(fmodel.names):
        block = fmodel.params[index]
        probes = [
            torch.randn(block.shape, generator=generator, dtype=block.dtype).to(block.device)
            for _ in range(_RANDOM_DIRECTIONS)
        ]
        if directions is not None and name in directions:
            probes.append(directions[name].to(block))
        size = float(torch.linalg.vector_norm(block)) or 1.0
        for direction in probes:
            norm = float(torch.linalg.vector_norm(direction))
            if norm > 0.0:
                jobs.append((index, direction * (size / norm)))
    measured: dict[int, list] = {index: [] for index in range(len(fmodel.names))}
    for inputs, _ in batches:
        for chunk in _chunks(jobs, _chunk_size(fmodel)):
            derivatives_of_chunk = _derivatives(fmodel, chunk, inputs)
            for (index, _), derivatives in zip(chunk, derivatives_of_chunk, strict=True):
                measured[index].append(derivatives)
    results = {
        name: _judge(name, fmodel.params[index].dtype, measured[index])
        for index, name in enumerate(fmodel.names)
    }
    failed = [r for r in results.values() if r.failure]
    if failed:
        warn_unsupported(
            failed[0].failure,
            f"{len(failed)} of {len(results)} layer blocks take the general route",
        )
    return results


def _first_samples(batches, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    taken, left = [], count
    for inputs, targets in batches:
        if left <= 0:
            break
        taken.append((inputs[:left], targets[:left]))
        left -= len(targets[:left])
    return taken


def _chunks(jobs: list, size: int) -> list[list]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def _chunk_size(fmodel: FunctionalModel) -> int:
    """Directions probed in one vmapped pass: each holds a tangent for every parameter."""
    per_job = sum(p.numel() * p.element_size() for p in fmodel.params)
    return max(1, _TANGENT_MEMORY // max(per_job, 1))


def _derivatives(
    fmodel: FunctionalModel, jobs: list[tuple[int, torch.Tensor]], inputs: torch.Tensor
) -> list:
    """(f, D f[u], D^2 f[u, u]) over ``inputs`` for each (block, u) of ``jobs``: all in one
    vmapped pass, or one pass each where vmap cannot batch the model; a job whose pass
    fails for want of forward mode gets the reason (a string) instead."""
    try:
        return _derivatives_vmapped(fmodel, jobs, inputs)
    except (NotImplementedError, RuntimeError) as exc:
        if not is_transform_gap(exc):
            raise
    results: list = []
    for index, u in jobs:
        try:
            results.append(_second_directional(fmodel, index, u, inputs))
        except (NotImplementedError, RuntimeError) as exc:
            if not is_transform_gap(exc):
                raise
            results.append(first_line(exc))
    return results


def _derivatives_vmapped(
    fmodel: FunctionalModel, jobs: list[tuple[int, torch.Tensor]], inputs: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    params = fmodel.params
    tangents = tuple(
        torch.zeros((len(jobs), *p.shape), dtype=p.dtype, device=p.device) for p in params
    )
    for k, (index, u) in enumerate(jobs):
        tangents[index][k] = u

    def derivatives(tangent):
        def first_derivative(point):
            return jvp(lambda q: fmodel.outputs(q, inputs), (point,), (tangent,))

        (outputs, first), (_, second) = jvp(first_derivative, (params,), (tangent,))
        return outputs, first, second

    outputs, first, second = vmap(derivatives)(tangents)
    return [(outputs[k].detach(), first[k].detach(), second[k].detach()) for k in range(len(jobs))]


def _judge(name: str, dtype: torch.dtype, measured: list) -> BlockStructure:
    """A block is affine when every measurement's second derivative vanishes to rounding."""
    eps = torch.finfo(dtype).eps
    worst = 0.0
    for derivatives in measured:
        if isinstance(derivatives, str):  # no forward mode: general
            return BlockStructure(name, False, float("inf"), derivatives)
        outputs, first, second = derivatives
        if not bool(first.abs().max() > 0):
            # The outputs do not move along u: a tangent that did not propagate (an op that
            # drops forward-mode tangents) is indistinguishable from "affine".
            return BlockStructure(name, False, float("nan"))
        scale = max(float(outputs.abs().max()), float(first.abs().max()))
        ratio = float(second.abs().max()) / (eps * scale)
        if not ratio <= _TOLERANCE:  # (NaN is doubt too)
            return BlockStructure(name, False, ratio)
        worst = max(worst, ratio)
    if not measured:  # nothing probed (an all-zero direction only): doubt
        return BlockStructure(name, False, float("nan"))
    return BlockStructure(name, True, worst)


def _second_directional(
    fmodel: FunctionalModel, index: int, u: torch.Tensor, inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """f, D f[u] and D^2 f[u, u] of the outputs over ``inputs``, moving only block ``index``."""
    params = fmodel.params

    def along(block: torch.Tensor) -> torch.Tensor:
        moved = tuple(block if i == index else p for i, p in enumerate(params))
        return fmodel.outputs(moved, inputs)

    def first_derivative(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pair = jvp(along, (block,), (u,))
        return pair[0], pair[1]

    # (Not under no_grad: some modules, nn.MultiheadAttention among them, take a fused fast
    # path without gradients that drops forward-mode tangents.)
    primal, tangent = jvp(first_derivative, (params[index],), (u,))[:2]
    (outputs, first), second = primal, tangent[1]
    return outputs.detach(), first.detach(), second.detach()
