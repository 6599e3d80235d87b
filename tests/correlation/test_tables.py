"""Pivoting the long score table, and which columns are hyperparameter axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genmeasures.correlation import hyperparameter_axes, wide_table
from genmeasures.errors import DataError
from genmeasures.scoring import read_table, write_table
from tests.correlation.synthetic import synthetic_long_table

MEASURES = ["good", "good.extra", "noise", "dist[norm=frobenius]", "dist[norm=mars]"]


def test_one_row_per_checkpoint_whole_model_values() -> None:
    long = synthetic_long_table()
    wide = wide_table(long)
    assert len(wide) == long["checkpoint"].nunique() == 36
    assert wide.attrs["measures"] == MEASURES
    assert wide["checkpoint"].tolist() == list(dict.fromkeys(long["checkpoint"]))
    for column in ("run", "epoch", "n_train", "gap_loss", "gap_acc", "algorithm", "lr"):
        assert column in wide.columns
    for column in ("options", "layer", "value", "stderr", "seconds", "measure", "seed"):
        assert column not in wide.columns
    whole = long[long["layer"].isna()]
    good = whole[whole["measure"] == "good"].set_index("checkpoint")["value"]
    assert wide.set_index("checkpoint")["good"].to_dict() == good.to_dict()
    mars = whole[(whole["measure"] == "dist") & (whole["options"] == "norm=mars")]
    expected = mars.set_index("checkpoint")["value"]
    assert wide.set_index("checkpoint")["dist[norm=mars]"].to_dict() == expected.to_dict()


def test_csv_round_trip_reads_empty_layers_as_whole_model(tmp_path: Path) -> None:
    long = synthetic_long_table()
    long["layer"] = long["layer"].fillna("")  # as score() returns it in memory
    path = write_table(long, tmp_path / "scores.csv")
    from_memory, from_csv = wide_table(long), wide_table(read_table(path))
    pd.testing.assert_frame_equal(from_memory[MEASURES], from_csv[MEASURES])


def test_measure_selection() -> None:
    long = synthetic_long_table()
    assert wide_table(long, ["dist"]).attrs["measures"] == [
        "dist[norm=frobenius]",
        "dist[norm=mars]",
    ]
    assert wide_table(long, "dist[norm=mars]").attrs["measures"] == ["dist[norm=mars]"]
    assert wide_table(long, ["noise", "good"]).attrs["measures"] == ["good", "noise"]
    with pytest.raises(DataError, match="no measure 'hessian_trace' in the table; measures: dist"):
        wide_table(long, ["hessian_trace"])


def test_a_checkpoint_scored_twice_is_an_error() -> None:
    long = synthetic_long_table()
    with pytest.raises(DataError, match="appears twice for checkpoint"):
        wide_table(pd.concat([long, long.head(1)]))
    with pytest.raises(DataError, match="not a long score table"):
        wide_table(long.drop(columns="measure"))


def test_seed_kept_only_when_it_belongs_to_the_checkpoint() -> None:
    long = synthetic_long_table()
    long["seed"] = long["run"].str[-1].astype(int)  # one value per checkpoint
    assert wide_table(long)["seed"].tolist()[:3] == [0, 0, 0]
    long.loc[long["measure"] == "noise", "seed"] = np.nan  # varies within a checkpoint
    assert "seed" not in wide_table(long).columns


def test_hyperparameter_axes_are_the_varying_run_config_columns() -> None:
    long = synthetic_long_table()
    long["seed"] = long["run"].str[-1].astype(int)
    wide = wide_table(long)
    assert hyperparameter_axes(wide) == ["algorithm", "lr"]  # not seed, epoch, metrics
    wide["margin"] = np.arange(len(wide))  # varies within a run: a metric, not an axis
    wide["width"] = wide["lr"] * 10
    assert hyperparameter_axes(wide, exclude=["lr"]) == ["algorithm", "width"]
    loose = wide.assign(run="")  # checkpoint files scored with --init: no run directory
    # width = 10 lr splits the checkpoints exactly as lr does: one axis, not two.
    assert hyperparameter_axes(loose) == ["algorithm", "lr", "margin"]


def test_axes_of_genmeasures_runs_are_the_varying_config_columns() -> None:
    wide = pd.DataFrame(
        {
            "run": [f"r{i}" for i in range(6)],
            "method": ["erm", "erm", "constraint", "constraint", "sam", "sam"],
            "algorithm.name": ["erm", "erm", "constraint", "constraint", "sam", "sam"],
            "algorithm.distance": [np.nan, np.nan, 0.3, 1.0, np.nan, np.nan],
            "algorithm.gamma": [np.nan, np.nan, 1.0, 1.0, np.nan, np.nan],  # one level: not an axis
            "data.noise_rate": [0.0, 0.4, 0.0, 0.4, 0.0, 0.4],
            "train.seed": [0, 1, 0, 1, 0, 1],
            "correct_labels": [10, 7, 10, 8, 9, 6],  # a metric of the last epoch
        }
    )
    assert hyperparameter_axes(wide) == ["method", "algorithm.distance", "data.noise_rate"]


def test_a_column_fixed_by_an_earlier_axis_is_nested_not_an_axis() -> None:
    """An option that takes one value per method (constraint's gamma 2, l2sp's 1) is fixed
    by ``method``: conditioning on it again would split nothing; one that varies within a
    method (constraint's radius) stays an axis."""
    wide = pd.DataFrame(
        {
            "run": [f"r{i}" for i in range(8)],
            "method": ["erm", "erm", "constraint", "constraint", "l2sp", "l2sp", "sam", "sam"],
            "algorithm.gamma": [np.nan, np.nan, 2.0, 2.0, 1.0, 1.0, np.nan, np.nan],
            "algorithm.distance": [np.nan, np.nan, 0.2, 0.5, np.nan, np.nan, np.nan, np.nan],
            "data.noise_rate": [0.0, 0.4] * 4,
        }
    )
    assert hyperparameter_axes(wide) == ["method", "algorithm.distance", "data.noise_rate"]
    alone = wide.drop(columns="method")  # without method, gamma splits the runs itself
    assert hyperparameter_axes(alone) == [
        "algorithm.gamma",
        "algorithm.distance",
        "data.noise_rate",
    ]
