"""The affine-block probe, and the paper-exact Hessian distance's fast route it enables."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import genmeasures
from genmeasures.curvature import FunctionalModel
from genmeasures.curvature.structure import PROBE_SAMPLES, probe_blocks
from genmeasures.curvature.vectors import flatten, rademacher_like
from genmeasures.data import EvaluationSet
from genmeasures.measures import cross_entropy_per_sample
from genmeasures.measures.hessian import PILOT_PROBES
from genmeasures.models import build_model
from tests.curvature.oracle import Oracle, positive_part, tanh_mlp


class ReluCnn(nn.Module):
    """ReLU, eval-mode BatchNorm, max-pool and a residual sum: affine in every block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv1(x)))
        x = x + F.leaky_relu(self.conv2(x), 0.1)  # functional, residual
        return self.head(F.max_pool2d(x, 2).flatten(1))


class Mixed(nn.Module):
    """ReLU layers, then a smooth one: only the blocks after the last smooth operation are
    affine; ``activation`` replaces the smooth one (written functionally in forward)."""

    def __init__(self, activation) -> None:
        super().__init__()
        self.first = nn.Linear(4, 5)
        self.second = nn.Linear(5, 5)
        self.third = nn.Linear(5, 4)
        self.head = nn.Linear(4, 3)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.first(x))
        x = self.activation(self.second(x))
        x = torch.relu(self.third(x))
        return self.head(x)


def _fmodel(model: nn.Module) -> FunctionalModel:
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    return FunctionalModel.create(model, names, cross_entropy_per_sample)


def _relu_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = ReluCnn().double().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


def _routes(model: nn.Module, inputs: torch.Tensor) -> dict[str, bool]:
    targets = torch.zeros(len(inputs), dtype=torch.long)
    return {n: s.affine for n, s in probe_blocks(_fmodel(model), [(inputs, targets)]).items()}


def test_every_block_of_a_relu_cnn_with_batchnorm_and_max_pool_is_affine() -> None:
    inputs = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    assert _routes(_relu_cnn(), inputs) == {
        "conv1.weight": True,
        "conv2.weight": True,
        "head.weight": True,
    }


def test_smooth_models_have_only_their_head_affine() -> None:
    """tanh MLP and a GELU ViT with LayerNorm and attention: the outputs are affine in the
    head's weights alone (nothing smooth comes after it)."""
    mlp = _routes(tanh_mlp(), torch.randn(5, 4, dtype=torch.float64))
    assert mlp == {"layers.0.weight": False, "head.weight": True}
    torch.manual_seed(0)
    vit = build_model("vit_tiny", {"num_classes": 3}).double().eval()
    with torch.no_grad():  # torchvision's ViT starts with a zero head: outputs constant
        vit.heads.head.weight.normal_()
    routes = _routes(vit, torch.randn(3, 1, 8, 8, dtype=torch.float64))
    head = [n for n in routes if n.startswith("heads.")]
    assert [n for n, affine in routes.items() if affine] == head and len(routes) > 3


@pytest.mark.parametrize(
    "activation",
    [torch.tanh, lambda x: x * x, lambda x: x * torch.sigmoid(x), F.gelu, F.silu],
    ids=["tanh", "x*x", "x*sigmoid(x)", "gelu", "silu"],
)
def test_a_functional_smooth_activation_is_never_taken_for_affine(activation) -> None:
    torch.manual_seed(0)
    model = Mixed(activation).double().eval()
    routes = _routes(model, torch.randn(7, 4, dtype=torch.float64))
    assert routes == {
        "first.weight": False,
        "second.weight": False,
        "third.weight": True,
        "head.weight": True,
    }


def test_float32_probe_agrees() -> None:
    model = _relu_cnn().float()
    assert all(_routes(model, torch.randn(6, 1, 4, 4)).values())
    mixed = Mixed(torch.tanh).eval()
    assert not _routes(mixed, torch.randn(7, 4))["second.weight"]


def _fine_tuned(make):
    init = make()
    model = make()
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model, init


def _direct_paper_distance(model, init, inputs, targets) -> list[float]:
    """max_j v_i^T H_ii(x_j)^+ v_i from exact per-sample Hessians (torch.func.hessian)."""
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    oracle = Oracle(model, names, inputs, targets)
    state, start = init.state_dict(), model.state_dict()
    values = []
    for i, name in enumerate(names):
        v = (start[name] - state[name]).reshape(-1)
        forms = [
            float(v @ positive_part(oracle.block(oracle.sample_hessian(j), i)) @ v)
            for j in range(len(targets))
        ]
        values.append(max(forms))
    return values


@pytest.mark.parametrize("make", [_relu_cnn, lambda: Mixed(torch.tanh).double().eval()])
def test_fast_and_general_routes_give_the_paper_exact_distance(make) -> None:
    """Through the fast route on affine blocks and the quadrature on the others, the
    paper-exact hessian_distance equals the direct computation to 1e-10, and the forced
    general route agrees with it to 1e-8; the per-layer rows say which route each took."""
    torch.manual_seed(0)
    model, init = _fine_tuned(make)
    shape = (1, 4, 4) if isinstance(model, ReluCnn) else (4,)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(9, *shape, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (9,), generator=generator)
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=4)
    measures = ["hessian_distance", "hessian_distance:route=general"]
    table = genmeasures.score(model, init, data, measures, n_train=50)
    expected = _direct_paper_distance(model, init, inputs, targets)
    fast = table[(table.measure == "hessian_distance") & (table.options.str.contains("auto"))]
    general = table[(table.measure == "hessian_distance") & (table.options.str.contains("general"))]
    per_layer_fast = fast[fast.layer != ""].value.tolist()
    per_layer_general = general[general.layer != ""].value.tolist()
    assert per_layer_fast == pytest.approx(expected, abs=1e-10)
    assert per_layer_general == pytest.approx(per_layer_fast, abs=1e-8)
    total = math.fsum(math.sqrt(max(c, 0.0)) for c in expected)
    assert fast[fast.layer == ""].value.iloc[0] == pytest.approx(total, abs=1e-10)
    routes = table[
        (table.measure == "hessian_distance.affine") & table.options.str.contains("auto")
    ]
    affine = dict(zip(routes.layer, routes.value, strict=True))
    if isinstance(model, ReluCnn):
        assert set(affine.values()) == {1.0}
        # Per layer: one product per sample, plus two probe passes over the probe sample.
        cost = fast[fast.layer == ""].n_matvecs.iloc[0]
        probed = min(len(targets), PROBE_SAMPLES)
        assert cost == (len(targets) + 2 * probed) * len(expected)
    else:
        assert affine == {
            "first.weight": 0.0,
            "second.weight": 0.0,
            "third.weight": 1.0,
            "head.weight": 1.0,
        }


def _data(model, n: int = 9, batch_size: int = 4):
    shape = (1, 4, 4) if isinstance(model, ReluCnn) else (4,)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(n, *shape, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (n,), generator=generator)
    return inputs, targets, EvaluationSet.from_tensors(inputs, targets, batch_size=batch_size)


def test_auto_trace_is_exact_on_affine_layers() -> None:
    """estimator=auto on a ReLU CNN (BatchNorm in eval mode, max-pool, a residual sum): the
    trace and every per-layer trace equal torch.func.hessian's to 1e-10, with stderr 0."""
    model, init = _fine_tuned(_relu_cnn)
    inputs, targets, data = _data(model)
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    table = genmeasures.score(model, init, data, ["hessian_trace"], n_train=50)
    whole = table[(table.measure == "hessian_trace") & (table.layer == "")].iloc[0]
    assert whole.value == pytest.approx(float(exact.trace()), abs=1e-10) and whole.stderr == 0
    layers = table[(table.measure == "hessian_trace") & (table.layer != "")]
    expected = [float(oracle.block(exact, i).trace()) for i in range(len(names))]
    assert layers.value.tolist() == pytest.approx(expected, abs=1e-10)
    routes = table[table.measure == "hessian_trace.affine"]
    assert set(routes.value) == {1.0}
    # Cost in passes over the data: 3 classes + 2 probe passes per layer, no products.
    assert whole.n_matvecs == 3 + 2 * len(names)


def test_auto_trace_estimates_the_smooth_layers_and_is_exact_on_the_rest() -> None:
    model, init = _fine_tuned(lambda: Mixed(torch.tanh).double().eval())
    inputs, targets, data = _data(model, n=11)
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    oracle = Oracle(model, names, inputs, targets)
    exact = oracle.hessian()
    table = genmeasures.score(
        model, init, data, ["hessian_trace:rtol=0.02,max_matvecs=400"], n_train=50
    )
    layers = table[(table.measure == "hessian_trace") & (table.layer != "")]
    per_layer = dict(zip(layers.layer, zip(layers.value, layers.stderr, strict=True), strict=True))
    for i, name in enumerate(names):
        value, stderr = per_layer[name]
        truth = float(oracle.block(exact, i).trace())
        if name in ("third.weight", "head.weight"):
            assert value == pytest.approx(truth, abs=1e-10) and stderr == 0
        else:
            assert abs(value - truth) <= 4 * stderr and stderr > 0
    whole = table[(table.measure == "hessian_trace") & (table.layer == "")].iloc[0]
    assert abs(whole.value - float(exact.trace())) <= 4 * whole.stderr


def _interpolating_tanh_mlp():
    """A tanh MLP trained to a loss near 1e-4 on 12 samples: near interpolation."""
    torch.manual_seed(0)
    spec = {"in_features": 4, "hidden": [8, 8], "num_classes": 3, "activation": "tanh"}
    init = build_model("mlp", spec).double().eval()
    model = build_model("mlp", spec).double()
    model.load_state_dict(init.state_dict())
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(12, 4, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (12,), generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    return model.eval(), init, inputs, targets


def test_auto_trace_control_variate_is_exact_given_its_probes() -> None:
    """Near interpolation auto runs Hutchinson on H - G for the smooth layers: its value is
    exactly Tr(G_ii) (all general layers) + Tr(H_ii) (affine head) + the mean of
    g^T (H - G) g over the very probes it drew, to 1e-10 against torch.func.hessian. (A
    budget below four pilots leaves deflation out of the competition.)"""
    model, init, inputs, targets = _interpolating_tanh_mlp()
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    oracle = Oracle(model, names, inputs, targets)
    hessian, ggn = oracle.hessian(), oracle.ggn()
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=12)
    table = genmeasures.score(
        model, init, data, ["hessian_trace:rtol=0,max_matvecs=30"], n_train=50
    )
    extras = table[table.layer == ""].set_index("measure").value
    assert extras["hessian_trace.control_variate"] == 1.0
    routes = table[table.measure == "hessian_trace.affine"].set_index("layer").value
    general = [i for i, n in enumerate(names) if routes[n] == 0.0]
    assert [names[i] for i in general] == names[:-1]  # the tanh layers; the head is affine
    generator = torch.Generator().manual_seed(0)
    like = [model.state_dict()[names[i]] for i in general]
    probes = [flatten(rademacher_like(like, generator)) for _ in range(15)]  # 30 products
    index = torch.cat(
        [torch.arange(sum(oracle.sizes[:i]), sum(oracle.sizes[: i + 1])) for i in general]
    )
    residual = (hessian - ggn)[index][:, index]
    expected = float(oracle.block(hessian, len(names) - 1).trace())
    expected += sum(float(oracle.block(ggn, i).trace()) for i in general)
    expected += float(torch.stack([g @ residual @ g for g in probes]).mean())
    assert extras["hessian_trace"] == pytest.approx(expected, abs=1e-10)
    assert (
        abs(extras["hessian_trace"] - float(hessian.trace()))
        <= 4 * table[(table.measure == "hessian_trace") & (table.layer == "")].stderr.iloc[0]
    )


def test_auto_trace_deflation_is_exact_given_its_probes() -> None:
    """Where the pilot finds deflation cheapest, auto's value is exactly Tr(H_ii) of the affine
    head + Tr(Q^T H Q) (Q an orthonormal basis of H S, S the pilot's probes) + the mean of
    g'^T H g' over the deflated probes g' = (I - QQ^T) g it drew, to 1e-10."""
    model, init, inputs, targets = _interpolating_tanh_mlp()
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    oracle = Oracle(model, names, inputs, targets)
    hessian = oracle.hessian()
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=12)
    table = genmeasures.score(
        model, init, data, ["hessian_trace:rtol=0,max_matvecs=60"], n_train=50
    )
    extras = table[table.layer == ""].set_index("measure").value
    assert extras["hessian_trace.deflation"] == PILOT_PROBES
    assert extras["hessian_trace.control_variate"] == 0.0
    general = list(range(len(names) - 1))  # the tanh layers; the head is affine
    index = torch.cat(
        [torch.arange(sum(oracle.sizes[:i]), sum(oracle.sizes[: i + 1])) for i in general]
    )
    block = hessian[index][:, index]
    generator = torch.Generator().manual_seed(0)
    like = [model.state_dict()[names[i]] for i in general]
    sketch = torch.stack([flatten(rademacher_like(like, generator)) for _ in range(PILOT_PROBES)])
    q, _ = torch.linalg.qr(block @ sketch.T)
    # Products: the pilot's H S and G S, H Q, then deflated probes up to the budget of 60.
    count = 60 - 4 * PILOT_PROBES + PILOT_PROBES
    probes = [flatten(rademacher_like(like, generator)) for _ in range(count)]
    deflated = [g - q @ (q.T @ g) for g in probes]
    expected = float(oracle.block(hessian, len(names) - 1).trace())
    expected += float(torch.trace(q.T @ block @ q))
    expected += float(torch.stack([g @ block @ g for g in deflated]).mean())
    assert extras["hessian_trace"] == pytest.approx(expected, abs=1e-10)
    # Passes: K = 3 classes for the exact Gauss-Newton traces, two probe passes per layer, and
    # the 60 products of the budget (rtol=0 spends it all).
    row = table[(table.measure == "hessian_trace") & (table.layer == "")]
    assert row.n_matvecs.iloc[0] == 3 + 2 * len(names) + 60


def test_control_variate_beats_plain_hutchinson_near_interpolation() -> None:
    model, init, inputs, targets = _interpolating_tanh_mlp()
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=12)
    spec = "hessian_trace:rtol=0,max_matvecs=100"
    auto = genmeasures.score(model, init, data, [spec], n_train=50)
    plain = genmeasures.score(model, init, data, [f"{spec},estimator=hutchinson"], n_train=50)

    def stderr(table):
        return table[(table.measure == "hessian_trace") & (table.layer == "")].stderr.iloc[0]

    # Same budget of products (the control variate spends two per probe): smaller error.
    assert stderr(auto) < 0.5 * stderr(plain)


class TanhWithoutJvp(torch.autograd.Function):
    """tanh with a backward and vmap support but no forward-mode rule (as some custom ops)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * (1 - y * y)


class WithoutJvp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 5).double()
        self.fc2 = nn.Linear(5, 3).double()

    def forward(self, x):
        return self.fc2(TanhWithoutJvp.apply(self.fc1(x)))


@pytest.mark.parametrize("functorch", [True, False])
def test_a_model_without_forward_mode_falls_back_per_block_and_says_so(functorch) -> None:
    """An operation without a forward-mode rule: the blocks before it take the general route
    and the head after it stays exact; with an operation torch.func cannot run at all every
    block is general. Each reason is given in one warning per measure (Python's default
    filter shows a repeated warning once)."""
    import warnings

    from tests.curvature.oracle import data_for
    from tests.curvature.test_operators import CustomActivationNet

    make = WithoutJvp if functorch else CustomActivationNet
    model, init = make(), make()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    inputs, targets = data_for(tanh_mlp())
    data = EvaluationSet.from_tensors(inputs, targets, batch_size=23)
    expected = {"fc1.weight": 0.0, "fc2.weight": 1.0 if functorch else 0.0}
    for measure in ("hessian_trace", "hessian_distance"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            table = genmeasures.score(model, init, data, [f"{measure}"], n_train=50)
        messages = [
            str(w.message) for w in caught if "not supported by this model" in str(w.message)
        ]
        assert messages and len(messages) == len(set(messages)) <= 2, messages
        routes = table[table.measure == f"{measure}.affine"].set_index("layer").value
        assert routes.to_dict() == expected
        whole = table[(table.measure == measure) & (table.layer == "")].value.iloc[0]
        assert math.isfinite(whole)
    if functorch:  # the head's trace is exact: compare with the double-backward Hessian
        oracle_table = genmeasures.score(
            model, init, data, ["hessian_trace:estimator=exact,products=autograd"], n_train=50
        )
        exact = oracle_table[
            (oracle_table.layer == "fc2.weight") & (oracle_table.measure == "hessian_trace")
        ].value.iloc[0]
        auto = genmeasures.score(model, init, data, ["hessian_trace"], n_train=50)
        head = auto[(auto.layer == "fc2.weight") & (auto.measure == "hessian_trace")]
        assert head.value.iloc[0] == pytest.approx(exact, abs=1e-10)
        assert head.stderr.iloc[0] == 0


def squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A convex loss other than cross-entropy: ||f - onehot(y)||^2 (Lambda = 2 I)."""
    onehot = nn.functional.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
    return ((outputs - onehot) ** 2).sum(dim=1)


def wavy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Not convex in the outputs: cross-entropy plus sin(3 f) summed (Lambda indefinite)."""
    return cross_entropy_per_sample(outputs, targets) + torch.sin(3 * outputs).sum(dim=1)


@pytest.mark.parametrize("loss", [squared_error, wavy])
def test_losses_other_than_cross_entropy(loss) -> None:
    """The exact route factors any loss's Lambda: on a ReLU CNN (all blocks affine) the auto
    trace equals torch.func.hessian's for that loss to 1e-10, convex or not. The paper-exact
    distance takes the Gauss-Newton form only for a convex loss and still equals the
    quadrature's value; a non-convex loss sends every layer to the general route."""
    model, init = _fine_tuned(_relu_cnn)
    inputs, targets, data = _data(model)
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    exact = Oracle(model, names, inputs, targets, loss=loss).hessian()
    table = genmeasures.score(
        model, init, data, ["hessian_trace", "hessian_distance"], loss=loss, n_train=50
    )
    trace = table[(table.measure == "hessian_trace") & (table.layer == "")].iloc[0]
    assert trace.value == pytest.approx(float(exact.trace()), abs=1e-10) and trace.stderr == 0
    routes = table[table.measure == "hessian_distance.affine"].value
    assert set(routes) == ({1.0} if loss is squared_error else {0.0})
    general = genmeasures.score(
        model, init, data, ["hessian_distance:route=general"], loss=loss, n_train=50
    )
    value = table[(table.measure == "hessian_distance") & (table.layer == "")].value.iloc[0]
    reference = general[(general.measure == "hessian_distance") & (general.layer == "")]
    assert value == pytest.approx(reference.value.iloc[0], rel=1e-8)


def test_auto_trace_of_a_newly_registered_curvature_has_no_exact_route() -> None:
    """A curvature registered by a plugin (here 2 H) is selectable by name, and auto must
    estimate its own trace: the exact Gauss-Newton route answers only for H and G."""
    from genmeasures.curvature import CURVATURES, HessianOperator, register_curvature

    @register_curvature("doubled_hessian")
    class DoubledHessian(HessianOperator):
        def _batch_matmat(self, inputs, targets, vectors):
            products = super()._batch_matmat(inputs, targets, vectors)
            return [tuple(2 * t for t in product) for product in products]

    try:
        model, init, inputs, targets = _interpolating_tanh_mlp()
        names = [n for n, p in model.named_parameters() if p.ndim >= 2]
        oracle = Oracle(model, names, inputs, targets)
        truth = 2 * float(oracle.hessian().trace())
        data = EvaluationSet.from_tensors(inputs, targets, batch_size=12)
        spec = "hessian_trace:curvature=Doubled_Hessian,max_matvecs=400,rtol=0.01"
        table = genmeasures.score(model, init, data, [spec], n_train=50)
        row = table[(table.measure == "hessian_trace") & (table.layer == "")].iloc[0]
        extras = table[table.layer == ""].set_index("measure").value
        assert extras["hessian_trace.exact_route"] == 0.0
        assert abs(row.value - truth) <= 4 * row.stderr
        assert abs(row.value - float(oracle.ggn().trace())) > 4 * row.stderr
    finally:
        CURVATURES.remove("doubled_hessian")
