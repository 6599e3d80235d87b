"""What every registered fine-tuning algorithm must do, as check functions that raise
AssertionError.

Every check drives the real training loop (:func:`genmeasures.finetune.finetune`) on a tiny
run: the table's ``cnn`` case (batch normalization and dropout) fine-tuned on 40 digits with
20% symmetric label noise (so that label-correcting algorithms have something to correct),
SGD with momentum (optimizer state to resume), three steps an epoch, the last one short.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from genmeasures.checkpoints import load_checkpoint, read_metrics
from genmeasures.finetune import config_from_mapping, finetune
from genmeasures.finetune import run as run_module
from genmeasures.finetune.algorithm import ALGORITHMS, Algorithm, get_algorithm
from genmeasures.finetune.config import FinetuneConfig
from tests.cases import MODELS

N_TRAIN = 40  # digits-target (5 classes) with n_per_class=8
BATCH_SIZE = 16  # 40 = 16 + 16 + 8

# Options that make an algorithm's own machinery run within the contracts' two epochs (the
# defaults of the others already do). Unlike the measures' table this one is optional: an
# algorithm missing here is checked with its defaults.
CONTRACT_OPTIONS: dict[str, dict[str, Any]] = {
    "nso": {"k": 2, "lam": 0.5},
    "regsl": {"correct_epoch": 1, "reweight_epoch": 1, "correct_threshold": 0.3},
    "robust": {"estimate": "dual_t", "warmup_epochs": 1},
}


def registered_algorithm_names() -> list[str]:
    """The algorithms ``genmeasures algorithms`` lists: built-ins and entry points."""
    get_algorithm("erm")  # loads the built-ins
    return ALGORITHMS.names()


def contract_options(name: str) -> dict[str, Any]:
    return dict(CONTRACT_OPTIONS.get(name, {}))


@contextmanager
def registered_algorithm(cls: type[Algorithm]) -> Iterator[type[Algorithm]]:
    """Register ``cls`` under ``cls.name`` only inside the block."""
    get_algorithm("erm")  # the built-ins first, so removing ours leaves them in place
    ALGORITHMS.add(cls.name, cls)
    try:
        yield cls
    finally:
        ALGORITHMS.remove(cls.name)


def contract_config(
    name: str, options: Mapping[str, Any], *, epochs: int, batch_size: int = BATCH_SIZE
) -> FinetuneConfig:
    model = MODELS["cnn"]
    return config_from_mapping(
        {
            "model": {"name": model.factory, "kwargs": dict(model.kwargs)},
            "data": {
                "train": "digits-target:split=train,n_per_class=8",
                "noise": "symmetric",
                "noise_rate": 0.2,
            },
            "train": {"epochs": epochs, "batch_size": batch_size, "lr": 0.05, "momentum": 0.9},
            "algorithm": {"name": name, **options},
        }
    )


def final_training_state(run: Path) -> dict[str, Any]:
    return torch.load(run / run_module.STATE_FILE, weights_only=True)


# --- one step ---------------------------------------------------------------------------------


def check_one_step(name: str, options: Mapping[str, Any], out: Path) -> None:
    """One epoch of one step (the whole training set in one batch) trains: finite objective,
    every trainable tensor moved and finite, the checkpoints written and scoreable."""
    from genmeasures.scoring import score_checkpoints

    config = contract_config(name, options, epochs=1, batch_size=N_TRAIN)
    run = finetune(config, out, progress=False)
    rows = read_metrics(run)
    assert [row["epoch"] for row in rows] == [0, 1], f"{name}: metrics of epochs {rows}"
    objective = rows[1]["train_objective"]
    assert objective == objective and abs(objective) < float("inf"), (
        f"{name}: the step's objective is {objective}"
    )
    init = dict(load_checkpoint(run / "checkpoints" / "epoch_0000.safetensors").state)
    after = dict(load_checkpoint(run / "checkpoints" / "last.safetensors").state)
    for tensor_name, value in after.items():
        assert torch.isfinite(value.double()).all(), f"{name}: {tensor_name} is not finite"
    parameters = [n for n, _ in MODELS["cnn"].build(seed=0).named_parameters()]
    unmoved = [n for n in parameters if torch.equal(init[n], after[n])]
    assert not unmoved, f"{name}: one step left trainable tensors where they were: {unmoved}"
    report = score_checkpoints([run], measures=["distance_from_init"], progress=False)
    assert report.ok, f"{name}: the run does not score: {report.failures}"
    assert set(report.table.method) == {name}


# --- resume -----------------------------------------------------------------------------------


def check_resume_is_identical(name: str, options: Mapping[str, Any], out: Path) -> None:
    """Two epochs straight, and one epoch then a resumed second, end bitwise equal: weights,
    optimizer state, labels and the algorithm's own state."""
    whole = finetune(contract_config(name, options, epochs=2), out / "whole", progress=False)
    finetune(contract_config(name, options, epochs=1), out / "resumed", progress=False)
    resumed = finetune(contract_config(name, options, epochs=2), out / "resumed", progress=False)
    expected, got = final_training_state(whole), final_training_state(resumed)
    for key in expected["model"]:
        assert torch.equal(expected["model"][key], got["model"][key]), (
            f"{name}: resumed run's {key} differs from the uninterrupted run's"
        )
    assert torch.equal(expected["labels"], got["labels"]), f"{name}: training labels differ"
    assert_same_nested(expected["optimizer"], got["optimizer"], f"{name}: optimizer state")
    assert_same_nested(expected["algorithm"], got["algorithm"], f"{name}: algorithm state")
    assert [r["train_objective"] for r in read_metrics(whole)[1:]] == [
        r["train_objective"] for r in read_metrics(resumed)[1:]
    ], f"{name}: logged objectives differ"


def assert_same_nested(expected: Any, got: Any, what: str) -> None:
    """Bitwise equality of nested dicts/lists of tensors and plain values."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and torch.equal(expected, got), f"{what} differs"
    elif isinstance(expected, Mapping):
        assert isinstance(got, Mapping) and expected.keys() == got.keys(), f"{what}: keys differ"
        for key in expected:
            assert_same_nested(expected[key], got[key], f"{what}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert isinstance(got, list | tuple) and len(expected) == len(got), f"{what}: lengths"
        for index, (a, b) in enumerate(zip(expected, got, strict=True)):
            assert_same_nested(a, b, f"{what}[{index}]")
    else:
        assert expected == got, f"{what}: {expected!r} != {got!r}"


# --- the declared pass count ------------------------------------------------------------------


@dataclasses.dataclass
class StepPasses:
    """Forward and backward passes through the model during each ``compute_gradient``."""

    forward: list[int] = dataclasses.field(default_factory=list)
    backward: list[int] = dataclasses.field(default_factory=list)
    declared: list[int] = dataclasses.field(default_factory=list)


@contextmanager
def counting_passes() -> Iterator[StepPasses]:
    """While active, every training epoch counts the passes of each of its steps: a forward
    pre-hook on the model counts forwards, a gradient hook on each forward's output counts
    the backward passes that reach it."""
    passes = StepPasses()
    original_epoch = run_module.train_one_epoch

    def counted_epoch(algorithm: Algorithm, *args: Any, **kwargs: Any) -> float:
        model = algorithm.state.model
        counts = {"forward": 0, "backward": 0, "active": False}

        def count_backward(grad: torch.Tensor) -> None:
            counts["backward"] += 1

        def count_forward(module: torch.nn.Module, args: Any, output: Any) -> None:
            if not counts["active"]:
                return
            counts["forward"] += 1
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(count_backward)

        original_step = algorithm.compute_gradient

        def counted_step(*step_args: Any, **step_kwargs: Any) -> torch.Tensor:
            counts.update(forward=0, backward=0, active=True)
            try:
                return original_step(*step_args, **step_kwargs)
            finally:
                counts["active"] = False
                passes.forward.append(counts["forward"])
                passes.backward.append(counts["backward"])
                passes.declared.append(algorithm.passes_per_step())

        handle = model.register_forward_hook(count_forward)
        algorithm.compute_gradient = counted_step  # this instance only
        try:
            return original_epoch(algorithm, *args, **kwargs)
        finally:
            handle.remove()
            del algorithm.compute_gradient

    run_module.train_one_epoch = counted_epoch
    try:
        yield passes
    finally:
        run_module.train_one_epoch = original_epoch


def check_declared_passes(name: str, options: Mapping[str, Any], out: Path) -> None:
    """Each step makes as many forward passes, each followed by a backward pass, as
    ``passes_per_step()`` declares (what the cost benchmark charges it)."""
    with counting_passes() as passes:
        finetune(contract_config(name, options, epochs=1), out, progress=False)
    steps = -(-N_TRAIN // BATCH_SIZE)
    assert len(passes.forward) == steps, f"{name}: {len(passes.forward)} steps, not {steps}"
    assert passes.forward == passes.declared, (
        f"{name}: forward passes per step {passes.forward}, declared {passes.declared}"
    )
    assert passes.backward == passes.declared, (
        f"{name}: backward passes per step {passes.backward}, declared {passes.declared}"
    )
