"""The command line: `genmeasures measures`, `genmeasures score`, `genmeasures example`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genmeasures.cli import main
from genmeasures.scoring import read_table


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_measures_lists_every_measure_with_options() -> None:
    code, out, _ = invoke("measures", "-v")
    assert code == 0
    assert "distance_from_init" in out and "layerwise_distance" in out
    assert "norm (one of frobenius|mars) = 'frobenius'" in out
    assert "name glob(s)" in out


def test_measures_lists_ranges_from_the_annotations() -> None:
    code, out, _ = invoke("measures", "-v")
    assert code == 0
    assert "sigma (float > 0) = 0.01" in out and "draws (int >= 1) = 20" in out
    assert "noise standard deviation; see scale" in out


def test_algorithms_lists_options_with_ranges_and_help() -> None:
    code, out, _ = invoke("algorithms", "-v")
    assert code == 0
    assert "distance (float >= 0) = 1.0" in out
    assert "gamma (float > 0) = 1.0" in out
    assert "lam (float in [0, 1]) = 0.0" in out
    assert "correct_threshold (float in (0, 1]) = 0.9" in out
    assert "smoothing (float in [0, 1)) = 0.1" in out
    assert "noise_kind (one of symmetric|symmetric_all|pair) = 'symmetric'" in out
    assert "D, the radius of the first stages" in out  # help text, verbose only
    code, short, _ = invoke("algorithms")
    assert code == 0 and "distance (float >= 0) = 1.0" in short
    assert "D, the radius of the first stages" not in short
    # A summary that wraps in the docstring is listed whole, not cut at the line break.
    assert 'it is the papers\' "fine-tuning with early stop" baseline.' in short


def test_config_reference_lists_every_key_with_its_range() -> None:
    import dataclasses

    from genmeasures.finetune.config import SECTIONS
    from genmeasures.sweeps.grid import SETTING_TYPES

    code, out, _ = invoke("config", "-v")
    assert code == 0
    for section, cls in SECTIONS.items():
        assert f"[{section}]" in out
        for name in (f.name for f in dataclasses.fields(cls)):
            assert f"--  {name} (" in out, name
    for name in SETTING_TYPES:
        assert f"--  {name} (" in out, name
    assert "[algorithm]" in out and "[grid]" in out
    assert "noise_rate (float in [0, 1)) = 0.0" in out
    assert "epochs (int > 0) = 10" in out and "lr (float >= 0) = 0.01" in out
    assert "jobs (int >= 1) = 1" in out
    assert "learning rate" in out


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_score_writes_the_table(run_dir: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"scores{suffix}"
    pair = "distance_from_init,layerwise_distance"
    code, _, err = invoke("score", run_dir, "--measures", pair, "--out", out, "-q")
    assert code == 0, err
    table = read_table(out)
    # Per checkpoint: distance_from_init (whole, sum_layers, 2 layers) + layerwise_distance
    # (whole, depth_slope, 2 layers, 2 relative).
    assert len(table) == 3 * (4 + 6)
    assert {"checkpoint", "epoch", "measure", "layer", "value", "gap_loss"} <= set(table.columns)
    assert "6 computed, 0 from cache" in err
    code, _, err = invoke("score", run_dir, "--measures", pair, "--out", out, "-q")
    assert "0 computed, 6 from cache" in err


def test_score_prints_a_summary_without_out(run_dir: Path) -> None:
    code, out, _ = invoke("score", run_dir, "--measures", "distance_from_init", "-q")
    assert code == 0
    assert "epoch_0003.safetensors" in out and "distance_from_init.sum_layers" in out


def test_measure_options_on_the_command_line(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    code, _, err = invoke(
        "score",
        run_dir,
        "--measure",
        "distance_from_init:norm=mars,layers=[head.*]",
        "--out",
        out,
        "-q",
    )
    assert code == 0, err
    table = pd.read_csv(out, keep_default_na=False)
    assert set(table.options) == {"layers=[head.*],norm=mars"}
    assert set(table.layer) == {"", "head.weight", "head.bias"}


def test_failures_are_listed_and_the_rest_is_written(run_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    out = tmp_path / "s.csv"
    code, _, err = invoke(
        "score",
        run_dir / "checkpoints" / "epoch_0001.safetensors",
        bad,
        tmp_path / "gone.pt",
        "--init",
        run_dir / "checkpoints" / "epoch_0000.safetensors",
        "--out",
        out,
        "-q",
    )
    assert code == 1
    assert "2 failure(s):" in err and "bad.pt: cannot read checkpoint" in err
    assert "gone.pt: no such checkpoint" in err
    assert set(pd.read_csv(out).checkpoint) == {str(run_dir / "checkpoints/epoch_0001.safetensors")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--measures", "nope"], "error: unknown measure 'nope'; valid: "),
        (["--measure", "distance_from_init:p=1"], "error: unknown option 'p' for measure"),
        (["--measure", "distance_from_init:norm=l7"], "must be one of frobenius|mars, got 'l7'"),
        (["--out", "x.xlsx"], "error: unsupported output type '.xlsx'"),
        (["--init", "missing.pt"], "error: no such checkpoint: missing.pt"),
    ],
)
def test_usage_errors_are_one_line_and_write_nothing(
    run_dir: Path, tmp_path: Path, args: list[str], message: str, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("score", run_dir, *args, "-q")
    assert code == 1
    assert message in err and err.count("error:") == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert not list(tmp_path.glob("x.*"))


def test_unknown_dataset_and_empty_dataset(run_dir: Path, tmp_path: Path, mean_loss_measure):
    code, _, err = invoke("score", run_dir, "--data", "mnist", "--measures", mean_loss_measure)
    assert code == 1 and "unknown dataset 'mnist'" in err
    import numpy as np

    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 64), "float32"), y=np.zeros(0, "int64"))
    code, _, err = invoke(
        "score", run_dir, "--data", tmp_path / "empty.npz", "--measures", mean_loss_measure, "-q"
    )
    assert code == 1 and "is empty" in err


def test_allow_import_is_required_for_user_factories(run_dir: Path, tmp_path, mean_loss_measure):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 8, 8), "float32"), y=np.zeros(4, "int64"))
    args = [
        "score",
        run_dir,
        "--data",
        tmp_path / "d.npz",
        "--measures",
        mean_loss_measure,
        "--model",
        "tests.cli.test_cli:user_model",
        "-q",
    ]
    code, _, err = invoke(*args)
    assert code == 1 and "--allow-import" in err
    code, _, err = invoke(*args, "--allow-import")
    assert code == 0, err


def user_model(**kwargs) -> torch.nn.Module:
    from tests.conftest import tiny_mlp

    return tiny_mlp()


def test_example_run_is_scored_by_the_installed_command(tmp_path: Path) -> None:
    """The README's main command path, shortened: example run -> score, as real processes."""
    run = tmp_path / "example"
    exe = [sys.executable, "-m", "genmeasures"]
    subprocess.run(
        [*exe, "example", run, "--epochs", "2", "--pretrain-epochs", "2", "-q"],
        check=True,
        capture_output=True,
    )
    assert json.loads((run / "run.json").read_text())["complete"] is True
    result = subprocess.run(
        [*exe, "score", run, "--samples", "16", "--out", tmp_path / "s.csv", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "s.csv")
    assert sorted(table.epoch.unique()) == [1, 2]
    assert (table[table.measure == "distance_from_init"].value > 0).all()
    assert table.gap_loss.notna().all()
    # No --data: the data measures use the dataset the run records.
    assert {"noise_stability", "hessian_trace", "hessian_bound"} <= set(table.measure)


def test_reproduce_all_reports_a_broken_figure_and_runs_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import genmeasures.reproduce as reproduce_module
    from genmeasures.errors import DataError
    from genmeasures.reproduce import Claim, FigureResult, list_figures

    specs = list_figures()[:2]
    monkeypatch.setattr(reproduce_module, "list_figures", lambda: specs)
    done = []

    def fake(figure_id, scale, out, **kwargs):
        if figure_id == specs[0].id:
            raise DataError("no such image folder: data/indoor")
        done.append(figure_id)
        return FigureResult(specs[1], scale, [], Claim(True, "tau = 1"), 2.0)

    monkeypatch.setattr(reproduce_module, "reproduce", fake)
    code, out, err = invoke("reproduce", "all", "--out", str(tmp_path), "-q")
    assert code == 1 and done == [specs[1].id]
    assert f"{specs[0].id}: error: no such image folder" in err
    assert f"| {specs[1].id} | 2 | PASS |" in out and "1 figure(s) not produced" in err


@pytest.mark.parametrize(
    ("errno_name", "reason"),
    [
        ("ENOSPC", "No space left on device"),
        ("EROFS", "Read-only file system"),
        ("EACCES", "Permission denied"),
    ],
)
def test_an_os_error_is_one_line_naming_the_path(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_name: str, reason: str
) -> None:
    """A full disk, a read-only file system or a permission refused while the table is
    written: one `error:` line with the path and the reason, exit 1, no file left behind.
    (Simulated: the suite runs as root, for whom permissions do not apply.)"""
    import errno
    import os

    from genmeasures import _io
    from genmeasures.errors import DEBUG_ENV

    monkeypatch.delenv(DEBUG_ENV)
    code = getattr(errno, errno_name)

    def fail(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(_io.os, "fsync", fail)
    out = tmp_path / "out" / "s.csv"
    result = CliRunner().invoke(
        main, ["score", str(run_dir), "--measures", "distance_from_init", "--out", str(out), "-q"]
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {out}: {reason}"]
    assert list(out.parent.iterdir()) == []  # no table, no temporary file
