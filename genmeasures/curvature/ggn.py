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

from collections.abc import Sequence

import torch
from torch.func import grad, hessian, jvp, vjp, vmap

from genmeasures.curvature.functional import FunctionalModel, PerSampleLoss
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
    for inputs, targets in batches:
        with torch.no_grad():
            logits = fmodel.outputs(fmodel.params, inputs)
        values = torch.linalg.eigvalsh(output_hessians(fmodel.loss, logits, targets))
        scale = float(values.abs().max()) if values.numel() else 0.0
        if float(values.min()) < -_CONVEX_RTOL * max(scale, 1e-300):
            return False
    return True


def ggn_block_traces(
    fmodel: FunctionalModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[list[float], int]:
    """Tr(G_ii) of the mean loss over ``batches`` for every block of ``fmodel`` (float64
    sums), and the number of per-sample gradients spent (K x samples, K = classes).

    Tr(G_ii) = (1/m) sum_j sum_k s_jk ||J_ij^T r_jk||^2 with Lambda_j = sum_k s_jk r_jk r_jk^T
    (:func:`output_hessian_factor`); J_ij^T r_jk is the gradient in W_i of r_jk^T f(x_j).
    One vmapped pass gives every sample's K gradients (their squared norms per block, the
    gradients themselves transient), in chunks of samples so that at most ``_MEMORY`` bytes
    of gradients exist at once.
    """
    params = fmodel.params
    total = sum(len(targets) for _, targets in batches)
    sums = torch.zeros(len(params), dtype=torch.float64)
    per_sample_bytes = sum(p.numel() for p in params) * params[0].element_size()
    spent = 0

    def contracted(weights, x, cotangent):
        return (fmodel.outputs(weights, x[None])[0] * cotangent).sum()

    def squared_norms(x, factor):
        """||J_i(x)^T r_k||^2 for every block i and column k of this sample's factor: (K, n)."""

        def for_column(column):
            gradients = grad(contracted)(params, x, column)
            # In the model's dtype: the gradients are rounded to it already (and float64
            # copies inside vmap cost a third more time); sums over samples are float64.
            return torch.stack([g.pow(2).sum() for g in gradients])

        return vmap(for_column, in_dims=1)(factor)

    per_sample = vmap(squared_norms)
    for inputs, targets in batches:
        with torch.no_grad():
            logits = fmodel.outputs(params, inputs[:1])
        # The K columns of every sample's gradients are held at once, transiently.
        chunk = max(1, _MEMORY // max(per_sample_bytes * logits.shape[1], 1))
        for start in range(0, len(inputs), chunk):
            x, y = inputs[start : start + chunk], targets[start : start + chunk]
            with torch.no_grad():
                logits = fmodel.outputs(params, x)
            factor, signs = output_hessian_factor(fmodel.loss, logits, y)
            norms = per_sample(x, factor.to(logits.dtype)).double()  # (B, K, n)
            sums += (signs[:, :, None] * norms).sum(dim=(0, 1))
            spent += factor.shape[2] * len(x)
    return (sums / total).tolist(), spent


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
