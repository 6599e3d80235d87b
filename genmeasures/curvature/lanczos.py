"""Lanczos: extreme eigenvalues with residual bounds, and quadrature for v^T f(A) v.

After m steps from a start vector q_1, Lanczos has an orthonormal basis Q_m of the Krylov
space and the tridiagonal T_m = Q_m^T A Q_m. Each eigenpair (theta, s) of T_m gives a Ritz
pair (theta, y = Q_m s) with residual ||A y - theta y|| = beta_m |s_m|: some eigenvalue of A
lies within that distance of theta (for symmetric A). Quadrature started from q_1 = v/||v||
gives v^T f(A) v ~= ||v||^2 sum_k s_{1k}^2 f(theta_k) (Golub & Meurant), exact for polynomials
of degree < 2m.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from genmeasures.curvature.trace import Operator
from genmeasures.curvature.vectors import flatten, gaussian_like, unflatten


@dataclass(frozen=True)
class EigenEstimate:
    """Ritz values (largest first, or smallest first for ``which='smallest'``) and bounds.

    ``errors[i]`` is the residual norm r_i of the i-th Ritz pair plus the rounding floor f: an
    eigenvalue of A lies within r_i in exact arithmetic (a rigorous bound), and f = 32 eps
    max|theta| (eps of the operator's dtype, max|theta| the largest |Ritz value|, estimating
    ||A||) covers the rounding of the products A q, which the computed r_i cannot see.
    ``value_errors[i]`` = min(r_i, r_i^2 / delta_i) + f is the gap-refined estimate of the
    eigenvalue's error (Kato-Temple; Parlett, *The Symmetric Eigenvalue Problem*, 11.7), with
    delta_i the distance from theta_i to the nearest other Ritz value less that value's
    residual: the Ritz gap stands in for the unknown spectral gap, so it is an estimate,
    typically far below r_i (eigenvalues converge quadratically in the residual), and it
    undershoots where the wanted eigenvalue has a neighbour Lanczos has not yet resolved.
    ``converged`` is False when the budget ran out before the stopping rule met the tolerance.
    """

    values: tuple[float, ...]
    errors: tuple[float, ...]
    n_matvecs: int
    converged: bool
    value_errors: tuple[float, ...] = ()
    method: str = "lanczos"


def lanczos_eigenvalues(
    op: Operator,
    k: int = 1,
    *,
    which: Literal["largest", "smallest"] = "largest",
    rtol: float = 1e-6,
    max_matvecs: int = 100,
    stop: Literal["value", "residual"] = "value",
    generator: torch.Generator,
) -> EigenEstimate:
    """The k algebraically largest (or smallest) eigenvalues of A by Lanczos.

    Partial reorthogonalization (Simon 1984) keeps the basis semi-orthogonal (|q_i^T q_j| <=
    sqrt(eps)), which keeps Ritz values accurate to working precision with no spurious copies
    of converged eigenvalues: each new vector is orthogonalized against the previous two, a
    recurrence estimates its overlap with the older ones, and only when that estimate exceeds
    sqrt(eps) is it (and the next one) orthogonalized against the whole basis. On a large model
    that saves a pass over the whole basis at most steps.

    Stops when every wanted Ritz value's error is at most max(rtol * |value|, 2 f) -- the
    gap-refined estimate with ``stop="value"``, the residual bound with ``stop="residual"``
    (several more products), both including the rounding floor f -- when the Krylov space
    becomes invariant (the values are then exact up to f), or after ``max_matvecs`` products
    (then it warns). An error within 2 f means the iteration's own part is below rounding, so
    a tolerance below the floor (rtol = 0 included) stops there rather than spending the
    budget.
    """
    if stop not in ("value", "residual"):
        raise ValueError(f"stop must be 'value' or 'residual', got {stop!r}")
    like = op.params
    dim = sum(p.numel() for p in like)
    k = min(k, dim)
    steps = min(max_matvecs, dim)
    q = flatten(gaussian_like(like, generator))
    # The Krylov basis lives in one matrix that grows by doubling: orthogonalizing against a
    # view of it costs two matrix-vector products, with no copy of the basis per step.
    basis = torch.empty((min(steps, 8), q.numel()), dtype=q.dtype, device=q.device)
    basis[0] = q / torch.linalg.vector_norm(q)
    size = 1
    alphas: list[float] = []
    betas: list[float] = []
    values: list[float] = []
    errors: list[float] = []
    value_errors: list[float] = []
    converged = False
    eps = torch.finfo(q.dtype).eps
    monitor = _Semiorthogonality(eps)
    # On a large model every temporary of the parameter count costs a fresh allocation (page
    # faults), about as much as the arithmetic: each step writes A q into one reused buffer,
    # orthogonalizes it in place and divides it straight into the basis.
    w = torch.empty_like(q)
    for step in range(steps):
        current = basis[size - 1]
        flatten(op.matmat([unflatten(current, like)])[0], out=w)
        alphas.append(float(torch.dot(current, w)))
        beta = _orthogonalize(w, basis[max(0, size - 2) : size])
        if monitor.needs_full(alphas, betas, beta):
            beta = _orthogonalize(w, basis[:size])
            monitor.reset(size)
        values, errors, value_errors, floor = _ritz(alphas, betas, beta, k, which, eps)
        scale = max(abs(a) for a in alphas) or 1.0
        invariant = beta <= 1e-12 * scale
        if invariant:
            errors = value_errors = [floor] * len(values)
        judged = value_errors if stop == "value" else errors
        # An error within twice the floor is converged whatever rtol asks: the iteration's own
        # part is then below rounding, and further steps cannot shrink it.
        if invariant or (
            step + 1 >= k
            and all(e <= max(rtol * abs(v), 2 * floor) for v, e in zip(values, judged, strict=True))
        ):
            converged = True
            break
        if step + 1 < steps:
            if size == basis.shape[0]:
                grown = torch.empty(
                    (min(steps, 2 * size), basis.shape[1]), dtype=basis.dtype, device=basis.device
                )
                grown[:size] = basis
                basis = grown
            betas.append(beta)
            torch.div(w, beta, out=basis[size])
            size += 1
    if not converged:
        judged = value_errors if stop == "value" else errors
        worst = max(e / max(abs(v), 1e-30) for v, e in zip(values, judged, strict=True))
        what = "estimated error" if stop == "value" else "residual"
        warnings.warn(
            f"Lanczos: the budget of {max_matvecs} matrix-vector products ran out at relative "
            f"{what} {worst:.3g} (tolerance {rtol:.3g}); returning the estimates with their "
            f"error bounds",
            RuntimeWarning,
            stacklevel=2,
        )
    return EigenEstimate(tuple(values), tuple(errors), len(alphas), converged, tuple(value_errors))


class _Semiorthogonality:
    """Estimates omega_k = q_{j+1}^T q_k for the vector about to join the basis (Simon's
    recurrence, from the Lanczos coefficients alone) and says when it must be orthogonalized
    against the whole basis: when some |omega_k| exceeds sqrt(eps), and at the step after
    (the next vector inherits the overlap through the three-term recurrence).
    """

    def __init__(self, eps: float) -> None:
        self.eps = eps
        self.previous: list[float] = []  # omega of q_{j-1} with q_0..q_{j-1}
        self.current: list[float] = [1.0]  # omega of q_j with q_0..q_j
        self.again = False

    def needs_full(self, alphas: list[float], betas: list[float], beta: float) -> bool:
        """Advance the estimates to q_{j+1} = w / beta; True if w needs full reorthogonalization.

        beta_j omega'_k = beta_k omega_{k+1} + (alpha_k - alpha_j) omega_k
                          + beta_{k-1} omega_{k-1} - beta_{j-1} omega''_k   (k < j - 1),
        plus a rounding term eps (beta_k + beta_j) with the numerator's sign; the two newest
        overlaps are eps (they were orthogonalized against explicitly).
        """
        j = len(alphas) - 1
        if beta <= 0.0:
            return False
        cur, prev, eps = self.current, self.previous, self.eps
        # The step's local rounding error is of order eps ||A q_j||, with ||A|| >= max |alpha|:
        # on a shifted spectrum (A ~ sigma I + small, beta << |alpha|) eps (beta_k + beta_j)
        # alone underestimated the overlaps by orders of magnitude (|q_i^T q_j| = 0.04 at the
        # first full sweep on 1000 + U[0, 1] in float32) and the Ritz values blew up.
        norm = max(abs(a) for a in alphas)
        new = []
        for index in range(max(0, j - 1)):
            total = betas[index] * cur[index + 1] + (alphas[index] - alphas[j]) * cur[index]
            if index > 0:
                total += betas[index - 1] * cur[index - 1]
            if j > 0:
                total -= betas[j - 1] * prev[index]
            rounding = eps * (betas[index] + beta + norm)
            total += rounding if total >= 0 else -rounding
            new.append(total / beta)
        new += [eps] * (min(j, 1) + 1) + [1.0]  # q_{j-1}, q_j: explicit; q_{j+1}: itself
        self.previous, self.current = cur, new
        worst = max((abs(x) for x in new[: max(0, j - 1)]), default=0.0)
        full = self.again or worst > math.sqrt(eps)
        self.again = worst > math.sqrt(eps)
        return full

    def reset(self, size: int) -> None:
        self.current = [self.eps] * size + [1.0]


def _orthogonalize(w: torch.Tensor, basis: torch.Tensor) -> float:
    """Remove from ``w``, in place, its projection on the rows of ``basis`` (classical
    Gram-Schmidt); return the norm of what is left.

    A second pass is made only when the first removed most of w (its norm fell below 1/sqrt(2)
    of what it was): "twice is enough" (Kahan, Parlett), at half the cost when it is not needed.
    ``addmv_`` fuses the update: half the time of ``w - basis.T @ (basis @ w)`` on 11M entries.
    """
    before = float(torch.linalg.vector_norm(w))
    w.addmv_(basis.T, torch.mv(basis, w), alpha=-1)
    after = float(torch.linalg.vector_norm(w))
    if after < 0.7071 * before:
        w.addmv_(basis.T, torch.mv(basis, w), alpha=-1)
        after = float(torch.linalg.vector_norm(w))
    return after


# The rounding floor, in units of eps(dtype) * ||A||. Finite-precision Lanczos is backward
# stable in this sense (Paige 1976, 1980; Parlett, *The Symmetric Eigenvalue Problem*, 13.4):
# the computed T_m satisfies A Q_m = Q_m T_m + beta q e_m^T + F_m with each column of F_m of
# order eps ||A|| (the rounding of the product A q and of the recurrence), so each computed Ritz
# value is, to first order, an exact one for A + E with ||E|| ~ eps ||A|| times a modest factor,
# and moves by at most ||E|| (Weyl). The residual beta |s_m| is computed from T_m alone and
# knows nothing of E: it falls to 1e-12 and below in float32 (to 0 where eigh deflates) while
# the true error stays at a few eps ||A||. Both error bars therefore carry
# _FLOOR * eps * ||A||, ||A|| estimated by the largest |Ritz value| (a lower bound, and the
# first to converge). The constant is measured, on converged runs with k = 1 and 3: against
# float64 references the float32 error was at most 1.5 eps ||A|| on 50-400-dimensional
# matrices and tiny-model Hessians, up to 7 on Hessians of a 5k-parameter CNN and an 85k-parameter
# MLP (larger on the larger problems; nothing above 85k parameters was measured); float64 runs
# were within 7 eps ||A|| of an extended-precision reference (9 of torch.linalg.eigvalsh,
# itself off by up to 4.5). 32 covers the largest float32 error 4-5x over and is 4-30x above
# the float64 ones.
_FLOOR = 32.0


def _ritz(
    alphas: list[float], betas: list[float], beta_next: float, k: int, which: str, eps: float
) -> tuple[list[float], list[float], list[float], float]:
    """The k wanted Ritz values, their residual bounds and gap-refined error estimates, both
    plus the rounding floor, and that floor."""
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    theta, s = torch.linalg.eigh(t)
    floor = _FLOOR * eps * float(theta.abs().max())
    residuals = beta_next * s[-1, :].abs()
    order = torch.argsort(theta, descending=(which == "largest"))[:k]
    refined = []
    for i in order.tolist():
        others = torch.arange(len(theta)) != i
        gaps = (theta[others] - theta[i]).abs() - residuals[others]
        gap = float(gaps.min()) if others.any() else 0.0
        r = float(residuals[i])
        refined.append((min(r, r * r / gap) if gap > 0 else r) + floor)
    bounds = [float(r) + floor for r in residuals[order].tolist()]
    return theta[order].tolist(), bounds, refined, floor


@dataclass(frozen=True)
class QuadratureResult:
    """v_b^T f(A_b) v_b per row, and the number of Lanczos steps (products) taken."""

    values: torch.Tensor
    n_matvecs: int


def lanczos_quadrature(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    f: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
) -> QuadratureResult:
    """v_b^T f(A_b) v_b for a batch of independent problems, started from v_b.

    ``start`` has shape (B, d); ``matvec`` maps (B, d) -> (B, d), applying each problem's own
    symmetric A_b to its row. Gauss quadrature on the nodes and weights of
    :func:`lanczos_nodes`: v^T f(A) v ~= ||v||^2 sum_k w_k f(theta_k).
    """
    nodes = lanczos_nodes(matvec, start, steps)
    norms = torch.linalg.vector_norm(start, dim=1).double()
    values = norms**2 * (nodes.weights * f(nodes.nodes)).sum(dim=1)
    return QuadratureResult(values, nodes.n_steps)


@dataclass(frozen=True)
class QuadratureNodes:
    """Gauss quadrature from Lanczos, per row: nodes theta_k (Ritz values, ascending) and
    weights w_k = s_1k^2 (each row's sum to 1, 0 for a zero start), both (B, m) float64."""

    nodes: torch.Tensor
    weights: torch.Tensor
    n_steps: int


def lanczos_nodes(
    matvec: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int
) -> QuadratureNodes:
    """Lanczos from each row of ``start`` (B, d), up to ``steps`` steps with full
    reorthogonalization; the eigenpairs (theta_k, s_k) of each row's tridiagonal T give the
    quadrature nodes theta_k and weights s_1k^2 (Golub & Meurant). A row whose Krylov space
    becomes invariant (next beta below 100 eps times the largest alpha) stops there, and its
    quadrature is exact (the nodes past its end get weight 0); once every row has stopped,
    so does the iteration.
    """
    tolerance = 100 * torch.finfo(start.dtype).eps
    norms = torch.linalg.vector_norm(start, dim=1)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    basis = [start / safe[:, None]]
    alphas, betas = [], []
    active = norms > 0
    for _ in range(min(steps, start.shape[1])):
        w = matvec(basis[-1])
        alpha = (basis[-1] * w).sum(dim=1)
        alphas.append(torch.where(active, alpha, torch.zeros_like(alpha)))
        stack = torch.stack(basis, dim=1)  # (B, j, d)
        for _ in range(2):
            w = w - torch.einsum("bjd,bj->bd", stack, torch.einsum("bjd,bd->bj", stack, w))
        beta = torch.linalg.vector_norm(w, dim=1)
        scale = torch.stack(alphas).abs().amax(dim=0).clamp_min(torch.finfo(w.dtype).tiny)
        active = active & (beta > tolerance * scale)
        if len(alphas) == min(steps, start.shape[1]) or not bool(active.any()):
            break
        betas.append(torch.where(active, beta, torch.zeros_like(beta)))
        safe_beta = torch.where(active, beta, torch.ones_like(beta))
        basis.append(torch.where(active[:, None], w / safe_beta[:, None], torch.zeros_like(w)))
    t = torch.diag_embed(torch.stack(alphas, dim=1).double())
    if betas:
        off = torch.stack(betas, dim=1).double()
        t = t + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    theta, s = torch.linalg.eigh(t)
    weights = s[:, 0, :] ** 2 * (norms > 0).double()[:, None]
    return QuadratureNodes(theta, weights, len(alphas))


def positive_part(values: torch.Tensor) -> torch.Tensor:
    return values.clamp_min(0.0)
