"""Exact traces of Gauss-Newton blocks from per-sample output Jacobians (cross-entropy).

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
from torch.func import grad, vmap

from genmeasures.curvature.functional import FunctionalModel

_MEMORY = 256 * 2**20  # bytes of per-sample gradients held at once


def ggn_block_traces(
    fmodel: FunctionalModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[list[float], int]:
    """Tr(G_ii) of the mean cross-entropy over ``batches`` for every block of ``fmodel``
    (float64 sums), and the number of per-sample gradients spent (classes x samples)."""
    params = fmodel.params
    total = sum(len(targets) for _, targets in batches)
    sums = [0.0] * len(params)
    per_sample_bytes = sum(p.numel() for p in params) * params[0].element_size()
    chunk = max(1, _MEMORY // max(per_sample_bytes, 1))
    spent = 0

    def contracted(weights, x, cotangent):
        return (fmodel.outputs(weights, x[None])[0] * cotangent).sum()

    per_sample_gradient = vmap(grad(contracted), in_dims=(None, 0, 0))
    for inputs, _ in batches:
        for start in range(0, len(inputs), chunk):
            x = inputs[start : start + chunk]
            with torch.no_grad():
                logits = fmodel.outputs(params, x)
                p = torch.softmax(logits.double(), dim=1)
                root = p.sqrt()
                factor = torch.diag_embed(root) - p[:, :, None] * root[:, None, :]
            for c in range(logits.shape[1]):
                cotangent = factor[:, :, c].to(logits.dtype)
                gradients = per_sample_gradient(params, x, cotangent)
                for i, g in enumerate(gradients):
                    sums[i] += float(g.double().pow(2).sum())
            spent += logits.shape[1] * len(x)
    return [s / total for s in sums], spent
