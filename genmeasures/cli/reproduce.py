"""``genmeasures reproduce``: regenerate a paper's figure and check its claim."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import click


@click.command("reproduce")
@click.argument("figure_id", required=False)
@click.option(
    "--scale",
    type=click.Choice(["quick", "paper"]),
    default="quick",
    show_default=True,
    help="quick: built-in data on CPU; paper: the papers' setting.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("figures"),
    show_default=True,
    help="Where ID.png, ID.pdf and ID.csv go.",
)
@click.option(
    "--runs",
    type=click.Path(path_type=Path),
    default=Path("runs/reproduce"),
    show_default=True,
    help="Where the runs are kept (reused on a rerun).",
)
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--list", "list_only", is_flag=True, help="List the figures and their claims.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(
    figure_id: str | None,
    scale: Literal["quick", "paper"],  # a click.Choice
    out: Path,
    runs: Path,
    jobs: int,
    list_only: bool,
    quiet: bool,
) -> None:
    """Regenerate FIGURE_ID (or `all` of them) into OUT and print its claim as PASS/FAIL.

    \b
    Writes OUT/ID.png, OUT/ID.pdf, OUT/ID.csv (every plotted number) and OUT/ID.claim.txt.
    Runs are kept under RUNS: a rerun trains and scores only what is missing.
    A claim that fails is reported, not hidden; the figure is written either way (exit 0).
    With `all`, a figure that cannot be produced is reported and the others still run
    (exit 1 at the end).
    """
    from genmeasures.reproduce import list_figures, reproduce

    if list_only or figure_id is None:
        for spec in list_figures():
            click.echo(
                f"{click.style(spec.id, bold=True)}  ({spec.paper})\n    claim: {spec.claim}"
            )
        return
    from genmeasures._io import check_output_dir
    from genmeasures.errors import OptionError, describe_failure, is_bad_input

    check_output_dir(out, "figure folder", OptionError)
    check_output_dir(runs, "runs folder", OptionError)
    ids = [s.id for s in list_figures()] if figure_id == "all" else [figure_id]
    if len(ids) == 1:
        result = reproduce(ids[0], scale, out, runs=runs, jobs=jobs, progress=not quiet)
        _report(result)
        return
    errors, times = [], []
    for fid in ids:  # one figure's failure does not stop the others
        try:
            result = reproduce(fid, scale, out, runs=runs, jobs=jobs, progress=not quiet)
        except Exception as exc:
            if not is_bad_input(exc):
                raise
            click.echo(f"{fid}: error: {describe_failure(exc)}", err=True)
            errors.append(fid)
            continue
        _report(result)
        assert result.claim is not None  # reproduce() always checks the claim
        times.append((fid, result.seconds, result.claim))
    click.echo("\n| figure | seconds | claim |\n|---|---|---|")
    for fid, seconds, claim in times:
        click.echo(f"| {fid} | {seconds:.0f} | {'PASS' if claim.passed else 'FAIL'} |")
    click.echo(f"total: {sum(t for _, t, _ in times):.0f} s for {len(times)} figures")
    if errors:
        click.echo(f"error: {len(errors)} figure(s) not produced: {', '.join(errors)}", err=True)
        sys.exit(1)


def _report(result) -> None:
    click.echo(
        f"{result.spec.id}: {result.claim}  ({result.seconds:.0f} s; "
        f"{', '.join(str(p) for p in result.files)})"
    )
    if not result.claim.passed:
        click.echo("  this claim did not reproduce at this scale (see the note above)", err=True)
