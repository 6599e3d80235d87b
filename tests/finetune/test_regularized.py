"""Distance-regularized fine-tuning: l2sp, constraint, regsl, robust."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import genmeasures.finetune.algorithms.constraint as constraint_module
import genmeasures.finetune.algorithms.l2sp as l2sp_module
import genmeasures.finetune.algorithms.regsl as regsl_module
import genmeasures.finetune.algorithms.robust as robust_module
from genmeasures.checkpoints import find_run_files, load_checkpoint, read_metrics
from genmeasures.data import apply_label_noise
from genmeasures.data.base import TensorDataset
from genmeasures.data.noise import transition_matrix
from genmeasures.errors import OptionError
from genmeasures.finetune import config_from_mapping, finetune
from genmeasures.finetune import run as run_module
from genmeasures.finetune.algorithm import TrainState, build_options
from genmeasures.finetune.algorithms.constraint import (
    Constraint,
    ConstraintOptions,
    LayerwiseProjection,
    project_frobenius_,
    project_mars_,
)
from genmeasures.finetune.algorithms.l2sp import L2SP
from genmeasures.finetune.algorithms.regsl import RegSL
from genmeasures.finetune.algorithms.robust import (
    Robust,
    anchor_indices,
    backward_corrected_loss,
    correction_matrix,
    dual_t_estimate,
)
from genmeasures.finetune.blocks import stage_function
from genmeasures.models import build_model, head_name
from genmeasures.scoring import score_checkpoints

assert constraint_module and l2sp_module and regsl_module and robust_module  # registered

DIGITS = {
    "model": {"name": "cnn", "kwargs": {"width": 8}},
    "data": {
        "train": "digits-target:split=train,n_per_class=20",
        "test": "digits-target:split=test",
        "noise": "symmetric",
        "noise_rate": 0.2,
    },
    "train": {"epochs": 2, "batch_size": 16, "lr": 0.05},
}


def digits_config(algorithm: dict, **train) -> dict:
    raw = json.loads(json.dumps(DIGITS))
    raw["train"].update(train)
    raw["algorithm"] = algorithm
    return raw


@pytest.fixture(autouse=True)
def one_thread():
    """These tiny models run far faster on one thread (no OpenMP contention on a busy host)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def with_train_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's contract with regsl/robust: ``state.train_dataset`` is the training set.

    Sets it only where the run does not (yet) do so itself.
    """
    original = run_module._Run.start_or_resume

    def start_or_resume(self) -> None:
        if getattr(self.state, "train_dataset", None) is None:
            self.state.train_dataset = self.data.train
        original(self)

    monkeypatch.setattr(run_module._Run, "start_or_resume", start_or_resume)


def make_state(model: nn.Module, labels: torch.Tensor | None = None, k: int = 5) -> TrainState:
    head = head_name(model)
    labels = labels if labels is not None else torch.zeros(4, dtype=torch.long)
    return TrainState(
        model=model,
        init={n: p.detach().clone() for n, p in model.named_parameters()},
        labels=labels.clone(),
        clean_labels=labels.clone(),
        num_classes=k,
        device=torch.device("cpu"),
        head_prefix=head,
        stage_of=stage_function(model, head),
    )


def tiny_cnn(seed: int = 0, depth: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("cnn", {"width": 4, "depth": depth, "num_classes": 5})


def passthrough(k: int) -> nn.Module:
    """A "model" whose outputs are its inputs (a head with identity weights)."""
    head = nn.Linear(k, k)
    with torch.no_grad():
        head.weight.copy_(torch.eye(k))
        head.bias.zero_()
    return nn.Sequential(head)


def options(cls, **values):
    return build_options(cls, values)


# ----------------------------------------------------------------------- end-to-end runs


@pytest.mark.parametrize(
    "algorithm",
    [
        {"name": "constraint", "distance": 0.05, "head_distance": 0.5},
        {"name": "constraint", "distance": 0.2, "head_distance": 0.5, "norm": "mars"},
        {"name": "regsl", "correct_epoch": 1, "reweight_epoch": 1, "correct_threshold": 0.3},
        {"name": "robust", "noise_rate": 0.2},
        {"name": "robust", "estimate": "dual_t", "warmup_epochs": 1},
    ],
    ids=lambda a: "-".join(str(v) for v in a.values()),
)
def test_run_completes_and_scores(tmp_path: Path, algorithm: dict, with_train_dataset) -> None:
    run = finetune(config_from_mapping(digits_config(algorithm)), tmp_path / "run", progress=False)
    report = score_checkpoints([run], measures=["distance_from_init"], progress=False)
    assert report.ok, report.failures
    assert set(report.table.method) == {algorithm["name"]}
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    if algorithm["name"] == "constraint":
        check_run_satisfies_constraints(run, algorithm)
    if algorithm["name"] == "regsl":
        assert all(isinstance(r["corrected_labels"], int) for r in rows[1:])
        assert rows[1]["reweight_temperature"] == pytest.approx(2.0)
        saved = torch.load(run / "train_state.pt", weights_only=True)
        assert saved["algorithm"]["corrected"] == rows[-1]["corrected_labels"]
    if algorithm["name"] == "robust":
        saved = torch.load(run / "train_state.pt", weights_only=True)
        transition = saved["algorithm"]["transition"]
        assert transition.shape == (5, 5)
        assert torch.allclose(transition.sum(dim=1), torch.ones(5, dtype=torch.float64))
        assert rows[-1]["transition_diagonal"] == pytest.approx(float(transition.diag().mean()))
        if algorithm.get("noise_rate"):
            assert torch.allclose(transition, transition_matrix("symmetric", 0.2, 5))


def check_run_satisfies_constraints(run: Path, algorithm: dict) -> None:
    """Every exported checkpoint after the init is inside every layer's ball (saved init)."""
    files = find_run_files(run)
    init = dict(load_checkpoint(files.init).state)
    spec = load_checkpoint(files.init).meta.model
    plan = LayerwiseProjection.for_model(
        build_model(spec.name, dict(spec.kwargs)),
        options(Constraint, **{k: v for k, v in algorithm.items() if k != "name"}),
    )
    kinds = {t.kind for t in plan.targets}
    assert kinds == {"weight", "head", "scale"}
    checked = 0
    for path in files.checkpoints:
        state = dict(load_checkpoint(path).state)
        assert plan.violations(state, init) == []
        distances = plan.distances(state, init)
        # the projection was active: some layer sits on its sphere
        assert any(math.isclose(d, r, rel_tol=1e-4) for d, r in distances.values())
        checked += 1
    assert checked == 2


# ----------------------------------------------------------------------- the projection


def test_frobenius_projection_inside_unchanged_outside_on_sphere() -> None:
    generator = torch.Generator().manual_seed(0)
    center = torch.randn(6, 3, 3, 3, generator=generator)
    direction = torch.randn(6, 3, 3, 3, generator=generator)
    direction /= direction.norm()
    inside = center + 0.7 * direction
    before = inside.clone()
    project_frobenius_(inside, center, 1.0)
    assert torch.equal(inside, before)
    outside = center + 5.0 * direction
    project_frobenius_(outside, center, 1.0)
    assert (outside - center).norm().item() == pytest.approx(1.0, rel=1e-6)
    assert torch.allclose(outside, center + direction, atol=1e-6)
    around_zero = 4.0 * direction
    project_frobenius_(around_zero, None, 2.0)
    assert torch.allclose(around_zero, 2.0 * direction, atol=1e-6)
    pinned = center + direction
    project_frobenius_(pinned, center, 0.0)
    assert torch.equal(pinned, center)


def test_mars_projection_rows_within_l1_radius() -> None:
    generator = torch.Generator().manual_seed(1)
    center = torch.randn(5, 2, 3, 3, generator=generator)
    delta = torch.randn(5, 2, 3, 3, generator=generator)
    row_l1 = delta.reshape(5, -1).abs().sum(dim=1)
    delta[:2] *= 0.5 / row_l1[:2, None, None, None]  # rows 0, 1: L1 0.5 (inside)
    delta[2:] *= 3.0 / row_l1[2:, None, None, None]  # rows 2-4: L1 3 (outside)
    weight = center + delta
    before = weight.clone()
    project_mars_(weight, center, 1.0)
    norms = (weight - center).reshape(5, -1).abs().sum(dim=1)
    assert torch.all(norms <= 1.0 + 1e-5)
    assert torch.equal(weight[:2], before[:2])  # rows inside are unchanged
    assert torch.allclose(norms[2:], torch.ones(3), rtol=1e-5)
    # each row outside is scaled, not otherwise changed
    assert torch.allclose(weight[2:] - center[2:], delta[2:] / 3.0, atol=1e-6)


def test_head_projected_around_zero_and_normalization_scales_clamped() -> None:
    model = tiny_cnn()
    state = make_state(model)
    algorithm = Constraint(options(Constraint, distance=0.1, head_distance=0.5), state)
    bias_before = model.head.bias.detach().clone()
    bn = model.features[0].bn
    with torch.no_grad():
        model.head.weight.mul_(100.0)
        model.head.bias.add_(10.0)
        bn.weight.copy_(state.init["features.0.bn.weight"])
        bn.weight[0] += 5.0
        bn.weight[1] -= 5.0
        bn.weight[2] += 0.05
        bn.bias.add_(3.0)
    head_direction = model.head.weight.detach() / model.head.weight.detach().norm()
    algorithm.after_step()
    assert model.head.weight.norm().item() == pytest.approx(0.5, rel=1e-6)
    assert torch.allclose(model.head.weight, 0.5 * head_direction, atol=1e-6)
    assert torch.equal(model.head.bias, bias_before + 10.0)  # biases untouched
    scale0 = state.init["features.0.bn.weight"]
    assert bn.weight[0].item() == pytest.approx(scale0[0].item() + 0.1, abs=1e-6)
    assert bn.weight[1].item() == pytest.approx(scale0[1].item() - 0.1, abs=1e-6)
    assert bn.weight[2].item() == pytest.approx(scale0[2].item() + 0.05, abs=1e-6)
    assert torch.allclose(bn.bias, state.init["features.0.bn.bias"] + 3.0)
    # the head around its init instead
    state2 = make_state(tiny_cnn())
    init_centered = Constraint(options(Constraint, head_distance=0.5, head_center="init"), state2)
    with torch.no_grad():
        state2.model.head.weight.add_(10.0)
    init_centered.after_step()
    delta = state2.model.head.weight - state2.init["head.weight"]
    assert delta.norm().item() == pytest.approx(0.5, rel=1e-6)


def test_radii_grow_with_gamma_by_resnet_stage() -> None:
    model = build_model(
        "resnet18", {"num_classes": 5, "width_multiplier": 0.125, "small_input": True}
    )
    plan = LayerwiseProjection.for_model(
        model, ConstraintOptions(distance=0.1, head_distance=7.0, gamma=2.0)
    )
    radii = plan.radii()
    kinds = {t.name: t.kind for t in plan.targets}
    assert radii["conv1.weight"] == pytest.approx(0.1)
    assert radii["layer1.0.conv1.weight"] == pytest.approx(0.1)
    assert radii["layer2.1.conv2.weight"] == pytest.approx(0.1)
    assert radii["layer3.0.conv1.weight"] == pytest.approx(0.2)
    assert radii["layer3.0.downsample.0.weight"] == pytest.approx(0.2)
    assert radii["layer4.1.conv2.weight"] == pytest.approx(0.4)
    assert radii["fc.weight"] == pytest.approx(7.0) and kinds["fc.weight"] == "head"
    assert kinds["layer4.1.bn2.weight"] == "scale" and radii["layer4.1.bn2.weight"] == 0.1
    assert not any(name.endswith("bias") for name in radii)
    weights = [n for n, p in model.named_parameters() if p.ndim >= 2]
    assert set(weights) <= set(radii)


@pytest.mark.parametrize("norm", ["frobenius", "mars"])
def test_after_a_step_every_layer_is_within_its_radius(norm: str) -> None:
    model = tiny_cnn(depth=3)
    state = make_state(model)
    algorithm = Constraint(
        options(Constraint, distance=0.05, head_distance=0.3, gamma=1.5, norm=norm), state
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    inputs, targets = torch.randn(8, 1, 8, 8), torch.randint(0, 5, (8,))
    for _step in range(3):
        optimizer.zero_grad()
        algorithm.compute_gradient(inputs, targets, torch.arange(8))
        optimizer.step()
        params = dict(model.named_parameters())
        assert algorithm.projection.violations(params, state.init) != []
        algorithm.after_step()
        assert algorithm.projection.violations(params, state.init) == []
    radii = algorithm.projection.radii()
    assert radii["features.2.conv.weight"] == pytest.approx(0.05 * 1.5**2)


# ----------------------------------------------------------------------- l2sp


def test_l2sp_penalty_gradient_matches_closed_form() -> None:
    model = tiny_cnn(depth=3)
    state = make_state(model)
    algorithm = L2SP(options(L2SP, alpha=0.3, beta=0.7, gamma=2.0), state)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    model.zero_grad()
    algorithm.penalty().backward()
    for name, p in model.named_parameters():
        if name.startswith("head."):
            expected = 2 * 0.7 * p.detach()
        else:
            scale = 2.0 ** state.stage_of(name)
            expected = 2 * 0.3 * scale * (p.detach() - state.init[name])
        assert torch.allclose(p.grad, expected, rtol=1e-5, atol=1e-7), name
    coefficients = algorithm.coefficients()
    assert coefficients["features.0.conv.weight"] == pytest.approx(0.3)
    assert coefficients["features.2.bn.bias"] == pytest.approx(0.3 * 4)  # biases/BN included
    assert coefficients["head.bias"] == pytest.approx(0.7)
    outputs, targets = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    loss = algorithm.batch_loss(outputs, targets, torch.arange(4))
    expected_loss = nn.functional.cross_entropy(outputs, targets) + algorithm.penalty()
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)


# ----------------------------------------------------------------------- regsl


def regsl_with(labels: torch.Tensor, k: int = 3, **values) -> RegSL:
    return RegSL(options(RegSL, **values), make_state(passthrough(k), labels, k))


def test_regsl_flips_exactly_the_confident_disagreeing_labels() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    probabilities = torch.tensor(
        [
            [0.05, 0.95, 0.00],  # confident, disagrees -> 1
            [0.00, 0.99, 0.01],  # confident, agrees
            [0.50, 0.40, 0.10],  # not confident, disagrees
            [0.10, 0.00, 0.90],  # exactly at the threshold: not above it
            [0.00, 0.02, 0.98],  # confident, disagrees -> 2
            [0.97, 0.02, 0.01],  # confident, disagrees -> 0
        ]
    )
    algorithm = regsl_with(labels, correct_epoch=3, correct_threshold=0.9)
    algorithm.predict_training_set = lambda: probabilities
    algorithm.state.epoch = 2
    assert algorithm.on_epoch_end()["corrected_labels"] == 0
    assert torch.equal(algorithm.state.labels, labels)
    algorithm.state.epoch = 3
    assert algorithm.on_epoch_end()["corrected_labels"] == 3
    assert algorithm.state.labels.tolist() == [1, 1, 2, 0, 2, 0]
    algorithm.state.epoch = 4  # the same predictions again: nothing left to change
    assert algorithm.on_epoch_end()["corrected_labels"] == 3
    assert algorithm.state_dict() == {"corrected": 3}
    fresh = regsl_with(labels)
    fresh.load_state_dict(algorithm.state_dict())
    assert fresh.corrected == 3


def test_regsl_predicts_the_training_set_through_state_train_dataset() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 1.2, 0.9]])
    labels = torch.tensor([1, 2, 0])
    algorithm = regsl_with(labels, correct_epoch=1)
    algorithm.state.epoch = 1
    with pytest.raises(RuntimeError, match="train_dataset"):
        algorithm.on_epoch_end()
    # the passthrough model's outputs are its inputs, so the probabilities are known
    algorithm.state.train_dataset = TensorDataset(logits, labels, num_classes=3)
    assert algorithm.on_epoch_end()["corrected_labels"] == 1
    assert algorithm.state.labels.tolist() == [0, 2, 0]


def test_regsl_temperature_schedule_and_reweighted_loss() -> None:
    algorithm = regsl_with(torch.zeros(4, dtype=torch.long), reweight_epoch=5, temperature=2.0)
    assert algorithm.temperature_at(4) is None
    assert algorithm.temperature_at(5) == pytest.approx(2.0)
    assert algorithm.temperature_at(6) == pytest.approx(2.0 * math.exp(-0.1))
    assert algorithm.temperature_at(11) == pytest.approx(2.0 * math.exp(-0.6))
    assert algorithm.temperature_at(12) == pytest.approx(1.0)  # exp(-0.7) < 0.5: floor
    assert algorithm.temperature_at(40) == pytest.approx(1.0)

    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(6, 3, generator=generator, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    algorithm.state.epoch = 4
    plain = algorithm.batch_loss(outputs, targets, torch.arange(6))
    assert plain.item() == pytest.approx(nn.functional.cross_entropy(outputs, targets).item())
    algorithm.state.epoch = 7
    tau = 2.0 * math.exp(-0.2)
    losses = -torch.log_softmax(outputs, dim=1)[torch.arange(6), targets]
    weights = [math.exp(-v / tau) for v in losses.tolist()]
    expected = sum(w * v for w, v in zip(weights, losses.tolist(), strict=True)) / sum(weights)
    loss = algorithm.batch_loss(outputs, targets, torch.arange(6))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the weights are constants: the gradient is that of sum_b w_b l_b with w fixed
    (grad,) = torch.autograd.grad(loss, outputs)
    fixed = torch.tensor(weights) / sum(weights)
    (expected_grad,) = torch.autograd.grad((fixed * losses).sum(), outputs)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    metrics = algorithm.on_epoch_end()
    assert metrics == {"corrected_labels": 0, "reweight_temperature": pytest.approx(tau)}


# ----------------------------------------------------------------------- robust


def random_transition(k: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.rand(k, k, generator=generator, dtype=torch.float64) + 2 * torch.eye(
        k, dtype=torch.float64
    )
    return matrix / matrix.sum(dim=1, keepdim=True)


def test_consistent_loss_is_unbiased_for_a_known_transition() -> None:
    k = 5
    transition = random_transition(k, seed=0)
    inverse = correction_matrix(transition)
    logits = torch.randn(7, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    log_probs = torch.log_softmax(logits, dim=1)
    for y in range(k):
        expected = -log_probs[:, y]
        average = sum(
            transition[y, z]
            * backward_corrected_loss(logits, torch.full((7,), z, dtype=torch.long), inverse)
            for z in range(k)
        )
        assert torch.allclose(average, expected, atol=1e-6)
    # the algorithm with this T given as an option (float32 on the device)
    algorithm = Robust(
        options(Robust, transition=transition.tolist()), make_state(passthrough(k), k=k)
    )
    targets = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    loss = algorithm.batch_loss(logits.float(), targets, torch.arange(7))
    expected = backward_corrected_loss(logits, targets, inverse).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_consistent_loss_uses_the_pseudo_inverse_for_a_singular_transition() -> None:
    singular = torch.tensor(
        [[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.0, 0.2, 0.8]], dtype=torch.float64
    )
    inverse = correction_matrix(singular)
    assert torch.allclose(inverse, torch.linalg.pinv(singular))
    assert torch.allclose(singular @ inverse @ singular, singular, atol=1e-10)
    algorithm = Robust(
        options(Robust, transition=singular.tolist()), make_state(passthrough(3), k=3)
    )
    assert torch.allclose(algorithm.inverse.double(), torch.linalg.pinv(singular), atol=1e-6)
    loss = algorithm.batch_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.arange(4))
    assert torch.isfinite(loss)
    invertible = random_transition(3, seed=3)
    assert torch.allclose(correction_matrix(invertible), torch.linalg.inv(invertible))


def test_transition_from_a_noise_rate() -> None:
    algorithm = Robust(
        options(Robust, noise_rate=0.3, noise_kind="pair"), make_state(passthrough(5), k=5)
    )
    assert torch.equal(algorithm.transition, transition_matrix("pair", 0.3, 5))
    assert algorithm.on_epoch_end() == {"transition_diagonal": pytest.approx(0.7)}


def test_dual_t_recovers_a_known_transition() -> None:
    k, n_per_class = 5, 1000
    truth = torch.tensor(
        [
            [0.7, 0.2, 0.0, 0.0, 0.1],
            [0.0, 0.8, 0.2, 0.0, 0.0],
            [0.1, 0.0, 0.6, 0.3, 0.0],
            [0.0, 0.0, 0.0, 0.9, 0.1],
            [0.2, 0.0, 0.0, 0.2, 0.6],
        ],
        dtype=torch.float64,
    )
    clean = torch.arange(k).repeat_interleave(n_per_class)
    noisy = apply_label_noise(clean, k, kind="class_conditional", matrix=truth, seed=0).noisy
    # a model that predicts the clean class with certainty
    probabilities = nn.functional.one_hot(clean, k).double()
    estimate = dual_t_estimate(probabilities, noisy, k)
    # sampling error of a proportion from 1000 draws: sd <= 0.016
    assert torch.allclose(estimate, truth, atol=0.06)
    assert torch.allclose(estimate.sum(dim=1), torch.ones(k, dtype=torch.float64))

    # through the algorithm: plain CE during the warm-up, then the estimate is used
    state = make_state(passthrough(k), noisy, k)
    algorithm = Robust(options(Robust, estimate="dual_t", warmup_epochs=2), state)
    algorithm.predict_training_set = lambda: probabilities.float()
    outputs, targets = torch.randn(4, k), torch.tensor([0, 1, 2, 3])
    plain = nn.functional.cross_entropy(outputs, targets)
    state.epoch = 1
    assert algorithm.on_epoch_end() == {}
    assert algorithm.batch_loss(outputs, targets, torch.arange(4)).item() == pytest.approx(
        plain.item()
    )
    state.epoch = 2
    metrics = algorithm.on_epoch_end()
    assert torch.allclose(algorithm.transition, estimate)
    assert metrics["transition_diagonal"] == pytest.approx(float(estimate.diag().mean()))
    corrected = algorithm.batch_loss(outputs, targets, torch.arange(4))
    expected = backward_corrected_loss(outputs, targets, correction_matrix(estimate)).mean()
    assert corrected.item() == pytest.approx(expected.item(), rel=1e-4)
    # resume: T comes back from the state dict
    resumed = Robust(options(Robust, estimate="dual_t"), make_state(passthrough(k), noisy, k))
    resumed.load_state_dict(algorithm.state_dict())
    assert torch.equal(resumed.transition, algorithm.transition)


def test_dual_t_anchor_discards_the_top_three_percent() -> None:
    probabilities = torch.zeros(100, 2)
    probabilities[:, 0] = torch.linspace(0.0, 0.99, 100)
    probabilities[:, 1] = 1 - probabilities[:, 0]
    anchors = anchor_indices(probabilities, 0.03)
    assert anchors.tolist() == [96, 3]  # the 4th highest p_0 and the 4th highest p_1


# ----------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ({"name": "constraint", "distance": -0.1}, "algorithm.distance"),
        ({"name": "constraint", "head_distance": -1}, "algorithm.head_distance"),
        ({"name": "constraint", "gamma": 0}, "algorithm.gamma"),
        ({"name": "constraint", "norm": "l1"}, "algorithm.norm"),
        ({"name": "constraint", "head_center": "mean"}, "algorithm.head_center"),
        ({"name": "l2sp", "alpha": -1}, "algorithm.alpha"),
        ({"name": "l2sp", "beta": -1}, "algorithm.beta"),
        ({"name": "l2sp", "gamma": -2}, "algorithm.gamma"),
        ({"name": "regsl", "correct_threshold": 0}, "algorithm.correct_threshold"),
        ({"name": "regsl", "correct_threshold": 1.5}, "algorithm.correct_threshold"),
        ({"name": "regsl", "temperature": 0}, "algorithm.temperature"),
        ({"name": "regsl", "correct_epoch": -1}, "algorithm.correct_epoch"),
        ({"name": "regsl", "distance": -1}, "algorithm.distance"),
        ({"name": "robust", "transition": [[1, 0], [0, 1], [0.5, 0.5]]}, "algorithm.transition"),
        ({"name": "robust", "transition": [[0.5, 0.4], [0, 1]]}, "algorithm.transition"),
        ({"name": "robust", "transition": [[1.5, -0.5], [0, 1]]}, "algorithm.transition"),
        ({"name": "robust", "transition": [1, 0]}, "algorithm.transition"),
        ({"name": "robust", "transition": []}, "algorithm.transition"),
        ({"name": "robust", "noise_rate": 1.0}, "algorithm.noise_rate"),
        ({"name": "robust", "noise_kind": "uniform"}, "algorithm.noise_kind"),
        ({"name": "robust", "estimate": "anchor"}, "algorithm.estimate"),
        ({"name": "robust", "estimate": "dual_t", "noise_rate": 0.2}, "algorithm.noise_rate"),
        (
            {"name": "robust", "noise_rate": 0.2, "transition": [[1, 0], [0, 1]]},
            "algorithm.transition",
        ),
        ({"name": "robust", "warmup_epochs": 0}, "algorithm.warmup_epochs"),
        ({"name": "robust", "outlier_fraction": 1}, "algorithm.outlier_fraction"),
    ],
)
def test_bad_options_name_the_key(algorithm: dict, key: str) -> None:
    with pytest.raises(OptionError, match=key.replace(".", r"\.")):
        config_from_mapping(digits_config(algorithm))


def test_good_options_and_defaults() -> None:
    config = config_from_mapping(digits_config({"name": "regsl", "correct_threshold": 1}))
    assert config.algorithm == {
        "name": "regsl",
        "distance": 1.0,
        "head_distance": 10.0,
        "gamma": 1.0,
        "norm": "frobenius",
        "head_center": "zero",
        "correct_epoch": 10,
        "correct_threshold": 1.0,
        "reweight_epoch": 5,
        "temperature": 2.0,
    }
    l2sp = config_from_mapping(digits_config({"name": "l2sp"})).algorithm
    assert l2sp == {"name": "l2sp", "alpha": 0.01, "beta": 0.01, "gamma": 1.0}
    robust = config_from_mapping(digits_config({"name": "robust"})).algorithm
    assert robust["estimate"] == "auto" and robust["transition"] is None
    assert robust["warmup_epochs"] == 1 and robust["outlier_fraction"] == 0.03


def test_transition_of_the_wrong_size_for_the_task(tmp_path: Path) -> None:
    config = config_from_mapping(
        digits_config({"name": "robust", "transition": [[0.9, 0.1], [0.1, 0.9]]})
    )
    with pytest.raises(OptionError, match=r"algorithm\.transition.*5 x 5"):
        finetune(config, tmp_path / "run", progress=False)


def test_robust_with_the_known_transition_of_the_runs_noise(tmp_path) -> None:
    import json

    from genmeasures.data import apply_label_noise, load_dataset
    from genmeasures.finetune import config_from_mapping, finetune

    raw = {
        "model": {"name": "cnn", "kwargs": {"width": 4}},
        "data": {
            "train": "digits-target:split=train,n_per_class=8",
            "test": "digits-target:split=test",
            "noise": "symmetric",
            "noise_rate": 0.4,
        },
        "train": {"epochs": 1, "batch_size": 8},
        "algorithm": {"name": "robust", "estimate": "known", "distance": 0.5},
    }
    run = finetune(config_from_mapping(raw), tmp_path / "run", progress=False)
    state = torch.load(run / "train_state.pt", weights_only=True)
    train = load_dataset(raw["data"]["train"])
    expected = apply_label_noise(train.targets, 5, kind="symmetric", rate=0.4).transition
    torch.testing.assert_close(state["algorithm"]["transition"].double(), expected)
    assert json.loads((run / "run.json").read_text())["complete"]
    with pytest.raises(OptionError, match="estimate = 'known' sets T: do not also set"):
        config_from_mapping(
            {"algorithm": {"name": "robust", "estimate": "known", "noise_rate": 0.2}}
        )


def test_batched_frobenius_projection_equals_one_tensor_at_a_time() -> None:
    from genmeasures.finetune.algorithms.constraint import project_frobenius_all_

    generator = torch.Generator().manual_seed(4)
    shapes = [(6, 3, 3, 3), (10, 6), (4, 4), (3, 5)]
    centers = [torch.randn(s, generator=generator) for s in shapes]
    centers[2] = None  # a head projected around zero
    scales = [0.5, 4.0, 3.0, 2.0]  # inside, outside, outside (around 0), pinned (radius 0)
    radii = [1.0, 1.0, 2.0, 0.0]
    weights = []
    for shape, center, scale in zip(shapes, centers, scales, strict=True):
        direction = torch.randn(shape, generator=generator)
        direction /= direction.norm()
        weights.append((center if center is not None else 0) + scale * direction)
    expected = [w.clone() for w in weights]
    for w, c, r in zip(expected, centers, radii, strict=True):
        project_frobenius_(w, c, r)
    before_inside = weights[0].clone()
    project_frobenius_all_(weights, centers, radii)
    assert torch.equal(weights[0], before_inside)  # inside: untouched, bit for bit
    assert torch.equal(weights[3], centers[3])  # radius 0: exactly the center
    for got, want in zip(weights, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert (weights[1] - centers[1]).norm().item() == pytest.approx(1.0, rel=1e-6)
    assert weights[2].norm().item() == pytest.approx(2.0, rel=1e-6)
