"""Every registered figure's pipeline on its tiny configuration: files, plotted data, claim;
and how the library finds figures (the ``genmeasures.figures`` entry point group)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import genmeasures.reproduce.figures as figures_module
from genmeasures._registry import Registry
from genmeasures.errors import OptionError, PluginError, StudyError
from genmeasures.reproduce import (
    FIGURE_ENTRY_POINTS,
    Claim,
    FigureSpec,
    get_figure,
    list_figures,
    register_figure,
    reproduce,
)
from genmeasures.reproduce.study import FigureData

FIGURE_IDS = [spec.id for spec in list_figures()]


@pytest.mark.parametrize("figure_id", FIGURE_IDS)
def test_figure_pipeline_writes_its_three_files_and_checks_its_claim(
    figure_id: str, tmp_path: Path
) -> None:
    result = reproduce(
        figure_id, "tiny", tmp_path / "figures", runs=tmp_path / "runs", jobs=1, progress=False
    )
    png, pdf, csv = (tmp_path / "figures" / f"{figure_id}.{s}" for s in ("png", "pdf", "csv"))
    assert png.stat().st_size > 1000 and pdf.stat().st_size > 1000
    data = pd.read_csv(csv)
    assert len(data) > 0 and data["mean"].notna().all()
    assert isinstance(result.claim, Claim) and result.claim.statistic
    claim_text = (tmp_path / "figures" / f"{figure_id}.claim.txt").read_text()
    assert ("PASS" in claim_text) == result.claim.passed


def test_every_figure_has_quick_and_paper_scales() -> None:
    for spec in list_figures():
        assert {"quick", "paper", "tiny"} <= set(spec.studies), spec.id
        assert spec.paper and spec.claim


def test_unknown_figure_and_scale(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="unknown figure 'fig-99'"):
        reproduce("fig-99", "quick", tmp_path)
    with pytest.raises(OptionError, match="no 'huge' scale"):
        reproduce(FIGURE_IDS[0], "huge", tmp_path)  # type: ignore[arg-type]


def test_the_papers_figures_come_through_the_entry_point_group() -> None:
    import genmeasures_papers

    declared = [ep.value for ep in entry_points(group=FIGURE_ENTRY_POINTS)]
    assert "genmeasures_papers:figures" in declared, (
        "the genmeasures.figures entry points are not installed: pip install -e ."
    )
    papers = sorted(spec.id for spec in genmeasures_papers.figures())
    assert len(papers) == 13 and set(papers) <= set(FIGURE_IDS)
    assert sorted(FIGURE_IDS) == FIGURE_IDS


def test_the_library_imports_no_paper_code() -> None:
    script = (
        "import sys, genmeasures, genmeasures.cli, genmeasures.reproduce, genmeasures.sweeps\n"
        "print([m for m in sys.modules if m.startswith(('analyses', 'genmeasures_papers'))])"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# Figures that the tests install as entry points of their own.
def _example(figure_id: str) -> FigureSpec:
    return FigureSpec(
        id=figure_id,
        paper="a test",
        claim="none",
        studies={},
        draw=lambda data, stem: None,  # type: ignore[arg-type, return-value]
        check=lambda data: Claim(True, "ok"),
    )


EXAMPLE = _example("example")
SAME_ID = _example("example")
LOADS = []


def more_examples() -> list[FigureSpec]:
    LOADS.append(1)
    return [_example("first"), _example("second")]


@pytest.fixture
def install(monkeypatch):
    """Replaces the installed figures: ``install(name=value, ...)`` sets the entry points."""
    monkeypatch.setattr(figures_module, "FIGURES", Registry("figure"))
    monkeypatch.setattr(figures_module, "_SOURCES", {})
    monkeypatch.setattr(figures_module, "_installed_loaded", False)

    def install(**values: str) -> None:
        points = [EntryPoint(name, value, FIGURE_ENTRY_POINTS) for name, value in values.items()]
        monkeypatch.setattr(
            figures_module,
            "entry_points",
            lambda group: points if group == FIGURE_ENTRY_POINTS else [],
        )

    return install


def test_an_entry_point_names_a_spec_a_list_or_a_function_and_loads_once(install) -> None:
    install(one=f"{__name__}:EXAMPLE", many=f"{__name__}:more_examples")
    LOADS.clear()
    assert [spec.id for spec in list_figures()] == ["example", "first", "second"]
    assert get_figure("first").claim == "none" and LOADS == [1]
    assert register_figure(_example("third")).id in [spec.id for spec in list_figures()]
    assert LOADS == [1]


def test_a_figure_that_fails_to_load_is_one_line_naming_its_entry_point(install) -> None:
    install(good=f"{__name__}:EXAMPLE", broken="no_such_module_for_genmeasures:figures")
    message = r"figures entry point 'broken' \(no_such_module_for_genmeasures:figures\) failed"
    with pytest.raises(PluginError, match=message + r" to load: ModuleNotFoundError"):
        list_figures()
    with pytest.raises(PluginError, match=message):  # tried again, not half loaded
        get_figure("example")
    from genmeasures.cli import main

    result = CliRunner().invoke(main, ["reproduce", "--list"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: figures entry point 'broken'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_figure_id_from_two_entry_points_is_an_error_naming_both(install) -> None:
    install(a=f"{__name__}:EXAMPLE", b=f"{__name__}:SAME_ID")
    with pytest.raises(
        PluginError,
        match=rf"figure id 'example' is defined twice: by entry point 'a' \({__name__}:EXAMPLE\)"
        rf" and by entry point 'b' \({__name__}:SAME_ID\)",
    ):
        list_figures()
    install(a=f"{__name__}:EXAMPLE")
    assert [spec.id for spec in list_figures()] == ["example"]
    with pytest.raises(
        PluginError, match=r"defined twice: by entry point 'a' .* by register_figure"
    ):
        register_figure(_example("example"))


def test_an_entry_point_giving_something_else_is_an_error(install) -> None:
    install(odd=f"{__name__}:LOADS")
    LOADS[:] = ["not a figure"]
    with pytest.raises(PluginError, match=r"entry point 'odd' .* gave str"):
        list_figures()


class _EveryRunFailed:
    """An experiment whose runs all failed: empty scores and the failures' messages."""

    workdir = None

    def run(self, out, *, jobs=2, progress=True) -> FigureData:
        empty = pd.DataFrame()
        failures = ("runs/erm-0: CUDA out of memory", "runs/erm-1: CUDA out of memory")
        return FigureData(Path(out), empty, empty, empty, failures)


def test_a_figure_whose_every_run_failed_says_so_in_one_line(install, tmp_path) -> None:
    install()
    spec = _example("all_failed")
    register_figure(replace(spec, studies={"tiny": _EveryRunFailed}))
    with pytest.raises(StudyError) as failed:
        reproduce("all_failed", "tiny", tmp_path / "figures", runs=tmp_path / "runs")
    message = str(failed.value)
    assert "\n" not in message
    assert (
        "all 2 runs or scorings failed" in message and "runs/erm-0: CUDA out of memory" in message
    )
    assert not (tmp_path / "figures" / "all_failed.csv").exists()  # nothing half-written
