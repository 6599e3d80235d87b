"""The ``genmeasures`` command line: one module per verb, no logic beyond argument parsing."""

from __future__ import annotations

import sys

import click

from genmeasures.errors import describe_failure, is_bad_input


class _Group(click.Group):
    """Turns every failure into a one-line ``error:`` message and exit status 1.

    The toolkit's own errors say what is wrong with the input; an OS error names the path and
    the reason (permission, read-only, full disk, a directory where a file belongs); anything
    else is reported with its type. Click's own exits and usage errors pass through, and so
    do bugs under ``GENMEASURES_DEBUG`` (see :func:`genmeasures.errors.is_bad_input`).
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if not is_bad_input(exc):
                raise
            click.echo(f"error: {describe_failure(exc)}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genmeasures")
def main() -> None:
    """genmeasures: how far did fine-tuning move a network, how flat is where it landed,
    and does that predict the generalization gap?

    \b
    Typical use:
      genmeasures study                           the whole pipeline on the built-in data
      genmeasures measures                        list the measures and their options
      genmeasures example runs/demo               pretrain + fine-tune on the digits
      genmeasures score runs/demo --out s.csv     score checkpoints against their init
      genmeasures finetune --config ft.toml --out runs/erm
      genmeasures config -v                       every config key: type, range, default
      genmeasures sweep --config sweep.toml       a grid of runs, scored
      genmeasures correlate runs/sweep/scores.csv which measure predicts the gap?
      genmeasures density s.csv --plot density    the Hessian's spectral density
    """


def _register_commands() -> None:
    from genmeasures.cli import (
        algorithms,
        config,
        correlate,
        density,
        example,
        finetune,
        measures,
        pretrain,
        reproduce,
        score,
        study,
        sweep,
    )

    for module in (
        study,
        reproduce,
        measures,
        score,
        example,
        pretrain,
        finetune,
        sweep,
        algorithms,
        config,
        correlate,
        density,
    ):
        main.add_command(module.command)


_register_commands()
