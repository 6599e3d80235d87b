"""The measure registry: registration, options, requirements, plugins, results."""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

import pytest
import torch

from genmeasures import _registry
from genmeasures.errors import MeasureError, OptionError
from genmeasures.measures import (
    MEASURES,
    LayerValue,
    MeasureContext,
    MeasureResult,
    get_measure,
    list_measures,
    register_measure,
    resolve_requests,
)


@pytest.fixture
def typed_measure():
    @register_measure("typed", summary="test", needs=("init",), stochastic=True)
    def typed(
        ctx: MeasureContext,
        *,
        k: int = 1,
        sigma: Annotated[float, "noise level"] = 0.1,
        mode: Literal["a", "b"] = "a",
        exact: bool = False,
        layers: str | list[str] | None = None,
    ) -> MeasureResult:
        return MeasureResult(value=k * sigma)

    yield typed
    MEASURES.remove("typed")


def test_builtin_measures_are_listed() -> None:
    names = [spec.name for spec in list_measures()]
    assert {"distance_from_init", "layerwise_distance"} <= set(names)
    spec = get_measure("distance_from_init")
    assert spec.needs == {"init"} and spec.paper and spec.summary
    assert spec.options["norm"].default == "frobenius"
    assert "one of frobenius|mars" in spec.options["norm"].type_name


def test_options_are_validated_and_coerced(typed_measure) -> None:
    spec = typed_measure
    assert spec.resolve({}) == {"k": 1, "sigma": 0.1, "mode": "a", "exact": False, "layers": None}
    assert spec.resolve({"k": 3.0, "sigma": 1, "mode": "B", "layers": ["x"]})["sigma"] == 1.0
    assert spec.options["sigma"].help == "noise level"
    with pytest.raises(OptionError, match=r"unknown option 'sgima' .* valid options: k \(int\)"):
        spec.resolve({"sgima": 1})
    for bad in (
        {"k": 1.5},
        {"k": True},
        {"sigma": "x"},
        {"mode": "c"},
        {"exact": 1},
        {"layers": 3},
    ):
        with pytest.raises(OptionError, match=f"measure 'typed': {next(iter(bad))} must be "):
            spec.resolve(bad)


def test_result_metadata_is_filled_in(typed_measure) -> None:
    ctx = MeasureContext(weights={"w": torch.ones(1, 1)}, init={"w": torch.ones(1, 1)}, seed=7)
    result = typed_measure(ctx, k=2)
    assert result.measure == "typed" and result.value == pytest.approx(0.2)
    assert result.seed == 7 and result.options["k"] == 2 and result.seconds >= 0


def test_missing_requirements_are_named() -> None:
    ctx = MeasureContext(weights={"w": torch.ones(2, 2)})
    with pytest.raises(MeasureError, match=r"'distance_from_init' needs an init checkpoint"):
        get_measure("distance_from_init")(ctx)


def test_unknown_measure_lists_the_valid_ones() -> None:
    with pytest.raises(OptionError, match=r"unknown measure 'hessian_trce'; valid: .*distance"):
        resolve_requests(["hessian_trce"])
    with pytest.raises(OptionError, match="no measures selected"):
        resolve_requests([])


def test_requests_from_specs_and_mappings() -> None:
    ((spec, options),) = resolve_requests(["distance_from_init:norm=mars,layers=[fc.*,head.*]"])
    assert spec.name == "distance_from_init"
    assert options == {"norm": "mars", "layers": ["fc.*", "head.*"]}
    requests = resolve_requests({"layerwise_distance": None, "distance_from_init": {}})
    assert [s.name for s, _ in requests] == ["layerwise_distance", "distance_from_init"]
    with pytest.raises(OptionError, match="bad option 'norm' in spec"):
        resolve_requests(["distance_from_init:norm"])


def test_registration_rules() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_measure("distance_from_init", summary="x")(lambda ctx: None)
    with pytest.raises(ValueError, match="unknown needs"):
        register_measure("x", summary="x", needs=("gpu",))
    with pytest.raises(TypeError, match="needs a default"):

        @register_measure("no_default", summary="x")
        def no_default(ctx: MeasureContext, *, k: int) -> MeasureResult: ...

    assert "no_default" not in MEASURES


def test_measures_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    from genmeasures.measures.registry import MeasureSpec

    def plugin(ctx: MeasureContext) -> MeasureResult:
        return MeasureResult(value=42.0)

    spec = MeasureSpec("plugin_measure", plugin, "from a plugin", "", frozenset(), {})

    class FakeEntryPoint:
        name = "plugin_measure"

        def load(self):
            return spec

    registry = _registry.Registry("measure", entry_point_group="genmeasures.measures")
    monkeypatch.setattr(_registry, "entry_points", lambda group: [FakeEntryPoint()])
    assert registry.get("plugin_measure") is spec
    assert registry.names() == ["plugin_measure"]


def test_result_json_round_trip_keeps_nan_and_inf() -> None:
    result = MeasureResult(
        value=1.5,
        stderr=math.nan,
        layers=(LayerValue("a", 2.0, 0.1, {"relative": math.inf}),),
        extras={"slope": -math.inf},
        measure="m",
        options={"k": 1, "layers": None},
        seed=3,
        n_samples=10,
        seconds=0.5,
        n_matvecs=4,
    )
    again = MeasureResult.from_json(result.to_json())
    assert again.rows()[1:] == result.rows()[1:]
    assert math.isnan(again.stderr) and again.layers[0].extras["relative"] == math.inf


def test_spec_parsing() -> None:
    from genmeasures._specs import parse_model_spec, parse_spec

    assert parse_spec("digits:split=test,classes=[5,6],n=3,x=1.5,f=false,z=none") == (
        "digits",
        {"split": "test", "classes": [5, 6], "n": 3, "x": 1.5, "f": False, "z": None},
    )
    assert parse_spec("name") == ("name", {})
    assert parse_model_spec("resnet18:num_classes=5") == ("resnet18", {"num_classes": 5})
    assert parse_model_spec("pkg.models:net") == ("pkg.models:net", {})
    assert parse_model_spec("pkg.models:net:width=2,h=[8,8]") == (
        "pkg.models:net",
        {"width": 2, "h": [8, 8]},
    )
    with pytest.raises(OptionError, match="empty name"):
        parse_spec(":a=1")


def test_rows_are_the_same_computed_or_read_back_from_the_cache() -> None:
    """The cache stores extras with sorted keys; rows come out in one order either way."""
    from genmeasures.measures import MeasureResult
    from genmeasures.measures.results import LayerValue

    fresh = MeasureResult(
        value=1.0,
        extras={"zeta": 2.0, "alpha": 3.0},
        layers=(LayerValue("w", 4.0, extras={"sqrt_scaled": 2.0, "affine": 1.0}),),
        measure="m",
    )
    read_back = MeasureResult.from_json(json.loads(json.dumps(fresh.to_json(), sort_keys=True)))

    def key(rows):
        return [(r["measure"], r["layer"], r["value"]) for r in rows]

    assert key(fresh.rows()) == key(read_back.rows())
    assert [r["measure"] for r in fresh.rows()] == [
        "m",
        "m.alpha",
        "m.zeta",
        "m",
        "m.affine",
        "m.sqrt_scaled",
    ]
