"""``genmeasures correlate``: which measure predicts the generalization gap, and how well."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from genmeasures.errors import OptionError

if TYPE_CHECKING:
    import pandas as pd


@click.command("correlate")
@click.argument("table", type=click.Path(path_type=Path))
@click.option("--gap", default="gap_loss", show_default=True, help="The gap column to predict.")
@click.option(
    "--by",
    help="Comma-separated hyperparameter axes for Psi, CMI and cross-validation (default: the "
    "run-configuration columns that vary, never seed or epoch).",
)
@click.option(
    "--measures",
    "measure_list",
    help="Comma-separated measures or columns, e.g. 'distance_from_init,hessian_trace' "
    "(default: every measure in the table).",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(path_type=Path),
    help="Write the figures (PNG and PDF) to this folder.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Write the full statistics, one row per measure, to FILE.csv, .json or .parquet.",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples of the checkpoints for the confidence intervals (0: none).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--cv-group",
    help="Hyperparameter whose levels cross-validation holds out (default: the first axis).",
)
@click.option(
    "--no-average-seeds",
    is_flag=True,
    help="Granulated Kendall on every checkpoint instead of seed means per configuration.",
)
@click.option(
    "--psi-variant",
    type=click.Choice(["genmeasures", "jiang"]),
    default="genmeasures",
    show_default=True,
    help="Psi with tau-b, groups where the measure is constant left out (genmeasures), or "
    "by Jiang et al.'s formula: their tau-a, constant groups count 0 (jiang).",
)
@click.option(
    "--cmi-variant",
    type=click.Choice(["genmeasures", "pgdl"]),
    default="genmeasures",
    show_default=True,
    help="CMI as documented (genmeasures), or exactly as the PGDL 2020 competition's scoring "
    "program computes it (pgdl: pairs of axes only, pairs (i, i) included, binary signs, "
    "cells weighted uniformly).",
)
def command(
    table: Path,
    gap: str,
    by: str | None,
    measure_list: str | None,
    plots_dir: Path | None,
    out: Path | None,
    n_boot: int,
    seed: int,
    cv_group: str | None,
    no_average_seeds: bool,
    psi_variant: str,
    cmi_variant: str,
) -> None:
    """Correlate generalization measures with the gap over the checkpoints of TABLE.

    TABLE is the long table `genmeasures score --out` writes (pivoted to one row per
    checkpoint, whole-model rows) or a table with one row per checkpoint. For every measure:
    Kendall tau-b, Spearman rho and Pearson r with p-values and bootstrap 95% CIs, Jiang et
    al.'s granulated Kendall Psi over the --by axes and conditional mutual information (min
    over axis subsets of size <= 2, pair-weighted cells), OLS gap ~ measure with R^2 and
    group K-fold cross-validated R^2, and the median ratio measure / gap. Prints them sorted
    by |tau|. With --psi-variant jiang or --cmi-variant pgdl the Psi or CMI column is headed
    Psi[jiang] or CMI[pgdl] and the written statistics' note says which was computed.
    """
    from genmeasures._io import check_output_dir
    from genmeasures.correlation import correlate
    from genmeasures.tables import check_table_path, is_long, read_table, write_table

    if out is not None:
        check_table_path(out)
    if plots_dir is not None:
        check_output_dir(plots_dir, "plots folder", OptionError)
    data = read_table(table)
    measures = _split(measure_list)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = correlate(
            data,
            gap=gap,
            by=_split(by) if by is not None else None,
            measures=measures,
            n_boot=n_boot,
            seed=seed,
            average_seeds=not no_average_seeds,
            cv_group=cv_group,
            psi_variant=psi_variant,
            cmi_variant=cmi_variant,
        )
        if plots_dir is not None:
            from genmeasures.plots import plot_report

            results = plot_report(report, plots_dir, long_table=data if is_long(data) else None)
    click.echo(_readable(report.summary, report.psi_variant, report.cmi_variant))
    for note in dict.fromkeys(str(w.message) for w in caught):
        click.echo(f"note: {note}", err=True)
    if plots_dir is not None:
        click.echo(f"wrote {2 * len(results)} figure files to {plots_dir}", err=True)
    if out is not None:
        write_table(report.summary, out)
        click.echo(f"wrote statistics for {len(report.summary)} measure(s) to {out}", err=True)


def _split(text: str | None) -> list[str] | None:
    """Split on commas outside brackets: 'a,b[x=1,y=2]' -> ['a', 'b[x=1,y=2]']."""
    if text is None:
        return None
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    names = [p.strip() for p in parts if p.strip()]
    return names or None


def _readable(
    summary: pd.DataFrame, psi_variant: str = "genmeasures", cmi_variant: str = "genmeasures"
) -> str:
    import pandas as pd

    def fixed(value: float) -> str:
        return f"{value:+.2f}" if math.isfinite(value) else "-"

    def tau(row) -> str:
        text = fixed(row["kendall_tau"])
        lo, hi = row["kendall_tau_lo"], row["kendall_tau_hi"]
        if math.isfinite(row["kendall_tau"]) and math.isfinite(lo) and math.isfinite(hi):
            text += f" [{lo:+.2f}, {hi:+.2f}]"
        return text

    shown = pd.DataFrame(
        {
            "measure": summary["measure"],
            "n": summary["n"].astype(int),
            "kendall tau [95% CI]": summary.apply(tau, axis=1),
            "spearman": summary["spearman_rho"].map(fixed),
            "pearson": summary["pearson_r"].map(fixed),
            "R^2": summary["r2"].map(lambda v: f"{v:.2f}" if math.isfinite(v) else "-"),
            _headed("Psi", psi_variant): summary["psi"].map(fixed),
            _headed("CMI", cmi_variant): summary["cmi"].map(
                lambda v: f"{v:.2f}" if math.isfinite(v) else "-"
            ),
            "median ratio": summary["ratio_median"].map(
                lambda v: f"{v:.3g}" if math.isfinite(v) else "-"
            ),
        }
    )
    return shown.to_string(index=False)


def _headed(statistic: str, variant: str) -> str:
    return statistic if variant == "genmeasures" else f"{statistic}[{variant}]"
