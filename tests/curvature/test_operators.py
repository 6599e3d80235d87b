"""Hessian and Gauss-Newton vector products against exact matrices; checks; product methods."""

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
@pytest.mark.parametrize("products", ["func", "autograd", "linearize", "auto"])
def test_hvp_equals_exact_hessian_with_short_last_batch(model_name: str, products: str) -> None:
    model = MODELS[model_name]()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    op = HessianOperator(model, names, split(inputs, targets, 10), ce, products=products)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(exact.shape[0], generator=generator, dtype=torch.float64)
        hv = oracle.flat(op.matvec(oracle.unflat(v)))
        torch.testing.assert_close(hv, exact @ v, atol=1e-10, rtol=0)
    assert op.n_matvecs == 3
    assert op.products == ("autograd" if products == "auto" else products)


@pytest.mark.parametrize("products", ["autograd", "linearize"])
def test_single_batch_state_is_reused_and_matmat_matches(products: str) -> None:
    model = tanh_mlp()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    op = HessianOperator(model, names, [(inputs, targets)], ce, products=products)
    vs = [torch.randn(exact.shape[0], dtype=torch.float64) for _ in range(4)]
    results = op.matmat([oracle.unflat(v) for v in vs])
    kept = op.method._graph if products == "autograd" else op.method._linear
    assert kept is not None  # the single batch's state, kept for later products
    again = op.matvec(oracle.unflat(vs[0]))  # after the graph has been reused
    for v, hv in zip(vs, results, strict=True):
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

    jacobian = torch.func.jacrev(oracle.outputs)(oracle.point)  # (n, K, P)
    p = oracle.outputs(oracle.point).softmax(-1)
    h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    exact = torch.einsum("nkp,nkl,nlq->pq", jacobian, h_out, jacobian) / len(targets)
    torch.testing.assert_close(oracle.ggn(), exact, atol=1e-12, rtol=0)
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


@pytest.mark.parametrize("products", ["func", "linearize"])
def test_forward_mode_gap_falls_back_to_double_backward_once(products: str) -> None:
    model = CustomActivationNet()
    inputs, targets = data_for(tanh_mlp())
    names = [n for n, _ in model.named_parameters()]
    op = HessianOperator(model, names, split(inputs, targets, 10), ce, products=products)
    v = tuple(torch.ones_like(p) for p in op.params)
    with pytest.warns(RuntimeWarning, match="forward-mode AD is not supported") as caught:
        first = op.matvec(v)
        second = op.matvec(v)
    assert len([w for w in caught if "forward-mode" in str(w.message)]) == 1
    assert op.products == "autograd"
    reference = HessianOperator(model, names, split(inputs, targets, 10), ce, products="autograd")
    for a, b, c in zip(first, second, reference.matvec(v), strict=True):
        torch.testing.assert_close(a, c, atol=1e-12, rtol=0)
        torch.testing.assert_close(b, c, atol=1e-12, rtol=0)


def test_every_registered_curvature_and_product_method_is_exact() -> None:
    """The registries' contract: each entry gives its matrix's products exactly."""
    from genmeasures.curvature import CURVATURES, make_operator
    from genmeasures.curvature.products import PRODUCT_METHODS

    model = small_cnn()
    inputs, targets = data_for(model)
    names = [n for n, _ in model.named_parameters()]
    oracle = Oracle(model, names, inputs, targets)
    exact = {"hessian": oracle.hessian(), "ggn": oracle.ggn()}
    assert set(CURVATURES.names()) == set(exact)
    v = torch.randn(
        exact["hessian"].shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    for curvature in CURVATURES.names():
        for products in PRODUCT_METHODS.names():
            op = make_operator(
                curvature, model, names, split(inputs, targets, 7), ce, products=products
            )
            hv = oracle.flat(op.matvec(oracle.unflat(v)))
            torch.testing.assert_close(hv, exact[curvature] @ v, atol=1e-10, rtol=0)


def test_evaluation_mode_restores_each_module() -> None:
    model = small_cnn().train()
    model.features[0].bn.eval()  # a mixed state must come back exactly
    before = [m.training for m in model.modules()]
    with evaluation_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
