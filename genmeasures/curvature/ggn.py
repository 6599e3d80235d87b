"""The generalized Gauss-Newton matrix: its products, and exact traces of its blocks.

:class:`GGNOperator` (curvature ``ggn``) gives G v for any loss; :func:`ggn_block_traces`
the exact Tr(G_ii) from per-sample output Jacobians, for cross-entropy (closed-form factor
of Lambda) and any other per-sample loss (its Lambda factored by eigendecomposition).

For the mean loss L_S = (1/m) sum_j l(f(x_j; W), y_j) the Gauss-Newton matrix is
G = (1/m) sum_j J_j^T Lambda_j J_j, with J_j the Jacobian of the logits f(x_j) in W and
Lambda_j = diag(p_j) - p_j p_j^T the Hessian of cross-entropy in the logits (p_j the softmax).
With the square-root factor S = diag(sqrt p) - p sqrt(p)^T (S S^T = Lambda, since
sum_c p_c = 1; the factorization BackPACK's exact diagonal GGN uses),

    Tr(G_ii) = (1/m) sum_j sum_c || J_ij^T S_j[:, c] ||^2,

and J_ij^T S_j[:, c] is the gradient in W_i of the scalar S_j[:, c]^T f(x_j): one per-sample
gradient per class. For a block the outputs are affine in (see
:mod:`genmeasures.curvature.structure`) the Hessian block equals the Gauss-Newton block, so
this is Tr(H_ii) exactly, at the price of C per-sample gradient passes instead of hundreds
of Hessian-vector products.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch.func import grad, hessian, jvp, vjp, vmap

from genmeasures.curvature import distributed
from genmeasures.curvature.functional import FunctionalModel, PerSampleLoss
from genmeasures.curvature.gradient_norms import CoverageLost, covered_blocks, signed_norm_sums
from genmeasures.curvature.operators import CurvatureOperator, register_curvature
from genmeasures.losses import cross_entropy_per_sample

_MEMORY = 256 * 2**20  # bytes of per-sample gradients held at once
_CONVEX_RTOL = 1e-6  # Lambda_j's smallest eigenvalue >= -this * its largest: convex


def output_hessian_factor(
    loss: PerSampleLoss, logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambda_j = d^2 l(f, y_j) / df^2 at f = f(x_j) as sum_k s_jk r_jk r_jk^T.

    Returns (R, s): R of shape (B, C, K) (column k of sample j is r_jk), s of shape (B, K),
    s = +1 or -1. Cross-entropy takes the closed form R = S = diag(sqrt p) - p sqrt(p)^T,
    s = 1 (S S^T = Lambda as sum_c p_c = 1); any other loss its per-sample C x C Hessian by
    forward-over-reverse and an eigendecomposition, r_jk = sqrt|lambda_k| u_k. In float64.
    """
    if loss is cross_entropy_per_sample:
        p = torch.softmax(logits.double(), dim=1)
        root = p.sqrt()
        factor = torch.diag_embed(root) - p[:, :, None] * root[:, None, :]
        return factor, torch.ones(factor.shape[0], factor.shape[2], dtype=torch.float64)
    lam = output_hessians(loss, logits, targets)
    values, vectors = torch.linalg.eigh(lam)
    return vectors * values.abs().sqrt()[:, None, :], torch.sign(values)


def output_hessians(loss: PerSampleLoss, logits: torch.Tensor, targets: torch.Tensor):
    """Lambda_j for every sample, shape (B, C, C), float64, symmetrized."""

    def one(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(f[None], y[None])[0]

    logits = logits.detach().double()
    try:
        lam = vmap(hessian(one))(logits, targets)
    except RuntimeError:
        # A loss vmap cannot batch (one_hot, .item(), data-dependent branches): per sample.
        lam = torch.stack([hessian(one)(f, y) for f, y in zip(logits, targets, strict=True)])
    return (lam + lam.transpose(1, 2)) / 2


def convex_in_outputs(
    fmodel: FunctionalModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> bool:
    """Whether every sample's Lambda_j (of ``fmodel.loss``) is positive semi-definite, to
    rounding: then J^T Lambda J is PSD and is its own positive part. Cross-entropy always is.
    """
    if fmodel.loss is cross_entropy_per_sample:
        return True

    def convex(batch: tuple[torch.Tensor, torch.Tensor]) -> bool:
        inputs, targets = batch
        with torch.no_grad():
            logits = fmodel.outputs(fmodel.params, inputs)
        values = torch.linalg.eigvalsh(output_hessians(fmodel.loss, logits, targets))
        scale = float(values.abs().max()) if values.numel() else 0.0
        return not float(values.min()) < -_CONVEX_RTOL * max(scale, 1e-300)

    if distributed.active() is None:  # one process: stop at the first non-convex batch
        return all(convex(batch) for batch in batches)
    return all(distributed.map_batches(convex, list(batches)))


def ggn_block_traces(
    fmodel: FunctionalModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[list[float], int]:
    """Tr(G_ii) of the mean loss over ``batches`` for every block of ``fmodel`` (float64
    sums), and the number of per-sample gradients spent (K x samples, K = classes).

    Tr(G_ii) = (1/m) sum_j sum_k s_jk ||J_ij^T r_jk||^2 with Lambda_j = sum_k s_jk r_jk r_jk^T
    (:func:`output_hessian_factor`); J_ij^T r_jk is the gradient in W_i of r_jk^T f(x_j).
    Blocks of layers a rule of :mod:`~genmeasures.curvature.gradient_norms` covers (Linear,
    convolutions, normalization) get these squared norms from each layer's input and output
    gradient: one forward pass and K backward passes per chunk of samples. The other blocks
    (raw parameters such as position embeddings, attention's packed projections) get every
    sample's K gradients from a vmapped pass (their squared norms per block, the gradients
    themselves transient), in chunks so that at most ``_MEMORY`` bytes exist at once.
    """
    covered = covered_blocks(fmodel)
    while True:
        try:
            return _block_traces(fmodel, batches, covered)
        except CoverageLost as lost:  # a module ran twice (or not at all): the vmapped pass
            covered = {i: where for i, where in covered.items() if where[0] not in lost.paths}


def _block_traces(fmodel, batches, covered: dict[int, tuple[str, str]]):
    params = fmodel.params
    total = sum(len(targets) for _, targets in batches)
    with torch.no_grad():
        classes = fmodel.outputs(params, batches[0][0][:1]).shape[1] if batches else 0
    chunks = _Chunks(fmodel, covered, classes)
    shard = distributed.active()
    if shard is not None and shard.world > 1:
        shared = _shared_block_sums(shard, chunks, batches)
        if shared is not None:
            sums, spent = shared
            return (sums / total).tolist(), spent
    sums = torch.zeros(len(params), dtype=torch.float64)
    spent, hooked_bytes = 0, None
    for inputs, targets in batches:
        deltas, hooked_bytes, cost = chunks.batch(inputs, targets, hooked_bytes)
        for delta in deltas:
            sums += delta
        spent += cost
    return (sums / total).tolist(), spent


class _Chunks:
    """One pass of :func:`ggn_block_traces` over a batch, chunk by chunk: each chunk's share
    of the per-block sums as a float64 vector (zero outside the blocks it adds to), so that
    the caller adds them in the single-process order wherever they were computed.

    ``hooked_bytes`` (the most layer-feature bytes per sample seen so far, None before the
    first chunk) carries the chunk sizes from batch to batch: the first chunk is one sample,
    to learn what the layer features hold per sample.
    """

    def __init__(self, fmodel: FunctionalModel, covered: dict[int, tuple[str, str]], classes):
        self.fmodel, self.covered, self.classes = fmodel, covered, classes
        params = fmodel.params
        self.rest = [i for i in range(len(params)) if i not in covered]
        self.by_vmap = _vmapped_squared_norms(fmodel, self.rest) if self.rest else None
        self.vmap_bytes = sum(params[i].numel() * params[i].element_size() for i in self.rest)

    def batch(
        self, inputs: torch.Tensor, targets: torch.Tensor, hooked_bytes: int | None
    ) -> tuple[list[torch.Tensor], int | None, int]:
        """(each chunk's sums, hooked_bytes after the batch, per-sample gradients spent)."""
        fmodel, covered, params = self.fmodel, self.covered, self.fmodel.params
        deltas, spent, start = [], 0, 0
        while start < len(inputs):
            per_sample = max(self.vmap_bytes * self.classes, 4 * (hooked_bytes or 0))
            chunk = 1 if covered and hooked_bytes is None else max(1, _MEMORY // max(per_sample, 1))
            x, y = inputs[start : start + chunk], targets[start : start + chunk]
            start += len(x)
            with torch.no_grad():
                logits = fmodel.outputs(params, x)
            factor, signs = output_hessian_factor(fmodel.loss, logits, y)
            delta = torch.zeros(len(params), dtype=torch.float64)
            if covered:
                result = signed_norm_sums(fmodel, covered, x, factor, signs)
                for index, value in result.sums.items():
                    delta[index] = value
                hooked_bytes = max(hooked_bytes or 0, result.feature_bytes_per_sample)
            if self.by_vmap is not None:
                norms = self.by_vmap(x, factor.to(logits.dtype)).double()  # (B, K, len(rest))
                delta[self.rest] = (signs[:, :, None] * norms).sum(dim=(0, 1))
            deltas.append(delta)
            spent += factor.shape[2] * len(x)
        return deltas, hooked_bytes, spent


def _shared_block_sums(
    shard: distributed.Shard, chunks: _Chunks, batches
) -> tuple[torch.Tensor, int] | None:
    """The per-block sums of :func:`_block_traces` with the batches shared among the ranks,
    bit for bit the single process's; None where the chunking could not be reproduced (then
    the caller computes everything on every rank).

    Each rank computes its own batches' chunk sums, starting from the chunk-size state the
    single process would have there: rank 0 from nothing, the others from what batch 0's
    first one-sample chunk teaches (the same for every batch of fixed-shape inputs). The
    ranks then check that each one's assumed start is the previous one's end state; the
    chunk sums are gathered and added in batch order. A covered module that loses its
    coverage on any rank is dropped on every rank (:class:`CoverageLost`, as one process).
    """
    own = shard.owned(len(batches))
    outcome: dict = {"lost": None, "error": None, "start": None, "end": None, "batches": []}
    try:
        state = None
        if shard.rank > 0 and len(own) and chunks.covered:
            inputs, targets = batches[0]
            state = chunks.batch(inputs[:1], targets[:1], None)[1]
        outcome["start"] = state
        for index in own:
            inputs, targets = batches[index]
            deltas, state, cost = chunks.batch(inputs, targets, state)
            outcome["batches"].append((deltas, cost))
        outcome["end"] = state
    except CoverageLost as coverage:
        outcome["lost"] = coverage.paths
    except Exception as exc:
        outcome["error"] = distributed.portable(exc)
    reports = shard.gather(outcome)
    for report in reports:
        if report["error"] is not None:
            raise report["error"]
    lost = [path for report in reports for path in report["lost"] or ()]
    if lost:
        raise CoverageLost(list(dict.fromkeys(lost)))
    holding = [report for report in reports if report["batches"]]
    if any(b["start"] != a["end"] for a, b in itertools.pairwise(holding)):
        return None
    sums = torch.zeros(len(chunks.fmodel.params), dtype=torch.float64)
    spent = 0
    for report in holding:
        for deltas, cost in report["batches"]:
            for delta in deltas:
                sums += delta
            spent += cost
    return sums, spent


def _vmapped_squared_norms(fmodel: FunctionalModel, blocks: Sequence[int]):
    """(x, factor) -> ||J_i(x_j)^T r_jk||^2 for every sample j, column k and block i of
    ``blocks``, shape (B, K, len(blocks)): per-sample gradients by vmap, in the model's dtype
    (they are rounded to it already, and float64 copies inside vmap cost a third more time).
    """
    names = tuple(fmodel.names[i] for i in blocks)
    others = {
        n: p
        for i, (n, p) in enumerate(zip(fmodel.names, fmodel.params, strict=True))
        if i not in blocks
    }
    subset = FunctionalModel(
        fmodel.model,
        names,
        tuple(fmodel.params[i] for i in blocks),
        {**fmodel.fixed, **others},
        fmodel.loss,
    )

    def contracted(weights, x, cotangent):
        return (subset.outputs(weights, x[None])[0] * cotangent).sum()

    def squared_norms(x, factor):
        def for_column(column):
            gradients = grad(contracted)(subset.params, x, column)
            return torch.stack([g.pow(2).sum() for g in gradients])

        return vmap(for_column, in_dims=1)(factor)

    return vmap(squared_norms)


@register_curvature("ggn")
class GGNOperator(CurvatureOperator):
    """G v = sum_j J_j^T H_out(x_j) J_j v / m: the generalized Gauss-Newton matrix, PSD for a
    convex loss; J_j the Jacobian of the outputs, H_out the Hessian of the loss in the outputs.
    """

    def _batch_matmat(self, inputs, targets, vectors):
        def outputs_of(params):
            return self.fmodel.outputs(params, inputs)

        outputs, pullback = vjp(outputs_of, self.params)

        def output_loss(out):
            return self.fmodel.loss(out, targets).sum() / self.total

        results = []
        for vector in vectors:
            jv = jvp(outputs_of, (self.params,), (vector,))[1]
            h_jv = jvp(grad(output_loss), (outputs.detach(),), (jv,))[1]
            results.append(tuple(pullback(h_jv)[0]))
        return results
