"""The matrix-sensing problem: reproducible, symmetric measurements, closed-form gradient."""

from __future__ import annotations

import pytest
import torch

from genmeasures.errors import OptionError
from genmeasures_papers.matrix_sensing import make_problem
from genmeasures_papers.matrix_sensing.problem import pack, unpack


@pytest.fixture(scope="module")
def problem():
    return make_problem(7, 2, seed=3, dtype="float64")


def test_sizes_default_to_the_papers_five_d_r_measurements(problem) -> None:
    assert (problem.d, problem.r, problem.m, problem.m_val) == (7, 2, 70, 70)
    assert problem.a_train.shape == (70, 7 * 8 // 2)
    assert problem.u_star.shape == (7, 2)
    torch.testing.assert_close(problem.x, problem.u_star @ problem.u_star.T)
    assert torch.linalg.matrix_rank(problem.x) == 2


def test_measurement_matrices_are_symmetric_and_measure_inner_products(problem) -> None:
    for split in ("train", "val"):
        dense = problem.dense_measurements(split)
        assert dense.shape == (70, 7, 7)
        torch.testing.assert_close(dense, dense.transpose(1, 2), rtol=0, atol=0)
        s = torch.randn(7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        s = s + s.T
        expected = torch.einsum("kij,ij->k", dense, s)
        torch.testing.assert_close(problem.measure(s, split), expected)
        y = problem.y_train if split == "train" else problem.y_val
        torch.testing.assert_close(y, torch.einsum("kij,ij->k", dense, problem.x))
    # (B + B^T) / 2 with B ~ N(0, 1): diagonal variance 1, off-diagonal variance 1/2
    big = make_problem(20, 1, m=400, seed=0, dtype="float64").dense_measurements()
    off = big[:, 0, 1:].flatten()
    assert 0.4 < float(off.var()) < 0.6
    assert 0.85 < float(torch.diagonal(big, dim1=1, dim2=2).var()) < 1.15


def test_pack_unpack_round_trip() -> None:
    s = torch.randn(5, 5, dtype=torch.float64)
    s = s + s.T
    torch.testing.assert_close(unpack(pack(s), 5), s)
    a = torch.randn(5, 5, dtype=torch.float64)
    a = a + a.T
    torch.testing.assert_close(pack(a) @ pack(s, weighted=True), (a * s).sum())


def test_the_problem_is_reproducible_from_its_seed() -> None:
    a = make_problem(6, 2, seed=11, dtype="float64")
    b = make_problem(6, 2, seed=11, dtype="float64")
    c = make_problem(6, 2, seed=12, dtype="float64")
    for name in ("u_star", "a_train", "y_train", "a_val", "y_val"):
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.equal(getattr(a, name), getattr(c, name))
    # the validation measurements are fresh, not a copy of the training ones
    assert not torch.equal(a.a_train, a.a_val)
    # the same numbers in either precision (drawn in float64, then stored)
    single = make_problem(6, 2, seed=11, dtype="float32")
    assert single.a_train.dtype == torch.float32
    torch.testing.assert_close(single.a_train, a.a_train.float(), rtol=0, atol=0)


def test_closed_form_gradient_equals_autograd(problem) -> None:
    generator = torch.Generator().manual_seed(5)
    for scale in (0.01, 0.3, 1.0):
        u = scale * torch.randn(7, 7, dtype=torch.float64, generator=generator)
        u.requires_grad_(True)
        (expected,) = torch.autograd.grad(problem.loss(u), u)
        torch.testing.assert_close(problem.gradient(u.detach()), expected, rtol=1e-10, atol=1e-12)
    # the objective is sum r_k^2 / (4m) and the reported errors are relative
    u = torch.zeros(7, 7, dtype=torch.float64)
    assert problem.mse(u, "train") == pytest.approx(1.0)
    assert problem.mse(u, "val") == pytest.approx(1.0)
    assert problem.distance(u) == pytest.approx(1.0)
    assert float(problem.loss(u)) == pytest.approx(float(problem.y_train.square().sum()) / 280)
    u_star = torch.cat([problem.u_star, torch.zeros(7, 5, dtype=torch.float64)], dim=1)
    assert problem.mse(u_star, "val") < 1e-20 and problem.distance(u_star) < 1e-12
    assert float(problem.gradient(u_star).abs().max()) < 1e-9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d": 4, "r": 5}, "rank r=5 exceeds the dimension d=4"),
        ({"d": 0, "r": 1}, "d must be a positive integer"),
        ({"d": 4, "r": 2, "m": 0}, "m must be a positive integer"),
        ({"d": 4, "r": 2, "dtype": "float16"}, "dtype must be one of float32, float64"),
    ],
)
def test_bad_problem_options_raise_one_line_errors(kwargs, match) -> None:
    with pytest.raises(OptionError, match=match) as info:
        make_problem(**kwargs)
    assert "\n" not in str(info.value)


def test_unknown_split_is_an_option_error(problem) -> None:
    with pytest.raises(OptionError, match="split must be 'train' or 'val'"):
        problem.mse(torch.zeros(7, 7, dtype=torch.float64), "test")  # type: ignore[arg-type]
