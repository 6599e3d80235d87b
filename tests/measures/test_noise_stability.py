"""noise_stability against a brute-force Monte Carlo oracle and the small-sigma Hessian limit."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import genmeasures
from genmeasures.data import EvaluationSet
from genmeasures.errors import MeasureError, OptionError
from genmeasures.measures import MeasureContext
from genmeasures.measures.noise_stability import noise_stability
from genmeasures.models import build_model

MLP_LAYERS = ["layers.0.weight", "head.weight"]


def tiny_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = {"in_features": 4, "hidden": [5], "num_classes": 3, "activation": "tanh"}
    return build_model("mlp", spec).double()


def tiny_data(n: int = 23, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=generator)
    return x, y


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors gain nothing from threads, and intra-op threads on a loaded machine make
    every small op wait (milliseconds each); restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_ctx(
    model: torch.nn.Module, x, y, seed: int = 0, batch_size: int = 7, **kwargs
) -> MeasureContext:
    return MeasureContext(
        weights={k: v.detach() for k, v in model.state_dict().items()},
        model_factory=lambda: model,
        data=EvaluationSet.from_tensors(x, y, batch_size=batch_size),  # 23 = 7 + 7 + 7 + 2
        seed=seed,
        **kwargs,
    )


def loop_loss(model: torch.nn.Module, x, y, replace: dict[str, torch.Tensor]) -> float:
    """L_S with some parameters replaced: a plain loop over samples on a copy of the model."""
    clone = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, tensor in replace.items():
            clone.get_parameter(name).copy_(tensor)
        total = 0.0
        for j in range(len(x)):
            out = clone(x[j : j + 1])
            total += float(torch.nn.functional.cross_entropy(out, y[j : j + 1]))
    return total / len(x)


def oracle(model, x, y, names, sigma, draws, seed, sided="one", scale="absolute", only=None):
    """Brute-force Monte Carlo: the documented draw order, noise on ``only`` (default: all)."""
    params = dict(model.named_parameters())
    weights = {n: params[n].detach().clone() for n in names}
    sigmas = {}
    for n in names:
        w = weights[n].numpy()
        sigmas[n] = sigma if scale == "absolute" else sigma * np.linalg.norm(w) / math.sqrt(w.size)
    generator = torch.Generator().manual_seed(seed)
    base = loop_loss(model, x, y, {})
    diffs = []
    for _ in range(draws):
        noise = {
            n: sigmas[n] * torch.randn(weights[n].shape, generator=generator, dtype=torch.float64)
            for n in names
        }
        noisy = [n for n in names if only is None or n == only]
        plus = loop_loss(model, x, y, {n: weights[n] + noise[n] for n in noisy})
        if sided == "one":
            diffs.append(plus - base)
        else:
            minus = loop_loss(model, x, y, {n: weights[n] - noise[n] for n in noisy})
            diffs.append((plus + minus) / 2 - base)
    diffs = np.array(diffs)
    stderr = diffs.std(ddof=1) / math.sqrt(draws) if draws > 1 else math.nan
    return diffs.mean(), stderr, base


@pytest.mark.parametrize(
    ("sided", "scale", "sigma"),
    [
        ("one", "absolute", 0.05),
        ("two", "absolute", 0.05),
        ("one", "relative", 0.3),
        ("two", "relative", 0.3),
    ],
)
def test_matches_brute_force_oracle(sided: str, scale: str, sigma: float) -> None:
    model = tiny_mlp()
    x, y = tiny_data()
    result = noise_stability(
        make_ctx(model, x, y, seed=5), sigma=sigma, draws=6, sided=sided, scale=scale
    )
    value, stderr, base = oracle(model, x, y, MLP_LAYERS, sigma, 6, 5, sided, scale)
    assert result.value == pytest.approx(value, abs=1e-10, rel=1e-10)
    assert result.stderr == pytest.approx(stderr, abs=1e-10, rel=1e-10)
    assert result.extras["base_loss"] == pytest.approx(base, abs=1e-12, rel=1e-12)
    sides = 1 if sided == "one" else 2
    assert result.extras["forward_passes"] == 1 + 6 * sides
    assert result.n_matvecs == 0 and result.seed == 5 and result.n_samples == 23
    assert result.layers == ()


def test_layer_glob_and_single_draw() -> None:
    model = tiny_mlp(1)
    x, y = tiny_data(seed=2)
    ctx = make_ctx(model, x, y, seed=3)
    result = noise_stability(ctx, sigma=0.1, draws=1, layers=["*.bias"])
    value, _, _ = oracle(model, x, y, ["layers.0.bias", "head.bias"], 0.1, 1, 3)
    assert result.value == pytest.approx(value, abs=1e-10, rel=1e-10)
    assert math.isnan(result.stderr)


def test_per_layer_rows_use_the_same_draws() -> None:
    model = tiny_mlp(2)
    x, y = tiny_data(seed=3)
    result = noise_stability(
        make_ctx(model, x, y, seed=7), sigma=0.2, draws=4, sided="two", per_layer=True
    )
    assert [row.layer for row in result.layers] == MLP_LAYERS
    for row in result.layers:
        value, stderr, _ = oracle(model, x, y, MLP_LAYERS, 0.2, 4, 7, "two", only=row.layer)
        assert row.value == pytest.approx(value, abs=1e-10, rel=1e-10)
        assert row.stderr == pytest.approx(stderr, abs=1e-10, rel=1e-10)
        assert row.extras["sigma"] == 0.2
    whole, _, _ = oracle(model, x, y, MLP_LAYERS, 0.2, 4, 7, "two")
    assert result.value == pytest.approx(whole, abs=1e-10, rel=1e-10)
    assert result.extras["forward_passes"] == 1 + 4 * 2 * 3


def test_small_sigma_matches_half_sigma_squared_hessian_trace() -> None:
    model = tiny_mlp(3)
    x, y = tiny_data(n=30, seed=4)
    sigma = 1e-3
    ctx = make_ctx(model, x, y, seed=11, batch_size=len(x))
    result = noise_stability(ctx, sigma=sigma, draws=400, sided="two")

    params = dict(model.named_parameters())
    fixed = {k: v.detach() for k, v in params.items() if k not in MLP_LAYERS}
    shapes = [params[n].shape for n in MLP_LAYERS]
    sizes = [params[n].numel() for n in MLP_LAYERS]
    flat = torch.cat([params[n].detach().reshape(-1) for n in MLP_LAYERS])

    def risk(vector: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(vector, sizes)
        state = {
            **fixed,
            **{n: p.reshape(s) for n, p, s in zip(MLP_LAYERS, pieces, shapes, strict=True)},
        }
        out = torch.func.functional_call(model, state, (x,))
        return torch.nn.functional.cross_entropy(out, y)

    trace = float(torch.func.hessian(risk)(flat).diagonal().sum())
    expected = sigma**2 / 2 * trace
    assert abs(result.value - expected) <= 4 * result.stderr + 1e-3 * abs(expected)
    assert result.stderr < 0.2 * abs(expected)  # the check has teeth


def test_score_api_and_seed_dependence() -> None:
    model = tiny_mlp(4)
    x, y = tiny_data(seed=5)
    options = {"noise_stability": {"sigma": 0.1, "draws": 5}}
    table = genmeasures.score(model, None, (x, y), options, device="cpu", seed=1)
    row = table[(table.measure == "noise_stability") & (table.layer == "")].iloc[0]
    value, stderr, _ = oracle(model, x, y, MLP_LAYERS, 0.1, 5, 1)
    assert row.value == pytest.approx(value, abs=1e-10, rel=1e-10)
    assert row.stderr == pytest.approx(stderr, abs=1e-10, rel=1e-10)
    assert set(table.measure) == {
        "noise_stability",
        "noise_stability.base_loss",
        "noise_stability.forward_passes",
    }
    other = genmeasures.score(model, None, (x, y), options, device="cpu", seed=2)
    assert other.value.iloc[0] != row.value


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"sigma": 0.0}, "sigma must be > 0, got 0.0"),
        ({"sigma": -1.0}, "sigma must be > 0, got -1.0"),
        ({"draws": 0}, "draws must be >= 1, got 0"),
    ],
)
def test_bad_options_raise_naming_the_option(options: dict, name: str) -> None:
    model = tiny_mlp()
    x, y = tiny_data()
    with pytest.raises(OptionError, match=f"measure 'noise_stability': {name}") as info:
        noise_stability(make_ctx(model, x, y), **options)
    assert "\n" not in str(info.value)


def test_nan_loss_raises() -> None:
    model = tiny_mlp()
    x, y = tiny_data()

    def nan_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return outputs.sum(dim=1) * math.nan

    with pytest.raises(MeasureError, match="the loss is nan at the checkpoint"):
        noise_stability(make_ctx(model, x, y, loss=nan_loss))
