"""Figures for correlation studies: seaborn's style on matplotlib, PNG and PDF.

Each function takes a DataFrame and an output path stem, writes ``stem.png`` and
``stem.pdf`` atomically, and returns a :class:`PlotResult` with the paths and the numbers
drawn, read back from the figure. Figures use the Agg canvas without pyplot and the style of
:mod:`genmeasures.plots.style` inside a context manager, so nothing global changes.

- :func:`measure_vs_gap`: the gap against a measure, OLS line and band, hue = hyperparameter;
- :func:`ranking_chart`: measures by |Kendall tau| (or rho, r) with bootstrap CIs;
- :func:`layer_profiles`: a measure layer by layer, one line per checkpoint;
- :func:`trend`: measure and gap against a hyperparameter or the epoch, bands over seeds;
- :func:`overlay`: several quantities against a hyperparameter in one panel (bounds vs gap);
- :func:`plot_report`: all of them for a :class:`~genmeasures.correlation.CorrelationReport`.

Used by the paper figures (analyses/), generic all the same:

- :func:`category_points`: one point per category (method, optimizer) with seed error bars;
- :func:`curve_panels`: one panel per quantity against the epoch, a line per group, bands;
- :func:`facet_lines`: one panel per level of a column, lines per hue, optional overlays;
- :func:`small_multiples`: one panel per level, lines per hue, per-panel labels and legends;
- :func:`twin_curves`: curves against an ordered x with an optional right axis;
- :func:`group_means`: per-group means of x against y with error bars both ways;
- :func:`statistics_chart`: several statistics per measure side by side, CIs where known;
- :func:`ratio_table`: a rendered table of values next to a reference, coloured by ratio.

(Four of these draw panels of lines with bands over seeds; they were written in parallel and
are candidates to merge into one function.)
"""

from genmeasures.plots._output import PlotResult
from genmeasures.plots.curves import curve_panels
from genmeasures.plots.facets import facet_lines
from genmeasures.plots.layers import layer_profiles
from genmeasures.plots.points import category_points
from genmeasures.plots.ranking import ranking_chart
from genmeasures.plots.report import plot_report
from genmeasures.plots.scatter import measure_vs_gap
from genmeasures.plots.small_multiples import small_multiples
from genmeasures.plots.style import theme
from genmeasures.plots.summary import group_means, statistics_chart
from genmeasures.plots.table import ratio_table
from genmeasures.plots.trends import overlay, trend
from genmeasures.plots.twin_curves import twin_curves

__all__ = [
    "PlotResult",
    "category_points",
    "curve_panels",
    "facet_lines",
    "group_means",
    "layer_profiles",
    "measure_vs_gap",
    "overlay",
    "plot_report",
    "ranking_chart",
    "ratio_table",
    "small_multiples",
    "statistics_chart",
    "theme",
    "trend",
    "twin_curves",
]
