"""`genmeasures correlate` on a score table, through its click command object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from genmeasures.cli.correlate import _split, command
from genmeasures.errors import DataError
from genmeasures.scoring import read_table, write_table
from tests.correlation.synthetic import synthetic_long_table


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(synthetic_long_table(), tmp_path_factory.mktemp("t") / "scores.csv")


def invoke(*args) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(command, [str(a) for a in args])
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, exception


def test_prints_a_table_sorted_by_abs_tau_and_writes_the_statistics(
    scores: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stats.json"
    code, stdout, stderr, exc = invoke(scores, "--bootstrap", 100, "--out", out)
    assert exc is None and code == 0, stderr
    lines = stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["measure", "n", "kendall", "tau"]
    for word in ("spearman", "pearson", "R^2", "Psi", "CMI", "median", "ratio"):
        assert word in header
    order = [line.split()[0] for line in lines[1:]]
    assert order[-1] == "noise" and set(order) == {
        "good",
        "good.extra",
        "noise",
        "dist[norm=frobenius]",
        "dist[norm=mars]",
    }
    assert "note: hyperparameter axes (inferred): algorithm, lr" in stderr
    stats = read_table(out)
    assert len(stats) == 5 and {"kendall_tau_lo", "psi[lr]", "cmi", "cv_r2"} <= set(stats)
    good = stats.set_index("measure").loc["good"]
    row = next(line for line in lines if line.split()[0] == "good")
    assert f"{good['kendall_tau']:+.2f} [{good['kendall_tau_lo']:+.2f}," in row


def test_options_measures_by_gap(scores: Path) -> None:
    code, stdout, stderr, exc = invoke(
        scores,
        "--measures",
        "dist[norm=mars],good",
        "--by",
        "lr",
        "--gap",
        "gap_acc",
        "--bootstrap",
        0,
        "--no-average-seeds",
    )
    assert exc is None and code == 0, stderr
    measures = [line.split()[0] for line in stdout.splitlines()[1:]]
    assert sorted(measures) == ["dist[norm=mars]", "good"]
    mars = next(line for line in stdout.splitlines() if line.startswith("dist[norm=mars]"))
    assert mars.split()[2].startswith("-0.9")  # mars falls as the gap grows
    assert "note: hyperparameter axes" not in stderr


def test_plots_option_writes_the_figures(scores: Path, tmp_path: Path) -> None:
    plots = tmp_path / "figures"
    code, _, stderr, exc = invoke(
        scores, "--measures", "noise", "--bootstrap", 20, "--plots", plots
    )
    assert exc is None and code == 0, stderr
    stems = ("ranking", "gap_vs_noise", "noise_vs_epoch")  # noise has no per-layer rows
    expected = sorted(f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf"))
    assert sorted(p.name for p in plots.iterdir()) == expected
    assert "wrote 6 figure files" in stderr


def test_a_wide_table_needs_measures(scores: Path, tmp_path: Path) -> None:
    from genmeasures.correlation import wide_table

    wide = write_table(wide_table(read_table(scores)), tmp_path / "wide.csv")
    code, stdout, _, exc = invoke(wide, "--measures", "good,noise", "--bootstrap", 0)
    assert exc is None and code == 0 and "good" in stdout
    _, _, _, exc = invoke(wide, "--bootstrap", 0)
    assert isinstance(exc, DataError) and "name the measure columns" in str(exc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gap", "gap_top5"], "no gap column 'gap_top5' in the table"),
        (["--by", "algorithm,batch_size"], "axis 'batch_size' has a single level (16)"),
        (["--by", "radius"], "no hyperparameter column 'radius'"),
        (["--measures", "hessian_trace"], "no measure 'hessian_trace' in the table"),
        (["--out", "stats.txt"], "unsupported output type '.txt'"),
    ],
)
def test_bad_input_is_one_line_naming_the_culprit(scores: Path, args, message, tmp_path) -> None:
    args = [str(tmp_path / a) if a.endswith(".txt") else a for a in args]
    _, _, _, exc = invoke(scores, "--bootstrap", 0, *args)
    assert exc is not None and message in str(exc) and "\n" not in str(exc)


def test_few_checkpoints_constant_measure_and_nan(tmp_path: Path) -> None:
    long = synthetic_long_table()
    few = long[long["checkpoint"].isin(long["checkpoint"].unique()[:2])]
    _, _, _, exc = invoke(write_table(few, tmp_path / "few.csv"))
    assert isinstance(exc, DataError) and "at least 3 checkpoints" in str(exc)
    long.loc[long["measure"] == "good.extra", "value"] = 1.0
    long.loc[long.index[long["measure"] == "noise"][:3], "value"] = np.nan
    path = write_table(long, tmp_path / "flat.csv")
    code, stdout, stderr, exc = invoke(path, "--bootstrap", 0)
    assert exc is None and code == 0
    assert "note: measure 'good.extra' is constant" in stderr
    assert "note: dropped 3 checkpoint(s) with NaN in 'noise'" in stderr
    last = stdout.splitlines()[-1].split()
    assert last[0] == "good.extra" and last[2] == "-"
    _, _, _, exc = invoke(path, "--measures", "good.extra")
    assert isinstance(exc, DataError) and "'good.extra' is constant" in str(exc)


def test_split_keeps_bracketed_options() -> None:
    assert _split("a, b[x=1,y=2],c") == ["a", "b[x=1,y=2]", "c"]
    assert _split(" ") is None and _split(None) is None


def test_the_real_example_table_shape(tmp_path: Path) -> None:
    # The columns `genmeasures score` writes, layer empty for whole-model rows.
    long = synthetic_long_table()
    long["layer"] = long["layer"].fillna("")
    path = write_table(long, tmp_path / "s.csv")
    assert pd.read_csv(path)["layer"].isna().any()
    code, stdout, _, exc = invoke(path, "--bootstrap", 0, "--by", "algorithm")
    assert exc is None and code == 0 and len(stdout.splitlines()) == 6


def test_psi_and_cmi_variants(scores: Path, tmp_path: Path) -> None:
    from genmeasures.correlation import correlate

    out = tmp_path / "variants.csv"
    code, stdout, stderr, exc = invoke(
        scores, "--bootstrap", 0, "--psi-variant", "jiang", "--cmi-variant", "pgdl", "--out", out
    )
    assert exc is None and code == 0, stderr
    header = stdout.splitlines()[0].split()
    assert "Psi[jiang]" in header and "CMI[pgdl]" in header and "Psi" not in header
    stats = read_table(out).set_index("measure")
    with pytest.warns(UserWarning):
        direct = correlate(read_table(scores), n_boot=0, psi_variant="jiang", cmi_variant="pgdl")
    expected = direct.summary.set_index("measure")
    assert direct.psi_variant == "jiang" and direct.cmi_variant == "pgdl"
    np.testing.assert_allclose(stats["psi"], expected.loc[stats.index, "psi"])
    np.testing.assert_allclose(stats["cmi"], expected.loc[stats.index, "cmi"])
    for note in stats["note"]:
        assert "psi_variant='jiang'" in note and "cmi_variant='pgdl'" in note
    default = tmp_path / "default.csv"
    code, _, _, exc = invoke(scores, "--bootstrap", 0, "--out", default)
    assert exc is None and code == 0
    assert not any("variant" in str(note) for note in read_table(default)["note"])
    code, _, stderr, _ = invoke(scores, "--psi-variant", "paper")
    assert code == 2 and "Invalid value for '--psi-variant'" in stderr
