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

Fresh seeds: ``reproduce(..., seed_offset=K)`` adds K to every seed of the figure's
experiment, and ``reproduce(..., seeds=(5, 6, 7))`` replaces them, so that a reader can see
whether a verdict holds beyond the seeds it was measured on. For a
:class:`~genmeasures.reproduce.Study` (each part of a
:class:`~genmeasures.reproduce.StudyGroup`) a seed is the head's init, the data order and the
noisy labels' draw (see ``Study.seed_keys``); the pretrained source model is not reseeded.
Any other experiment that is a dataclass with a ``seeds`` field (matrix sensing: the problem,
the init and the optimizers' noise) gets the new seeds the same way; one without is run as it
is and its ``claim.txt`` says that it takes no seeds. Run directories are named by their
seed, so runs of other seeds sit beside the default ones in the same runs folder.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd

from genmeasures._io import atomic_write_text
from genmeasures._registry import Registry
from genmeasures.errors import OptionError, PluginError, StudyError, describe_failure
from genmeasures.plots import PlotResult
from genmeasures.reproduce.regime import memorization
from genmeasures.reproduce.study import FigureData, StudyGroup

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
    # the seeds the experiment ran with (by StudyGroup part when they differ), as the
    # claim.txt's "seeds:" line says; None when the experiment takes no seeds
    seeds: tuple[int, ...] | dict[str, tuple[int, ...]] | None = None


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
    seed_offset: int = 0,
    seeds: Sequence[int] | None = None,
) -> FigureResult:
    """Run a figure's study at ``scale``, draw it, write ID.png/.pdf/.csv, check its claim.

    The study runs in ``runs/ID/SCALE`` (or ``runs/WORKDIR/SCALE`` when figures share one),
    reusing whatever a previous call left there.

    ``seed_offset`` (an integer >= 0) adds to every seed of the experiment (each part of a
    study group); ``seeds`` (distinct integers >= 0, not with an offset) replaces them. For
    a study a seed sets the head's init, the data order and the noisy labels (the pretrained
    source model stays as it is). The seeds used are written to ``ID.claim.txt`` (a line
    ``seeds: 100, 101, 102``) and returned in :attr:`FigureResult.seeds`.
    """
    change = _seed_change(seed_offset, seeds)
    spec = get_figure(figure_id)
    if scale not in spec.studies:
        raise OptionError(
            f"figure {figure_id!r} has no {scale!r} scale; valid: {', '.join(spec.studies)}"
        )
    start = time.perf_counter()
    experiment = spec.studies[scale]()
    if change is not None:
        reseeded = with_seeds(experiment, change)
        if reseeded is None and progress:
            print(
                f"{spec.id}: its experiment takes no seeds; the seed change is ignored",
                file=sys.stderr,
            )
        experiment = reseeded if reseeded is not None else experiment
    used = experiment_seeds(experiment)
    if change is not None:
        _check_seed_range(used)
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
    seeds_line = f"seeds: {describe_seeds(used, ignored=change is not None)}"
    regime = "".join(f"\n{check}" for check in memorization(data.metrics))
    atomic_write_text(
        out / f"{spec.id}.claim.txt", f"{spec.claim}\n{claim}\n{seeds_line}{regime}{why}"
    )
    if progress:
        print(f"{spec.id}: {claim}", file=sys.stderr)
    return FigureResult(spec, scale, files, claim, time.perf_counter() - start, used)


SeedChange = Callable[[tuple[int, ...]], tuple[int, ...]]
#: The largest seed a changed seed set may hold (every generator the runs seed takes it).
MAX_SEED = 2**32 - 1


def _seed_change(seed_offset: int, seeds: Sequence[int] | None) -> SeedChange | None:
    """What ``reproduce``'s ``seed_offset`` and ``seeds`` do to an experiment's seeds (None:
    nothing), both checked first: one-line errors for a bad value."""
    if isinstance(seed_offset, bool) or not isinstance(seed_offset, int) or seed_offset < 0:
        raise OptionError(f"seed_offset must be an integer >= 0, got {seed_offset!r}")
    if seeds is None:
        return None if seed_offset == 0 else (lambda old: tuple(s + seed_offset for s in old))
    if seed_offset:
        raise OptionError("give seeds or a seed_offset, not both")
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence):
        raise OptionError(f"seeds must be a list of integers, got {seeds!r}")
    new = tuple(seeds)
    if not new:
        raise OptionError("seeds must name at least one seed")
    for seed in new:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise OptionError(f"seeds must be integers >= 0, got {seed!r}")
    if len(set(new)) != len(new):
        repeated = next(s for s in new if new.count(s) > 1)
        raise OptionError(f"seeds must be distinct, got {repeated} twice")
    return lambda old: new


def _check_seed_range(seeds: tuple[int, ...] | Mapping[str, tuple[int, ...]] | None) -> None:
    every = [s for part in seeds.values() for s in part] if isinstance(seeds, Mapping) else seeds
    too_large = [s for s in every or () if s > MAX_SEED]
    if too_large:
        raise OptionError(f"seeds must be at most {MAX_SEED}, got {too_large[0]}")


def with_seeds(experiment: Any, change: SeedChange) -> Any | None:
    """``experiment`` with ``change`` applied to its seeds, or None if it takes none.

    A :class:`~genmeasures.reproduce.StudyGroup` changes the seeds of each part; a
    dataclass with a ``seeds`` field (a :class:`~genmeasures.reproduce.Study`, matrix
    sensing) gets ``seeds=change(seeds)`` through :func:`dataclasses.replace`, so its own
    checks run on the new seeds. Nothing else of the experiment changes (a study's
    ``pretrain`` keeps its seed).
    """
    if isinstance(experiment, StudyGroup):
        parts = {}
        for key, part in experiment.parts.items():
            changed = with_seeds(part, change)
            parts[key] = part if changed is None else changed
        return dataclasses.replace(experiment, parts=parts)
    is_instance = dataclasses.is_dataclass(experiment) and not isinstance(experiment, type)
    if is_instance and "seeds" in {f.name for f in dataclasses.fields(experiment)}:
        return dataclasses.replace(experiment, seeds=change(tuple(experiment.seeds)))
    return None


def experiment_seeds(experiment: Any) -> tuple[int, ...] | dict[str, tuple[int, ...]] | None:
    """The seeds ``experiment`` runs with: a tuple, a dict by part for a study group whose
    parts differ, or None for an experiment without a ``seeds`` attribute."""
    if isinstance(experiment, StudyGroup):
        by_part = {
            key: seeds
            for key, part in experiment.parts.items()
            if isinstance(seeds := experiment_seeds(part), tuple)
        }
        if not by_part:
            return None
        distinct = set(by_part.values())
        return next(iter(distinct)) if len(distinct) == 1 else by_part
    seeds = getattr(experiment, "seeds", None)
    return tuple(seeds) if isinstance(seeds, Sequence) and not isinstance(seeds, str) else None


def describe_seeds(
    seeds: tuple[int, ...] | Mapping[str, tuple[int, ...]] | None, *, ignored: bool = False
) -> str:
    """``0, 1, 2``; ``sgd 0, 1; adam 0`` by part; or that the experiment takes none."""
    if seeds is None:
        text = "none (this figure's experiment takes no seeds)"
        return text + "; the seed change was ignored" if ignored else text
    if isinstance(seeds, Mapping):
        return "; ".join(f"{key} {', '.join(map(str, s))}" for key, s in seeds.items())
    return ", ".join(map(str, seeds))
