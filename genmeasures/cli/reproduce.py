"""``genmeasures reproduce``: regenerate a paper's figure and check its claim."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import click


class SeedList(click.ParamType):
    """``5,6,7``: distinct integers >= 0, as a tuple (a bad value is one click error line)."""

    name = "seeds"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        items = [item.strip() for item in str(value).split(",")]
        if not any(items):
            self.fail("give a comma-separated list of seeds, e.g. 5,6,7", param, ctx)
        seeds = []
        for item in items:
            if not (item.isascii() and item.isdigit()):  # refuses '', '-1', '1.5', '+1'
                self.fail(f"{item!r} is not an integer >= 0 (e.g. --seeds 5,6,7)", param, ctx)
            seeds.append(int(item))
        repeated = [s for s in seeds if seeds.count(s) > 1]
        if repeated:
            self.fail(f"seed {repeated[0]} is listed twice", param, ctx)
        return tuple(seeds)


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
@click.option(
    "--seed-offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="K",
    help="Add K to every seed (other inits, data orders and noisy labels); "
    "the pretrained source model is unchanged.",
)
@click.option(
    "--seeds",
    type=SeedList(),
    default=None,
    metavar="5,6,7",
    help="Run with these seeds instead of the figure's (not with --seed-offset).",
)
@click.option("--list", "list_only", is_flag=True, help="List the figures and their claims.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(
    figure_id: str | None,
    scale: Literal["quick", "paper"],  # a click.Choice
    out: Path,
    runs: Path,
    jobs: int,
    seed_offset: int,
    seeds: tuple[int, ...] | None,
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

    \b
    Fresh seeds, to see that a verdict is not seed luck: --seed-offset K adds K to every
    seed, --seeds 5,6,7 replaces them; each seed is a new head init, data order and draw of
    the noisy labels (the same for every method). ID.claim.txt names the seeds it used; the
    runs of other seeds sit beside the default ones under RUNS.
    """
    from genmeasures.reproduce import list_figures, reproduce

    if seeds is not None and seed_offset:
        raise click.UsageError("give --seeds or --seed-offset, not both")
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

    def run(fid: str):
        return reproduce(
            fid,
            scale,
            out,
            runs=runs,
            jobs=jobs,
            progress=not quiet,
            seed_offset=seed_offset,
            seeds=seeds,
        )

    if len(ids) == 1:
        result = run(ids[0])
        _report(result)
        return
    errors, times = [], []
    for fid in ids:  # one figure's failure does not stop the others
        try:
            result = run(fid)
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
    from genmeasures.reproduce.figures import describe_seeds

    seeds = f"seeds {describe_seeds(result.seeds)}; " if result.seeds is not None else ""
    click.echo(
        f"{result.spec.id}: {result.claim}  ({seeds}{result.seconds:.0f} s; "
        f"{', '.join(str(p) for p in result.files)})"
    )
    if not result.claim.passed:
        click.echo("  this claim did not reproduce at this scale (see the note above)", err=True)
