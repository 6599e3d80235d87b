"""``genmeasures measures``: list every registered measure with its options."""

from __future__ import annotations

import click


@click.command("measures")
@click.option("--verbose", "-v", is_flag=True, help="Also show each option's help text.")
def command(verbose: bool) -> None:
    """List every registered measure, what it needs, and its options (name, type and range,
    default).

    Use options as --measure 'NAME:option=value,option=value' in `genmeasures score`.
    """
    from genmeasures.cli._listing import option_line
    from genmeasures.measures import list_measures

    for spec in list_measures():
        needs = ", ".join(sorted(spec.needs)) or "weights only"
        click.echo(f"{click.style(spec.name, bold=True)}  {spec.summary}")
        click.echo(f"    needs: {needs}" + (f"   paper: {spec.paper}" if spec.paper else ""))
        for option in spec.options.values():
            line = option_line(
                option.name, option.annotation, option.default, option.help, verbose=verbose
            )
            click.echo(line)
