"""The study pipeline on a tiny configuration: outputs, report page, and reuse on a rerun."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from genmeasures.reproduce import Study, run_study

TINY = Study(
    name="tiny study",
    description="two algorithms, clean and noisy, one seed",
    pretrain={
        "model": {"name": "cnn", "kwargs": {"width": 4}},
        "data": {"train": "digits-source:split=train,n_per_class=10", "test": ""},
        "train": {"epochs": 1, "batch_size": 16},
    },
    base={
        "model": {"name": "cnn", "kwargs": {"width": 4}},
        "data": {
            "train": "digits-target:split=train,n_per_class=6",
            "test": "digits-target:split=test",
            "noise": "symmetric",
        },
        "train": {"epochs": 2, "batch_size": 8, "lr": 0.05},
    },
    grid={
        "algorithm": [{"name": "erm"}, {"name": "constraint", "distance": 0.02}],
        "data.noise_rate": [0.0, 0.5],
    },
    seeds=(0,),
    measures=("distance_from_init", "hessian_distance:curvature=hessian"),
    score_samples=20,
)


def test_study_writes_the_report_and_reuses_everything(tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = run_study(TINY, out, jobs=1, progress=False)
    assert not result.failures
    for name in ("pretrained.safetensors", "scores.csv", "correlations.csv", "index.html"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "runs").iterdir())) == 4
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["method"]) == {"erm", "constraint"}
    assert set(scores.epoch) == {2}  # the last checkpoint of each run
    correlations = pd.read_csv(out / "correlations.csv")
    assert set(correlations.measure) == {"distance_from_init", "hessian_distance"}
    page = (out / "index.html").read_text()
    assert "tiny study" in page and "hessian_distance" in page and "<img" in page
    for image in (out / "plots").glob("*.png"):
        assert image.stat().st_size > 1000
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.safetensors")}
    again = run_study(TINY, out, jobs=1, progress=False)
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.safetensors")}
    assert before == after  # no run was trained again
    assert result.computed == 8 and again.computed == 0 and again.cached == 8
    assert again.scores.drop(columns="seconds").equals(result.scores.drop(columns="seconds"))


def test_figure_data_carries_scores_of_every_epoch_and_the_metrics_of_every_run(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    grid = {"algorithm": [{"name": "erm"}], "data.noise_rate": [0.0, 0.5]}
    study = replace(TINY, grid=grid, select="all", report=False)
    data = study.run(tmp_path / "one", jobs=1, progress=False)
    assert sorted(data.scores.epoch) == [1, 1, 2, 2]  # every epoch after the init (the reference)
    assert {"distance_from_init", "hessian_distance", "gap_loss"} <= set(data.scores.columns)
    metrics = data.metrics
    assert len(metrics) == 2 * 3 and set(metrics.epoch) == {0, 1, 2}
    assert {"run", "train_acc", "test_acc", "method", "seed", "data.noise_rate"} <= set(
        metrics.columns
    )
    noisy = metrics[metrics["data.noise_rate"] == 0.5]
    from genmeasures.checkpoints import read_metrics

    on_disk = read_metrics(noisy.run.iloc[0])
    assert noisy.test_acc.tolist() == [row["test_acc"] for row in on_disk]


def test_study_group_runs_each_part_and_labels_its_rows(tmp_path: Path) -> None:
    from dataclasses import replace

    from genmeasures.errors import OptionError
    from genmeasures.reproduce import StudyGroup

    one = replace(TINY, grid={"algorithm": [{"name": "erm"}]}, report=False, seeds=(0,))
    small = replace(one, base={**one.base, "train": {"epochs": 1, "batch_size": 8}})
    group = StudyGroup("two parts", {"two-epochs": one, "one-epoch": small})
    data = group.run(tmp_path / "group", jobs=1, progress=False)
    assert (tmp_path / "group" / "two-epochs" / "pretrained.safetensors").exists()
    assert set(data.scores.study) == {"two-epochs", "one-epoch"}
    epochs = data.metrics.groupby("study").epoch.max().to_dict()
    assert epochs == {"two-epochs": 2, "one-epoch": 1}
    with pytest.raises(OptionError, match="has no parts"):
        StudyGroup("empty", {}).run(tmp_path / "empty", progress=False)


def test_figure_data_of_a_study_sharing_its_folder_holds_only_its_own_runs(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    erm = replace(TINY, grid={"algorithm": [{"name": "erm"}]}, report=False)
    constraint = replace(erm, grid={"algorithm": [{"name": "constraint", "distance": 0.02}]})
    erm.run(tmp_path / "shared", jobs=1, progress=False)
    data = constraint.run(tmp_path / "shared", jobs=1, progress=False)
    assert len(list((tmp_path / "shared" / "runs").iterdir())) == 2
    assert set(data.metrics.method) == {"constraint"}
    assert set(data.scores.method) == {"constraint"}
