"""The built-in regime's memorization check: erm must fit the noisy labels it is trained on."""

from __future__ import annotations

import pandas as pd
import pytest

from genmeasures.finetune import config_from_mapping
from genmeasures.reproduce.regime import (
    MEMORIZED,
    QUICK_MODEL,
    SOURCE_SEED,
    memorization,
    quick_base,
    quick_pretrain,
)


def _metrics(runs: dict[str, tuple[str, float, list[float], list[float]]]) -> pd.DataFrame:
    """A metrics table (as ``metrics_table`` builds it): run -> (algorithm, noise rate, train
    accuracy per epoch, test accuracy per epoch)."""
    rows = []
    for run, (name, rate, train, test) in runs.items():
        for epoch, (tr, te) in enumerate(zip(train, test, strict=True)):
            rows.append(
                {
                    "run": run,
                    "epoch": epoch,
                    "train_acc": tr,
                    "test_acc": te,
                    "algorithm.name": name,
                    "data.noise_rate": rate,
                }
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # order must not matter


def test_erm_that_fits_the_noise_and_falls_from_its_peak_memorizes() -> None:
    table = _metrics(
        {
            "a": ("erm", 0.4, [0.2, 0.7, 1.0], [0.3, 0.8, 0.6]),
            "b": ("erm", 0.4, [0.2, 0.8, 0.96], [0.3, 0.7, 0.65]),
            "c": ("regsl", 0.4, [0.2, 0.5, 0.6], [0.3, 0.8, 0.9]),  # not erm: ignored
            "d": ("erm", 0.0, [0.2, 0.5, 0.6], [0.3, 0.8, 0.9]),  # clean: no check
        }
    )
    (check,) = memorization(table)
    assert check.memorizes
    assert (check.noise_rate, check.runs, check.falling) == (0.4, 2, 2)
    assert check.final_train_acc == pytest.approx(0.96)
    assert check.peak_test_acc == pytest.approx(0.75)
    assert check.final_test_acc == pytest.approx(0.625)
    assert "memorizes" in str(check) and "40% label noise (2 runs)" in str(check)


@pytest.mark.parametrize(
    ("train", "test"),
    [
        ([0.2, 0.7, MEMORIZED - 0.01], [0.3, 0.8, 0.6]),  # does not fit the noise
        ([0.2, 0.7, 1.0], [0.3, 0.5, 0.8]),  # test accuracy still at its peak at the end
    ],
)
def test_one_run_that_does_not_memorize_fails_the_check(train, test) -> None:
    table = _metrics(
        {"good": ("erm", 0.6, [0.2, 0.8, 1.0], [0.3, 0.7, 0.5]), "bad": ("erm", 0.6, train, test)}
    )
    (check,) = memorization(table)
    assert not check.memorizes
    assert "does NOT memorize" in str(check)


def test_no_noisy_erm_run_means_no_check() -> None:
    assert memorization(pd.DataFrame()) == []
    table = _metrics({"a": ("sam", 0.4, [0.1, 1.0], [0.2, 0.1])})
    assert memorization(table) == []


def test_runs_with_frozen_blocks_are_not_asked_to_memorize() -> None:
    table = _metrics(
        {
            "whole": ("erm", 0.4, [0.2, 1.0], [0.8, 0.6]),
            "frozen": ("erm", 0.4, [0.2, 0.3], [0.8, 0.9]),
        }
    )
    table["train.freeze"] = (table["run"] == "frozen").astype(int) * 3
    (check,) = memorization(table)
    assert check.runs == 1 and check.memorizes


def test_the_regime_configs_validate_and_keep_the_source_seed_apart() -> None:
    pretrain = config_from_mapping(quick_pretrain())
    assert pretrain.model.seed == pretrain.train.seed == SOURCE_SEED
    assert pretrain.data.train.startswith("digits10-source")
    base = config_from_mapping(quick_base(data={"noise": "symmetric", "noise_rate": 0.4}))
    assert base.model.name == QUICK_MODEL["name"] and base.data.train.startswith("digits10-target")
    assert base.train.schedule == "cosine" and base.train.epochs == 30
    dropped = quick_base(data={"test": None})
    assert "test" not in dropped["data"]


def test_a_figure_with_noisy_erm_runs_writes_the_check_into_its_claim(tmp_path) -> None:
    """The check is printed by the study and written under the claim, one line per rate."""
    from genmeasures.reproduce import reproduce

    result = reproduce(
        "label-noise-accuracy", "tiny", tmp_path / "fig", runs=tmp_path / "runs", progress=False
    )
    lines = (tmp_path / "fig" / "label-noise-accuracy.claim.txt").read_text().splitlines()
    checks = [line for line in lines if line.startswith("regime check: ")]
    assert [c.split(" label noise")[0] for c in checks] == [
        "regime check: erm at 20%",
        "regime check: erm at 80%",
    ]
    assert result.claim is not None


def test_the_default_study_is_in_the_regime_and_every_run_is_runnable() -> None:
    """The README's main command: a method x noise x seed sweep in the regime, every config
    valid (datasets load, the model builds, the measures resolve) without training."""
    from genmeasures.finetune.run import check_runnable
    from genmeasures.measures.registry import resolve_requests
    from genmeasures.reproduce import DEFAULT_STUDY
    from genmeasures.sweeps import expand

    study = DEFAULT_STUDY
    assert study.pretrain == quick_pretrain()
    points = expand(study.base, study.grid, study.seeds, seed_keys=study.seed_keys)
    assert len(study.seeds) >= 3
    assert len(points) == len(study.grid["algorithm"]) * 2 * len(study.seeds)
    rates = {p.config.data.noise_rate for p in points}
    assert rates == {0.0, 0.4}
    assert {p.config.data.noise_seed for p in points} == set(study.seeds)  # paired, per seed
    memo: dict = {}
    for point in points[:: len(study.seeds)]:
        config = point.config
        assert config.model.name == QUICK_MODEL["name"]
        pretrained = config.model.pretrained
        assert pretrained == ""  # set by the study after pretraining
        check_runnable(config, memo)
    assert len(resolve_requests(list(study.measures))) == len(study.measures)
