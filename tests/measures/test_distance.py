"""distance_from_init and layerwise_distance against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genmeasures.errors import OptionError
from genmeasures.measures import MeasureContext, get_measure


def make_pair(seed: int = 0) -> tuple[dict, dict]:
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float32)

    init = {
        "conv.weight": rand(4, 2, 3, 3),
        "conv.bias": rand(4),
        "bn.weight": rand(4),
        "bn.running_mean": rand(4),
        "fc1.weight": rand(6, 36),
        "fc1.bias": rand(6),
        "head.weight": rand(3, 6),
        "head.bias": rand(3),
    }
    scales = {"conv": 0.01, "bn": 0.5, "fc1": 0.1, "head": 1.0}
    weights = {k: v + scales[k.split(".")[0]] * rand(*v.shape) for k, v in init.items()}
    return weights, init


def numpy_displacements(weights: dict, init: dict, names: list[str]) -> list[np.ndarray]:
    return [weights[n].double().numpy() - init[n].double().numpy() for n in names]


DEFAULT_LAYERS = ["conv.weight", "fc1.weight", "head.weight"]


def test_frobenius_distance_matches_hand_computation() -> None:
    weights, init = make_pair()
    result = get_measure("distance_from_init")(MeasureContext(weights=weights, init=init))
    norms = [np.sqrt((v**2).sum()) for v in numpy_displacements(weights, init, DEFAULT_LAYERS)]
    assert [lv.layer for lv in result.layers] == DEFAULT_LAYERS
    np.testing.assert_allclose([lv.value for lv in result.layers], norms, rtol=1e-12)
    assert result.value == pytest.approx(np.sqrt(sum(n**2 for n in norms)), rel=1e-12)
    assert result.extras["sum_layers"] == pytest.approx(sum(norms), rel=1e-12)
    assert math.isnan(result.stderr) and result.seed is None and result.n_matvecs == 0


def test_mars_distance_is_max_row_l1_against_loops() -> None:
    weights, init = make_pair(1)
    result = get_measure("distance_from_init")(
        MeasureContext(weights=weights, init=init), norm="mars"
    )
    expected = []
    for v in numpy_displacements(weights, init, DEFAULT_LAYERS):
        best = 0.0
        for unit in range(v.shape[0]):
            best = max(best, sum(abs(x) for x in v[unit].ravel()))
        expected.append(best)
    np.testing.assert_allclose([lv.value for lv in result.layers], expected, rtol=1e-12)
    assert result.value == pytest.approx(sum(expected), rel=1e-12)
    assert result.extras["max_layer"] == pytest.approx(max(expected), rel=1e-12)


def test_layer_glob_selects_biases_and_norm_parameters_but_not_running_stats() -> None:
    weights, init = make_pair()
    ctx = MeasureContext(weights=weights, init=init)
    result = get_measure("distance_from_init")(ctx, layers="*.bias")
    assert [lv.layer for lv in result.layers] == ["conv.bias", "fc1.bias", "head.bias"]
    result = get_measure("distance_from_init")(ctx, layers=["bn.*", "head.weight"])
    assert [lv.layer for lv in result.layers] == ["bn.weight", "head.weight"]
    with pytest.raises(OptionError, match=r"layer glob 'layer4\.\*' matches no parameter"):
        get_measure("distance_from_init")(ctx, layers="layer4.*")


def test_layerwise_distance_relative_and_depth_slope() -> None:
    weights, init = make_pair(2)
    result = get_measure("layerwise_distance")(MeasureContext(weights=weights, init=init))
    displacements = numpy_displacements(weights, init, DEFAULT_LAYERS)
    norms = np.array([np.sqrt((v**2).sum()) for v in displacements])
    init_norms = np.array([np.sqrt((init[n].double().numpy() ** 2).sum()) for n in DEFAULT_LAYERS])
    np.testing.assert_allclose([lv.value for lv in result.layers], norms, rtol=1e-12)
    np.testing.assert_allclose(
        [lv.extras["relative"] for lv in result.layers], norms / init_norms, rtol=1e-12
    )
    assert result.value == pytest.approx(norms.sum(), rel=1e-12)
    slope = np.polyfit(np.arange(1, 4), np.log(norms), 1)[0]
    assert result.extras["depth_slope"] == pytest.approx(slope, rel=1e-10)
    assert slope > 0  # the test pair moves later layers further


def test_layerwise_distance_frozen_layer_and_zero_init() -> None:
    weights, init = make_pair(3)
    weights["conv.weight"] = init["conv.weight"].clone()  # a frozen layer did not move
    init["head.weight"] = torch.zeros_like(init["head.weight"])
    result = get_measure("layerwise_distance")(MeasureContext(weights=weights, init=init))
    by_layer = {lv.layer: lv for lv in result.layers}
    assert by_layer["conv.weight"].value == 0.0
    assert math.isnan(by_layer["head.weight"].extras["relative"])
    norms = [by_layer[n].value for n in ("fc1.weight", "head.weight")]
    # Only the two moved layers (positions 2 and 3) enter the slope.
    assert result.extras["depth_slope"] == pytest.approx(math.log(norms[1]) - math.log(norms[0]))


def test_identical_weights_give_zero() -> None:
    _, init = make_pair()
    result = get_measure("distance_from_init")(MeasureContext(weights=init, init=init))
    assert result.value == 0.0
    assert math.isnan(
        get_measure("layerwise_distance")(MeasureContext(weights=init, init=init)).extras[
            "depth_slope"
        ]
    )


def test_measure_rows_are_tidy() -> None:
    weights, init = make_pair()
    result = get_measure("layerwise_distance")(MeasureContext(weights=weights, init=init))
    rows = result.rows()
    assert rows[0]["measure"] == "layerwise_distance" and rows[0]["layer"] == ""
    assert {r["measure"] for r in rows} == {
        "layerwise_distance",
        "layerwise_distance.depth_slope",
        "layerwise_distance.relative",
    }
    assert sum(r["layer"] == "fc1.weight" for r in rows) == 2
    assert all(r["options"] == "layers=none" for r in rows)


def test_the_default_layers_say_which_matrices_they_leave_out() -> None:
    """A free nn.Parameter (or a ViT's position embedding) is not a Conv/Linear weight: the
    default layer set leaves it out, and says so."""
    from genmeasures.measures.layers import select_layers

    state = {
        "fc.weight": torch.zeros(3, 4),
        "fc.bias": torch.zeros(3),
        "scale": torch.ones(4, 4),
        "bn.running_mean": torch.zeros(4),
    }
    with pytest.warns(UserWarning, match=r"leave out 1 other matrix tensor\(s\): 'scale'"):
        assert select_layers(state) == ["fc.weight"]
    assert select_layers(state, "all") == ["fc.weight", "fc.bias", "scale"]
