"""Meta-tests: the contracts fail for deliberately broken plugins.

Each test registers one broken measure or algorithm, runs the contract check that should
catch it, expects an AssertionError, and unregisters the plugin again. A contract that passes
here tests nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import torch

from genmeasures.finetune.algorithm import Algorithm
from genmeasures.measures import MeasureContext, MeasureResult, register_measure
from tests.contracts.algorithm_contract import (
    check_declared_passes,
    check_one_step,
    check_resume_is_identical,
    registered_algorithm,
)
from tests.contracts.measure_contract import (
    CHEAPEST_CASE,
    NORMALIZED_CASE,
    check_cache_round_trip,
    check_deterministic,
    check_metadata,
    check_needs_are_complete,
    check_no_side_effects,
    contract_options,
    registered_measure,
)


def mean_loss(ctx: MeasureContext) -> float:
    model = ctx.model
    with torch.no_grad():
        total = sum(float(ctx.loss(model(x), y).sum()) for x, y in ctx.data.batches(ctx.device))
    return total / len(ctx.data)


# --- measures -------------------------------------------------------------------------------


def test_a_measure_missing_from_the_contract_table_fails() -> None:
    with pytest.raises(AssertionError, match="CONTRACT_OPTIONS"):
        contract_options("not_in_the_table")


def test_metadata_contract_catches_a_missing_paper_and_undocumented_options() -> None:
    @register_measure("broken_no_paper", summary="test: no paper", needs=("init",))
    def no_paper(ctx: MeasureContext) -> MeasureResult:
        return MeasureResult(value=0.0)

    with registered_measure(no_paper), pytest.raises(AssertionError, match="paper"):
        check_metadata(no_paper)

    @register_measure("broken_no_help", summary="test", paper="none", needs=("init",))
    def no_help(ctx: MeasureContext, *, scale: float = 1.0) -> MeasureResult:
        return MeasureResult(value=scale)

    with registered_measure(no_help), pytest.raises(AssertionError, match="help"):
        check_metadata(no_help)

    @register_measure("broken_bad_default", summary="test", paper="none", needs=("init",))
    def bad_default(
        ctx: MeasureContext, *, scale: Annotated[float, "a scale"] = "big"
    ) -> MeasureResult:
        return MeasureResult(value=1.0)

    with registered_measure(bad_default), pytest.raises(AssertionError, match="default"):
        check_metadata(bad_default)


def test_needs_contract_catches_an_undeclared_input() -> None:
    @register_measure("broken_reads_init", summary="test", paper="none", needs=("data", "model"))
    def reads_init(ctx: MeasureContext) -> MeasureResult:
        return MeasureResult(value=float(sum(t.sum() for t in ctx.init.values())))

    with registered_measure(reads_init), pytest.raises(AssertionError, match="declared needs"):
        check_needs_are_complete(reads_init, {}, CHEAPEST_CASE)


def test_determinism_contract_catches_the_global_generator() -> None:
    @register_measure("broken_global_noise", summary="test", paper="none", needs=("data", "model"))
    def global_noise(ctx: MeasureContext) -> MeasureResult:
        return MeasureResult(value=mean_loss(ctx) + float(torch.randn(())))

    with registered_measure(global_noise), pytest.raises(AssertionError, match="seed 0 differ"):
        check_deterministic(global_noise, {}, CHEAPEST_CASE)


def test_determinism_contract_catches_an_undeclared_seed_dependence() -> None:
    @register_measure("broken_seeded", summary="test", paper="none", needs=("data", "model"))
    def seeded(ctx: MeasureContext) -> MeasureResult:
        generator = torch.Generator().manual_seed(ctx.seed)
        return MeasureResult(value=mean_loss(ctx) + float(torch.randn((), generator=generator)))

    with registered_measure(seeded), pytest.raises(AssertionError, match="not declared stochastic"):
        check_deterministic(seeded, {}, CHEAPEST_CASE)


@pytest.mark.parametrize(
    ("side_effect", "message"),
    [
        ("eval_mode", "training became False"),
        ("weights", "changed"),
        ("running_statistics", "buffer"),
        ("gradients", r"\.grad"),
        ("requires_grad", "requires_grad"),
        ("hook", "hooks"),
    ],
)
def test_side_effect_contract_catches_a_mutating_measure(side_effect: str, message: str) -> None:
    @register_measure("broken_mutating", summary="test", paper="none", needs=("data", "model"))
    def mutating(ctx: MeasureContext) -> MeasureResult:
        model = ctx.model
        if side_effect == "eval_mode":
            model.eval()
        elif side_effect == "weights":
            with torch.no_grad():
                next(model.parameters()).add_(1e-6)
        elif side_effect == "running_statistics":
            model.train()
            with torch.no_grad():
                model(next(ctx.data.batches(ctx.device))[0])  # updates BN running statistics
        elif side_effect == "gradients":
            inputs, targets = next(ctx.data.batches(ctx.device))
            ctx.loss(model(inputs), targets).mean().backward()
        elif side_effect == "requires_grad":
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        elif side_effect == "hook":
            model.register_forward_hook(lambda module, args, output: None)
        return MeasureResult(value=1.0)

    with registered_measure(mutating), pytest.raises(AssertionError, match=message):
        check_no_side_effects(mutating, {}, NORMALIZED_CASE)


def test_cache_contract_catches_a_result_json_cannot_hold(tmp_path: Path) -> None:
    @register_measure("broken_uncacheable", summary="test", paper="none", needs=("init",))
    def uncacheable(ctx: MeasureContext) -> MeasureResult:
        # a set: JSON has none (the cache cannot store it, or reads back a list)
        return MeasureResult(value=1.0, options={"classes": {0, 1}})

    with registered_measure(uncacheable), pytest.raises(AssertionError, match="cache"):
        check_cache_round_trip(uncacheable, {}, CHEAPEST_CASE, tmp_path)


def test_cache_contract_catches_extras_that_come_back_changed(tmp_path: Path) -> None:
    @register_measure("broken_extras", summary="test", paper="none", needs=("init",))
    def int_keyed_extras(ctx: MeasureContext) -> MeasureResult:
        # JSON turns the keys 10 and 9 into the strings "10" and "9", which sort the other
        # way round: the rows read back come out in another order.
        return MeasureResult(value=1.0, extras={10: 1.0, 9: 2.0})

    with registered_measure(int_keyed_extras), pytest.raises(AssertionError, match="cache"):
        check_cache_round_trip(int_keyed_extras, {}, CHEAPEST_CASE, tmp_path)


# --- algorithms ------------------------------------------------------------------------------


class ForgetfulAlgorithm(Algorithm):
    """Scales its loss by a step counter that it does not save: a resumed run restarts the
    counter and trains differently."""

    name = "broken_forgetful"

    def __init__(self, options: Any, state: Any) -> None:
        super().__init__(options, state)
        self.steps = 0

    def batch_loss(self, outputs, targets, indices) -> torch.Tensor:
        self.steps += 1
        return super().batch_loss(outputs, targets, indices) * (1 + 0.5 * self.steps)


class UndercountedAlgorithm(Algorithm):
    """Takes two forward/backward passes a step but declares one."""

    name = "broken_undercounted"

    def compute_gradient(self, inputs, targets, indices) -> torch.Tensor:
        super().compute_gradient(inputs, targets, indices)
        return super().compute_gradient(inputs, targets, indices)


class GradientlessAlgorithm(Algorithm):
    """Computes its loss but never fills ``.grad``: its steps do not train."""

    name = "broken_gradientless"

    def compute_gradient(self, inputs, targets, indices) -> torch.Tensor:
        with torch.no_grad():
            return self.loss_at_current_weights(inputs, targets, indices)

    def passes_per_step(self) -> int:
        return 0


def test_resume_contract_catches_state_the_algorithm_does_not_save(tmp_path: Path) -> None:
    with registered_algorithm(ForgetfulAlgorithm), pytest.raises(AssertionError, match="differ"):
        check_resume_is_identical(ForgetfulAlgorithm.name, {}, tmp_path)


def test_pass_count_contract_catches_an_undercounted_step(tmp_path: Path) -> None:
    with (
        registered_algorithm(UndercountedAlgorithm),
        pytest.raises(AssertionError, match="declared"),
    ):
        check_declared_passes(UndercountedAlgorithm.name, {}, tmp_path / "run")


def test_step_contract_catches_a_step_that_does_not_train(tmp_path: Path) -> None:
    with (
        registered_algorithm(GradientlessAlgorithm),
        pytest.raises(AssertionError, match="where they were"),
    ):
        check_one_step(GradientlessAlgorithm.name, {}, tmp_path / "run")
