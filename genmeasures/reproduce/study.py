"""Studies: pretrain -> fine-tune sweep -> score -> correlate -> plots -> report folder.

A :class:`Study` is data (a pretraining config and a sweep); :func:`run_study` composes the
library: it pretrains once, trains every grid point x seed (``jobs`` processes), scores the
last checkpoint of each run with every measure (again in parallel, through the result cache),
correlates each measure with the gap and writes a report folder:

    OUT/
      pretrained.safetensors   the source model
      runs/                    one run directory per grid point and seed
      scores.csv               every measure on every run (the long table)
      correlations.csv         one row per measure: Kendall, Spearman, Pearson, Psi, CMI, R^2
      plots/                   measure vs gap, ranking, per-layer profiles (PNG and PDF)
      index.html               all of it on one page

Every step reuses what a previous run of the same study left: a second run computes nothing.

A study's seed is a fresh replicate of every fine-tuning run: it sets each key of
``Study.seed_keys`` (by default :data:`STUDY_SEED_KEYS`: the run's randomness and data order,
the new head's init and the draw of the noisy labels), so seed ``s`` of every method trains
on the same noisy labels (comparisons between methods stay paired) and another seed on
other ones. The pretraining (``Study.pretrain``) is not reseeded: the source model is fixed,
like ImageNet weights.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from genmeasures.checkpoints import metrics_table
from genmeasures.correlation import wide_table
from genmeasures.finetune import config_from_mapping, pretrain
from genmeasures.reproduce.regime import memorization
from genmeasures.scoring import write_table
from genmeasures.sweeps import SweepSettings, expand, run_sweep, score_runs

#: The config keys a study's seed sets by default: ``train.seed`` (the run's randomness:
#: data order, algorithm noise), ``model.seed`` (the new head's init) and
#: ``data.noise_seed`` (which training labels the label noise flips). A plain sweep config
#: sets only the first two (:data:`genmeasures.sweeps.grid.SWEEP_SEED_KEYS`).
STUDY_SEED_KEYS: tuple[str, ...] = ("train.seed", "model.seed", "data.noise_seed")


@dataclass(frozen=True)
class Study:
    """A correlation study: what to pretrain, the sweep, and how to score it.

    Every grid point is trained once per seed of ``seeds``; each seed is written to every
    config key of ``seed_keys`` (see :data:`STUDY_SEED_KEYS`; these keys must not be grid
    keys, and a value ``base`` gives them is replaced). ``pretrain`` keeps its own seeds.
    """

    name: str
    pretrain: Mapping[str, Any] | None
    base: Mapping[str, Any]
    grid: Mapping[str, Sequence[Any]]
    seeds: tuple[int, ...] = (0, 1, 2)
    measures: tuple[str, ...] = ()
    score_samples: int = 100
    gap: str = "gap_loss"
    description: str = ""
    report: bool = True  # correlate, plot and write index.html (figures draw their own)
    select: str = "last"  # which checkpoints of each run to score: last, best or all
    # figures whose studies name the same workdir share its runs (trained once)
    workdir: str | None = None
    # the config keys each seed sets (the noisy labels' draw included): see STUDY_SEED_KEYS
    seed_keys: tuple[str, ...] = STUDY_SEED_KEYS

    def run(self, out: str | Path, *, jobs: int = 2, progress: bool = True) -> FigureData:
        """Run the study into ``out`` and collect what a figure draws from."""
        result = run_study(self, out, jobs=jobs, progress=progress)
        return FigureData.from_study(result)


@dataclass(frozen=True)
class FigureData:
    """What a figure draws from: scores (wide and long) and every run's per-epoch metrics."""

    out: Path
    scores: pd.DataFrame  # one row per scored checkpoint: measure, gap and config columns
    long: pd.DataFrame  # the long score table (per-layer rows included)
    metrics: pd.DataFrame  # one row per run and epoch (metrics.csv) with config columns
    failures: tuple[str, ...] = ()

    @classmethod
    def from_study(cls, result: StudyResult) -> FigureData:
        runs = result.runs  # only this study's, when figures share a work directory
        long = result.scores
        scores = wide_table(long) if len(long) else pd.DataFrame()
        metrics = result.metrics if result.metrics is not None else metrics_table(runs)
        return cls(result.out, scores, long, metrics, tuple(result.failures))


@dataclass
class StudyResult:
    out: Path
    scores: Any
    report: Any
    failures: list[str] = field(default_factory=list)
    computed: int = 0  # measure results computed now (the rest came from the cache)
    cached: int = 0
    runs: list[Path] = field(default_factory=list)  # this study's run directories
    metrics: pd.DataFrame | None = None  # their per-epoch metrics (read once, after training)


def run_study(
    study: Study, out: str | Path, *, jobs: int = 2, progress: bool = True
) -> StudyResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = copy.deepcopy(dict(study.base))
    if study.pretrain is not None:
        _say(progress, f"[1/5] pretraining the source model ({out / 'pretrained.safetensors'})")
        weights = pretrain(
            config_from_mapping(study.pretrain), out / "pretrained.safetensors", progress=progress
        )
        base.setdefault("model", {})["pretrained"] = str(weights)
    points = expand(base, study.grid, study.seeds, seed_keys=study.seed_keys)
    settings = SweepSettings(out=out / "runs", seeds=study.seeds, jobs=jobs, score=False)
    _say(progress, f"[2/5] fine-tuning {len(points)} runs ({jobs} at a time)")
    sweep = run_sweep(points, settings, progress=progress)
    failures = [f"{run}: {message}" for run, message in sweep.failures]
    finished = [settings.out / p.name for p in points if (settings.out / p.name).is_dir()]
    metrics = metrics_table(finished)
    regime = [str(check) for check in memorization(metrics)]
    for line in regime:  # the papers' label-noise claims need a network that fits the noise
        _say(progress, line)
    _say(progress, f"[3/5] scoring {len(finished)} runs")
    scored = score_runs(
        finished,
        measures=list(study.measures) or None,
        n_samples=study.score_samples or None,
        select=study.select,
        jobs=jobs,
        progress=progress,
    )
    failures += [str(f) for f in scored.failures]
    notes = scored.notes()
    for note in notes:
        _say(progress, f"note: {note}")
    notes = [*regime, *notes]
    write_table(scored.table, out / "scores.csv")
    if not study.report:
        return StudyResult(
            out, scored.table, None, failures, scored.computed, scored.cached, finished, metrics
        )
    _say(progress, "[4/5] correlating every measure with the gap")
    from genmeasures.correlation import correlate

    main = sorted({m for m in scored.table["measure"].unique() if "." not in m})
    report = correlate(scored.table, gap=study.gap, measures=main, seed=0)
    write_table(report.summary, out / "correlations.csv")
    _say(progress, "[5/5] plots and the report page")
    from genmeasures.plots import plot_report

    figures = plot_report(report, out / "plots", long_table=scored.table)
    from genmeasures.reproduce.html import write_index

    write_index(out, study, report, figures, failures, notes)
    return StudyResult(
        out, scored.table, report, failures, scored.computed, scored.cached, finished, metrics
    )


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr)


@dataclass(frozen=True)
class StudyGroup:
    """Several studies drawn in one figure (e.g. one per source-set size, each with its own
    pretrained model). Each part runs in ``OUT/PART``; the tables are concatenated with a
    ``study`` column naming the part."""

    name: str
    parts: Mapping[str, Study]
    workdir: str | None = None

    def run(self, out: str | Path, *, jobs: int = 2, progress: bool = True) -> FigureData:
        if not self.parts:
            from genmeasures.errors import OptionError

            raise OptionError(f"study group {self.name!r} has no parts")
        out = Path(out)
        collected = []
        for key, study in self.parts.items():
            _say(progress, f"== {self.name}: part {key!r} ==")
            collected.append((key, study.run(out / key, jobs=jobs, progress=progress)))

        def joined(tables: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
            frames = [t.assign(study=key) for key, t in tables if len(t)]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

        return FigureData(
            out,
            joined([(k, d.scores) for k, d in collected]),
            joined([(k, d.long) for k, d in collected]),
            joined([(k, d.metrics) for k, d in collected]),
            tuple(f for _, d in collected for f in d.failures),
        )
