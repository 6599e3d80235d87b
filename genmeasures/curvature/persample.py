"""Per-sample second-order quantities for a whole batch at once.

For each sample j of a batch, with l_j(W) = l(x_j, y_j; W):

* :func:`bilinear_hessian`: D^2 l_j[a, b] = a^T H_j b, by forward-mode differentiation twice
  (jvp of jvp): one pass gives all samples. With a = b = v this is the second directional
  derivative of l_j along v.
* :func:`bilinear_ggn`: (J_j a)^T H_out,j (J_j b), the Gauss-Newton form (PSD for a convex
  loss): J_j the Jacobian of the outputs, H_out,j the Hessian of the loss in the outputs.
* :func:`positive_part_form`: v^T H_j^+ v with H_j^+ = U max(D, 0) U^T the positive part of
  the sample's Hessian: from the block itself for small blocks, else by Lanczos quadrature
  started from v.

When the model does not support forward-mode AD, the first falls back to double backward one
sample at a time (slower, same numbers) and warns.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch.func import grad, jvp, vmap

from genmeasures.curvature.functional import FunctionalModel
from genmeasures.curvature.lanczos import lanczos_quadrature, positive_part
from genmeasures.curvature.operators import is_transform_gap, warn_unsupported
from genmeasures.curvature.vectors import Vector, flatten, unflatten

_MEMORY = 256 * 2**20  # bytes of per-sample Lanczos bases held at once


def bilinear_hessian(
    fmodel: FunctionalModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    a: Sequence[torch.Tensor],
    b: Sequence[torch.Tensor],
) -> torch.Tensor:
    """a^T H_j b for every sample j of the batch, shape (B,)."""
    a, b = tuple(a), tuple(b)

    def losses(params):
        return fmodel.sample_losses(params, inputs, targets)

    def along_a(params):
        return jvp(losses, (params,), (a,))[1]

    try:
        return jvp(along_a, (fmodel.params,), (b,))[1].detach()
    except (NotImplementedError, RuntimeError) as exc:
        if not is_transform_gap(exc):
            raise
        warn_unsupported(exc, "computing per-sample curvature by double backward, one at a time")
        return _bilinear_by_double_backward(fmodel, inputs, targets, a, b)


def _bilinear_by_double_backward(fmodel, inputs, targets, a: Vector, b: Vector) -> torch.Tensor:
    values = []
    for j in range(len(targets)):
        params = tuple(p.detach().requires_grad_(True) for p in fmodel.params)
        with torch.enable_grad():
            loss = fmodel.sample_losses(params, inputs[j : j + 1], targets[j : j + 1])[0]
            gradients = torch.autograd.grad(loss, params, create_graph=True)
            directional = torch.stack(
                [(g * t).sum() for g, t in zip(gradients, a, strict=True)]
            ).sum()
            second = torch.autograd.grad(directional, params, allow_unused=True)
        values.append(sum((s * t).sum() for s, t in zip(second, b, strict=True) if s is not None))
    return torch.stack([torch.as_tensor(v, dtype=inputs.dtype) for v in values]).detach()


def bilinear_ggn(
    fmodel: FunctionalModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    a: Sequence[torch.Tensor],
    b: Sequence[torch.Tensor],
) -> torch.Tensor:
    """(J_j a)^T H_out,j (J_j b) for every sample j of the batch, shape (B,)."""

    def outputs_of(params):
        return fmodel.outputs(params, inputs)

    outputs, ja = jvp(outputs_of, (fmodel.params,), (tuple(a),))[:2]
    jb = ja if a is b else jvp(outputs_of, (fmodel.params,), (tuple(b),))[1]

    def total_loss(out):
        return fmodel.loss(out, targets).sum()  # per-sample losses: H_out is block diagonal

    h_jb = jvp(grad(total_loss), (outputs.detach(),), (jb,))[1]
    return (ja * h_jb).reshape(len(targets), -1).sum(dim=1).detach()


def positive_part_form(
    fmodel: FunctionalModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    direction: Sequence[torch.Tensor],
    *,
    exact_max_dim: int = 512,
    steps: int = 30,
) -> tuple[torch.Tensor, int]:
    """v^T H_j^+ v for every sample j (H_j over ``fmodel``'s parameters), and the number of
    per-sample Hessian-vector products spent.

    Blocks of at most ``exact_max_dim`` parameters are exact: every sample's block H_j is
    formed from ``dim`` Hessian-vector products (all samples and unit vectors in a few
    vmapped passes) and v^T H_j^+ v = sum_k max(lambda_k, 0) (u_k^T v)^2 from its
    eigendecomposition. Larger blocks get ``steps`` steps of Lanczos quadrature started from
    v, with full reorthogonalization; every sample stops early when its Krylov space becomes
    invariant (for ReLU networks a single layer's per-sample block equals its Gauss-Newton
    block, of rank at most the number of classes minus one: a handful of steps).
    """
    flat_w = flatten(fmodel.params)
    flat_v = flatten(direction)
    dim = flat_w.numel()
    if dim <= exact_max_dim:
        exact = _exact_positive_part(fmodel, flat_w, inputs, targets, flat_v)
        if exact is not None:
            return exact, dim * len(targets)
    per_sample_hvp = _per_sample_hvp(fmodel, flat_w)
    steps = min(steps, dim)
    bytes_per_row = dim * flat_w.element_size() * (steps + 4)
    chunk = max(1, _MEMORY // bytes_per_row)
    values, spent = [], 0
    for start in range(0, len(targets), chunk):
        x, y = inputs[start : start + chunk], targets[start : start + chunk]
        result = lanczos_quadrature(
            functools.partial(per_sample_hvp, x, y),
            flat_v.expand(len(y), -1).clone(),
            positive_part,
            steps,
        )
        values.append(result.values)
        spent += result.n_matvecs * len(y)
    return torch.cat(values), spent


def _exact_positive_part(
    fmodel: FunctionalModel,
    flat_w: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    flat_v: torch.Tensor,
) -> torch.Tensor | None:
    """v^T H_j^+ v from each sample's whole block H_j (vmapped over samples and unit vectors,
    in chunks of at most ``_MEMORY`` bytes of rows), or None where torch.func cannot batch
    the model (the caller's Lanczos route then falls back on its own)."""
    dim = flat_w.numel()
    hvp = _sample_hvp(_sample_loss_of_flat(fmodel), flat_w)
    # The unit vectors share each sample's forward pass (inner vmap, x unbatched).
    block_of = vmap(vmap(hvp, in_dims=(None, None, 0)), in_dims=(0, 0, None))
    units = torch.eye(dim, dtype=flat_w.dtype, device=flat_w.device)
    rows = max(1, _MEMORY // (dim * flat_w.element_size() * (dim + 4)))
    columns = min(dim, rows)
    samples = max(1, rows // columns)
    values = []
    try:
        for start in range(0, len(targets), samples):
            x, y = inputs[start : start + samples], targets[start : start + samples]
            block = torch.cat(
                [block_of(x, y, units[k : k + columns]) for k in range(0, dim, columns)], dim=1
            ).double()
            eigenvalues, eigenvectors = torch.linalg.eigh((block + block.transpose(1, 2)) / 2)
            along = eigenvectors.transpose(1, 2) @ flat_v.double()
            values.append((eigenvalues.clamp_min(0) * along**2).sum(dim=1))
    except (NotImplementedError, RuntimeError) as exc:
        if not is_transform_gap(exc):
            raise
        return None
    return torch.cat(values)


def _sample_hvp(loss, flat_w: torch.Tensor):
    """(x, y, v) -> H(x, y) v for one sample, forward-over-reverse at ``flat_w``."""

    def hvp(x, y, vector):
        return jvp(lambda w: grad(loss)(w, x, y), (flat_w,), (vector,))[1]

    return hvp


def _per_sample_hvp(fmodel: FunctionalModel, flat_w: torch.Tensor):
    """(x, y, rows) -> H_j rows_j for each sample j: vmapped forward-over-reverse, or double
    backward one sample at a time when the model has no forward-mode rule (with a warning).
    """
    loss = _sample_loss_of_flat(fmodel)
    vmapped = vmap(_sample_hvp(loss, flat_w))
    fallback = False

    def by_double_backward(inputs, targets, rows):
        products = []
        for x, y, row in zip(inputs, targets, rows, strict=True):
            w = flat_w.detach().requires_grad_(True)
            with torch.enable_grad():
                (gradient,) = torch.autograd.grad(loss(w, x, y), w, create_graph=True)
                (product,) = torch.autograd.grad(gradient, w, grad_outputs=row)
            products.append(product)
        return torch.stack(products)

    def apply(inputs, targets, rows):
        nonlocal fallback
        if not fallback:
            try:
                return vmapped(inputs, targets, rows)
            except (NotImplementedError, RuntimeError) as exc:
                if not is_transform_gap(exc):
                    raise
                warn_unsupported(
                    exc,
                    "computing per-sample Hessian-vector products by double backward",
                    what="torch.func (vmap of forward-over-reverse)",
                )
                fallback = True
        return by_double_backward(inputs, targets, rows)

    return apply


def _sample_loss_of_flat(fmodel: FunctionalModel):
    like = fmodel.params

    def loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fmodel.sample_losses(unflatten(flat, like), x[None], y[None])[0]

    return loss
