"""GD, WP-GD and NSO as plug-ins: their directions, their runs, their option checks."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from genmeasures.errors import OptionError
from genmeasures_papers.matrix_sensing import (
    GD,
    NSO,
    OPTIMIZERS,
    Diverged,
    TrainSettings,
    WeightPerturbedGD,
    make_optimizer,
    make_problem,
    train,
)
from genmeasures_papers.matrix_sensing.train import describe


@pytest.fixture(scope="module")
def problem():
    return make_problem(6, 2, seed=0, dtype="float64")


def fixed_noise(*draws: torch.Tensor):
    queue = list(draws)
    return lambda: queue.pop(0)


def test_nso_averages_the_gradients_at_u_plus_and_minus_the_noise(problem) -> None:
    generator = torch.Generator().manual_seed(2)
    u, v1, v2 = (torch.randn(6, 6, dtype=torch.float64, generator=generator) for _ in range(3))
    grad = problem.gradient
    got = NSO(sigma=0.05).direction(grad, u, fixed_noise(v1))
    torch.testing.assert_close(got, (grad(u + 0.05 * v1) + grad(u - 0.05 * v1)) / 2)
    got = NSO(sigma=0.05, k=2).direction(grad, u, fixed_noise(v1, v2))
    expected = sum(grad(u + 0.05 * v) + grad(u - 0.05 * v) for v in (v1, v2)) / 4
    torch.testing.assert_close(got, expected)
    got = WeightPerturbedGD(sigma=0.05).direction(grad, u, fixed_noise(v1))
    torch.testing.assert_close(got, grad(u + 0.05 * v1))
    torch.testing.assert_close(GD().direction(grad, u, fixed_noise()), grad(u))


def test_two_sided_noise_cancels_the_first_order_term(problem) -> None:
    """NSO's direction is grad f(U) up to O(sigma^2); WP-GD's differs at O(sigma)."""
    generator = torch.Generator().manual_seed(4)
    u = torch.randn(6, 6, dtype=torch.float64, generator=generator)
    v = torch.randn(6, 6, dtype=torch.float64, generator=generator)
    clean = problem.gradient(u)
    for sigma in (1e-2, 1e-3):
        nso = NSO(sigma=sigma).direction(problem.gradient, u, fixed_noise(v))
        wp = WeightPerturbedGD(sigma=sigma).direction(problem.gradient, u, fixed_noise(v))
        assert float((nso - clean).norm()) < 100 * sigma**2 * float(clean.norm())
        assert float((wp - clean).norm()) > 10 * float((nso - clean).norm())


def test_with_sigma_zero_wp_and_nso_are_gd(problem) -> None:
    settings = TrainSettings(lr=0.01, epochs=30, init_scale=0.3, seed=1, log_every=5)

    def rows(optimizer) -> pd.DataFrame:
        return pd.DataFrame(train(problem, optimizer, settings).rows).drop(columns="seconds")

    gd = rows("gd")
    assert len(gd) == 7 and gd["train_mse"].iloc[-1] < gd["train_mse"].iloc[0]
    pd.testing.assert_frame_equal(rows("wp:sigma=0"), gd)
    pd.testing.assert_frame_equal(rows("nso:sigma=0"), gd)
    assert not rows("nso:sigma=0.05").equals(gd)


def test_train_is_deterministic_and_resumes_bit_for_bit(problem) -> None:
    settings = TrainSettings(lr=0.01, epochs=40, init_scale=0.3, seed=7, log_every=4)
    full = train(problem, "nso:sigma=0.05", settings)
    snapshots = []
    train(problem, "nso:sigma=0.05", TrainSettings(0.01, 16, 0.3, 7, 4), on_log=snapshots.append)
    resumed = train(problem, "nso:sigma=0.05", settings, state=snapshots[-1])
    assert snapshots[-1].epoch == 16
    strip = lambda s: pd.DataFrame(s.rows).drop(columns="seconds")  # noqa: E731
    pd.testing.assert_frame_equal(strip(resumed), strip(full))
    assert torch.equal(resumed.u, full.u)
    again = train(problem, "nso:sigma=0.05", settings)
    assert torch.equal(again.u, full.u)


def test_logged_rows_and_progress(problem) -> None:
    done = []
    state = train(problem, GD(), TrainSettings(0.01, 23, 0.1, 0, 10), on_epochs=done.append)
    assert [row["epoch"] for row in state.rows] == [0, 10, 20, 23]
    assert sum(done) == 23 and state.epoch == 23
    assert set(state.rows[0]) == {
        "epoch",
        "train_mse",
        "val_mse",
        "distance",
        "loss",
        "u_norm",
        "seconds",
    }


def test_divergence_is_reported(problem) -> None:
    with pytest.raises(Diverged, match=r"GD diverged by epoch .*lower the learning rate"):
        train(problem, "gd", TrainSettings(lr=50.0, epochs=200, init_scale=1.0, log_every=10))


def test_optimizers_are_registered_plug_ins() -> None:
    assert {"gd", "wp", "nso"} <= set(OPTIMIZERS.names())
    nso = make_optimizer("nso:sigma=0.01,k=3")
    assert isinstance(nso, NSO) and (nso.sigma, nso.k) == (0.01, 3)
    assert make_optimizer("wp", sigma=0.02) == WeightPerturbedGD(0.02, 1)
    assert describe(nso) == "NSO σ=0.01 k=3" and describe(GD()) == "GD"
    assert describe(make_optimizer("wp:sigma=0.02")) == "WP-GD σ=0.02"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("adam", "unknown matrix-sensing optimizer 'adam'; valid: gd, nso, wp"),
        ("nso:sigma=-0.01", "optimizer 'nso': sigma must be a number >= 0, got -0.01"),
        ("wp:sigma=abc", "optimizer 'wp': sigma must be a number >= 0"),
        ("nso:k=0", "optimizer 'nso': k must be a positive integer, got 0"),
        ("nso:rho=0.1", "optimizer 'nso' has no option 'rho'; valid: k, sigma"),
        ("gd:sigma=0.1", "optimizer 'gd' has no option 'sigma'; valid: \\(none\\)"),
    ],
)
def test_bad_optimizer_specs_raise_one_line_errors(spec: str, match: str) -> None:
    with pytest.raises(OptionError, match=match) as info:
        make_optimizer(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr must be a positive number, got 0.0"),
        ({"lr": -1e-3}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"init_scale": 0}, "init_scale must be a positive number"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"log_every": 2.5}, "log_every must be a positive integer"),
    ],
)
def test_bad_settings_raise_one_line_errors(kwargs, match: str) -> None:
    with pytest.raises(OptionError, match=match) as info:
        TrainSettings(**kwargs)
    assert "\n" not in str(info.value)
