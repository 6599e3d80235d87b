"""`genmeasures reproduce --seed-offset K` and `--seeds 5,6,7` (issue 15): passed through to
``reproduce``, bad values refused in one line before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import genmeasures.reproduce as reproduce_module
from genmeasures.cli import main
from genmeasures.reproduce import Claim, FigureResult, list_figures


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """``reproduce`` replaced by a recorder: each call's keyword arguments, a PASS back."""
    spec = list_figures()[0]
    recorded: list[dict] = []

    def fake(figure_id, scale, out, **kwargs):
        recorded.append(kwargs)
        offset, seeds = kwargs["seed_offset"], kwargs["seeds"]
        used = seeds if seeds is not None else tuple(s + offset for s in (0, 1, 2))
        return FigureResult(spec, scale, [], Claim(True, "tau = 1"), 2.0, used)

    monkeypatch.setattr(reproduce_module, "reproduce", fake)
    return recorded


def _invoke(*args: str):
    return CliRunner().invoke(main, ["reproduce", *args])


def test_the_seed_options_reach_reproduce_and_the_seeds_are_printed(
    calls: list[dict], tmp_path: Path
) -> None:
    figure = list_figures()[0].id
    where = ["--out", str(tmp_path / "f"), "--runs", str(tmp_path / "r"), "-q"]
    default = _invoke(figure, *where)
    assert default.exit_code == 0, default.output
    assert calls[-1]["seed_offset"] == 0 and calls[-1]["seeds"] is None
    assert "(seeds 0, 1, 2; 2 s;" in default.stdout
    shifted = _invoke(figure, "--seed-offset", "100", *where)
    assert shifted.exit_code == 0, shifted.output
    assert calls[-1]["seed_offset"] == 100 and calls[-1]["seeds"] is None
    assert "(seeds 100, 101, 102; 2 s;" in shifted.stdout
    replaced = _invoke(figure, "--seeds", "5, 6,7", *where)
    assert replaced.exit_code == 0, replaced.output
    assert calls[-1]["seed_offset"] == 0 and calls[-1]["seeds"] == (5, 6, 7)
    assert "(seeds 5, 6, 7; 2 s;" in replaced.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed-offset", "-1"], "Invalid value for '--seed-offset': -1 is not in the range"),
        (["--seed-offset", "two"], "Invalid value for '--seed-offset': 'two' is not a valid"),
        (["--seeds", "1,a"], "Invalid value for '--seeds': 'a' is not an integer >= 0"),
        (["--seeds", "1.5"], "Invalid value for '--seeds': '1.5' is not an integer >= 0"),
        (["--seeds", "-1"], "Invalid value for '--seeds': '-1' is not an integer >= 0"),
        (["--seeds", "1,,2"], "Invalid value for '--seeds': '' is not an integer >= 0"),
        (["--seeds", "3,4,3"], "Invalid value for '--seeds': seed 3 is listed twice"),
        (["--seeds", ""], "Invalid value for '--seeds': give a comma-separated list"),
        (["--seeds", "5", "--seed-offset", "1"], "give --seeds or --seed-offset, not both"),
    ],
)
def test_bad_seed_options_are_one_line_errors(
    calls: list[dict], tmp_path: Path, args: list[str], message: str
) -> None:
    result = _invoke(list_figures()[0].id, *args, "--runs", str(tmp_path / "r"))
    assert result.exit_code == 2 and calls == []
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {message}"), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()


def test_seeds_out_of_range_are_one_line_errors(tmp_path: Path) -> None:
    """Refused by reproduce() itself, before any run trains (the real one, not a recorder)."""
    where = ["--out", str(tmp_path / "f"), "--runs", str(tmp_path / "r")]
    result = _invoke("matrix-sensing", "--seeds", "4294967296", *where)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: seeds must be at most 4294967295, got 4294967296\n"
    assert not (tmp_path / "r" / "matrix-sensing").exists()


def test_the_help_says_what_a_seed_changes() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert (
        "--seed-offset K Add K to every seed (other inits, data orders and noisy labels); "
        "the pretrained source model is unchanged. [default: 0; x>=0]"
    ) in text
    assert "--seeds 5,6,7 Run with these seeds instead of the figure's" in text
