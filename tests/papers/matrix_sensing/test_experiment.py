"""The experiment: one run per (optimizer, seed), written atomically, skipped or resumed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import genmeasures_papers.matrix_sensing.experiment as experiment_module
from genmeasures.errors import OptionError
from genmeasures.reproduce import FigureData
from genmeasures_papers.matrix_sensing import MatrixSensingExperiment
from genmeasures_papers.matrix_sensing.experiment import run_status, train_run

SMALL = MatrixSensingExperiment(
    "small",
    d=6,
    r=2,
    methods=("gd", "wp:sigma=0.05", "nso:sigma=0.05"),
    lr=0.01,
    epochs=30,
    init_scale=0.3,
    seeds=(0, 1),
    log_every=5,
    dtype="float64",
    checkpoint_seconds=0.0,
)


def numbers(data: FigureData) -> pd.DataFrame:
    table = data.metrics.drop(columns=["run", "seconds"])
    return table.sort_values(["label", "seed", "epoch"]).reset_index(drop=True)


class Interrupt(Exception):
    pass


def test_run_writes_one_directory_per_method_and_seed(tmp_path: Path) -> None:
    data = SMALL.run(tmp_path, jobs=1, progress=False)
    assert isinstance(data, FigureData) and data.failures == ()
    assert data.scores.empty and data.long.empty
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == [
        "gd-seed0", "gd-seed1", "nso_sigma0.05-seed0", "nso_sigma0.05-seed1",
        "wp_sigma0.05-seed0", "wp_sigma0.05-seed1",
    ]  # fmt: skip
    metrics = data.metrics
    assert len(metrics) == 6 * 7  # epochs 0, 5, ..., 30
    assert set(metrics["label"]) == {"GD", "WP-GD σ=0.05", "NSO σ=0.05"}
    assert {"epoch", "train_mse", "val_mse", "distance", "method", "seed", "lr"} <= set(metrics)
    assert metrics.groupby(["method", "seed"]).size().eq(7).all()
    info = json.loads((tmp_path / "runs" / "gd-seed0" / "run.json").read_text())
    assert info["complete"] and info["epochs_done"] == 30 and info["config"]["m"] == 60
    assert not list((tmp_path / "runs").rglob("*.tmp"))
    # every optimizer of a seed starts from the same problem and init
    first = metrics[metrics["epoch"] == 0].groupby("seed")["val_mse"].nunique()
    assert first.eq(1).all()


def test_finished_runs_are_not_recomputed(tmp_path: Path, monkeypatch) -> None:
    first = SMALL.run(tmp_path, jobs=1, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*") if p.is_file()}

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiment_module, "train", forbidden)
    again = SMALL.run(tmp_path, jobs=1, progress=False)
    pd.testing.assert_frame_equal(numbers(again), numbers(first))
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_an_interrupted_experiment_resumes_where_it_stopped(tmp_path: Path, monkeypatch) -> None:
    reference = SMALL.run(tmp_path / "reference", jobs=1, progress=False)
    out = tmp_path / "interrupted"
    spec = SMALL.runs()[2]  # nso, seed 0
    seen = []

    def stop_after_15(epochs: int) -> None:
        seen.append(epochs)
        if sum(seen) >= 15:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(spec, out / "runs", on_epochs=stop_after_15)
    assert run_status(spec, out / "runs" / spec.dirname) == "partial"
    partial = pd.read_csv(out / "runs" / spec.dirname / "metrics.csv")
    assert partial["epoch"].tolist() == [0, 5, 10, 15]

    starts = []
    real_train = experiment_module.train

    def spy(problem, optimizer, settings, *, state=None, **kwargs):
        starts.append(0 if state is None else state.epoch)
        return real_train(problem, optimizer, settings, state=state, **kwargs)

    monkeypatch.setattr(experiment_module, "train", spy)
    resumed = SMALL.run(out, jobs=1, progress=False)
    assert sorted(starts) == [0, 0, 0, 0, 0, 15]  # five new runs, one continued from 15
    pd.testing.assert_frame_equal(numbers(resumed), numbers(reference))


def test_a_changed_config_is_run_again(tmp_path: Path) -> None:
    SMALL.run(tmp_path, jobs=1, progress=False)
    longer = replace(SMALL, epochs=40)
    spec = longer.runs()[0]
    assert run_status(spec, tmp_path / "runs" / spec.dirname) == "new"
    data = longer.run(tmp_path, jobs=1, progress=False)
    assert data.metrics.groupby("run")["epoch"].max().eq(40).all()


def test_a_diverging_run_is_reported_once_and_not_retried(tmp_path: Path, monkeypatch) -> None:
    unstable = replace(SMALL, lr=50.0, init_scale=1.0, methods=("gd",), seeds=(0,))
    data = unstable.run(tmp_path, jobs=1, progress=False)
    assert len(data.failures) == 1 and "gd-seed0: GD diverged" in data.failures[0]
    monkeypatch.setattr(experiment_module, "train", lambda *a, **k: pytest.fail("retried"))
    again = unstable.run(tmp_path, jobs=1, progress=False)
    assert again.failures == data.failures


def test_parallel_jobs_give_the_same_numbers(tmp_path: Path) -> None:
    small = replace(SMALL, epochs=10, seeds=(0,), dtype="float64")
    serial = small.run(tmp_path / "serial", jobs=1, progress=False)
    parallel = small.run(tmp_path / "parallel", jobs=2, progress=False)
    pd.testing.assert_frame_equal(numbers(parallel), numbers(serial))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"d": 3, "r": 4}, "rank r=4 exceeds the dimension d=3"),
        ({"lr": 0}, "lr must be a positive number"),
        ({"lr": -0.1}, "lr must be a positive number"),
        ({"methods": ("gd", "sgd")}, "unknown matrix-sensing optimizer 'sgd'"),
        ({"methods": ("nso:sigma=-1",)}, "sigma must be a number >= 0"),
        ({"methods": ()}, "no methods to run"),
        ({"methods": ("gd", "gd")}, "methods repeat an optimizer"),
        ({"seeds": ()}, "seeds must be distinct and non-empty"),
        ({"dtype": "half"}, "dtype must be one of float32, float64"),
        ({"device": "tpu"}, "device must be cpu, cuda or auto"),
        ({"epochs": -5}, "epochs must be a positive integer"),
    ],
)
def test_bad_experiments_raise_one_line_errors(changes, match: str) -> None:
    with pytest.raises(OptionError, match=match) as info:
        replace(SMALL, **changes)
    assert "\n" not in str(info.value)


def test_bad_jobs(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="jobs must be a positive integer"):
        SMALL.run(tmp_path, jobs=0)


def test_an_environment_error_is_reported_but_not_remembered(tmp_path: Path, monkeypatch) -> None:
    def no_cuda(spec):
        raise OptionError("device 'cuda' requested but no CUDA device is available")

    monkeypatch.setattr(experiment_module, "problem_for", no_cuda)
    small = replace(SMALL, methods=("gd",), seeds=(0,))
    data = small.run(tmp_path, jobs=1, progress=False)
    assert data.failures == ("gd-seed0: device 'cuda' requested but no CUDA device is available",)
    assert run_status(small.runs()[0], tmp_path / "runs" / "gd-seed0") == "partial"
    monkeypatch.undo()
    assert small.run(tmp_path, jobs=1, progress=False).failures == ()
