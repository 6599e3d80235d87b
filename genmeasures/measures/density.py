"""The Hessian's spectral density by stochastic Lanczos quadrature (SLQ).

Ghorbani, Krishnan & Xiao (ICML 2019), as PyHessian's ``density()`` computes it: from each of
``runs`` Rademacher start vectors v (normalized), m Lanczos steps on H give the tridiagonal
T = S diag(theta) S^T; the spectral measure of H seen from v is approximated by the Gauss
quadrature sum_k w_k delta(lambda - theta_k), w_k = S_1k^2 (sum_k w_k = 1), and the density
by their mean over runs. The measure's value is the negative-mass fraction

    sum_k w_k [theta_k < -floor], averaged over runs,

the share of the spectrum below zero, with floor = 32 eps max|theta| (eps of the model's
dtype): nodes within rounding of zero are not counted as negative. The nodes and weights are
in the table as extras ``slq_node_RR_KKK`` and ``slq_weight_RR_KKK`` (run RR, node KKK);
:func:`density_table` turns them into a tidy table and
:func:`genmeasures.plots.density.spectral_density` draws it.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Annotated

import pandas as pd
import torch

from genmeasures.constraints import Positive
from genmeasures.curvature.lanczos import lanczos_nodes
from genmeasures.curvature.operators import make_operator
from genmeasures.curvature.vectors import flatten, rademacher_like, unflatten
from genmeasures.errors import DataError
from genmeasures.measures.context import MeasureContext
from genmeasures.measures.curvature_support import curvature_setup
from genmeasures.measures.distance import LayersOption
from genmeasures.measures.hessian import (
    CURVATURE_NEEDS,
    CurvatureOption,
    ProductsOption,
)
from genmeasures.measures.registry import register_measure
from genmeasures.measures.results import MeasureResult

_EXTRA = re.compile(r"^(?P<measure>.+)\.slq_(?P<kind>node|weight)_(?P<run>\d+)_(?P<k>\d+)$")


@register_measure(
    "hessian_density",
    summary="spectral density of H by stochastic Lanczos quadrature; value: the share of "
    "the spectrum below zero",
    paper="Ghorbani, Krishnan & Xiao, ICML 2019; Yao et al. 2020 (PyHessian's density)",
    needs=CURVATURE_NEEDS,
    stochastic=True,
    version=1,
)
def hessian_density(
    ctx: MeasureContext,
    *,
    curvature: CurvatureOption = "hessian",
    runs: Annotated[int, Positive(), "independent start vectors (PyHessian's n_v)"] = 1,
    steps: Annotated[int, Positive(), "Lanczos steps per run (PyHessian's iter)"] = 100,
    products: ProductsOption = "auto",
    layers: LayersOption = None,
) -> MeasureResult:
    """Negative-mass fraction of the SLQ spectral density (module docstring), stderr over
    runs (NaN for one run); extras ``node_min``/``node_max`` (the extreme Ritz values, close
    to the extreme eigenvalues) and every node and weight."""
    with curvature_setup(ctx, layers) as setup:
        op = make_operator(
            curvature,
            setup.model,
            setup.names,
            setup.batches,
            ctx.loss,
            products=products,
            check=False,
        )
        generator = setup.generator()
        like = op.params
        start = torch.stack([flatten(rademacher_like(like, generator)) for _ in range(runs)])

        def matvec(rows: torch.Tensor) -> torch.Tensor:
            vectors = [unflatten(row, like) for row in rows]
            return torch.stack([flatten(p) for p in op.matmat(vectors)])

        quadrature = lanczos_nodes(matvec, start, steps)
        theta, weights = quadrature.nodes, quadrature.weights
        eps = torch.finfo(like[0].dtype).eps
        floor = 32 * eps * float(theta.abs().max())
        negative = [float((w * (t < -floor)).sum()) for t, w in zip(theta, weights, strict=True)]
        live = weights > 0
        extras = {
            "node_min": float(theta[live].min()),
            "node_max": float(theta[live].max()),
            "n_steps": float(quadrature.n_steps),
        }
        width = max(3, len(str(theta.shape[1] - 1)))
        for r in range(runs):
            for k in range(theta.shape[1]):
                extras[f"slq_node_{r:02d}_{k:0{width}d}"] = float(theta[r, k])
                extras[f"slq_weight_{r:02d}_{k:0{width}d}"] = float(weights[r, k])
        return MeasureResult(
            value=math.fsum(negative) / runs,
            stderr=statistics.stdev(negative) / math.sqrt(runs) if runs > 1 else math.nan,
            extras=extras,
            n_matvecs=op.n_matvecs,
        )


def density_table(long_table: pd.DataFrame, measure: str = "hessian_density") -> pd.DataFrame:
    """The SLQ nodes and weights of a scored table as a tidy table: one row per checkpoint
    (and options), run and node, columns ``checkpoint``, ``options``, ``run``, ``node``,
    ``weight``; nodes of weight 0 (past a run's early stop) are left out."""
    for column in ("measure", "value"):
        if column not in long_table.columns:
            raise DataError(f"the table has no {column!r} column; is it a scored table?")
    keys = [c for c in ("checkpoint", "options") if c in long_table.columns]
    matched = long_table["measure"].astype(str).str.extract(_EXTRA)
    rows = long_table[matched["measure"] == measure].copy()
    if rows.empty:
        raise DataError(f"the table has no {measure} nodes; score it with --measure {measure}")
    parts = matched.loc[rows.index]
    rows["kind"], rows["run"], rows["k"] = parts["kind"], parts["run"].astype(int), parts["k"]
    tidy = rows.pivot_table(
        index=[*keys, "run", "k"], columns="kind", values="value", aggfunc="first"
    ).reset_index()
    tidy = tidy[tidy["weight"] > 0]
    return (
        tidy[[*keys, "run", "node", "weight"]]
        .sort_values([*keys, "run", "node"])
        .reset_index(drop=True)
    )
