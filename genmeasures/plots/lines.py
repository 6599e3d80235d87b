"""Panels of lines against an x, one line per hue level, replicates summarized as mean + band.

:func:`line_panels` draws training curves of several optimizers (one panel per quantity),
small multiples of one quantity (one panel per level of a column, wrapped), grids of panels
(row and column facets) with Monte-Carlo error bars, and curves over an ordered axis (epochs,
layer names) with a second, right y axis.

Its options come in five small frozen specs, each checked once when it is built (a bad value
is refused in one line naming the spec and the option, ``Panels: col_wrap must be >= 1, got
0``)::

    line_panels(
        table, "epoch", "loss", "figures/loss",
        lines=Lines(hue="method", labels={"sgd": "SGD"}),     # which lines, their names
        panels=Panels(col="dataset", col_wrap=3),             # how panels are laid out
        replicates=Replicates(band="range"),                  # how seeds are summarized
        axes=Axes(log_y=True, ylabel="training loss"),        # scales and axis labels
        legend=Legend("right"),                               # where the key goes
    )
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from genmeasures._coerce import CheckedFields
from genmeasures.constraints import AtLeast
from genmeasures.errors import DataError, OptionError
from genmeasures.plots._data import Band, StderrMean, matches, replicate_stats
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log

Placement = Literal["below", "right", "panel"]
#: a setting for every panel, or a mapping from a panel's key to it
PerPanel = str | dict[Any, str] | None
PerPanelBool = bool | dict[Any, bool] | None

MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "p")
#: with hue, the columns of ``y`` and ``right`` are told apart by these
LINESTYLES = ("-", "--", ":", "-.")
#: panels drawing at most this many distinct x values label each one as a tick
MAX_LABELLED_TICKS = 8
#: lines get markers where their panel has at most this many distinct x values
MAX_MARKED_POINTS = 30
#: categorical x axes with more labels than this get rotated tick labels
ROTATE_ABOVE = 6


# ----------------------------------------------------------------------------- the specs


class _Spec(CheckedFields):
    """A spec's fields are checked against their annotations when it is built; a refusal
    starts with the spec's name, its ``option_where`` (``Lines: hue_order must be ...``)."""

    def _refuse(self, requirement: str) -> OptionError:
        """A rule between this spec's fields, broken: the one-line error to raise."""
        return OptionError(f"{self.option_where}: {requirement}")


@dataclass(frozen=True)
class Lines(_Spec):
    """Which lines each panel draws, besides the columns of ``y``, and what they are called.

    Rows sharing a panel, a ``hue`` level and x are replicates (summarized by
    :class:`Replicates`). A hue level keeps its colour in every panel and the k-th level the
    k-th marker shape; with several y columns and ``hue``, the columns are told apart by line
    style.
    """

    option_where: ClassVar[str] = "Lines"

    hue: Annotated[str | None, "column whose levels get a line each"] = None
    hue_order: Annotated[
        list[Any] | None, "the hue levels drawn, in this order (default: all, as they appear)"
    ] = None
    right: Annotated[list[str], "columns drawn on a second, right y axis, with hollow markers"] = (
        field(default_factory=list)
    )
    reference: Annotated[
        list[Any],
        "hue levels (a bound, a radius) drawn as dark grey dashed lines over the others, "
        "without band, error bars or markers; levels not in the table are ignored",
    ] = field(default_factory=list)
    labels: Annotated[
        dict[Any, str] | None,
        "display names of y columns and hue levels (legend entries; a y label's default)",
    ] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hue_order is not None and self.hue is None:
            raise self._refuse("hue_order needs hue")
        if self.reference and self.hue is None:
            raise self._refuse("reference names hue levels: it needs hue")


@dataclass(frozen=True)
class Panels(_Spec):
    """How the panels are laid out: one panel, a grid, or wrapped small multiples.

    One panel without facets. ``col`` and ``row`` lay the levels of two columns out as a grid:
    the panels of a grid column share their x axis, x labels go under the bottom row, y labels
    left of the first column, column levels above the top row. With ``col_wrap``, the levels
    of ``col`` are instead independent panels, ``col_wrap`` to a row, each with its own
    labels. ``subplots`` gives each column of a list ``y`` its own panel (one row, or
    ``col_wrap`` to a row). Levels keep ``*_order`` (which may leave levels out) or their order
    of first appearance.
    """

    option_where: ClassVar[str] = "Panels"

    row: Annotated[str | None, "column whose levels are the grid's rows"] = None
    row_order: Annotated[list[Any] | None, "the row levels drawn, in this order"] = None
    col: Annotated[str | None, "column whose levels are the grid's columns (or wrap)"] = None
    col_order: Annotated[list[Any] | None, "the column levels drawn, in this order"] = None
    col_wrap: Annotated[
        Annotated[int, AtLeast(1)] | None,
        "wrap the levels of col (or the y columns) into independent panels, this many a row",
    ] = None
    subplots: Annotated[bool, "a panel per y column instead of all of them in each"] = False
    titles: Annotated[dict[str, str] | None, "panel titles by panel name (data's ``panel``)"] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.row_order is not None and self.row is None:
            raise self._refuse("row_order needs row")
        if self.col_order is not None and self.col is None:
            raise self._refuse("col_order needs col")
        if self.subplots and (self.row or self.col):
            raise self._refuse("subplots (a panel per y column) cannot be combined with row/col")
        if self.col_wrap is not None and (self.row or not (self.col or self.subplots)):
            raise self._refuse("col_wrap needs col (and no row) or subplots")

    @property
    def grid(self) -> bool:
        """Whether the panels form a grid (shared x per grid column), not wrapped panels."""
        return self.col_wrap is None and not self.subplots


@dataclass(frozen=True)
class Replicates(_Spec):
    """How the replicates of a point (typically seeds) are summarized.

    The line joins their means; the band spans mean +- one standard deviation (``"sd"``) or
    their min..max (``"range"``, the honest choice for two or three seeds and on log axes);
    ``None`` draws none. ``stderr`` names a column holding each row's own standard error (a
    Monte-Carlo measurement's): error bars then show +- the standard error of the mean of the
    replicates' measurements, sqrt(sum_j stderr_j^2) / n for independent errors
    (``stderr_mean="independent"``) or mean_j stderr_j, the bound for errors that may be
    correlated (``"shared"``: replicates scored with the same random draws).
    """

    option_where: ClassVar[str] = "Replicates"

    band: Annotated[Band | None, "the band around the mean: sd, range, or none"] = "sd"
    stderr: Annotated[str | None, "column of each row's own standard error (error bars)"] = None
    stderr_mean: Annotated[
        StderrMean, "how the replicates' standard errors combine into the mean's"
    ] = "independent"


@dataclass(frozen=True)
class Axes(_Spec):
    """Scales and labels of the panels' axes (the options, not matplotlib's ``Axes``).

    x must be numeric and is placed by value, with a tick at each value where a panel (grid
    column) draws at most eight of them, integer ticks where they are integers;
    ``categorical_x`` places the values as evenly spaced categories in their order of first
    appearance instead (layer names). An x (left y) axis is logarithmic where its positive x
    values (line means) span more than two orders of magnitude; ``log_x`` / ``log_y`` force
    it on (``True``) or off (``False``), everywhere or, as a mapping, for the panels whose key
    they name. A right axis follows the automatic rule.

    ``xlabel`` and ``log_x`` are one value or a mapping from a grid column's level; ``ylabel``
    and ``log_y`` from a grid row's level; where panels wrap (``col_wrap``, ``subplots``) both
    map a panel's level or column. Default labels: x's name; the y column's name
    (``"value"`` for several; with a row facet ``"<y>: <row level>"``); the right columns.
    """

    option_where: ClassVar[str] = "Axes"

    categorical_x: Annotated[bool, "x values as evenly spaced categories"] = False
    log_x: Annotated[PerPanelBool, "force a log (True) or linear (False) x axis"] = None
    log_y: Annotated[PerPanelBool, "force a log (True) or linear (False) left y axis"] = None
    xlabel: Annotated[PerPanel, "x axis label"] = None
    ylabel: Annotated[PerPanel, "left y axis label"] = None
    right_ylabel: Annotated[str | None, "right y axis label"] = None
    sharey: Annotated[bool, "share the y axes (and the right axes) along each row"] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        forced_log = self.log_x is True or (
            isinstance(self.log_x, Mapping) and any(self.log_x.values())
        )
        if self.categorical_x and forced_log:
            raise self._refuse("log_x cannot apply to a categorical x")


@dataclass(frozen=True)
class Legend(_Spec):
    """Where the key goes: one legend for the figure, ``"below"`` or ``"right"`` of the
    panels (titled by a string ``title``), or one per ``"panel"`` (of the lines it shows,
    titled by ``title`` as a mapping from the panel's name). There is one only where lines
    are told apart (hue, or several columns in a panel)."""

    option_where: ClassVar[str] = "Legend"

    placement: Annotated[Placement, "below or right of the panels, or in each panel"] = "below"
    title: Annotated[PerPanel, "the legend's title (per panel name with 'panel')"] = None


# ----------------------------------------------------------------------------- the plot


def line_panels(
    table: pd.DataFrame,
    x: str,
    y: str | Sequence[str],
    stem: str | os.PathLike,
    *,
    lines: Lines | None = None,
    panels: Panels | None = None,
    replicates: Replicates | None = None,
    axes: Axes | None = None,
    legend: Legend | None = None,
    title: str | None = None,
) -> PlotResult:
    """``y`` against ``x`` in panels, one line per hue level, bands over replicates.

    ``y`` is a column, or a list of columns drawn together in every panel (told apart by
    colour, or by line style with a hue; with ``Panels(subplots=True)`` a panel each). The
    specs (``None``: their defaults) say which lines are drawn (:class:`Lines`), in which
    panels (:class:`Panels`), how replicates are summarized (:class:`Replicates`), the axes'
    scales and labels (:class:`Axes`) and the legend (:class:`Legend`); ``title`` is the
    figure's. NaN values of ``y`` are left out of the means and counted in the panel's title.
    Markers are drawn where a panel has at most 30 distinct x values.

    ``data``, read back from the lines, one row per point drawn: ``panel`` (its name: the
    level of ``col``/``row``, both joined by ``" | "``, the column with ``subplots``, ``""``
    for a single panel), with both ``row`` and ``col`` facets ``row`` and ``col``, ``hue``
    (``""`` without hue), with a list ``y`` (not ``subplots``) ``series`` (the column) and
    ``axis`` (``left``/``right``), ``x`` (the position drawn), with a categorical x or a list
    ``y`` ``label`` (the x value as text), ``mean``, ``lo`` and ``hi`` (the band; without one,
    mean +- the stderr, or the mean), ``n`` replicates, and with ``stderr`` the mean's
    ``stderr``.
    """
    lines = Lines() if lines is None else lines
    panels = Panels() if panels is None else panels
    replicates = Replicates() if replicates is None else replicates
    axes = Axes() if axes is None else axes
    legend = Legend() if legend is None else legend
    columns = [y] if isinstance(y, str) else list(y)
    right = list(lines.right)
    hue, row, col = lines.hue, panels.row, panels.col
    band, stderr = replicates.band, replicates.stderr
    as_series = not isinstance(y, str) and not panels.subplots
    _check_columns(columns, right, lines, panels, replicates)
    require_columns(table, x, *columns, *right, hue, row, col, stderr)
    if table.empty:
        raise DataError("the table to plot is empty")
    positions, categories = _positions(table[x], x, axes.categorical_x)
    if table[x].nunique(dropna=True) < 2:
        raise DataError(f"{x!r} takes fewer than two values; nothing to plot against")
    values = {c: pd.to_numeric(table[c], errors="coerce") for c in columns + right}
    for column, numbers in values.items():
        if not (numbers.notna() & positions.notna()).any():
            raise DataError(f"no finite values of {column!r} to plot")
    errors = pd.to_numeric(table[stderr], errors="coerce") if stderr else None

    hues = _levels(table, hue, lines.hue_order, "hue_order")
    reference = [level for level in lines.reference if level in hues]
    coloured = [level for level in hues if level not in reference]
    series = [(c, "left") for c in columns] + [(c, "right") for c in right]
    if panels.subplots:
        placed, nrows, ncols = _wrapped(table, columns, None, columns, panels.col_wrap)
    elif panels.col_wrap is not None:
        levels = _levels(table, col, panels.col_order, "col_order")
        placed, nrows, ncols = _wrapped(table, levels, col, series, panels.col_wrap)
    else:
        placed, nrows, ncols = _grid(table, row, panels.row_order, col, panels.col_order, series)
    grid = panels.grid
    most = max(len(p.series) for p in placed)
    palette = colors(len(coloured) if hue else most)
    labels = dict(lines.labels or {})
    keyed = hue is not None or most > 1
    in_hues = _is_any(table, hue, hues)

    rotated = categories is not None and len(categories) > ROTATE_ABOVE
    placement = legend.placement
    width = (
        3.7 * ncols + 0.4 + (0.6 if right else 0) + (1.8 if keyed and placement == "right" else 0)
    )
    below = 0.6 if keyed and placement == "below" else 0.2  # room for a legend below
    height = (3.1 + (0.9 if rotated else 0)) * nrows + below
    with theme():
        figure, grid_axes = new_figure(
            width,
            height,
            nrows=nrows,
            ncols=ncols,
            sharex="col" if grid else False,
            sharey="row" if axes.sharey else False,
        )
        twins = {(p.i, p.j): grid_axes[p.i, p.j].twinx() for p in placed} if right else {}
        if axes.sharey:
            for (i, j), twin in twins.items():
                if j > 0:
                    twin.sharey(twins[(i, 0)])
        drawn: dict[Line2D, _Drawn] = {}
        for p in placed:
            marked = positions[p.mask].nunique() <= MAX_MARKED_POINTS
            for level in hues:
                rows = p.mask & _is(table, hue, level)
                is_reference = level in reference
                k = coloured.index(level) if hue and not is_reference else 0
                for s, (column, side) in enumerate(p.series):
                    stats = replicate_stats(
                        positions[rows],
                        values[column][rows],
                        band,
                        None if errors is None else errors[rows],
                        replicates.stderr_mean,
                    )
                    if stats.empty:
                        continue
                    name = labels.get(column, column)
                    if hue:
                        level_name = labels.get(str(level), str(level))
                        name = f"{level_name}: {name}" if len(p.series) > 1 else level_name
                    line = _draw_line(
                        twins[(p.i, p.j)] if side == "right" else grid_axes[p.i, p.j],
                        stats,
                        name,
                        color="0.3" if is_reference else palette[k if hue else s],
                        style="--" if is_reference else LINESTYLES[s] if hue else "-",
                        marker=MARKERS[k % len(MARKERS)] if marked and not is_reference else None,
                        hollow=side == "right",
                        spread=not is_reference and band is not None,
                        errorbars=not is_reference and errors is not None,
                        on_top=is_reference,
                    )
                    drawn[line] = _Drawn(p, level if hue else "", column, side, stats)
        if not drawn:
            figure.clear()
            raise DataError(f"nothing to plot: no row has both {x!r} and a y value")
        for p in placed:
            n_nan = sum(int(values[c][p.mask & in_hues].isna().sum()) for c, _ in p.series)
            heading = [(panels.titles or {}).get(p.name, p.title)]
            heading.append(f"{n_nan} NaN value(s) left out" if n_nan else None)
            if any(heading):
                grid_axes[p.i, p.j].set_title("\n".join(h for h in heading if h), fontsize="medium")
        _label_axes(placed, grid_axes, twins, grid, x, row, labels, axes)
        _scale_y(placed, grid_axes, twins, drawn, axes.log_y, axes.sharey)
        _scale_x(placed, grid_axes, positions, categories, axes.log_x, grid)
        for ax in grid_axes.ravel()[len(placed) :]:  # the empty end of a wrapped layout
            ax.set_visible(False)
        if keyed:
            _legends(figure, placed, grid_axes, twins, legend)
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_back(
            [grid_axes[p.i, p.j] for p in placed] + [twins[(p.i, p.j)] for p in placed if twins],
            drawn,
            facets=row is not None and col is not None,
            as_series=as_series,
            with_label=axes.categorical_x or as_series,
            categories=categories,
            with_stderr=stderr is not None,
        )
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


@dataclass
class _Panel:
    name: str  # data's ``panel``
    row: Any  # level of ``row`` ("" without)
    col: Any  # level of ``col`` ("" without)
    i: int
    j: int
    mask: pd.Series  # the table's rows in this panel
    series: list[tuple[str, str]]  # (column, "left" | "right") drawn in it
    xkey: Any  # looked up in xlabel and log_x
    ykey: Any  # looked up in ylabel and log_y
    title: str | None  # the default title


@dataclass
class _Drawn:
    panel: _Panel
    hue: Any
    column: str
    side: str
    stats: pd.DataFrame


def _check_columns(
    columns: list[str], right: list[str], lines: Lines, panels: Panels, replicates: Replicates
) -> None:
    """The rules between the y columns and the specs (each spec checked its own fields)."""
    if not columns:
        raise OptionError("line_panels needs at least one y column to plot")
    if len(set(columns + right)) != len(columns) + len(right):
        raise OptionError("a column is named twice in y and Lines.right")
    if lines.hue and not panels.subplots and len(columns) + len(right) > len(LINESTYLES):
        raise OptionError(
            f"with Lines.hue, at most {len(LINESTYLES)} y/right columns can be told apart"
        )
    if replicates.stderr and len(columns) + len(right) > 1:
        raise OptionError("Replicates.stderr needs a single y column (and no Lines.right)")
    if panels.subplots and right:
        raise OptionError("Panels.subplots (a panel per y column) cannot have Lines.right")


def _positions(x: pd.Series, name: str, categorical: bool) -> tuple[pd.Series, list[str] | None]:
    """Where each row is drawn along x, and the categories (None for a numeric x)."""
    if categorical:
        categories = list(dict.fromkeys(x.dropna().astype(str)))
        where = {c: float(k) for k, c in enumerate(categories)}
        return x.dropna().astype(str).map(where).reindex(x.index), categories
    numeric = pd.to_numeric(x, errors="coerce")
    if numeric.notna().sum() < x.notna().sum():
        raise DataError(f"{name!r} must be numeric to draw lines against it (or categorical_x)")
    return numeric.astype(float), None


def _levels(table: pd.DataFrame, column: str | None, order, option: str) -> list:
    if column is None:
        return [""]
    present = list(pd.unique(table[column]))
    if order is None:
        return present
    missing = [level for level in order if level not in present]
    if missing:
        raise DataError(f"{column!r} has no rows for level(s) {missing} ({option})")
    return list(order)


def _is(table: pd.DataFrame, column: str | None, level) -> pd.Series:
    if column is None:
        return pd.Series(True, index=table.index)
    return matches(table[column], level)


def _is_any(table: pd.DataFrame, column: str | None, levels: list) -> pd.Series:
    mask = pd.Series(False, index=table.index)
    for level in levels:
        mask |= _is(table, column, level)
    return mask


def _wrapped(table, keys, col, series, col_wrap):
    """Independent panels, ``col_wrap`` to a row: one per level of ``col``, or (without
    ``col``) one per y column of ``series``."""
    ncols = min(col_wrap or len(keys), len(keys))
    panels = []
    for k, key in enumerate(keys):
        panels.append(
            _Panel(
                name=str(key),
                row="",
                col=key,
                i=k // ncols,
                j=k % ncols,
                mask=_is(table, col, key),
                series=series if col else [(key, "left")],
                xkey=key,
                ykey=key,
                title=str(key) if col else None,  # a y column is named by its y label
            )
        )
    return panels, math.ceil(len(keys) / ncols), ncols


def _grid(table, row, row_order, col, col_order, series):
    """A panel per (row level, column level)."""
    rows = _levels(table, row, row_order, "row_order")
    cols = _levels(table, col, col_order, "col_order")
    panels = []
    for i, row_level in enumerate(rows):
        for j, col_level in enumerate(cols):
            facets = [(row, row_level), (col, col_level)]
            panels.append(
                _Panel(
                    name=" | ".join(str(level) for facet, level in facets if facet is not None),
                    row=row_level,
                    col=col_level,
                    i=i,
                    j=j,
                    mask=_is(table, row, row_level) & _is(table, col, col_level),
                    series=series,
                    xkey=col_level,
                    ykey=row_level,
                    title=str(col_level) if col is not None and i == 0 else None,
                )
            )
    return panels, len(rows), len(cols)


def _pick(setting, key):
    return setting.get(key) if isinstance(setting, Mapping) else setting


def _draw_line(
    ax,
    stats: pd.DataFrame,
    name: str,
    *,
    color,
    style: str,
    marker: str | None,
    hollow: bool,
    spread: bool,
    errorbars: bool,
    on_top: bool,
) -> Line2D:
    """The means as a line, and where asked the band and the stderr error bars."""
    (line,) = ax.plot(
        stats["x"],
        stats["mean"],
        color=color,
        ls=style,
        lw=1.4,
        marker=marker,
        ms=4,
        mfc="white" if hollow else color,
        label=name,
        zorder=2.3 if on_top else 2.1,  # a reference lying on a line shows through its gaps
    )
    if spread:
        ax.fill_between(stats["x"], stats["lo"], stats["hi"], color=color, alpha=0.18, lw=0)
    if errorbars:
        ax.errorbar(
            stats["x"],
            stats["mean"],
            yerr=stats["stderr"].fillna(0.0),
            fmt="none",
            ecolor=color,
            elinewidth=1.0,
            capsize=2.5,
        )
    return line


def _label_axes(panels, axes, twins, grid: bool, x: str, row, labels, options: Axes) -> None:
    """Axis labels: in a grid x labels under the bottom row, y labels left of the first column
    and right-axis labels (and, shared, tick labels) right of the last; wrapped panels each
    their own."""
    nrows, ncols = axes.shape
    for p in panels:
        ax = axes[p.i, p.j]
        if not grid or p.i == nrows - 1:
            ax.set_xlabel(_pick(options.xlabel, p.xkey) or x)
        if not grid or p.j == 0:
            left = [c for c, side in p.series if side == "left"]
            default = labels.get(left[0], left[0]) if len(left) == 1 else "value"
            if grid and row is not None:
                default = f"{default}: {p.row}"
            ax.set_ylabel(_pick(options.ylabel, p.ykey) or default)
        if twins:
            twin = twins[(p.i, p.j)]
            twin.grid(False)
            right = [c for c, side in p.series if side == "right"]
            if not grid or p.j == ncols - 1:
                twin.set_ylabel(options.right_ylabel or ", ".join(labels.get(c, c) for c in right))
            elif options.sharey:
                twin.tick_params(right=False, labelright=False)


def _scale_y(panels, axes, twins, drawn, log_y, sharey: bool) -> None:
    """Log y axes where the line means span decades (``log_y`` decides where it is set);
    with ``sharey`` one decision per row of panels, as the axes share their scale."""
    groups: dict[Any, list[_Panel]] = {}
    for p in panels:
        groups.setdefault(p.i if sharey else (p.i, p.j), []).append(p)
    for members in groups.values():
        sides = [("left", [axes[p.i, p.j] for p in members])]
        if twins:
            sides.append(("right", [twins[(p.i, p.j)] for p in members]))
        for side, group in sides:
            means = [
                d.stats["mean"].to_numpy(dtype=float)
                for line, d in drawn.items()
                if line.axes in group
            ]
            forced = None
            if side == "left":
                forced = next((v for p in members if (v := _pick(log_y, p.ykey)) is not None), None)
            auto = bool(means) and wants_log(np.concatenate(means))
            if auto if forced is None else forced:
                for ax in group:
                    ax.set_yscale("log")


def _scale_x(panels, axes, positions, categories, log_x, grid: bool) -> None:
    """Per grid column (per panel where they wrap): log scale, ticks, category labels."""
    groups: dict[Any, list[_Panel]] = {}
    for p in panels:
        groups.setdefault(p.j if grid else (p.i, p.j), []).append(p)
    for members in groups.values():
        bottom = axes[members[-1].i, members[-1].j]
        if categories is not None:
            rotate = len(categories) > ROTATE_ABOVE
            bottom.set_xticks(
                range(len(categories)),
                categories,
                rotation=60 if rotate else 0,
                ha="right" if rotate else "center",
                fontsize="small" if rotate else None,
            )
            continue
        mask = members[0].mask
        for p in members[1:]:
            mask = mask | p.mask
        xs = positions[mask].dropna().to_numpy(dtype=float)
        forced = _pick(log_x, members[0].xkey)
        if wants_log(xs) if forced is None else forced:
            for p in members:
                axes[p.i, p.j].set_xscale("log")
        ticks = np.unique(xs)
        if 0 < len(ticks) <= MAX_LABELLED_TICKS:  # label the values drawn, nothing else
            bottom.set_xticks(ticks, [f"{t:g}" for t in ticks])
            bottom.xaxis.set_minor_formatter(NullFormatter())
        elif len(ticks) and np.all(ticks == np.round(ticks)):
            bottom.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))


def _legends(figure, panels, axes, twins, legend: Legend) -> None:
    def entries(group):
        handles, names = [], []
        for ax in group:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                if name not in names:
                    handles.append(handle)
                    names.append(name)
        return handles, names

    if legend.placement == "panel":
        for p in panels:
            handles, names = entries([axes[p.i, p.j], *([twins[(p.i, p.j)]] if twins else [])])
            if handles:
                axes[p.i, p.j].legend(
                    handles,
                    names,
                    title=_pick(legend.title, p.name),
                    fontsize="small",
                    title_fontsize="small",
                )
        return
    group = [axes[p.i, p.j] for p in panels] + [twins[(p.i, p.j)] for p in panels if twins]
    handles, names = entries(group)
    figure.legend(
        handles,
        names,
        title=legend.title if isinstance(legend.title, str) else None,
        loc="outside lower center" if legend.placement == "below" else "outside right center",
        ncols=min(len(names), 4) if legend.placement == "below" else 1,
        fontsize="small",
        title_fontsize="small",
    )


def _read_back(
    axes,
    drawn: dict[Line2D, _Drawn],
    *,
    facets: bool,
    as_series: bool,
    with_label: bool,
    categories: list[str] | None,
    with_stderr: bool,
) -> pd.DataFrame:
    frames = []
    for ax in axes:
        for line in ax.get_lines():
            d = drawn.get(line)
            if d is None:
                continue
            x = np.asarray(line.get_xdata(), dtype=float)
            frame: dict[str, Any] = {"panel": d.panel.name}
            if facets:
                frame.update(row=d.panel.row, col=d.panel.col)
            frame["hue"] = d.hue
            if as_series:
                frame.update(series=d.column, axis=d.side)
            frame["x"] = x
            if with_label:
                frame["label"] = [categories[int(v)] if categories else f"{v:g}" for v in x]
            frame["mean"] = np.asarray(line.get_ydata(), dtype=float)
            frame["lo"] = d.stats["lo"].to_numpy(dtype=float)
            frame["hi"] = d.stats["hi"].to_numpy(dtype=float)
            frame["n"] = d.stats["n"].to_numpy(dtype=int)
            if with_stderr:
                frame["stderr"] = d.stats["stderr"].to_numpy(dtype=float)
            frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)
