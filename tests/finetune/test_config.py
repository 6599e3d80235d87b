"""config_difference: when a run directory's recorded config is the same run as a config."""

from __future__ import annotations

import copy

from genmeasures.finetune import config_from_mapping
from genmeasures.finetune.config import config_difference

RAW = {
    "model": {"name": "mlp", "kwargs": {"hidden": [8], "extra": {"depth": 2}}},
    "data": {"noise": "symmetric", "noise_rate": 0.1},
    "train": {"epochs": 3, "lr": 0.1},
    "algorithm": {"name": "erm"},
}


def test_the_same_config_and_more_epochs_are_the_same_run() -> None:
    config = config_from_mapping(RAW)
    assert config_difference(config.to_json(), config) is None
    longer = copy.deepcopy(RAW)
    longer["train"]["epochs"] = 30
    assert config_difference(config.to_json(), config_from_mapping(longer)) is None


def test_the_first_differing_key_is_named_in_nested_sections() -> None:
    saved = config_from_mapping(RAW).to_json()
    other = copy.deepcopy(RAW)
    other["model"]["kwargs"]["extra"]["depth"] = 3
    assert config_difference(saved, config_from_mapping(other)) == "model.kwargs.extra.depth"
    other["train"]["lr"] = 0.5
    other["data"]["noise_rate"] = 0.2
    # Sorted order: data before model before train.
    assert config_difference(saved, config_from_mapping(other)) == "data.noise_rate"


def test_keys_added_since_a_run_was_saved_count_as_their_defaults() -> None:
    config = config_from_mapping(RAW)
    saved = copy.deepcopy(RAW)  # as an earlier version wrote it: no threads, seed, workers...
    assert "threads" not in saved["train"]
    assert config_difference(saved, config) is None
    saved["train"]["lr"] = 0.2
    assert config_difference(saved, config) == "train.lr"


def test_a_saved_config_that_no_longer_validates_reports_its_odd_key() -> None:
    config = config_from_mapping(RAW)
    removed = config.to_json()
    removed["train"]["old_option"] = 1
    assert config_difference(removed, config) == "train.old_option"
    not_a_section = {**config.to_json(), "train": "fast"}
    assert config_difference(not_a_section, config) == "train"
