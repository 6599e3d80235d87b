"""``genmeasures sweep``: expand a grid into runs, run them in parallel, score them."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("sweep")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Sweep file: a base config, [grid] and [sweep] (see docs/cli.md).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Overrides sweep.out.")
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel processes (sweep.jobs).")
@click.option("--score/--no-score", default=None, help="Score the runs afterwards.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check every run as it would be checked before training (settings, measures, "
    "datasets, models, pretrained files), list the runs and exit.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(
    config_path: Path,
    out: Path | None,
    jobs: int | None,
    score: bool | None,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Run every grid point x seed of a sweep; finished runs are skipped.

    With scoring on, writes OUT/scores.csv (every measure on every checkpoint) for
    `genmeasures correlate`.
    """
    from genmeasures.sweeps import check_points, load_sweep, run_sweep

    settings, points = load_sweep(config_path, {"out": out, "jobs": jobs, "score": score})
    check_points(points, settings)
    if dry_run:
        for point in points:
            click.echo(f"{settings.out / point.name}")
        click.echo(f"{len(points)} runs, all valid", err=True)
        return
    report = run_sweep(points, settings, progress=not quiet)
    click.echo(
        f"{len(report.finished)} trained, {len(report.skipped)} already finished, "
        f"{len(report.failures)} failed",
        err=True,
    )
    ok = True
    if settings.score:
        ok = _score(settings, [settings.out / p.name for p in points], quiet)
    for run_dir, message in report.failures:
        click.echo(f"  {run_dir}: {message}", err=True)
    if report.failures or not ok:
        sys.exit(1)


def _score(settings, run_dirs: list[Path], quiet: bool) -> bool:
    from genmeasures.scoring import write_table
    from genmeasures.sweeps import score_runs

    existing = [d for d in run_dirs if (d / "checkpoints").is_dir()]
    report = score_runs(
        existing,
        measures=list(settings.measures) or None,
        n_samples=settings.score_samples or None,
        select=settings.score_checkpoints,
        jobs=settings.jobs,
        progress=not quiet,
    )
    if len(report.table):
        path = write_table(report.table, settings.out / "scores.csv")
        click.echo(f"wrote {len(report.table)} rows to {path}", err=True)
    for note in report.notes():
        click.echo(f"note: {note}", err=True)
    for failure in report.failures:
        click.echo(f"  {failure}", err=True)
    return report.ok
