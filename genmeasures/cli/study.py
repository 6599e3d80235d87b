"""``genmeasures study``: the whole pipeline on the built-in data, into a report folder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("study")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/study"),
    show_default=True,
    help="Report folder (reused: a rerun computes nothing new).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Parallel processes for training and scoring.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Use only the first N seeds (default: all of the study's).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(out: Path, jobs: int, seeds: int | None, quiet: bool) -> None:
    """Pretrain -> fine-tune sweep -> score the measures -> correlate -> report.

    Runs the default study on scikit-learn's digits (no download), in the papers' regime
    shrunk to a CPU: pretrain a depth-20 ResNet-18 (width 1/8) on one half of every digit's
    images, fine-tune on 30 images per digit of the other half with erm, constraint, l2sp,
    regsl, robust, nso and sam, clean and with 40% symmetric label noise (erm memorizes it:
    the study prints that check), 3 seeds; then OUT/index.html shows which measure predicts
    the generalization gap. About 10 minutes on 2 CPU cores.
    """
    from dataclasses import replace

    from genmeasures._io import check_output_dir
    from genmeasures.errors import OptionError
    from genmeasures.reproduce import DEFAULT_STUDY, run_study

    check_output_dir(out, "study folder", OptionError)

    study = DEFAULT_STUDY
    if seeds is not None:
        study = replace(study, seeds=study.seeds[:seeds])
    result = run_study(study, out, jobs=jobs, progress=not quiet)
    click.echo(
        result.report.summary[["measure", "n", "kendall_tau", "spearman_rho"]].to_string(
            index=False, float_format=lambda v: f"{v:+.3f}"
        )
    )
    click.echo(f"report: {result.out / 'index.html'}")
    if result.failures:
        click.echo(f"{len(result.failures)} failure(s):", err=True)
        for failure in result.failures:
            click.echo(f"  {failure}", err=True)
