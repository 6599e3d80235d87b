"""One look for every genmeasures figure, applied only inside :func:`theme`.

Figures are :class:`matplotlib.figure.Figure` objects on the non-interactive Agg canvas,
created without pyplot: nothing here touches the global backend or leaves rcParams changed,
so importing genmeasures.plots in a notebook changes nothing about the user's own plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import matplotlib as mpl
import numpy as np
import seaborn as sns
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PALETTE = "colorblind"
SEQUENTIAL = "viridis"
DPI = 150
#: Positive values spanning more than this ratio get a log axis.
LOG_SPAN = 100.0
#: Inches a figure grows by to keep its axes' size beside a legend on the right.
LEGEND_WIDTH = 1.4


def rc() -> dict:
    """The rcParams of the genmeasures style: seaborn's whitegrid, paper context, colorblind."""
    params: dict = {}
    params.update(sns.axes_style("whitegrid"))
    params.update(sns.plotting_context("paper", font_scale=1.1))
    params.update(
        {
            "axes.prop_cycle": cycler(color=sns.color_palette(PALETTE).as_hex()),
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "legend.frameon": False,
            "axes.titlesize": "medium",
        }
    )
    return params


@contextmanager
def theme() -> Iterator[None]:
    """Apply the style for the duration of the block; rcParams are restored afterwards."""
    with mpl.rc_context(rc()):
        yield


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kwargs):
    """A figure on the Agg canvas (no pyplot) and its axes; call inside :func:`theme`."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False, **kwargs)
    return figure, axes


def colors(n: int) -> list:
    return sns.color_palette(PALETTE, n) if n <= 10 else sns.color_palette(SEQUENTIAL, n)


def wants_log(values: Sequence[float] | np.ndarray) -> bool:
    """Whether positive ``values`` span orders of magnitude (max / min > :data:`LOG_SPAN`)."""
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if len(array) < 2 or (array <= 0).any():
        return False
    return bool(array.max() / array.min() > LOG_SPAN)


def legend_outside(
    figure: Figure,
    axes: Iterable,
    *,
    title: str | None = None,
    where: Literal["right", "below"] = "right",
):
    """One legend for ``figure``, of the labelled artists of ``axes`` (each label once),
    outside every axes: ``"right"`` of them, top-aligned, or ``"below"`` them, so it never
    covers data. The figure's constrained layout makes room for it. Returns the legend, or
    None where nothing is labelled."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if not handles:
        return None
    return figure.legend(
        handles,
        labels,
        title=title,
        loc="outside right upper" if where == "right" else "outside lower center",
        ncols=1 if where == "right" else min(len(labels), 4),
        fontsize="small",
        title_fontsize="small",
    )
