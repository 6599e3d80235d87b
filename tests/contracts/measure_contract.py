"""What every registered measure must do, as check functions that raise AssertionError.

The tests in ``test_measures.py`` apply each check to every measure in the registry; the
meta-tests in ``test_broken_plugins.py`` apply them to deliberately broken measures and expect
them to fail. Each check runs the measure once or twice on the cheapest case of the table
(:mod:`tests.cases`) with the cheap options of :data:`CONTRACT_OPTIONS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

import genmeasures
from genmeasures.errors import OptionError
from genmeasures.measures import MEASURES, MeasureContext, MeasureSpec, list_measures
from genmeasures.measures.registry import NEEDS
from genmeasures.scoring.cache import ResultCache, result_key
from tests.cases import BuiltCase, Case, make_case

# Options that keep each measure to a few milliseconds on the tiny cases. Every registered
# measure must have an entry (an empty one means "its defaults are cheap"): a measure missing
# here fails its contracts instead of slipping through untested.
CONTRACT_OPTIONS: dict[str, dict[str, Any]] = {
    "distance_bound": {},
    "distance_from_init": {},
    "hessian_bound": {"quadrature_steps": 5},
    "hessian_density": {"steps": 5},
    "hessian_distance": {"quadrature_steps": 5},
    "hessian_eigenvalue": {"max_matvecs": 5},
    "hessian_trace": {"max_matvecs": 6},
    "layerwise_distance": {},
    "noise_stability": {"draws": 2},
    "pacbayes_trace_bound": {"max_matvecs": 6, "batch_size": 4},
}

# The cheapest case, and the cheapest one with batch normalization and dropout (whose
# training flags and running statistics a measure must leave as it found them).
CHEAPEST_CASE = make_case()
NORMALIZED_CASE = make_case(model="cnn")


def registered_measure_names() -> list[str]:
    """The measures ``genmeasures measures`` lists: built-ins and entry points."""
    return [spec.name for spec in list_measures()]


def contract_options(name: str) -> dict[str, Any]:
    """The cheap options of measure ``name``; fails for a measure missing from the table."""
    assert name in CONTRACT_OPTIONS, (
        f"measure {name!r} has no entry in tests/contracts/measure_contract.py "
        "CONTRACT_OPTIONS: add its cheap options (or {} if its defaults are cheap) so that "
        "its contracts run"
    )
    return dict(CONTRACT_OPTIONS[name])


@contextmanager
def registered_measure(spec: MeasureSpec) -> Iterator[MeasureSpec]:
    """Keep ``spec`` (already registered by ``register_measure``) only inside the block."""
    try:
        yield spec
    finally:
        MEASURES.remove(spec.name)


def score_case(
    built: BuiltCase, name: str, options: Mapping[str, Any], seed: int = 0
) -> pd.DataFrame:
    """The table ``genmeasures.score`` gives for one measure on a built case."""
    return genmeasures.score(
        built.model,
        built.init,
        built.data,
        {name: dict(options)},
        loss=built.loss,
        n_train=built.n_train,
        seed=seed,
        device=built.device,
    )


def without_timing(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns="seconds").reset_index(drop=True)


def assert_same_table(first: pd.DataFrame, second: pd.DataFrame, what: str) -> None:
    """Bitwise-equal tables (NaN equal to NaN), ignoring the wall-clock column."""
    first, second = without_timing(first), without_timing(second)
    if first.shape == second.shape and (first.columns == second.columns).all():
        detail = first.compare(second)
    else:
        detail = f"{first}\n---\n{second}"
    assert first.equals(second), f"{what}:\n{detail}"


# --- metadata ---------------------------------------------------------------------------------


def check_metadata(spec: MeasureSpec) -> None:
    """A listing can describe the measure: summary, paper, needs, version, documented options
    whose defaults are valid values of their own types."""
    assert spec.summary.strip(), f"{spec.name}: empty summary"
    assert spec.paper.strip(), f"{spec.name}: no paper (say where the measure comes from)"
    assert isinstance(spec.needs, frozenset) and spec.needs <= set(NEEDS), (
        f"{spec.name}: needs {sorted(spec.needs)} not all in {NEEDS}"
    )
    assert isinstance(spec.version, int) and spec.version >= 1, f"{spec.name}: bad version"
    assert isinstance(spec.stochastic, bool), f"{spec.name}: stochastic must be a bool"
    for option in spec.options.values():
        assert option.help.strip(), (
            f"{spec.name}: option {option.name!r} has no help text "
            "(write it in its annotation: Annotated[type, 'help'])"
        )
        assert option.type_name, f"{spec.name}: option {option.name!r} has no describable type"
    try:
        defaults = spec.resolve({name: option.default for name, option in spec.options.items()})
    except OptionError as exc:
        raise AssertionError(f"{spec.name}: a default is not a valid value: {exc}") from exc
    assert defaults == spec.resolve(), f"{spec.name}: a default changes under validation"
    json.dumps(defaults)  # options go into cache keys: they must be JSON values


# --- needs ----------------------------------------------------------------------------------


def context_with_only_its_needs(spec: MeasureSpec, built: BuiltCase, seed: int) -> MeasureContext:
    """A context holding only what ``spec.needs`` declares (the rest None)."""
    needs = spec.needs
    uses_model = bool(needs & {"model", "data", "curvature"})
    model = built.model
    return MeasureContext(
        weights={k: v.detach() for k, v in model.state_dict().items()},
        init={k: v.detach() for k, v in built.init.state_dict().items()}
        if "init" in needs
        else None,
        model_factory=(lambda: model) if uses_model else None,
        data=built.data if "data" in needs else None,
        loss=built.loss,
        n_train=built.n_train if "n_train" in needs else None,
        seed=seed,
        device=built.device,
    )


def check_needs_are_complete(spec: MeasureSpec, options: Mapping[str, Any], case: Case) -> None:
    """The measure runs on a context holding only what it declares it needs (the cache key
    includes the data, init, seed and n_train only for measures that declare them)."""
    built = case.build()
    ctx = context_with_only_its_needs(spec, built, seed=0)
    try:
        result = spec(ctx, **options)
    except Exception as exc:
        raise AssertionError(
            f"{spec.name} fails given only its declared needs {sorted(spec.needs)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    assert isinstance(float(result.value), float), f"{spec.name}: value is not a number"


# --- determinism ----------------------------------------------------------------------------


def check_deterministic(spec: MeasureSpec, options: Mapping[str, Any], case: Case) -> None:
    """The same seed gives the same table, whatever torch's global generator holds; a measure
    not declared ``stochastic`` gives the same table for every seed (its cache key leaves the
    seed out); a stochastic one records its seed."""
    tables = []
    for global_seed in (123, 456):
        built = case.build()
        torch.manual_seed(global_seed)
        tables.append(score_case(built, spec.name, options, seed=0))
    assert_same_table(*tables, f"{spec.name}: two runs with seed 0 differ")
    other_seed = score_case(case.build(), spec.name, options, seed=1)
    if spec.stochastic:
        assert (tables[0].score_seed == 0).all() and (other_seed.score_seed == 1).all(), (
            f"{spec.name}: a stochastic measure's rows must record its seed"
        )
    else:
        assert_same_table(
            tables[0],
            other_seed,
            f"{spec.name}: not declared stochastic, but seeds 0 and 1 give different tables",
        )


# --- side effects ----------------------------------------------------------------------------


@dataclass
class ModelSnapshot:
    """Everything about a model that a measure must leave as it found it."""

    parameters: dict[str, tuple[int, torch.Tensor, bool, torch.Tensor | None]]
    buffers: dict[str, torch.Tensor]
    training: dict[str, bool]
    hooks: dict[str, tuple[int, ...]]
    grad_enabled: bool

    @classmethod
    def take(cls, model: nn.Module) -> ModelSnapshot:
        return cls(
            parameters={
                name: (
                    id(p),
                    p.detach().clone(),
                    p.requires_grad,
                    None if p.grad is None else p.grad.detach().clone(),
                )
                for name, p in model.named_parameters()
            },
            buffers={name: b.detach().clone() for name, b in model.named_buffers()},
            training={name: m.training for name, m in model.named_modules()},
            hooks={name: hook_counts(m) for name, m in model.named_modules()},
            grad_enabled=torch.is_grad_enabled(),
        )

    def differences(self, model: nn.Module) -> list[str]:
        """What differs in ``model`` now (empty: nothing)."""
        now = ModelSnapshot.take(model)
        found = []
        if now.parameters.keys() != self.parameters.keys():
            found.append("the set of parameters changed")
        for name, (ident, value, requires_grad, grad) in self.parameters.items():
            if name not in now.parameters:
                continue
            ident2, value2, requires_grad2, grad2 = now.parameters[name]
            if ident2 != ident:
                found.append(f"parameter {name} was replaced by another tensor")
            if value2.dtype != value.dtype or value2.device != value.device:
                found.append(f"parameter {name} moved to {value2.dtype} on {value2.device}")
            elif not torch.equal(value2, value):
                found.append(f"parameter {name} changed")
            if requires_grad2 != requires_grad:
                found.append(f"parameter {name}.requires_grad became {requires_grad2}")
            if (grad is None) != (grad2 is None):
                found.append(f"parameter {name}.grad became {'None' if grad2 is None else 'set'}")
            elif grad is not None and not torch.equal(grad, grad2):
                found.append(f"parameter {name}.grad changed")
        if now.buffers.keys() != self.buffers.keys():
            found.append("the set of buffers changed")
        for name, value in self.buffers.items():
            if name in now.buffers and not torch.equal(now.buffers[name], value):
                found.append(f"buffer {name} changed")
        for name, flag in self.training.items():
            if now.training.get(name) != flag:
                found.append(f"module {name or '(root)'}.training became {now.training.get(name)}")
        for name, counts in self.hooks.items():
            if now.hooks.get(name) != counts:
                found.append(f"module {name or '(root)'} has hooks left registered")
        if now.grad_enabled != self.grad_enabled:
            found.append(f"torch.is_grad_enabled() became {now.grad_enabled}")
        return found


def hook_counts(module: nn.Module) -> tuple[int, ...]:
    return (
        len(module._forward_hooks),
        len(module._forward_pre_hooks),
        len(module._backward_hooks),
        len(module._backward_pre_hooks),
    )


def prepare_lived_in_model(model: nn.Module) -> None:
    """Give the model the state a model handed over mid-training has: training mode, some
    parameters with gradients left in ``.grad``, one frozen parameter."""
    model.train()
    generator = torch.Generator().manual_seed(5)
    parameters = list(model.parameters())
    for index, parameter in enumerate(parameters):
        if index % 2 == 0:
            grad = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            parameter.grad = grad.to(parameter.device)
    parameters[-1].requires_grad_(False)


def check_no_side_effects(spec: MeasureSpec, options: Mapping[str, Any], case: Case) -> None:
    """Scoring leaves the model as it found it (parameters, buffers, requires_grad, .grad,
    training flags, hooks, grad mode); scoring it again, and again in eval mode, gives the
    same table (a measure evaluates the network, not its dropout masks or batch statistics)."""
    built = case.build()
    prepare_lived_in_model(built.model)
    before = ModelSnapshot.take(built.model)
    first = score_case(built, spec.name, options)
    changed = before.differences(built.model)
    assert not changed, f"{spec.name} left side effects on the model: {'; '.join(changed)}"
    second = score_case(built, spec.name, options)
    assert_same_table(first, second, f"{spec.name}: scoring the same model twice differs")
    built.model.eval()
    in_eval_mode = score_case(built, spec.name, options)
    assert_same_table(first, in_eval_mode, f"{spec.name}: depends on the model's training mode")


# --- the score cache --------------------------------------------------------------------------


def check_cache_round_trip(
    spec: MeasureSpec, options: Mapping[str, Any], case: Case, cache_dir: Path
) -> None:
    """A result stored in the score cache and read back gives the same rows and metadata."""
    built = case.build()
    ctx = context_with_only_its_needs(spec, built, seed=0)
    resolved = spec.resolve(options)
    result = spec(ctx, **resolved)
    inputs = {
        "checkpoint": "checkpoint-digest",
        "init": "init-digest",
        "data": built.data.fingerprint,
        "n_samples": len(built.data),
        "model": case.model,
        "order": list(ctx.weights),
        "device": built.device.type,
        "seed": 0,
        "n_train": built.n_train,
    }
    try:
        key = result_key(spec, resolved, inputs)
        cache = ResultCache(cache_dir)
        cache.put(key, result)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{spec.name}: its result cannot be cached: {exc}") from exc
    back = cache.get(key)
    assert back is not None, f"{spec.name}: the cached result cannot be read back"
    assert_same_table(
        pd.DataFrame(result.rows()),
        pd.DataFrame(back.rows()),
        f"{spec.name}: rows read back from the cache differ from the computed ones",
    )
    for field in ("measure", "seed", "n_samples", "n_matvecs"):
        assert getattr(back, field) == getattr(result, field), f"{spec.name}: {field} differs"
    assert json.loads(json.dumps(dict(result.options))) == dict(back.options), (
        f"{spec.name}: options read back from the cache differ"
    )
