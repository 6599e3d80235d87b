"""The Hessian's spectral density: log density against eigenvalue, one line per checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from genmeasures.errors import DataError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme

GRID_POINTS = 2000
SIGMA_SQUARED = 1e-5  # PyHessian's kernel width, relative to the spectrum's range


def smoothed_density(
    nodes: np.ndarray, weights: np.ndarray, runs: int, grid: np.ndarray
) -> np.ndarray:
    """(1/runs) sum_k w_k N(lambda; theta_k, s^2) on ``grid``: PyHessian's Gaussian smoothing
    of the SLQ quadrature (its ``density_generate``), s^2 = 1e-5 max(1, range), widened to at
    least two grid steps so that no isolated node (an outlying top eigenvalue) falls between
    grid points and vanishes from the plot."""
    spread = max(1.0, float(grid.max() - grid.min()))
    step = float(grid[1] - grid[0]) if len(grid) > 1 else 1.0
    variance = max(SIGMA_SQUARED * spread, (2 * step) ** 2)
    kernel = np.exp(-((grid[:, None] - nodes[None, :]) ** 2) / (2 * variance))
    kernel /= np.sqrt(2 * np.pi * variance)
    return (kernel * weights[None, :]).sum(axis=1) / runs


def spectral_density(tidy: pd.DataFrame, stem: str | os.PathLike) -> PlotResult:
    """Draw :func:`genmeasures.measures.density.density_table`'s output: the smoothed SLQ
    density of each checkpoint on a log axis (densities below 1e-8 of the peak not drawn).

    ``data``, read back from the lines: ``checkpoint``, ``eigenvalue``, ``density``.
    """
    require_columns(tidy, "run", "node", "weight")
    if tidy.empty:
        raise DataError("no spectral density nodes to draw")
    tidy = tidy.copy()
    if "checkpoint" not in tidy.columns:
        tidy["checkpoint"] = ""
    low, high = float(tidy["node"].min()), float(tidy["node"].max())
    pad = 0.05 * max(high - low, 1e-12)
    grid = np.linspace(low - pad, high + pad, GRID_POINTS)
    groups = list(tidy.groupby("checkpoint", sort=True))
    with theme():
        figure, axes = new_figure(5.0, 3.2)
        axis = axes[0, 0]
        for (name, rows), color in zip(groups, colors(len(groups)), strict=True):
            density = smoothed_density(
                rows["node"].to_numpy(float),
                rows["weight"].to_numpy(float),
                rows["run"].nunique(),
                grid,
            )
            shown = np.where(density > 1e-8 * density.max(), density, np.nan)
            label = os.path.basename(str(name)) or None
            axis.plot(grid, shown, color=color, label=label, linewidth=1.2)
        axis.set_yscale("log")
        axis.set_xlabel("eigenvalue")
        axis.set_ylabel("density (log scale)")
        axis.axvline(0.0, color="0.6", linewidth=0.6, linestyle=":")
        if len(groups) > 1:
            axis.legend(fontsize="small", frameon=False)
        data = pd.DataFrame(
            [
                {"checkpoint": groups[i][0], "eigenvalue": x, "density": y}
                for i, line in enumerate(axis.get_lines()[: len(groups)])
                for x, y in zip(*line.get_data(), strict=True)
            ]
        )
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)
