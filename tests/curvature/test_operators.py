"""Hessian and Gauss-Newton vector products against exact matrices; checks; backends."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from genmeasures.curvature import GGNOperator, HessianOperator, evaluation_mode
from genmeasures.errors import MeasureError
from genmeasures.measures import cross_entropy_per_sample as ce
from tests.curvature.oracle import Oracle, data_for, small_cnn, split, tanh_mlp

MODELS = {"tanh_mlp": tanh_mlp, "small_cnn": small_cnn}


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("backend", ["func", "autograd", "auto"])
def test_hvp_equals_exact_hessian_with_short_last_batch(model_name: str, backend: str) -> None:
    model = MODELS[model_name]()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    op = HessianOperator(model, names, split(inputs, targets, 10), ce, backend=backend)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(exact.shape[0], generator=generator, dtype=torch.float64)
        hv = oracle.flat(op.matvec(oracle.unflat(v)))
        torch.testing.assert_close(hv, exact @ v, atol=1e-10, rtol=0)
    assert op.n_matvecs == 3 and op.backend in ("func", "autograd")


def test_single_batch_graph_is_reused_and_matmat_matches() -> None:
    model = tanh_mlp()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    op = HessianOperator(model, names, [(inputs, targets)], ce, backend="autograd")
    vs = [torch.randn(exact.shape[0], dtype=torch.float64) for _ in range(4)]
    products = op.matmat([oracle.unflat(v) for v in vs])
    again = op.matvec(oracle.unflat(vs[0]))  # after the graph has been reused
    for v, hv in zip(vs, products, strict=True):
        torch.testing.assert_close(oracle.flat(hv), exact @ v, atol=1e-10, rtol=0)
    torch.testing.assert_close(oracle.flat(again), exact @ vs[0], atol=1e-10, rtol=0)


def test_restriction_to_a_layer_gives_its_block() -> None:
    model = small_cnn()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    i = names.index("features.1.conv.weight")
    block = oracle.block(exact, i)
    op = HessianOperator(model, [names[i]], split(inputs, targets, 8), ce)
    v = torch.randn(block.shape[0], dtype=torch.float64)
    (hv,) = op.matvec((v.reshape(op.params[0].shape),))
    torch.testing.assert_close(hv.reshape(-1), block @ v, atol=1e-10, rtol=0)


def test_ggn_equals_j_transpose_hout_j() -> None:
    model = tanh_mlp()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)

    def outputs(flat):
        params = dict(zip(names, oracle.unflat(flat), strict=True))
        return torch.func.functional_call(model, {**oracle.state, **params}, (inputs,))

    jacobian = torch.func.jacrev(outputs)(oracle.point)  # (n, K, P)
    p = outputs(oracle.point).softmax(-1)
    h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    exact = torch.einsum("nkp,nkl,nlq->pq", jacobian, h_out, jacobian) / len(targets)
    op = GGNOperator(model, names, split(inputs, targets, 9), ce)
    v = torch.randn(exact.shape[0], dtype=torch.float64)
    torch.testing.assert_close(
        oracle.flat(op.matvec(oracle.unflat(v))), exact @ v, atol=1e-10, rtol=0
    )
    assert torch.linalg.eigvalsh(exact).min() > -1e-12  # PSD, as it should be


class AlwaysDropout(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3).double()

    def forward(self, x):
        return self.linear(torch.nn.functional.dropout(x, 0.5, training=True))


def test_determinism_probe_catches_dropout_and_shuffling() -> None:
    model = AlwaysDropout()
    inputs, targets = data_for(tanh_mlp())
    with pytest.raises(MeasureError, match=r"differs between two evaluations.*dropout"):
        HessianOperator(model, ["linear.weight"], split(inputs, targets, 8), ce)
    mlp = tanh_mlp()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=8, shuffle=True)
    from genmeasures.data import EvaluationSet

    shuffled = EvaluationSet.from_loader(loader)
    first = list(shuffled.batches())
    second = list(shuffled.batches())
    with pytest.raises(MeasureError, match="shuffling"):
        from genmeasures.curvature.functional import (
            FunctionalModel,
            batch_losses,
            check_determinism,
        )

        fmodel = FunctionalModel.create(mlp, ["head.weight"], ce)
        check_determinism(batch_losses(fmodel, first), batch_losses(fmodel, second))


def test_nan_loss_is_reported() -> None:
    model = tanh_mlp()
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    inputs, targets = data_for(model)
    with pytest.raises(MeasureError, match="the loss is nan at the checkpoint"):
        HessianOperator(model, ["head.weight"], [(inputs, targets)], ce)


class NoForwardMode(torch.autograd.Function):
    """tanh with a backward but no forward-mode rule (as in some custom CUDA ops)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * (1 - y * y)


class CustomActivationNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(4, 5).double()
        self.fc2 = torch.nn.Linear(5, 3).double()

    def forward(self, x):
        return self.fc2(NoForwardMode.apply(self.fc1(x)))


def test_forward_mode_gap_falls_back_to_double_backward() -> None:
    model = CustomActivationNet()
    inputs, targets = data_for(tanh_mlp())
    names = [n for n, _ in model.named_parameters()]
    with pytest.warns(RuntimeWarning, match="forward-mode AD is not supported"):
        op = HessianOperator(model, names, [(inputs, targets)], ce, backend="func")
    assert op.backend == "autograd"
    # NoForwardMode's backward is not itself differentiable twice through y's graph,
    # but double backward still gives the Gauss-Newton-like part consistently:
    v = tuple(torch.ones_like(p) for p in op.params)
    assert all(torch.isfinite(t).all() for t in op.matvec(v))


def test_evaluation_mode_restores_each_module() -> None:
    model = small_cnn().train()
    model.features[0].bn.eval()  # a mixed state must come back exactly
    before = [m.training for m in model.modules()]
    with evaluation_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before


def test_auto_backend_probes_once_per_model_structure(monkeypatch: pytest.MonkeyPatch) -> None:
    from genmeasures.curvature import operators

    monkeypatch.setattr(operators, "_CHOSEN_BACKEND", {})
    model = small_cnn()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    first = HessianOperator(model, names, [(inputs, targets)], ce, backend="auto")
    assert len(operators._CHOSEN_BACKEND) == 1

    def no_probe(*args, **kwargs):
        raise AssertionError("the backend was probed again")

    monkeypatch.setattr(HessianOperator, "_fresh_autograd_hvp", no_probe)
    another = small_cnn()  # same class and shapes, other weights: the cached choice
    second = HessianOperator(another, names, [(inputs[:5], targets[:5])], ce, backend="auto")
    assert second.backend == first.backend
    subset = names[:2]  # other parameters selected: probed anew
    with pytest.raises(AssertionError, match="probed again"):
        HessianOperator(model, subset, [(inputs, targets)], ce, backend="auto")
