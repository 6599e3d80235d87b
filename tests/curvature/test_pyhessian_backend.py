"""PyHessian's estimators through genmeasures' adapter, checked against an exact Hessian."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pyhessian import hessian as PlainPyHessian
from torch import nn
from torch.func import functional_call
from torch.func import hessian as func_hessian

from genmeasures.curvature import EigenEstimate, TraceEstimate
from genmeasures.curvature.pyhessian_backend import (
    pyhessian_eigenvalues,
    pyhessian_trace,
)
from genmeasures.errors import MeasureError

ALL = ("0.weight", "0.bias", "2.weight", "2.bias")
LAST = ("2.weight",)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: extra threads only add contention (10x slower on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def per_sample_ce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


def make_model(dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(dtype)


def make_data(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(40, 4, generator=generator, dtype=dtype)
    targets = torch.randint(0, 3, (40,), generator=generator)
    return inputs, targets


def split(inputs: torch.Tensor, targets: torch.Tensor, mode: str) -> list:
    if mode == "single":
        return [(inputs, targets)]
    # unequal batches: only a sample-weighted average equals the full-data mean loss
    return [(inputs[a:b], targets[a:b]) for a, b in ((0, 16), (16, 32), (32, 40))]


def exact_hessian(model: nn.Module, inputs, targets, names: Sequence[str]) -> torch.Tensor:
    """Hessian of the mean cross-entropy over all samples w.r.t. the flattened named params."""
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss(w: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(w, [s.numel() for s in shapes])
        selected = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return per_sample_ce(functional_call(model, selected, (inputs,)), targets).mean()

    return func_hessian(loss)(flat)


@pytest.fixture(scope="module")
def setup():
    model = make_model()
    inputs, targets = make_data()
    exact = {
        names: torch.linalg.eigvalsh(exact_hessian(model, inputs, targets, names))
        for names in (ALL, LAST)
    }
    return model, inputs, targets, exact


@pytest.mark.parametrize("mode", ["single", "multi"])
@pytest.mark.parametrize("names", [ALL, LAST], ids=["all", "last-weight"])
def test_top_eigenvalue_matches_exact(setup, mode, names):
    model, inputs, targets, exact = setup
    eigs = exact[names]
    top = eigs[-1].item()
    assert top > abs(eigs[0].item())  # power iteration finds the largest magnitude: this one
    result = pyhessian_eigenvalues(model, per_sample_ce, split(inputs, targets, mode), names)
    assert isinstance(result, EigenEstimate) and result.method == "pyhessian"
    assert len(result.values) == 1
    value = result.values[0]
    # PyHessian's power iteration stops when the Rayleigh quotient changes by less than 1e-3
    # relative, long before it converges; the Rayleigh quotient is <= lambda_max, so the
    # result typically comes out slightly LOW (~0.1-0.3% here).
    assert value <= top + 1e-9
    assert abs(value - top) / top < 1e-2
    assert result.n_matvecs >= 2


def test_top_two_eigenvalues_in_pyhessian_order(setup):
    model, inputs, targets, exact = setup
    result = pyhessian_eigenvalues(model, per_sample_ce, [(inputs, targets)], ALL, top_n=2)
    eigs = exact[ALL]
    assert len(result.values) == 2
    for value, expected in zip(result.values, (eigs[-1].item(), eigs[-2].item()), strict=True):
        assert abs(value - expected) / expected < 1e-2


@pytest.mark.parametrize("names", [ALL, LAST], ids=["all", "last-weight"])
def test_trace_single_batch_matches_exact(setup, names):
    model, inputs, targets, exact = setup
    result = pyhessian_trace(
        model, per_sample_ce, [(inputs, targets)], names, max_iter=2000, tol=1e-6
    )
    assert isinstance(result, TraceEstimate) and result.method == "pyhessian"
    n = len(result.samples)
    assert n >= 100
    assert result.n_matvecs == n
    assert result.value == pytest.approx(np.mean(result.samples), rel=1e-12)
    assert result.stderr == pytest.approx(np.std(result.samples, ddof=1) / np.sqrt(n))
    assert abs(result.value - exact[names].sum().item()) < 4 * result.stderr


def test_trace_multi_batch_is_sample_weighted(setup):
    model, inputs, targets, exact = setup
    # Fewer samples than the single-batch test: each product here costs three backward passes.
    multi = pyhessian_trace(
        model, per_sample_ce, split(inputs, targets, "multi"), ALL, max_iter=300, tol=1e-6
    )
    single = pyhessian_trace(model, per_sample_ce, [(inputs, targets)], ALL, max_iter=300, tol=1e-6)
    # Same seed -> same Rademacher vectors; the sample-weighted batch average of the products
    # equals the full-batch product (an unweighted mean of batch means would not).
    n = min(len(multi.samples), len(single.samples))
    assert n >= 2
    np.testing.assert_allclose(multi.samples[:n], single.samples[:n], rtol=1e-10)
    assert multi.n_matvecs == len(multi.samples)
    assert abs(multi.value - exact[ALL].sum().item()) < 4 * multi.stderr


def test_float32_cpu_numbers_are_plain_pyhessians():
    """The adapter runs PyHessian's algorithms: on float32/CPU its numbers are PyHessian's."""
    model = make_model(torch.float32)
    inputs, targets = make_data(torch.float32)
    for mode in ("single", "multi"):
        batches = split(inputs, targets, mode)
        ours_eig = pyhessian_eigenvalues(model, per_sample_ce, batches, ALL, top_n=2, seed=3)
        ours_trace = pyhessian_trace(model, per_sample_ce, batches, ALL, max_iter=50, seed=3)

        plain_model = copy.deepcopy(model)
        kwargs = {"data": batches[0]} if mode == "single" else {"dataloader": batches}
        torch.manual_seed(3)
        plain = PlainPyHessian(plain_model, nn.CrossEntropyLoss(), cuda=False, **kwargs)
        plain_eig, _ = plain.eigenvalues(top_n=2)
        torch.manual_seed(3)
        plain = PlainPyHessian(plain_model, nn.CrossEntropyLoss(), cuda=False, **kwargs)
        plain_trace = plain.trace(maxIter=50)

        np.testing.assert_allclose(ours_eig.values, plain_eig, rtol=1e-6)
        np.testing.assert_allclose(ours_trace.samples, plain_trace, rtol=1e-6)


def test_plain_pyhessian_problems_the_adapter_fixes():
    """Why an adapter is needed: what unmodified PyHessian 0.1 does on torch 2.x."""
    inputs, targets = make_data()
    model = make_model()
    model.train()
    # Its default cuda=True moves a CPU batch to CUDA: fails without CUDA (AssertionError),
    # and with CUDA the CPU model then meets CUDA inputs (RuntimeError).
    with pytest.raises((AssertionError, RuntimeError)):
        PlainPyHessian(model, nn.CrossEntropyLoss(), data=(inputs, targets))

    model = make_model()
    model.train()
    plain = PlainPyHessian(model, nn.CrossEntropyLoss(), data=(inputs, targets), cuda=False)
    assert not model.training  # left in eval mode for good
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.grad_fn is not None for g in grads)  # graph-carrying .grad
    # density() calls torch.eig, removed from torch (a stub that raises).
    with pytest.raises(RuntimeError, match=r"torch\.linalg\.eig"):
        plain.density(iter=3)
    # Note: a float64 model does NOT crash on this torch: PyHessian draws float32 start vectors
    # and autograd.grad silently casts float32 grad_outputs to float64. The adapter draws them
    # in the parameters' dtype instead.
    model.zero_grad()


def test_float64_end_to_end(setup):
    model, inputs, targets, exact = setup
    assert all(p.dtype == torch.float64 for p in model.parameters())
    result = pyhessian_eigenvalues(
        model, per_sample_ce, [(inputs, targets)], LAST, max_iter=1000, tol=1e-12
    )
    # Run to convergence in float64, power iteration reaches the exact value up to PyHessian's
    # normalisation v / (|v| + 1e-6): the unit vector is short by 1e-6, so the Rayleigh
    # quotient is lambda / (1 + 1e-6)^2, i.e. 2e-6 relative too low.
    top = exact[LAST][-1].item()
    assert result.values[0] == pytest.approx(top / (1 + 1e-6) ** 2, rel=1e-9)


@pytest.mark.parametrize("mode", ["single", "multi"])
def test_model_state_and_rng_untouched(mode):
    model = make_model()
    inputs, targets = make_data()
    model.train()
    model[1].eval()  # mixed modes must come back as they were
    model[0].bias.requires_grad_(False)  # frozen, and not in names below
    existing = torch.ones_like(model[2].bias)
    model[2].bias.grad = existing
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    batches = split(inputs, targets, mode)

    pyhessian_eigenvalues(model, per_sample_ce, batches, ("0.bias", "2.weight"), max_iter=5)
    pyhessian_trace(model, per_sample_ce, batches, ("0.bias", "2.weight"), max_iter=5)

    assert [m.training for m in model.modules()] == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert model[2].bias.grad is existing
    assert torch.equal(existing, torch.ones_like(existing))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "2.bias")
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), before[name]), name
    assert torch.equal(torch.get_rng_state(), rng)


def test_works_inside_no_grad(setup):
    model, inputs, targets, _ = setup
    with torch.no_grad():
        result = pyhessian_trace(model, per_sample_ce, [(inputs, targets)], LAST, max_iter=3)
    assert len(result.samples) >= 2


def test_same_seed_same_numbers(setup):
    model, inputs, targets, _ = setup
    batches = [(inputs, targets)]

    def run(seed: int):
        trace = pyhessian_trace(model, per_sample_ce, batches, ALL, max_iter=20, seed=seed)
        eig = pyhessian_eigenvalues(model, per_sample_ce, batches, ALL, seed=seed)
        return trace, eig

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert first[0].samples != other[0].samples
    assert first[1].values != other[1].values


def test_negative_trace_stops_after_two_samples(setup):
    """PyHessian's trace rule divides by the signed running mean: a negative trace stops early."""
    model, inputs, targets, _ = setup

    def negated(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -per_sample_ce(outputs, targets)

    result = pyhessian_trace(model, negated, [(inputs, targets)], ALL, max_iter=100, tol=1e-3)
    assert len(result.samples) == 2
    assert result.n_matvecs == 2


@pytest.mark.parametrize(
    ("names", "match"),
    [((), "no parameter names"), (("2.weight", "nope"), "'nope'"), (("0",), "'0'")],
)
def test_bad_names(setup, names, match):
    model, inputs, targets, _ = setup
    with pytest.raises(MeasureError, match=match):
        pyhessian_trace(model, per_sample_ce, [(inputs, targets)], names)
    with pytest.raises(MeasureError, match=match):
        pyhessian_eigenvalues(model, per_sample_ce, [(inputs, targets)], names)


def test_bad_arguments(setup):
    model, inputs, targets, _ = setup
    with pytest.raises(MeasureError, match="no data batches"):
        pyhessian_trace(model, per_sample_ce, [], ALL)
    with pytest.raises(MeasureError, match="top_n"):
        pyhessian_eigenvalues(model, per_sample_ce, [(inputs, targets)], ALL, top_n=0)
    with pytest.raises(MeasureError, match="per sample"):
        pyhessian_trace(model, F.cross_entropy, [(inputs, targets)], ALL)
