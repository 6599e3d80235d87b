"""Every registered measure against the measure contracts (see measure_contract.py).

The parametrization is read from the registry at collection time: registering a measure
(built in, or through the ``genmeasures.measures`` entry-point group) adds it to every test
here, and one missing from ``CONTRACT_OPTIONS`` fails instead of being skipped.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

from genmeasures.errors import GenMeasuresError
from genmeasures.measures import get_measure
from tests.cases import Case
from tests.contracts.measure_contract import (
    CHEAPEST_CASE,
    CONTRACT_OPTIONS,
    NORMALIZED_CASE,
    check_cache_round_trip,
    check_deterministic,
    check_metadata,
    check_needs_are_complete,
    check_no_side_effects,
    contract_options,
    registered_measure_names,
    score_case,
)

MEASURE_NAMES = registered_measure_names()


@pytest.fixture(autouse=True)
def quiet_layer_notes():
    """The default layers' notes about what they leave out are expected on these models."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the default layers")
        yield


def test_the_contract_table_is_the_registry() -> None:
    """Every registered measure has contract options, and every entry is a measure."""
    missing = sorted(set(MEASURE_NAMES) - set(CONTRACT_OPTIONS))
    stale = sorted(set(CONTRACT_OPTIONS) - set(MEASURE_NAMES))
    assert not missing, f"measures without CONTRACT_OPTIONS (add them): {missing}"
    assert not stale, f"CONTRACT_OPTIONS names no registered measure (remove them): {stale}"
    for name in MEASURE_NAMES:
        get_measure(name).resolve(CONTRACT_OPTIONS[name])  # the cheap options are valid


@pytest.mark.parametrize("name", MEASURE_NAMES)
def test_metadata_is_complete(name: str) -> None:
    check_metadata(get_measure(name))


@pytest.mark.parametrize("name", MEASURE_NAMES)
def test_runs_given_only_what_it_declares_it_needs(name: str) -> None:
    check_needs_are_complete(get_measure(name), contract_options(name), CHEAPEST_CASE)


@pytest.mark.parametrize("name", MEASURE_NAMES)
def test_is_deterministic(name: str) -> None:
    check_deterministic(get_measure(name), contract_options(name), CHEAPEST_CASE)


@pytest.mark.parametrize("name", MEASURE_NAMES)
def test_leaves_the_model_as_found(name: str) -> None:
    check_no_side_effects(get_measure(name), contract_options(name), NORMALIZED_CASE)


@pytest.mark.parametrize("name", MEASURE_NAMES)
def test_results_round_trip_through_the_score_cache(name: str, tmp_path: Path) -> None:
    check_cache_round_trip(get_measure(name), contract_options(name), CHEAPEST_CASE, tmp_path)


@pytest.mark.parametrize("name", MEASURE_NAMES)
def test_runs_on_every_case(name: str, case: Case) -> None:
    """On every model x loss x layout x dtype x device of the table: a tidy table whose
    layers are the model's tensors, finite or a documented NaN/inf, or a clear refusal."""
    built = case.build()
    try:
        table = score_case(built, name, contract_options(name))
    except GenMeasuresError:
        return  # a clear refusal (e.g. a loss the measure does not support) is allowed
    assert len(table) >= 1 and (table.measure.str.split(".").str[0] == name).all()
    assert set(table.layer) - {""} <= set(built.model.state_dict()), "unknown layer names"
    whole = table[(table.measure == name) & (table.layer == "")]
    assert len(whole) == 1, "exactly one whole-model row"
    value = float(whole.value.iloc[0])
    assert not math.isnan(value), f"{name} is NaN on {case.id}"
    spec = get_measure(name)
    if "data" in spec.needs:
        assert (whole.n_samples == len(built.data)).all()
