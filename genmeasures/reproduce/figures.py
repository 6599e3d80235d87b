"""Paper figures: a study, a drawing and a claim, reproduced at quick or paper scale.

A :class:`FigureSpec` says which study produces the data at each scale, how to draw it, and
how to check the paper's claim on it. The library defines no figures: installed packages
contribute theirs through the ``genmeasures.figures`` entry point group (the papers' figures
come from ``genmeasures_papers``), loaded the first time figures are listed or looked up, and
:func:`register_figure` adds one in this process.
:func:`reproduce` runs the study (reusing finished runs and cached scores), draws the figure
into ``OUT/ID.png`` and ``OUT/ID.pdf``, writes every plotted number to ``OUT/ID.csv`` and
returns the claim checked on that data as PASS or FAIL with its statistic. A failed claim is
reported, never hidden: the figure is written either way.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Literal, Protocol

import pandas as pd

from genmeasures._io import atomic_write_text
from genmeasures._registry import Registry
from genmeasures.errors import PluginError, StudyError, describe_failure
from genmeasures.plots import PlotResult
from genmeasures.reproduce.study import FigureData

Scale = Literal["quick", "paper", "tiny"]  # tiny: the same pipeline in seconds, for tests


class Experiment(Protocol):
    """What produces a figure's data: a :class:`~genmeasures.reproduce.Study` (fine-tuning
    sweep -> scores), or any other experiment with the same two members (matrix sensing)."""

    name: str
    workdir: str | None

    def run(self, out: str | Path, *, jobs: int = 2, progress: bool = True) -> FigureData: ...


@dataclass(frozen=True)
class Claim:
    """A paper's claim checked on the data: passed or not, and the statistic that says so."""

    passed: bool
    statistic: str

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}: {self.statistic}"


@dataclass(frozen=True)
class FigureSpec:
    id: str
    paper: str
    claim: str
    studies: dict[str, Callable[[], Experiment]]  # scale -> the experiment producing the data
    # (the experiment's data, path stem) -> the figure written as stem.png/.pdf by a
    # genmeasures.plots function, with the numbers it drew
    draw: Callable[[FigureData, Path], PlotResult]
    check: Callable[[pd.DataFrame], Claim]  # the plotted numbers -> the claim's verdict
    notes: str = ""


@dataclass
class FigureResult:
    spec: FigureSpec
    scale: str
    files: list[Path] = field(default_factory=list)
    claim: Claim | None = None
    seconds: float = 0.0


#: The entry point group through which installed packages contribute figures. An entry point
#: names a FigureSpec, an iterable of them, or a function of no arguments returning either.
FIGURE_ENTRY_POINTS = "genmeasures.figures"

FIGURES: Registry[FigureSpec] = Registry("figure")
_SOURCES: dict[str, str] = {}  # figure id -> what defined it, for the duplicate-id error
_installed_loaded = False


def register_figure(spec: FigureSpec) -> FigureSpec:
    """Add ``spec`` in this process (installed figures come through the entry points)."""
    _load_installed_figures()
    _check_new(spec, "register_figure", _SOURCES)
    FIGURES.add(spec.id, spec)
    _SOURCES[spec.id] = "register_figure"
    return spec


def list_figures() -> list[FigureSpec]:
    """Every figure: the installed packages' and those registered in this process, by id."""
    _load_installed_figures()
    return [FIGURES.get(name) for name in FIGURES.names()]


def get_figure(figure_id: str) -> FigureSpec:
    _load_installed_figures()
    return FIGURES.get(figure_id)


def _load_installed_figures() -> None:
    """Load the ``genmeasures.figures`` entry points, once, all or nothing: a failure is one
    line naming the entry point (and the next lookup tries again)."""
    global _installed_loaded
    if _installed_loaded:
        return
    found: dict[str, str] = {}  # figure id -> its entry point
    specs = []
    for ep in sorted(entry_points(group=FIGURE_ENTRY_POINTS), key=lambda e: e.name):
        for spec in _figure_specs(ep):
            _check_new(spec, _describe(ep), found)
            found[spec.id] = _describe(ep)
            specs.append(spec)
    for spec in specs:
        FIGURES.add(spec.id, spec)
    _SOURCES.update(found)
    _installed_loaded = True


def _check_new(spec: object, source: str, known: dict[str, str]) -> None:
    """Raise unless ``spec`` is a FigureSpec whose id is not in ``known`` (id -> source)."""
    if not isinstance(spec, FigureSpec):
        raise PluginError(f"{source} gave {type(spec).__name__} {spec!r}, not a FigureSpec")
    if spec.id in known:
        raise PluginError(
            f"figure id {spec.id!r} is defined twice: by {known[spec.id]} and by {source}"
        )


def _describe(ep: EntryPoint) -> str:
    return f"entry point {ep.name!r} ({ep.value})"


def _figure_specs(ep: EntryPoint) -> list[FigureSpec]:
    """What an entry point names, as a list: a FigureSpec, an iterable of them, or a function
    of no arguments returning either (called here)."""
    try:
        found = ep.load()
        if callable(found):
            found = found()
    except Exception as exc:
        raise PluginError(
            f"figures {_describe(ep)} failed to load: {describe_failure(exc)}"
        ) from exc
    if isinstance(found, FigureSpec):
        return [found]
    if isinstance(found, Iterable) and not isinstance(found, str | bytes):
        return list(found)
    raise PluginError(f"figures {_describe(ep)} gave {type(found).__name__}, not FigureSpecs")


def _check_something_to_draw(figure_id: str, data: object) -> None:
    """A study whose every run failed leaves nothing to draw: say so, naming the failures,
    instead of letting the drawing stumble over the empty table."""
    scores = getattr(data, "scores", None)
    failures = tuple(getattr(data, "failures", ()))
    if isinstance(scores, pd.DataFrame) and scores.empty and failures:
        raise StudyError(
            f"figure {figure_id!r}: nothing to draw, all {len(failures)} runs or scorings "
            f"failed; the first: {failures[0]}"
        )


def reproduce(
    figure_id: str,
    scale: Scale = "quick",
    out: str | Path = "figures",
    *,
    runs: str | Path = "runs/reproduce",
    jobs: int = 2,
    progress: bool = True,
) -> FigureResult:
    """Run a figure's study at ``scale``, draw it, write ID.png/.pdf/.csv, check its claim.

    The study runs in ``runs/ID/SCALE`` (or ``runs/WORKDIR/SCALE`` when figures share one),
    reusing whatever a previous call left there.
    """
    spec = get_figure(figure_id)
    if scale not in spec.studies:
        from genmeasures.errors import OptionError

        raise OptionError(
            f"figure {figure_id!r} has no {scale!r} scale; valid: {', '.join(spec.studies)}"
        )
    start = time.perf_counter()
    experiment = spec.studies[scale]()
    workdir = Path(runs) / (experiment.workdir or spec.id) / scale
    data = experiment.run(workdir, jobs=jobs, progress=progress)
    _check_something_to_draw(figure_id, data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    drawn = spec.draw(data, out / spec.id)
    claim = spec.check(drawn.data)
    csv = out / f"{spec.id}.csv"
    atomic_write_text(csv, drawn.data.to_csv(index=False))
    files = [drawn.png, drawn.pdf, csv]
    why = f"\n{spec.notes}\n" if spec.notes and not claim.passed else "\n"
    atomic_write_text(out / f"{spec.id}.claim.txt", f"{spec.claim}\n{claim}{why}")
    if progress:
        print(f"{spec.id}: {claim}", file=sys.stderr)
    return FigureResult(spec, scale, files, claim, time.perf_counter() - start)
