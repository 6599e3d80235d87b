"""``genmeasures config``: the reference of the config file's sections and keys."""

from __future__ import annotations

import click


@click.command("config")
@click.option("--verbose", "-v", is_flag=True, help="Also show each key's help text.")
def command(verbose: bool) -> None:
    """List every key of a fine-tuning or sweep config file: type, range and default.

    \b
    Sections [model], [data], [train] and [algorithm] make a `finetune` or `pretrain`
    config; a `sweep` file adds [sweep] and [grid]. A KEY=VALUE argument (train.lr=0.1)
    overrides the file. The [algorithm] keys depend on algorithm.name: see
    `genmeasures algorithms -v`.
    """
    from genmeasures.cli._listing import dataclass_options, mapping_options, option_line
    from genmeasures.finetune.config import SECTIONS
    from genmeasures.sweeps.grid import SETTING_DEFAULTS, SETTING_TYPES

    for section, cls in SECTIONS.items():
        summary = (cls.__doc__ or "").strip().splitlines()[0].split(": ", 1)[-1].rstrip(".")
        click.echo(f"{click.style(f'[{section}]', bold=True)}  {summary}")
        for option in dataclass_options(cls):
            click.echo(option_line(*option, verbose=verbose))
    click.echo(f"{click.style('[algorithm]', bold=True)}  the algorithm and its options")
    click.echo(option_line("name", str, "erm", "see `genmeasures algorithms`", verbose=verbose))
    click.echo("    --  OPTION: the options of algorithm.name (`genmeasures algorithms -v`)")
    click.echo(f"{click.style('[sweep]', bold=True)}  a sweep's settings (`genmeasures sweep`)")
    for option in mapping_options(SETTING_TYPES, SETTING_DEFAULTS):
        click.echo(option_line(*option, verbose=verbose))
    click.echo(f"{click.style('[grid]', bold=True)}  dotted keys (or algorithm) -> lists of values")
