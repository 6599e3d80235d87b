"""Every registered fine-tuning algorithm against the algorithm contracts (see
algorithm_contract.py): registering an algorithm adds it to every test here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contracts.algorithm_contract import (
    CONTRACT_OPTIONS,
    check_declared_passes,
    check_one_step,
    check_resume_is_identical,
    contract_options,
    registered_algorithm_names,
)

ALGORITHM_NAMES = registered_algorithm_names()


def test_the_contract_options_name_registered_algorithms() -> None:
    stale = sorted(set(CONTRACT_OPTIONS) - set(ALGORITHM_NAMES))
    assert not stale, f"CONTRACT_OPTIONS names no registered algorithm (remove them): {stale}"


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_one_step_trains(name: str, tmp_path: Path) -> None:
    check_one_step(name, contract_options(name), tmp_path / "run")


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_resume_equals_an_uninterrupted_run(name: str, tmp_path: Path) -> None:
    check_resume_is_identical(name, contract_options(name), tmp_path)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_declared_pass_count_is_what_a_step_does(name: str, tmp_path: Path) -> None:
    check_declared_passes(name, contract_options(name), tmp_path / "run")
