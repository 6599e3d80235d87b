"""The long-table schema: what scoring writes, what correlation and plots read, old tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import genmeasures
from genmeasures.correlation import correlate, wide_table
from genmeasures.errors import DataError
from genmeasures.measures import MeasureResult
from genmeasures.measures.results import LayerValue
from genmeasures.plots import layer_profiles
from genmeasures.scoring import score_checkpoints
from genmeasures.tables import (
    CHECKPOINT_COLUMN_NAMES,
    COLUMNS,
    LONG_TABLE_COLUMNS,
    RESULT_COLUMN_NAMES,
    check_long_table,
    per_layer_rows,
    read_table,
    split_wide_column,
    whole_model_rows,
    wide_column_name,
    write_table,
)
from tests.conftest import perturbed, tiny_mlp
from tests.correlation.synthetic import synthetic_long_table

# A long table as the versions before `score_seed` wrote it: the scoring seed was `seed`.
OLD_FORMAT_CSV = """\
checkpoint,run,epoch,tag,n_train,measure,options,layer,value,stderr,n_samples,seed,seconds,n_matvecs,train_loss,test_loss,gap_loss,algorithm.name,train.lr
{rows}"""
OLD_ROW = (
    "{ckpt},runs/{run},{epoch},,100,{measure},{options},{layer},{value},,50,{seed},0.1,0,"
    "0.1,{test},{gap},{alg},{lr}"
)


def _old_format_table(path: Path) -> Path:
    rows = []
    rng = np.random.default_rng(0)
    for k, (alg, lr) in enumerate([(a, lr) for a in ("erm", "l2sp") for lr in (0.01, 0.1)]):
        for epoch in (1, 2):
            gap = 0.1 * epoch + (0.2 if alg == "erm" else 0.0) + lr
            ckpt = f"runs/r{k}/checkpoints/epoch_{epoch}.safetensors"
            common = dict(ckpt=ckpt, run=f"r{k}", epoch=epoch, test=0.1 + gap, gap=gap, alg=alg)
            common["lr"] = lr
            for measure, options, layer, value in [
                ("distance_from_init", "norm=frobenius", "", 2 * gap + 0.01 * rng.random()),
                ("distance_from_init", "norm=frobenius", "head.weight", gap),
                ("noise", "", "", rng.random()),
            ]:
                rows.append(
                    OLD_ROW.format(
                        measure=measure,
                        options=options,
                        layer=layer,
                        value=value,
                        seed=0,
                        **common,
                    )
                )
    path.write_text(OLD_FORMAT_CSV.format(rows="\n".join(rows)) + "\n")
    return path


def test_an_old_format_table_loads_pivots_and_correlates(tmp_path: Path) -> None:
    table = read_table(_old_format_table(tmp_path / "old.csv"))
    check_long_table(table)
    assert "score_seed" not in table.columns and "seed" in table.columns
    wide = wide_table(table)
    assert wide.attrs["measures"] == ["distance_from_init", "noise"]
    assert len(wide) == 8
    # The old scoring seed: constant within every checkpoint, so it belongs to the checkpoint.
    assert wide["seed"].tolist() == [0] * 8
    for column in ("options", "layer", "value", "stderr", "seconds", "n_matvecs"):
        assert column not in wide.columns
    with pytest.warns(UserWarning, match="axes \\(inferred\\): algorithm.name, train.lr"):
        report = correlate(table, gap="gap_loss", measures=["distance_from_init"], seed=0)
    assert tuple(report.axes) == ("algorithm.name", "train.lr")
    assert report.summary.loc[0, "measure"] == "distance_from_init"
    assert report.summary.loc[0, "kendall_tau"] == pytest.approx(1.0)
    per_layer = per_layer_rows(table)
    assert per_layer["layer"].tolist() == ["head.weight"] * 8
    result = layer_profiles(table, "distance_from_init", tmp_path / "layers")
    assert set(result.data["layer"]) == {"head.weight"}


def test_the_score_seed_column_follows_the_same_rule() -> None:
    long = synthetic_long_table().rename(columns={"seed": "score_seed"})
    long["score_seed"] = 0
    wide = wide_table(long)
    assert wide["score_seed"].tolist() == [0] * len(wide)
    long.loc[long["measure"] == "good", "score_seed"] = np.nan  # a deterministic measure
    assert "score_seed" not in wide_table(long).columns


def test_score_writes_the_declared_result_columns() -> None:
    init = tiny_mlp()
    model = tiny_mlp()
    model.load_state_dict(perturbed(init.state_dict(), 0.05, seed=1))
    table = genmeasures.score(model, init, None, ["distance_from_init", "layerwise_distance"])
    assert tuple(table.columns) == RESULT_COLUMN_NAMES
    check_long_table(table, required=("measure", "value"))


def test_a_measure_results_rows_have_exactly_the_result_columns() -> None:
    result = MeasureResult(
        value=1.0,
        measure="m",
        layers=(LayerValue("a.weight", 0.5, extras={"k": 2.0}),),
        extras={"k": 3.0},
        seed=4,
    )
    for row in result.rows():
        assert tuple(row) == RESULT_COLUMN_NAMES or set(row) == set(RESULT_COLUMN_NAMES)
    assert {row["score_seed"] for row in result.rows()} == {4}


def test_score_checkpoints_writes_the_declared_columns_first(run_dir: Path, tmp_path: Path) -> None:
    report = score_checkpoints([run_dir], measures=["distance_from_init"], progress=False)
    table = report.table
    assert tuple(table.columns[: len(LONG_TABLE_COLUMNS)]) == LONG_TABLE_COLUMNS
    check_long_table(table)
    path = write_table(table, tmp_path / "scores.csv")
    back = read_table(path)
    check_long_table(back)
    assert len(whole_model_rows(back)) == len(whole_model_rows(table))
    empty = score_checkpoints([], measures=["distance_from_init"], progress=False).table
    assert tuple(empty.columns) == LONG_TABLE_COLUMNS


def test_every_column_is_declared_once_with_a_type_and_a_meaning() -> None:
    assert len(COLUMNS) == len(CHECKPOINT_COLUMN_NAMES) + len(RESULT_COLUMN_NAMES)
    assert LONG_TABLE_COLUMNS == CHECKPOINT_COLUMN_NAMES + RESULT_COLUMN_NAMES
    for column in COLUMNS.values():
        assert column.dtype in ("text", "integer", "number") and column.meaning
    assert COLUMNS["score_seed"].dtype == "integer" and COLUMNS["value"].numeric
    assert not COLUMNS["layer"].numeric


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="value"), "needs the columns checkpoint, measure and value"),
        (
            lambda t: t.assign(value=t["value"].astype(object).where(t.index != 3, "big")),
            r"the value 'big' of measure '\w+' for checkpoint \S+ is not a number \(1 such",
        ),
        (
            lambda t: t.assign(stderr=t["stderr"].astype(object).where(t.index != 0, "x")),
            r"the stderr 'x' of measure 'good' for checkpoint \S+ is not a number",
        ),
        (
            lambda t: t.assign(measure=t["measure"].where(t.index != 5, "")),
            r"1 row\(s\) without a measure name for checkpoint",
        ),
    ],
)
def test_bad_tables_are_one_line_errors(change, message: str) -> None:
    table = change(synthetic_long_table())
    with pytest.raises(DataError, match=message) as info:
        check_long_table(table)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=message):
        wide_table(table)


def test_wide_column_names_round_trip() -> None:
    assert wide_column_name("dist", "norm=mars", several=True) == "dist[norm=mars]"
    assert wide_column_name("dist", "norm=mars", several=False) == "dist"
    assert split_wide_column("dist[norm=mars]") == ("dist", "norm=mars")
    assert split_wide_column("distance_bound.log10_value") == ("distance_bound.log10_value", None)
    wide = wide_table(synthetic_long_table())
    assert [split_wide_column(c)[0] for c in wide.attrs["measures"]] == [
        "good",
        "good.extra",
        "noise",
        "dist",
        "dist",
    ]


def test_whole_model_and_per_layer_rows_split_the_table() -> None:
    long = synthetic_long_table()
    for layers in (long, long.assign(layer=long["layer"].fillna(""))):
        whole, per_layer = whole_model_rows(layers), per_layer_rows(layers)
        assert len(whole) + len(per_layer) == len(layers)
        assert per_layer["layer"].notna().all() and (per_layer["layer"] != "").all()
    assert whole_model_rows(long.drop(columns="layer")).shape[0] == len(long)


def test_the_old_import_paths_still_work() -> None:
    from genmeasures.correlation.tables import is_long
    from genmeasures.correlation.tables import whole_model_rows as old_whole
    from genmeasures.scoring import read_table as scoring_read
    from genmeasures.scoring.tables import check_table_path
    from genmeasures.scoring.tables import write_table as scoring_write
    from genmeasures.tables import check_table_path as new_check
    from genmeasures.tables import is_long as new_is_long

    assert scoring_read is read_table and scoring_write is write_table
    assert check_table_path is new_check and is_long is new_is_long
    assert old_whole is whole_model_rows
