"""``correlate``: every statistic for every measure, in one call."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genmeasures.correlation._common import as_list, check_axes, check_gap, measure_columns
from genmeasures.correlation.cmi import conditional_mutual_information
from genmeasures.correlation.granulated import (
    AXIS_COLUMNS,
    PSI_COLUMNS,
    check_psi_variant,
    granulated_kendall,
)
from genmeasures.correlation.rank import rank_correlations
from genmeasures.correlation.regression import CV_COLUMNS, cross_validated_r2, regression
from genmeasures.correlation.scale import scale_agreement
from genmeasures.correlation.tables import hyperparameter_axes, is_long, wide_table


@dataclass(frozen=True)
class CorrelationReport:
    """The statistics of :func:`correlate`, each a DataFrame with one row per measure
    (``psi_axes``: per measure x axis; ``cmi_subsets``: per measure x conditioning subset).

    ``summary`` joins the per-measure columns, sorted by |Kendall tau| (largest first);
    ``table`` is the one-row-per-checkpoint table they were computed on; ``notes`` are the
    warnings raised on the way (dropped NaNs, constant measures, inferred axes).
    """

    summary: pd.DataFrame
    correlations: pd.DataFrame
    psi: pd.DataFrame
    psi_axes: pd.DataFrame
    cmi: pd.DataFrame
    cmi_subsets: pd.DataFrame
    regression: pd.DataFrame
    cross_validation: pd.DataFrame
    scale: pd.DataFrame
    table: pd.DataFrame
    gap: str
    axes: tuple[str, ...]
    measures: tuple[str, ...]
    cv_group: str | None
    notes: tuple[str, ...]
    psi_variant: str = "genmeasures"
    cmi_variant: str = "genmeasures"


def correlate(
    table: pd.DataFrame,
    gap: str = "gap_loss",
    by: str | Sequence[str] | None = None,
    measures: str | Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    average_seeds: bool = True,
    seed_column: str = "seed",
    cv_group: str | None = None,
    n_splits: int = 5,
    max_subset_size: int = 2,
    psi_variant: str = "genmeasures",
    cmi_variant: str = "genmeasures",
) -> CorrelationReport:
    """Which measure predicts the generalization gap, and how well.

    ``table`` is the long table ``genmeasures score`` writes (pivoted with
    :func:`wide_table`, whole-model rows only) or already one row per checkpoint (then name
    the ``measures``). ``by`` are the hyperparameter axes for the granulated Kendall
    coefficient, the conditioning of the mutual information and the default cross-validation
    group; default: :func:`hyperparameter_axes`, the run-configuration columns that vary
    (never seed or epoch). ``cv_group`` (default: the first axis) is the column whose levels
    cross-validation holds out.

    Runs :func:`rank_correlations`, :func:`granulated_kendall`,
    :func:`conditional_mutual_information`, :func:`regression`, :func:`cross_validated_r2`
    and :func:`scale_agreement` (see each for its formula; Jiang et al., ICLR 2020,
    "Fantastic generalization measures and where to find them"). ``psi_variant="jiang"``
    computes Psi by Jiang et al.'s formula and ``cmi_variant="pgdl"`` the CMI as the PGDL
    competition's scoring program does (see :func:`granulated_kendall` and
    :func:`conditional_mutual_information`); the summary's note then says so.
    """
    check_psi_variant(psi_variant)  # also when there is no axis to compute Psi on
    if is_long(table):
        table = wide_table(table, measures)
        names = list(table.attrs["measures"])
    else:
        names = measure_columns(table, measures)
        table = table.reset_index(drop=True)
    check_gap(table, gap)
    notes: list[str] = []
    if by is None:
        axes = hyperparameter_axes(table, exclude=[gap, *names])
        notes.append(
            f"hyperparameter axes (inferred): {', '.join(axes)}"
            if axes
            else "no hyperparameter column varies: Psi is undefined, CMI is unconditional"
        )
    else:
        axes = check_axes(table, as_list(by))
    group = cv_group if cv_group is not None else (axes[0] if axes else None)
    if group is not None:
        check_axes(table, [group])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        correlations = rank_correlations(
            table, names, gap, n_boot=n_boot, seed=seed, confidence=confidence
        )
        if axes:
            psi, psi_axes = granulated_kendall(
                table,
                names,
                gap,
                axes,
                average_seeds=average_seeds,
                seed_column=seed_column,
                psi_variant=psi_variant,
            )
        else:
            psi = pd.DataFrame({"measure": names}).reindex(columns=list(PSI_COLUMNS))
            psi_axes = pd.DataFrame(columns=list(AXIS_COLUMNS))
        cmi, cmi_subsets = conditional_mutual_information(
            table, names, gap, axes, max_subset_size=max_subset_size, cmi_variant=cmi_variant
        )
        fits = regression(table, names, gap, confidence=confidence)
        if group is not None:
            cv = cross_validated_r2(table, names, gap, group=group, n_splits=n_splits)
        else:
            cv = pd.DataFrame({"measure": names}).reindex(columns=list(CV_COLUMNS))
        scale = scale_agreement(table, names, gap)
    for warning in caught:
        message = str(warning.message)
        if issubclass(warning.category, UserWarning) and message not in notes:
            notes.append(message)
    for message in notes:
        warnings.warn(message, UserWarning, stacklevel=2)

    summary = _summary(correlations, psi, psi_axes, cmi, fits, cv, scale)
    return CorrelationReport(
        summary=summary,
        correlations=correlations,
        psi=psi,
        psi_axes=psi_axes,
        cmi=cmi,
        cmi_subsets=cmi_subsets,
        regression=fits,
        cross_validation=cv,
        scale=scale,
        table=table,
        gap=gap,
        axes=tuple(axes),
        measures=tuple(names),
        cv_group=group,
        notes=tuple(notes),
        psi_variant=psi_variant,
        cmi_variant=cmi_variant,
    )


def _summary(correlations, psi, psi_axes, cmi, fits, cv, scale) -> pd.DataFrame:
    summary = correlations.drop(columns=["note"])
    per_axis = psi_axes.pivot(index="measure", columns="axis", values="psi_axis")
    per_axis.columns = [f"psi[{axis}]" for axis in per_axis.columns]
    parts = [
        fits[["measure", "slope", "slope_lo", "slope_hi", "intercept", "r2"]],
        cv[["measure", "cv_r2", "group"]].rename(columns={"group": "cv_group"}),
        psi[["measure", "psi"]],
        per_axis.reset_index() if len(per_axis.columns) else None,
        cmi[["measure", "cmi", "cmi_subset"]],
        scale[
            [
                "measure",
                "ratio_median",
                "ratio_q25",
                "ratio_q75",
                "ratio_iqr",
                "frac_measure_ge_gap",
            ]
        ],
    ]
    for part in parts:
        if part is not None:
            summary = summary.merge(part, on="measure", how="left")
    all_notes = pd.concat(
        [frame[["measure", "note"]] for frame in (correlations, psi, cmi, cv, scale)]
    )
    joined = all_notes[all_notes["note"].fillna("") != ""].groupby("measure", sort=False)["note"]
    notes = joined.agg(lambda n: "; ".join(dict.fromkeys(n))).to_dict()
    summary["note"] = [notes.get(m, "") for m in summary["measure"]]
    order = np.argsort(
        -np.nan_to_num(np.abs(summary["kendall_tau"].to_numpy(dtype=float)), nan=-1.0),
        kind="stable",
    )
    return summary.iloc[order].reset_index(drop=True)
