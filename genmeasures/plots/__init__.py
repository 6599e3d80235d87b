"""Figures for correlation studies: seaborn's style on matplotlib, PNG and PDF.

Each function takes a DataFrame and an output path stem, writes ``stem.png`` and
``stem.pdf`` atomically, and returns a :class:`PlotResult` with the paths and the numbers
drawn, read back from the figure. Figures use the Agg canvas without pyplot and the style of
:mod:`genmeasures.plots.style` inside a context manager, so nothing global changes.

- :func:`measure_vs_gap`: the gap against a measure, OLS line and band, hue = hyperparameter;
- :func:`ranking_chart`: measures by |Kendall tau| (or rho, r) with bootstrap CIs;
- :func:`layer_profiles`: a measure layer by layer, one line per checkpoint;
- :func:`trend`: measure and gap against a hyperparameter or the epoch, bands over seeds
  (points with error bars over categories such as the method);
- :func:`overlay`: several quantities against a hyperparameter in one panel (bounds vs gap);
- :func:`plot_report`: all of them for a :class:`~genmeasures.correlation.CorrelationReport`.

Used by the paper figures (the genmeasures_papers package), generic all the same:

- :func:`category_points`: one point per category (method, optimizer) with seed error bars;
- :func:`line_panels`: lines against an x, one per hue level, mean and band over seeds, in
  panels by a column, by quantity or in a row/column grid; stderr error bars, a right axis,
  categorical x (layer names); its options are the small specs :class:`Lines`,
  :class:`Panels`, :class:`Replicates`, :class:`Axes` and :class:`Legend`;
- :func:`group_means`: per-group means of x against y with error bars both ways;
- :func:`statistics_chart`: several statistics per measure side by side, CIs where known;
- :func:`ratio_table`: a rendered table of values next to a reference, coloured by ratio.
"""

from genmeasures.plots._output import PlotResult
from genmeasures.plots.layers import layer_profiles
from genmeasures.plots.lines import Axes, Legend, Lines, Panels, Replicates, line_panels
from genmeasures.plots.points import category_points
from genmeasures.plots.ranking import ranking_chart
from genmeasures.plots.report import plot_report
from genmeasures.plots.scatter import measure_vs_gap
from genmeasures.plots.style import theme
from genmeasures.plots.summary import group_means, statistics_chart
from genmeasures.plots.table import ratio_table
from genmeasures.plots.trends import overlay, trend

__all__ = [
    "Axes",
    "Legend",
    "Lines",
    "Panels",
    "PlotResult",
    "Replicates",
    "category_points",
    "group_means",
    "layer_profiles",
    "line_panels",
    "measure_vs_gap",
    "overlay",
    "plot_report",
    "ranking_chart",
    "ratio_table",
    "statistics_chart",
    "theme",
    "trend",
]
