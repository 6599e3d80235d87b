"""nso, wp, rwp, sam, asam, label_smoothing and mixup, and frozen_norm_statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genmeasures.errors import OptionError
from genmeasures.finetune.algorithm import Algorithm, TrainState, build_options
from genmeasures.finetune.algorithms._norm_stats import frozen_norm_statistics
from genmeasures.finetune.algorithms.perturbation import NSO, RWP, WP, isotropic_noise
from genmeasures.finetune.algorithms.sam import ASAM, SAM
from genmeasures.finetune.algorithms.smoothing import LabelSmoothing, MixedTargets, Mixup, mix
from genmeasures.finetune.config import config_from_mapping

SEED = 1234
DTYPE = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: intra-op threads only add contention (10-50x slower on a busy
    machine), so run single-threaded and restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- helpers --------------------------------------------------------------------------------


class Quadratic(nn.Module):
    """f(W) = 1/2 W^T A W + b^T W (+ 1/4 sum W^4 when ``quartic``) over two parameter
    tensors, flattened and concatenated; every forward records the weights it saw."""

    def __init__(self, quartic: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.p1 = nn.Parameter(torch.randn(3, generator=g, dtype=DTYPE))
        self.p2 = nn.Parameter(torch.randn(2, 2, generator=g, dtype=DTYPE))
        m = torch.randn(7, 7, generator=g, dtype=DTYPE)
        self.A = m @ m.T + torch.eye(7, dtype=DTYPE)
        self.b = torch.randn(7, generator=g, dtype=DTYPE)
        self.quartic = quartic
        self.seen: list[torch.Tensor] = []

    def flat(self) -> torch.Tensor:
        return torch.cat([self.p1.reshape(-1), self.p2.reshape(-1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.flat()
        self.seen.append(w.detach().clone())
        value = 0.5 * w @ self.A @ w + self.b @ w
        if self.quartic:
            value = value + 0.25 * (w**4).sum()
        return value

    def grad_at(self, w: torch.Tensor) -> torch.Tensor:
        g = self.A @ w + self.b
        return g + w**3 if self.quartic else g


def make_state(model: nn.Module, seed: int = SEED) -> TrainState:
    return TrainState(
        model=model,
        init={},
        labels=torch.zeros(0, dtype=torch.long),
        clean_labels=torch.zeros(0, dtype=torch.long),
        num_classes=2,
        device=torch.device("cpu"),
        head_prefix="head",
        stage_of=lambda name: 0,
        generator=torch.Generator().manual_seed(seed),
    )


def make(cls: type[Algorithm], model: nn.Module, seed: int = SEED, **options) -> Algorithm:
    algorithm = cls(build_options(cls, options), make_state(model, seed))
    if isinstance(model, Quadratic):
        algorithm.batch_loss = lambda outputs, targets, indices: outputs  # the model is f
    return algorithm


def step(algorithm: Algorithm, inputs=None, targets=None) -> torch.Tensor:
    """zero_grad + compute_gradient, as the trainer does; returns the loss."""
    model = algorithm.state.model
    model.zero_grad(set_to_none=True)
    if inputs is None:
        inputs, targets = torch.zeros(1), torch.zeros(1, dtype=torch.long)
    return algorithm.compute_gradient(inputs, targets, torch.arange(len(targets)))


def flat_grad(model: Quadratic) -> torch.Tensor:
    return torch.cat([model.p1.grad.reshape(-1), model.p2.grad.reshape(-1)])


def replay_isotropic(model: Quadratic, k: int, sigma: float, seed: int = SEED) -> list:
    g = torch.Generator().manual_seed(seed)
    draws = []
    size = model.p1.numel() + model.p2.numel()
    for _ in range(k):  # one flat N(0, sigma^2) vector over p1 then p2 per perturbation
        draws.append(torch.empty(size, dtype=DTYPE).normal_(0.0, sigma, generator=g))
    return draws


def params_copy(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def assert_bitwise_restored(model: nn.Module, before: list[torch.Tensor]) -> None:
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), q)


class Counting(nn.Module):
    """Counts forward passes of the wrapped model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def batch(seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g) * 2 + 1, torch.randint(0, 3, (n,), generator=g)


def buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers()}


# --- nso / wp -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
def test_nso_two_sided_gradient_is_the_formula_and_the_closed_form(k):
    model = Quadratic()
    w = model.flat().detach().clone()
    before = params_copy(model)
    nso = make(NSO, model, sigma=0.3, k=k, lam=0.0, two_sided=True)
    step(nso)
    draws = replay_isotropic(model, k, 0.3)
    formula = sum(model.grad_at(w + u) + model.grad_at(w - u) for u in draws) / (2 * k)
    closed = model.A @ w + model.b  # the U terms cancel for a quadratic
    assert torch.allclose(flat_grad(model), formula, atol=1e-10, rtol=0)
    assert torch.allclose(flat_grad(model), closed, atol=1e-10, rtol=0)
    assert_bitwise_restored(model, before)
    # the passes saw W + U_1, W - U_1, W + U_2, ...
    assert len(model.seen) == 2 * k
    for j, u in enumerate(draws):
        assert torch.allclose(model.seen[2 * j], w + u, atol=1e-12)
        assert torch.allclose(model.seen[2 * j + 1], w - u, atol=1e-12)


def test_nso_two_sided_formula_where_the_noise_does_not_cancel():
    model = Quadratic(quartic=True)
    w = model.flat().detach().clone()
    step(make(NSO, model, sigma=0.5, k=2))
    draws = replay_isotropic(model, 2, 0.5)
    formula = sum(model.grad_at(w + u) + model.grad_at(w - u) for u in draws) / 4
    assert torch.allclose(flat_grad(model), formula, atol=1e-10, rtol=0)
    assert not torch.allclose(flat_grad(model), model.grad_at(w), atol=1e-3)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_nso_one_sided_gradient_and_clean_mixing(lam):
    k, sigma = 2, 0.2
    model = Quadratic()
    w = model.flat().detach().clone()
    before = params_copy(model)
    loss = step(make(NSO, model, sigma=sigma, k=k, lam=lam, two_sided=False))
    draws = replay_isotropic(model, k, sigma)
    clean = model.A @ w + model.b
    formula = lam * clean + (1 - lam) / k * sum(model.grad_at(w + u) for u in draws)
    closed = clean + (1 - lam) / k * model.A @ sum(draws)
    assert torch.allclose(flat_grad(model), formula, atol=1e-10, rtol=0)
    assert torch.allclose(flat_grad(model), closed, atol=1e-10, rtol=0)
    assert_bitwise_restored(model, before)
    f = lambda v: 0.5 * v @ model.A @ v + model.b @ v  # noqa: E731
    if lam > 0:  # the logged loss is the one at W
        assert len(model.seen) == 1 + k
        assert torch.equal(model.seen[0], w)
        assert torch.allclose(loss, f(w))
    else:  # else the mean of the perturbed losses
        assert torch.allclose(loss, sum(f(w + u) for u in draws) / k)


def test_nso_lam_mixes_in_the_clean_gradient_two_sided_on_a_non_quadratic():
    model = Quadratic(quartic=True)
    w = model.flat().detach().clone()
    step(make(NSO, model, sigma=0.5, k=1, lam=0.25))
    (u,) = replay_isotropic(model, 1, 0.5)
    formula = 0.25 * model.grad_at(w) + 0.75 / 2 * (model.grad_at(w + u) + model.grad_at(w - u))
    assert torch.allclose(flat_grad(model), formula, atol=1e-10, rtol=0)


def test_wp_is_one_sided_nso_with_one_perturbation():
    model = Quadratic()
    w = model.flat().detach().clone()
    before = params_copy(model)
    wp = make(WP, model, sigma=0.1)
    assert wp.passes_per_step() == 1
    step(wp)
    (u,) = replay_isotropic(model, 1, 0.1)
    assert torch.allclose(flat_grad(model), model.grad_at(w + u), atol=1e-10, rtol=0)
    assert_bitwise_restored(model, before)


def test_noise_is_deterministic_given_the_generator_seed():
    grads = []
    for seed in (5, 5, 6):
        model = Quadratic()
        step(make(WP, model, seed=seed))
        grads.append(flat_grad(model))
    assert torch.equal(grads[0], grads[1])
    assert not torch.equal(grads[0], grads[2])


def test_isotropic_noise_is_one_flat_draw_split_into_views():
    params = [nn.Parameter(torch.zeros(3, 4)), nn.Parameter(torch.zeros(5))]
    noise = isotropic_noise(params, 0.5, torch.Generator().manual_seed(3))
    expected = torch.empty(17).normal_(0.0, 0.5, generator=torch.Generator().manual_seed(3))
    assert [u.shape for u in noise] == [(3, 4), (5,)]
    assert torch.equal(torch.cat([u.reshape(-1) for u in noise]), expected)
    # Mixed dtypes: one draw per tensor, each in its parameter's dtype.
    mixed = [nn.Parameter(torch.zeros(2, dtype=torch.float64)), nn.Parameter(torch.zeros(3))]
    noise = isotropic_noise(mixed, 2.0, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    first = torch.randn(2, generator=g, dtype=torch.float64) * 2.0
    second = torch.randn(3, generator=g) * 2.0
    assert [u.dtype for u in noise] == [torch.float64, torch.float32]
    assert torch.equal(noise[0], first) and torch.equal(noise[1], second)


def test_gradients_kept_in_grad_survive_a_pass_that_raises():
    from genmeasures.finetune.algorithms.perturbation import loss_and_gradients

    model = Quadratic()
    algorithm = make(WP, model)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.full_like(p, 7.0)

    def failing(*args):
        raise RuntimeError("the forward pass failed")

    algorithm.loss_at_current_weights = failing
    with pytest.raises(RuntimeError, match="forward pass failed"):
        loss_and_gradients(algorithm, torch.zeros(1), torch.zeros(1), torch.arange(1), params)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in params)


# --- rwp ------------------------------------------------------------------------------------


def test_rwp_noise_is_filterwise_scaled():
    layer = nn.Module()
    weight = torch.ones(4, 3, 2, 2) * torch.tensor([0.5, 1.0, 2.0, 4.0]).view(4, 1, 1, 1)
    weight[1, 0, 0, 0] = 3.0  # rows differ in shape too, not only in scale
    layer.weight = nn.Parameter(weight)
    layer.bias = nn.Parameter(torch.tensor([3.0, -4.0]))  # ||bias|| = 5
    rwp = make(RWP, layer, sigma=0.1)
    params = [layer.weight, layer.bias]
    draws = [rwp.draw_noise(params) for _ in range(3000)]
    w_noise = torch.stack([d[0] for d in draws])  # (draws, 4, 3, 2, 2)
    b_noise = torch.stack([d[1] for d in draws])
    row_norms = weight.reshape(4, -1).norm(dim=1)
    for i in range(4):
        samples = w_noise[:, i].reshape(-1)
        assert abs(float(samples.mean())) < 0.05 * 0.1 * float(row_norms[i])
        ratio = float(samples.std()) / (0.1 * float(row_norms[i]))
        assert ratio == pytest.approx(1.0, abs=0.02)
    # within a row every element has the same std (not scaled by its own magnitude)
    element_std = w_noise[:, 1].reshape(3000, -1).std(dim=0)
    assert torch.allclose(element_std, element_std.mean().expand(12), rtol=0.08)
    # 1-D parameters: one std sigma * ||p|| for the whole vector
    assert float(b_noise.std()) / (0.1 * 5.0) == pytest.approx(1.0, abs=0.03)


def test_rwp_mixes_clean_and_perturbed_gradients():
    sigma, alpha = 0.2, 0.3
    model = Quadratic()
    w = model.flat().detach().clone()
    before = params_copy(model)
    rwp = make(RWP, model, sigma=sigma, alpha=alpha)
    assert rwp.passes_per_step() == 2
    loss = step(rwp)
    g = torch.Generator().manual_seed(SEED)
    u1 = torch.randn(3, generator=g, dtype=DTYPE) * sigma * model.p1.detach().norm()
    rows = model.p2.detach().norm(dim=1, keepdim=True)
    u2 = torch.randn(2, 2, generator=g, dtype=DTYPE) * sigma * rows
    u = torch.cat([u1, u2.reshape(-1)])
    expected = alpha * model.grad_at(w) + (1 - alpha) * model.grad_at(w + u)
    assert torch.allclose(flat_grad(model), expected, atol=1e-10, rtol=0)
    assert torch.equal(model.seen[0], w)
    assert torch.allclose(model.seen[1], w + u, atol=1e-12)
    assert torch.allclose(loss, 0.5 * w @ model.A @ w + model.b @ w)
    assert_bitwise_restored(model, before)


# --- sam / asam -----------------------------------------------------------------------------


def test_sam_ascent_has_norm_rho_along_the_gradient():
    rho = 0.05
    model = Quadratic()
    w = model.flat().detach().clone()
    before = params_copy(model)
    sam = make(SAM, model, rho=rho)
    loss = step(sam)
    assert len(model.seen) == 2
    assert torch.equal(model.seen[0], w)
    e = model.seen[1] - w
    g = model.grad_at(w)
    assert float(e.norm()) == pytest.approx(rho, abs=1e-6)
    assert torch.allclose(e, rho * g / g.norm(), atol=1e-10)
    assert torch.allclose(flat_grad(model), model.grad_at(w + e), atol=1e-10, rtol=0)
    assert torch.allclose(loss, 0.5 * w @ model.A @ w + model.b @ w)  # the loss at W
    assert_bitwise_restored(model, before)


def test_asam_ascent_formula_on_a_hand_case():
    rho, eta = 0.5, 0.01
    model = Quadratic()
    with torch.no_grad():
        model.p1.copy_(torch.tensor([1.0, -2.0, 0.0]))
        model.p2.copy_(torch.tensor([[0.5, 3.0], [-1.0, 0.25]]))
    w = model.flat().detach().clone()
    before = params_copy(model)
    step(make(ASAM, model, rho=rho, eta=eta))
    g = model.grad_at(w)
    t = w.abs() + eta
    expected = rho * t**2 * g / (t * g).norm()
    e = model.seen[1] - w
    assert torch.allclose(e, expected, atol=1e-10, rtol=0)
    assert float((e / t).norm()) == pytest.approx(rho, abs=1e-9)  # ||T^-1 e|| = rho
    assert torch.allclose(flat_grad(model), model.grad_at(w + e), atol=1e-10, rtol=0)
    assert_bitwise_restored(model, before)


# --- which passes update the normalization statistics ---------------------------------------


def test_frozen_norm_statistics():
    model = bn_net().train()
    x, _ = batch()
    start = buffers(model)
    with frozen_norm_statistics(model):
        model(x)
        model(x * 3)
    after = buffers(model)
    assert all(torch.equal(start[n], after[n]) for n in start)
    model(x)
    changed = buffers(model)
    assert not torch.equal(changed["1.running_mean"], start["1.running_mean"])
    assert int(changed["1.num_batches_tracked"]) == 1
    with pytest.raises(RuntimeError), frozen_norm_statistics(model):  # restored on errors too
        model(x * 5)
        raise RuntimeError("boom")
    assert all(torch.equal(changed[n], b) for n, b in buffers(model).items())


@pytest.mark.parametrize(
    ("cls", "options", "clean_pass"),
    [
        (SAM, {}, True),
        (ASAM, {}, True),
        (NSO, {"k": 2, "lam": 0.5}, True),
        (RWP, {}, True),
        (NSO, {"k": 2, "sigma": 0.5}, False),
        (WP, {"sigma": 0.5}, False),
    ],
)
def test_one_pass_per_step_updates_norm_statistics(cls, options, clean_pass):
    x, y = batch()
    reference = bn_net()
    reference(x)  # one plain pass at W
    model = bn_net()
    algorithm = make(cls, model, **options)
    step(algorithm, x, y)
    stats = buffers(model)
    assert int(stats["1.num_batches_tracked"]) == 1
    same = torch.allclose(stats["1.running_mean"], reference.get_buffer("1.running_mean"))
    # the pass at W when there is one; else the first perturbed pass (W + U_1)
    assert same == clean_pass


# --- pass counts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "options", "passes"),
    [
        (Algorithm, {}, 1),
        (NSO, {"k": 2}, 4),
        (NSO, {"k": 2, "lam": 0.5}, 5),
        (NSO, {"k": 3, "two_sided": False}, 3),
        (NSO, {"k": 2, "lam": 1.0}, 1),
        (WP, {}, 1),
        (RWP, {}, 2),
        (RWP, {"alpha": 0.0}, 1),
        (SAM, {}, 2),
        (ASAM, {}, 2),
        (LabelSmoothing, {}, 1),
        (Mixup, {}, 1),
    ],
)
def test_forward_passes_per_step(cls, options, passes):
    model = Counting(bn_net())
    algorithm = make(cls, model, **options)
    x, y = batch()
    inputs, prepared = algorithm.prepare_batch(x, y)
    loss = algorithm.compute_gradient(inputs, prepared, torch.arange(len(y)))
    assert model.calls == passes
    assert algorithm.passes_per_step() == passes
    assert loss.dim() == 0 and not loss.requires_grad and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


# --- label smoothing and mixup -----------------------------------------------------------


def test_label_smoothing_is_torchs():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(10, 4, generator=g), torch.randint(0, 4, (10,), generator=g)
    for smoothing in (0.1, 0.25):
        algorithm = make(LabelSmoothing, nn.Identity(), smoothing=smoothing)
        expected = nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
        assert torch.allclose(algorithm.batch_loss(logits, labels, torch.arange(10)), expected)
    default = make(LabelSmoothing, nn.Identity())
    assert default.options.smoothing == 0.1


def test_mixup_on_a_hand_batch():
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    y = torch.tensor([0, 1, 2, 1])
    lam, perm = 0.3, torch.tensor([2, 0, 3, 1])
    mixed, targets = mix(x, y, lam, perm)
    expected = torch.stack([lam * x[i] + (1 - lam) * x[perm[i]] for i in range(4)])
    assert torch.allclose(mixed, expected)
    assert targets.partners.tolist() == [2, 0, 1, 1]
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    logp = logits.log_softmax(dim=1)
    ce_y = -logp[torch.arange(4), y].mean()
    ce_perm = -logp[torch.arange(4), y[perm]].mean()
    algorithm = make(Mixup, nn.Identity())
    loss = algorithm.batch_loss(logits, targets, torch.arange(4))
    assert torch.allclose(loss, lam * ce_y + (1 - lam) * ce_perm)


def test_mixup_draws_replay_from_the_generator_seed():
    x, y = batch(n=8)
    results = []
    for seed in (3, 3, 4):
        algorithm = make(Mixup, nn.Identity(), seed=seed, alpha=0.4)
        results.append([algorithm.prepare_batch(x, y) for _ in range(3)])
    for (xa, ta), (xb, tb) in zip(results[0], results[1], strict=True):
        assert torch.equal(xa, xb) and torch.equal(ta.partners, tb.partners)
        assert ta.lam == tb.lam
    assert [t.lam for _, t in results[0]] != [t.lam for _, t in results[2]]
    # the documented recipe: permutation, then a seed for numpy's Beta sampler
    g = torch.Generator().manual_seed(3)
    perm = torch.randperm(8, generator=g)
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    lam = float(np.random.default_rng(seed).beta(0.4, 0.4))
    first_x, first_t = results[0][0]
    assert isinstance(first_t, MixedTargets) and 0 < first_t.lam < 1
    assert first_t.lam == lam
    assert torch.equal(first_t.partners, y[perm])
    assert torch.allclose(first_x, lam * x + (1 - lam) * x[perm])


# --- end to end ---------------------------------------------------------------------------


def digits_config(algorithm: dict):
    return config_from_mapping(
        {
            "model": {"name": "cnn", "kwargs": {"width": 8}},
            "data": {
                "train": "digits-target:split=train,n_per_class=20",
                "test": "digits-target:split=test",
            },
            "train": {"epochs": 2, "batch_size": 16},
            "algorithm": algorithm,
        }
    )


# The end-to-end runs of every algorithm (a step, resume equality, scoring) are the contracts
# in tests/contracts/test_algorithms.py.


# --- options ------------------------------------------------------------------------------


def test_defaults():
    config = digits_config({"name": "nso"})
    assert config.algorithm == {
        "name": "nso",
        "sigma": 0.01,
        "k": 1,
        "lam": 0.0,
        "two_sided": True,
    }
    assert digits_config({"name": "sam"}).algorithm["rho"] == 0.05
    assert digits_config({"name": "asam"}).algorithm == {"name": "asam", "rho": 0.5, "eta": 0.01}
    assert digits_config({"name": "rwp"}).algorithm == {"name": "rwp", "sigma": 0.01, "alpha": 0.5}
    assert digits_config({"name": "wp"}).algorithm == {"name": "wp", "sigma": 0.01}
    assert digits_config({"name": "mixup"}).algorithm["alpha"] == 0.2
    assert digits_config({"name": "label_smoothing"}).algorithm["smoothing"] == 0.1


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("nso", "sigma", 0.0),
        ("nso", "sigma", -0.1),
        ("nso", "k", 0),
        ("nso", "lam", 1.5),
        ("nso", "lam", -0.1),
        ("nso", "k", 1.5),
        ("nso", "two_sided", "yes"),
        ("wp", "sigma", 0.0),
        ("wp", "k", 2),
        ("rwp", "sigma", -1.0),
        ("rwp", "alpha", 2.0),
        ("sam", "rho", 0.0),
        ("sam", "eta", 0.1),
        ("asam", "rho", -0.5),
        ("asam", "eta", -0.01),
        ("label_smoothing", "smoothing", 1.0),
        ("label_smoothing", "smoothing", -0.1),
        ("mixup", "alpha", 0.0),
    ],
)
def test_bad_options_name_the_key(name, key, value):
    with pytest.raises(OptionError, match=rf"algorithm\.{key}\b"):
        digits_config({"name": name, key: value})
