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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.func import jvp

from genmeasures.curvature.functional import FunctionalModel
from genmeasures.curvature.operators import first_line, is_transform_gap, warn_unsupported

# A block is affine when max|D^2 f[u, u]| <= _TOLERANCE * eps(dtype) * scale, scale the largest
# of max|f| and max|D f[u]| over the sample (u scaled to the block's own norm). For an exactly
# affine block forward mode returns exact zeros; smooth activations give values of order the
# first derivative. 64 eps leaves room for rounding in the second tangent and none for a
# nonlinearity of any size that matters.
_TOLERANCE = 64.0
_RANDOM_DIRECTIONS = 1  # beside the displacement: a non-affine block fails almost surely
PROBE_SAMPLES = 32


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
    on, so more samples would cost passes without changing a decision.
    """
    generator = torch.Generator().manual_seed(seed)
    batches = _first_samples(batches, PROBE_SAMPLES)
    results = {}
    for index, name in enumerate(fmodel.names):
        block = fmodel.params[index]
        probes = [
            torch.randn(block.shape, generator=generator, dtype=block.dtype).to(block.device)
            for _ in range(_RANDOM_DIRECTIONS)
        ]
        if directions is not None and name in directions:
            probes.append(directions[name].to(block))
        results[name] = _probe_one(fmodel, index, probes, batches)
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


def _probe_one(
    fmodel: FunctionalModel,
    index: int,
    probes: Sequence[torch.Tensor],
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> BlockStructure:
    name = fmodel.names[index]
    block = fmodel.params[index]
    eps = torch.finfo(block.dtype).eps
    size = float(torch.linalg.vector_norm(block)) or 1.0
    worst = 0.0
    for direction in probes:
        norm = float(torch.linalg.vector_norm(direction))
        if norm == 0.0:
            continue
        u = direction * (size / norm)
        for inputs, _ in batches:
            try:
                outputs, first, second = _second_directional(fmodel, index, u, inputs)
            except (NotImplementedError, RuntimeError) as exc:
                if not is_transform_gap(exc):
                    raise
                return BlockStructure(name, False, float("inf"), first_line(exc))
            if not bool(first.abs().max() > 0):
                # The outputs do not move along u: a tangent that did not propagate (an op
                # that drops forward-mode tangents) is indistinguishable from "affine".
                return BlockStructure(name, False, float("nan"))
            scale = max(float(outputs.abs().max()), float(first.abs().max()))
            ratio = float(second.abs().max()) / (eps * scale)
            if not ratio <= _TOLERANCE:  # (NaN is doubt too)
                return BlockStructure(name, False, ratio)
            worst = max(worst, ratio)
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
        return jvp(along, (block,), (u,))

    # (Not under no_grad: some modules, nn.MultiheadAttention among them, take a fused fast
    # path without gradients that drops forward-mode tangents.)
    (outputs, first), (_, second) = jvp(first_derivative, (params[index],), (u,))
    return outputs.detach(), first.detach(), second.detach()
