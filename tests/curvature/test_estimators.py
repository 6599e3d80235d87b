"""Trace, eigenvalue and quadrature estimators against exact matrices."""

from __future__ import annotations

import math

import pytest
import torch

from genmeasures.curvature import (
    HessianOperator,
    exact_trace,
    hutchinson,
    hutchpp,
    lanczos_eigenvalues,
    lanczos_quadrature,
)
from genmeasures.curvature.lanczos import positive_part
from genmeasures.curvature.vectors import flatten, rademacher_like
from genmeasures.measures import cross_entropy_per_sample as ce
from tests.curvature.oracle import MatrixOperator, Oracle, data_for, small_cnn, split, tanh_mlp


@pytest.fixture(scope="module")
def problem():
    model = tanh_mlp()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    op = HessianOperator(model, names, split(inputs, targets, 10), ce)
    blocks = [float(oracle.block(exact, i).trace()) for i in range(len(names))]
    return op, exact, blocks


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_exact_trace_and_blocks(problem) -> None:
    op, exact, blocks = problem
    result = exact_trace(op)
    assert result.value == pytest.approx(float(exact.trace()), abs=1e-8)
    assert result.blocks == pytest.approx(blocks, abs=1e-8)
    assert result.n_matvecs == exact.shape[0] and math.isnan(result.stderr)


@pytest.mark.parametrize("estimator", [hutchinson, hutchpp])
def test_stochastic_traces_within_three_standard_errors(problem, estimator) -> None:
    op, exact, blocks = problem
    result = estimator(op, rtol=0.002, max_matvecs=600, generator=generator(3))
    assert abs(result.value - float(exact.trace())) <= 3 * result.stderr + 1e-10
    for value, stderr, truth in zip(result.blocks, result.block_stderrs, blocks, strict=True):
        assert abs(value - truth) <= 3 * stderr + 1e-10


def test_hutchinson_samples_are_the_per_probe_quadratic_forms(problem) -> None:
    op, exact, _ = problem
    result = hutchinson(op, rtol=1e-9, max_matvecs=8, min_probes=8, generator=generator(5))
    replay = generator(5)
    for sample in result.samples:
        g = flatten(rademacher_like(op.params, replay))
        assert sample == pytest.approx(float(g @ exact @ g), abs=1e-10)
    assert result.stderr == pytest.approx(
        torch.tensor(result.samples, dtype=torch.float64).std().item() / math.sqrt(8), rel=1e-12
    )


def test_hutchpp_is_exact_when_the_sketch_spans_the_space(problem) -> None:
    op, exact, blocks = problem
    dim = exact.shape[0]
    result = hutchpp(op, sketch_size=dim, max_matvecs=3 * dim, generator=generator())
    assert result.value == pytest.approx(float(exact.trace()), abs=1e-8)
    assert result.blocks == pytest.approx(blocks, abs=1e-8)


def test_budget_too_small_warns_and_returns_the_estimate(problem) -> None:
    op, _, _ = problem
    with pytest.warns(RuntimeWarning, match="budget of 12 matrix-vector products ran out"):
        result = hutchinson(op, rtol=1e-6, max_matvecs=12, generator=generator())
    assert not result.converged and result.n_matvecs == 12 and result.stderr > 0
    with pytest.warns(RuntimeWarning, match="Lanczos: the budget of 3"):
        est = lanczos_eigenvalues(op, 1, rtol=1e-12, max_matvecs=3, generator=generator())
    assert not est.converged and est.errors[0] > 0


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_lanczos_top_k(problem, which: str) -> None:
    op, exact, _ = problem
    eigenvalues = torch.linalg.eigvalsh(exact)
    expected = eigenvalues.flip(0)[:3] if which == "largest" else eigenvalues[:3]
    result = lanczos_eigenvalues(
        op, 3, which=which, rtol=1e-10, max_matvecs=200, generator=generator()
    )
    assert result.values == pytest.approx(expected.tolist(), abs=1e-8)
    assert result.converged
    # The residual bound holds: an eigenvalue lies within it.
    for value, error in zip(result.values, result.errors, strict=True):
        assert (eigenvalues - value).abs().min() <= error + 1e-12


def test_lanczos_residual_bound_holds_before_convergence() -> None:
    model = small_cnn()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    exact = Oracle(model, names, inputs, targets).hessian()
    eigenvalues = torch.linalg.eigvalsh(exact)
    op = HessianOperator(model, names, [(inputs, targets)], ce)
    with pytest.warns(RuntimeWarning):
        result = lanczos_eigenvalues(op, 2, rtol=1e-14, max_matvecs=6, generator=generator())
    for value, error in zip(result.values, result.errors, strict=True):
        assert (eigenvalues - value).abs().min() <= error + 1e-12
    assert result.values[0] <= float(eigenvalues.max()) + 1e-12  # Ritz values interlace


def test_quadrature_of_positive_part_is_exact_with_full_steps() -> None:
    generator_ = torch.Generator().manual_seed(0)
    matrices = torch.randn(3, 12, 12, generator=generator_, dtype=torch.float64)
    matrices = matrices + matrices.transpose(1, 2)  # symmetric, indefinite
    starts = torch.randn(3, 12, generator=generator_, dtype=torch.float64)
    result = lanczos_quadrature(
        lambda rows: torch.einsum("bij,bj->bi", matrices, rows), starts, positive_part, 12
    )
    values, vectors = torch.linalg.eigh(matrices)
    coefficients = torch.einsum("bij,bi->bj", vectors, starts)
    exact = (values.clamp_min(0) * coefficients**2).sum(dim=1)
    torch.testing.assert_close(result.values, exact, atol=1e-8, rtol=0)
    partial = lanczos_quadrature(
        lambda rows: torch.einsum("bij,bj->bi", matrices, rows), starts, positive_part, 5
    )
    assert partial.n_matvecs == 5 and not torch.allclose(partial.values, exact, atol=1e-6)


def test_quadrature_stops_early_on_an_invariant_subspace() -> None:
    low_rank = torch.randn(20, 2, dtype=torch.float64)
    matrix = low_rank @ low_rank.T  # rank 2
    start = torch.randn(1, 20, dtype=torch.float64)
    result = lanczos_quadrature(lambda rows: rows @ matrix, start, positive_part, 20)
    assert result.n_matvecs <= 3
    exact = float(start[0] @ matrix @ start[0])
    assert float(result.values[0]) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_lanczos_value_stopping_meets_its_tolerance_sooner(which: str) -> None:
    model = small_cnn()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    exact = Oracle(model, names, inputs, targets).hessian()
    eigenvalues = torch.linalg.eigvalsh(exact)
    target = float(eigenvalues.max() if which == "largest" else eigenvalues.min())
    op = HessianOperator(model, names, [(inputs, targets)], ce)
    spent = {}
    for stop in ("value", "residual"):
        for rtol in (1e-3, 1e-6):
            est = lanczos_eigenvalues(
                op, 1, which=which, rtol=rtol, stop=stop, max_matvecs=200, generator=generator()
            )
            assert est.converged
            error = abs(est.values[0] - target)
            assert error <= rtol * abs(target)  # the tolerance is met on the true eigenvalue
            assert error <= est.value_errors[0] + 1e-12 <= est.errors[0] + 1e-12
            spent[stop, rtol] = est.n_matvecs
    assert spent["value", 1e-3] < spent["residual", 1e-3]
    assert spent["value", 1e-6] < spent["residual", 1e-6]
    with pytest.raises(ValueError, match="stop must be"):
        lanczos_eigenvalues(op, 1, stop="maybe", generator=generator())  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_partial_reorthogonalization_keeps_lanczos_free_of_ghosts(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run far past convergence of the top eigenvalue (where plain Lanczos duplicates it):
    the top three Ritz values are still the three distinct top eigenvalues, and the whole
    basis was swept at only some of the steps.

    With the rounding floor in the error bars, rtol = 0 stops once the errors reach the floor
    (20 products in float32, 28 in float64), too soon to show ghosts; the floor is switched
    off here so that rtol = 0 runs the whole budget, as it did before the floor."""
    from genmeasures.curvature import lanczos

    monkeypatch.setattr(lanczos, "_FLOOR", 0.0)

    generator_ = torch.Generator().manual_seed(3)
    bulk = 4 * torch.rand(397, generator=generator_, dtype=torch.float64)
    spectrum = torch.cat([torch.tensor([10.0, 5.0, 4.9], dtype=torch.float64), bulk])
    rotation, _ = torch.linalg.qr(torch.randn(400, 400, generator=generator_, dtype=torch.float64))
    matrix = (rotation * spectrum) @ rotation.T
    op = MatrixOperator(matrix.to(dtype))
    full_sweeps = []
    original = lanczos._orthogonalize

    def counting(w, basis):
        if basis.shape[0] > 2:
            full_sweeps.append(basis.shape[0])
        return original(w, basis)

    monkeypatch.setattr(lanczos, "_orthogonalize", counting)
    with pytest.warns(RuntimeWarning, match="budget"):
        est = lanczos_eigenvalues(op, 3, rtol=0.0, max_matvecs=80, generator=generator())
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    assert est.values == pytest.approx([10.0, 5.0, 4.9], abs=tolerance)  # plain: 10, 10, 10
    assert 0 < len(full_sweeps) < 78  # some steps needed the whole basis, not all
