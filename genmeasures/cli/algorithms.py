"""``genmeasures algorithms``: list the fine-tuning algorithms and their options."""

from __future__ import annotations

import click


@click.command("algorithms")
@click.option("--verbose", "-v", is_flag=True, help="Also show each option's help text.")
def command(verbose: bool) -> None:
    """List every fine-tuning algorithm with its options: type, range and default (config
    keys algorithm.name and algorithm.OPTION)."""
    from genmeasures.cli._listing import dataclass_options, first_paragraph, option_line
    from genmeasures.finetune import ALGORITHMS, get_algorithm

    get_algorithm("erm")  # loads the built-ins
    for name in ALGORITHMS.names():
        cls = ALGORITHMS.get(name)
        summary = first_paragraph(cls.__doc__)
        click.echo(f"{click.style(name, bold=True)}  {summary}")
        for option in dataclass_options(cls.Options):
            click.echo(option_line(*option, verbose=verbose))
