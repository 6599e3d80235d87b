"""`torchrun --nproc_per_node 2 -m genmeasures score ...`: the same table as one process, bit
for bit (gloo on the CPU); rank 0 alone writes the table and the cache; ranks started with
other data are refused in one line, with a non-zero exit and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from genmeasures.scoring import read_table
from tests.conftest import write_run

DATA = "digits-target:split=train,n_per_class=6"  # 30 samples: 8 batches of 4
MEASURES = [
    "--measure",
    "hessian_trace:max_matvecs=24",  # auto: exact on this ReLU MLP's affine layers
    "--measure",
    "hessian_trace:estimator=hutchinson,rtol=0,max_matvecs=12",
    "--measure",
    "hessian_eigenvalue:k=2,max_matvecs=20",
    "--measure",
    "hessian_distance",
    "--measure",
    "hessian_bound",
    "--measure",
    "pacbayes_trace_bound:batch_size=8,max_matvecs=12",
    "--measure",
    "distance_from_init",
]
TIMEOUT = 300
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # the same thread count in every process
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _score_args(run: Path, out: Path, *extra: str) -> list[str]:
    return [
        "score",
        str(run / "checkpoints" / "epoch_0001.safetensors"),
        "--init",
        str(run / "checkpoints" / "epoch_0000.safetensors"),
        "--data",
        DATA,
        *MEASURES,
        "--batch-size",
        "4",
        "--out",
        str(out),
        "-q",
        *extra,
    ]


def _plain(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genmeasures", *args],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=TIMEOUT,
    )


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["seconds"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("distributed") / "run", n_epochs=1, data=DATA)


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside python")
def test_torchrun_gives_the_table_of_one_process(run: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.parquet"
    done = _plain(_score_args(run, plain, "--cache-dir", str(tmp_path / "cache-plain")))
    assert done.returncode == 0, done.stderr
    shared = tmp_path / "shared.parquet"
    cache = tmp_path / "cache-shared"
    launched = subprocess.run(
        [
            str(TORCHRUN),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "genmeasures",
            *_score_args(run, shared, "--cache-dir", str(cache)),
        ],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=TIMEOUT,
    )
    assert launched.returncode == 0, launched.stderr
    assert launched.stderr.count("7 computed, 0 from cache") == 1  # rank 0 alone reports
    expected, got = read_table(plain), read_table(shared)
    assert len(got) > 20 and set(got.measure) >= {"hessian_trace", "hessian_distance"}
    pd.testing.assert_frame_equal(_numbers(got), _numbers(expected), check_exact=True)
    # Rank 0 wrote the cache, under the keys one process uses: a plain run reads all of it.
    again = tmp_path / "again.parquet"
    done = _plain(_score_args(run, again, "--cache-dir", str(cache)))
    assert done.returncode == 0, done.stderr
    assert "0 computed, 7 from cache" in done.stderr
    pd.testing.assert_frame_equal(_numbers(read_table(again)), _numbers(expected))


def test_ranks_with_other_data_are_refused(run: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    processes = []
    for rank, data in enumerate((DATA, DATA.replace("n_per_class=6", "n_per_class=7"))):
        env = _environment()
        env.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        args = _score_args(run, tmp_path / "s.csv", "--no-cache")
        args[args.index(DATA)] = data
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "genmeasures", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    for process in processes:
        out, err = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 1, err
        assert "Traceback" not in err and out == ""
        assert err.strip().splitlines() == [
            "error: distributed run refused: the evaluation data differs between rank 0 and "
            "rank 1; every process must be given the same checkpoints, data and options"
        ]
    assert not (tmp_path / "s.csv").exists()


def test_distributed_without_torchrun_is_refused(run: Path, tmp_path: Path) -> None:
    done = _plain(_score_args(run, tmp_path / "s.csv", "--no-cache", "--distributed"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: distributed scoring needs torchrun's environment (RANK, WORLD_SIZE, "
        "MASTER_ADDR, MASTER_PORT not set); launch it as: torchrun --nproc_per_node N -m "
        "genmeasures score ..."
    ]
