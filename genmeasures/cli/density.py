"""``genmeasures density``: the Hessian's spectral density from a scored table."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("density")
@click.argument("table_path", metavar="TABLE", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Write the tidy nodes-and-weights table (checkpoint, options, run, node, weight) "
    "to FILE.csv, .parquet or .json.",
)
@click.option(
    "--plot",
    "plot_stem",
    type=click.Path(path_type=Path),
    help="Draw the log density against eigenvalue to STEM.png and STEM.pdf.",
)
@click.option(
    "--measure",
    default="hessian_density",
    show_default=True,
    help="The density measure's name in the table.",
)
def command(table_path: Path, out: Path | None, plot_stem: Path | None, measure: str) -> None:
    """The stochastic Lanczos quadrature nodes and weights that `genmeasures score` wrote
    for the hessian_density measure, as a tidy table and a plot (Ghorbani et al. 2019).

    Score first, e.g. genmeasures score RUN --measure 'hessian_density:runs=3' --out s.csv;
    then genmeasures density s.csv --out nodes.csv --plot density. Prints each checkpoint's
    negative-mass fraction (the measure's value) and its extreme nodes.
    """
    from genmeasures.measures.density import density_table
    from genmeasures.plots.density import spectral_density
    from genmeasures.tables import check_table_path, read_table, whole_model_rows, write_table

    if out is not None:
        check_table_path(out)
    table = read_table(table_path)
    tidy = density_table(table, measure)
    keys = [c for c in ("checkpoint", "options") if c in tidy.columns]
    whole = whole_model_rows(table)
    whole = whole[whole["measure"] == measure]
    for _, row in whole.iterrows():
        name = Path(str(row.get("checkpoint", ""))).name
        click.echo(f"{name}  negative mass {row['value']:.4g}")
    if plot_stem is not None:
        result = spectral_density(tidy, plot_stem)
        click.echo(f"wrote {result.png} and {result.pdf}", err=True)
    if out is not None:
        write_table(tidy, out)
        click.echo(f"wrote {len(tidy)} nodes to {out}", err=True)
    if out is None and plot_stem is None:
        click.echo(tidy.groupby(keys or ["run"])["node"].agg(["min", "max", "count"]).to_string())
