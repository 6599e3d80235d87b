"""Panels of lines against an x, one line per hue level, replicates summarized as mean + band.

:func:`line_panels` draws training curves of several optimizers (one panel per quantity),
small multiples of one quantity (one panel per level of a column, wrapped), grids of panels
(row and column facets) with Monte-Carlo error bars, and curves over an ordered axis (epochs,
layer names) with a second, right y axis.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from genmeasures.errors import DataError, OptionError
from genmeasures.plots._data import Band, StderrMean, matches, replicate_stats
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import colors, new_figure, theme, wants_log

Legend = Literal["below", "right", "panel"]
#: a setting for every panel, or a mapping from a panel's key to it
PerPanel = str | Mapping[Any, str] | None
PerPanelBool = bool | Mapping[Any, bool] | None

MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "p")
#: with hue, the columns of ``y`` and ``right`` are told apart by these
LINESTYLES = ("-", "--", ":", "-.")
#: panels drawing at most this many distinct x values label each one as a tick
MAX_LABELLED_TICKS = 8
#: lines get markers where their panel has at most this many distinct x values
MAX_MARKED_POINTS = 30
#: categorical x axes with more labels than this get rotated tick labels
ROTATE_ABOVE = 6


def line_panels(
    table: pd.DataFrame,
    x: str,
    y: str | Sequence[str],
    stem: str | os.PathLike,
    *,
    hue: str | None = None,
    row: str | None = None,
    col: str | None = None,
    col_wrap: int | None = None,
    subplots: bool = False,
    right: Sequence[str] = (),
    band: Band | None = "sd",
    stderr: str | None = None,
    stderr_mean: StderrMean = "independent",
    reference: Sequence[Any] = (),
    categorical_x: bool = False,
    hue_order: Sequence[Any] | None = None,
    row_order: Sequence[Any] | None = None,
    col_order: Sequence[Any] | None = None,
    labels: Mapping[Any, str] | None = None,
    xlabel: PerPanel = None,
    ylabel: PerPanel = None,
    right_ylabel: str | None = None,
    panel_titles: Mapping[str, str] | None = None,
    legend: Legend = "below",
    legend_title: PerPanel = None,
    log_x: PerPanelBool = None,
    log_y: PerPanelBool = None,
    sharey: bool = False,
    title: str | None = None,
) -> PlotResult:
    """``y`` against ``x`` in panels, one line per ``hue`` level, bands over replicates.

    **Replicates.** Rows sharing a panel, a hue level and ``x`` are replicates, typically
    seeds: the line joins their means, the band spans mean +- one standard deviation
    (``band="sd"``) or their min..max (``band="range"``, the honest choice for two or three
    seeds and on log axes); ``band=None`` draws none. ``stderr`` names a column holding each
    row's own standard error (a Monte-Carlo measurement's): error bars then show +- the
    standard error of the mean of the replicates' measurements, sqrt(sum_j stderr_j^2) / n for
    independent errors (``stderr_mean="independent"``) or mean_j stderr_j, the bound for errors
    that may be correlated (``"shared"``: replicates scored with the same random draws). NaN
    values of ``y`` are left out of the means and counted in the panel's title.

    **Panels.** One panel without facets. ``col`` and ``row`` lay the levels of two columns out
    as a grid: the panels of a grid column share their x axis, x labels go under the bottom
    row, y labels left of the first column, column levels above the top row. With
    ``col_wrap``, the levels of ``col`` are instead independent panels (small multiples),
    ``col_wrap`` to a row, each with its own labels. A list ``y`` draws its columns together
    in every panel (told apart by colour, or by line style with ``hue``); with
    ``subplots=True`` each column gets its own panel instead (one row, or ``col_wrap`` to a
    row). ``right`` names columns drawn on a second, right y axis with hollow markers.
    ``sharey`` shares the y axes (and the right axes) along each row of panels. Levels keep
    ``*_order`` (which may leave levels out) or their order of first appearance; a hue level
    keeps its colour in every panel and the k-th level the k-th marker shape. Hue levels named
    in ``reference`` (a bound, a radius) are drawn as dark grey dashed lines without band,
    error bars or markers, over the others.

    **Axes.** ``x`` must be numeric and is placed by value, with a tick at each value where a
    panel (grid column) draws at most eight of them, integer ticks where they are integers;
    ``categorical_x=True`` places the values as evenly spaced categories in their order of
    first appearance instead (layer names). An x (left y) axis is logarithmic where its
    positive x values (line means) span more than two orders of magnitude; ``log_x`` /
    ``log_y`` force it on (``True``) or off (``False``), everywhere or, as a mapping, for the
    panels whose key they name. A right axis follows the automatic rule. Markers are drawn
    where a panel has at most 30 distinct x values.

    **Keys and labels.** ``xlabel`` and ``log_x`` are one value or a mapping from a grid
    column's level to it; ``ylabel`` and ``log_y`` from a grid row's level; where panels
    wrap (``col_wrap``, ``subplots``) both map a panel's level or column. ``panel_titles`` and
    ``legend_title`` map a panel's name (``data``'s ``panel``). ``labels`` gives display names
    of y columns and hue levels (legend entries; a y label's default). Defaults: ``x``; the
    y column's name (``"value"`` for several; with a row facet ``"<y>: <row level>"``);
    ``right_ylabel`` the right columns. ``legend``: one legend for the figure, ``"below"`` or
    ``"right"`` of the panels (titled by a string ``legend_title``), or one per ``"panel"``
    (of the lines it shows); there is one where lines are told apart (``hue``, or several
    columns in a panel).

    ``data``, read back from the lines, one row per point drawn: ``panel`` (its name: the
    level of ``col``/``row``, both joined by ``" | "``, the column with ``subplots``, ``""``
    for a single panel), with both ``row`` and ``col`` facets ``row`` and ``col``, ``hue``
    (``""`` without hue), with a list ``y`` (not ``subplots``) ``series`` (the column) and
    ``axis`` (``left``/``right``), ``x`` (the position drawn), with a categorical x or a list
    ``y`` ``label`` (the x value as text), ``mean``, ``lo`` and ``hi`` (the band; without one,
    mean +- the stderr, or the mean), ``n`` replicates, and with ``stderr`` the mean's
    ``stderr``.
    """
    columns = [y] if isinstance(y, str) else list(y)
    right = list(right)
    as_series = not isinstance(y, str) and not subplots
    _check_options(
        columns=columns,
        right=right,
        hue=hue,
        row=row,
        col=col,
        col_wrap=col_wrap,
        subplots=subplots,
        band=band,
        stderr=stderr,
        stderr_mean=stderr_mean,
        legend=legend,
        reference=reference,
        categorical_x=categorical_x,
        log_x=log_x,
        orders={"hue": hue_order, "row": row_order, "col": col_order},
    )
    require_columns(table, x, *columns, *right, hue, row, col, stderr)
    if table.empty:
        raise DataError("the table to plot is empty")
    positions, categories = _positions(table[x], x, categorical_x)
    if table[x].nunique(dropna=True) < 2:
        raise DataError(f"{x!r} takes fewer than two values; nothing to plot against")
    values = {c: pd.to_numeric(table[c], errors="coerce") for c in columns + right}
    for column, numbers in values.items():
        if not (numbers.notna() & positions.notna()).any():
            raise DataError(f"no finite values of {column!r} to plot")
    errors = pd.to_numeric(table[stderr], errors="coerce") if stderr else None

    hues = _levels(table, hue, hue_order, "hue_order")
    reference = [level for level in reference if level in hues]
    coloured = [level for level in hues if level not in reference]
    series = [(c, "left") for c in columns] + [(c, "right") for c in right]
    if subplots:
        panels, nrows, ncols = _wrapped(table, columns, None, columns, col_wrap)
    elif col_wrap is not None:
        levels = _levels(table, col, col_order, "col_order")
        panels, nrows, ncols = _wrapped(table, levels, col, series, col_wrap)
    else:
        panels, nrows, ncols = _grid(table, row, row_order, col, col_order, series)
    grid = col_wrap is None and not subplots
    most = max(len(p.series) for p in panels)
    palette = colors(len(coloured) if hue else most)
    labels = dict(labels or {})
    keyed = hue is not None or most > 1
    in_hues = _is_any(table, hue, hues)

    rotated = categories is not None and len(categories) > ROTATE_ABOVE
    with theme():
        figure, axes = new_figure(
            3.7 * ncols + 0.4 + (0.6 if right else 0) + (1.8 if keyed and legend == "right" else 0),
            (3.1 + (0.9 if rotated else 0)) * nrows + (0.6 if keyed and legend == "below" else 0.2),
            nrows=nrows,
            ncols=ncols,
            sharex="col" if grid else False,
            sharey="row" if sharey else False,
        )
        twins = {(p.i, p.j): axes[p.i, p.j].twinx() for p in panels} if right else {}
        if sharey:
            for (i, j), twin in twins.items():
                if j > 0:
                    twin.sharey(twins[(i, 0)])
        drawn: dict[Line2D, _Drawn] = {}
        for p in panels:
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
                        stderr_mean,
                    )
                    if stats.empty:
                        continue
                    name = labels.get(column, column)
                    if hue:
                        level_name = labels.get(str(level), str(level))
                        name = f"{level_name}: {name}" if len(p.series) > 1 else level_name
                    line = _draw_line(
                        twins[(p.i, p.j)] if side == "right" else axes[p.i, p.j],
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
        for p in panels:
            n_nan = sum(int(values[c][p.mask & in_hues].isna().sum()) for c, _ in p.series)
            heading = [(panel_titles or {}).get(p.name, p.title)]
            heading.append(f"{n_nan} NaN value(s) left out" if n_nan else None)
            if any(heading):
                axes[p.i, p.j].set_title("\n".join(h for h in heading if h), fontsize="medium")
        _label_axes(panels, axes, twins, grid, sharey, x, row, labels, xlabel, ylabel, right_ylabel)
        _scale_y(panels, axes, twins, drawn, log_y, sharey)
        _scale_x(panels, axes, positions, categories, log_x, grid)
        for ax in axes.ravel()[len(panels) :]:  # the empty end of a wrapped layout
            ax.set_visible(False)
        if keyed:
            _legends(figure, panels, axes, twins, legend, legend_title)
        if title:
            figure.suptitle(title, fontsize="medium")
        data = _read_back(
            [axes[p.i, p.j] for p in panels] + [twins[(p.i, p.j)] for p in panels if twins],
            drawn,
            facets=row is not None and col is not None,
            as_series=as_series,
            with_label=categorical_x or as_series,
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


def _check_options(
    *,
    columns: list[str],
    right: list[str],
    hue: str | None,
    row: str | None,
    col: str | None,
    col_wrap: int | None,
    subplots: bool,
    band,
    stderr: str | None,
    stderr_mean,
    legend,
    reference: Sequence[Any],
    categorical_x: bool,
    log_x: PerPanelBool,
    orders: dict[str, Sequence[Any] | None],
) -> None:
    if band not in ("sd", "range", None):
        raise OptionError(f"band must be 'sd', 'range' or None, got {band!r}")
    if stderr_mean not in ("independent", "shared"):
        raise OptionError(f"stderr_mean must be 'independent' or 'shared', got {stderr_mean!r}")
    if legend not in ("below", "right", "panel"):
        raise OptionError(f"legend must be 'below', 'right' or 'panel', got {legend!r}")
    if not columns:
        raise OptionError("line_panels needs at least one y column to plot")
    if len(set(columns + right)) != len(columns) + len(right):
        raise OptionError("a column is named twice in y/right")
    if hue and not subplots and len(columns) + len(right) > len(LINESTYLES):
        raise OptionError(f"with hue, at most {len(LINESTYLES)} y/right columns can be told apart")
    if stderr and len(columns) + len(right) > 1:
        raise OptionError("stderr needs a single y column (and no right columns)")
    if subplots and (row or col or right):
        raise OptionError("subplots (a panel per y column) cannot be combined with row/col/right")
    if col_wrap is not None:
        if row or not (col or subplots):
            raise OptionError("col_wrap needs col (and no row) or subplots")
        if col_wrap < 1:
            raise OptionError(f"col_wrap must be >= 1, got {col_wrap}")
    facets = {"hue": hue, "row": row, "col": col}
    for name, order in orders.items():
        if order is not None and facets[name] is None:
            raise OptionError(f"{name}_order needs {name}")
    if reference and not hue:
        raise OptionError("reference names hue levels: it needs hue")
    if categorical_x and (log_x is True or (isinstance(log_x, Mapping) and any(log_x.values()))):
        raise OptionError("log_x cannot apply to a categorical x")


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


def _label_axes(panels, axes, twins, grid, sharey, x, row, labels, xlabel, ylabel, right_ylabel):
    """Axis labels: in a grid x labels under the bottom row, y labels left of the first column
    and right-axis labels (and, shared, tick labels) right of the last; wrapped panels each
    their own."""
    nrows, ncols = axes.shape
    for p in panels:
        ax = axes[p.i, p.j]
        if not grid or p.i == nrows - 1:
            ax.set_xlabel(_pick(xlabel, p.xkey) or x)
        if not grid or p.j == 0:
            left = [c for c, side in p.series if side == "left"]
            default = labels.get(left[0], left[0]) if len(left) == 1 else "value"
            if grid and row is not None:
                default = f"{default}: {p.row}"
            ax.set_ylabel(_pick(ylabel, p.ykey) or default)
        if twins:
            twin = twins[(p.i, p.j)]
            twin.grid(False)
            right = [c for c, side in p.series if side == "right"]
            if not grid or p.j == ncols - 1:
                twin.set_ylabel(right_ylabel or ", ".join(labels.get(c, c) for c in right))
            elif sharey:
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


def _legends(figure, panels, axes, twins, legend: Legend, legend_title: PerPanel) -> None:
    def entries(group):
        handles, names = [], []
        for ax in group:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                if name not in names:
                    handles.append(handle)
                    names.append(name)
        return handles, names

    if legend == "panel":
        for p in panels:
            handles, names = entries([axes[p.i, p.j], *([twins[(p.i, p.j)]] if twins else [])])
            if handles:
                axes[p.i, p.j].legend(
                    handles,
                    names,
                    title=_pick(legend_title, p.name),
                    fontsize="small",
                    title_fontsize="small",
                )
        return
    group = [axes[p.i, p.j] for p in panels] + [twins[(p.i, p.j)] for p in panels if twins]
    handles, names = entries(group)
    figure.legend(
        handles,
        names,
        title=legend_title if isinstance(legend_title, str) else None,
        loc="outside lower center" if legend == "below" else "outside right center",
        ncols=min(len(names), 4) if legend == "below" else 1,
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
