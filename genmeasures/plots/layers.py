"""Per-layer profiles: a measure's value layer by layer, one line per checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import seaborn as sns

from genmeasures.errors import DataError
from genmeasures.plots._output import PlotResult, require_columns, save
from genmeasures.plots.style import (
    LEGEND_WIDTH,
    SEQUENTIAL,
    colors,
    legend_outside,
    new_figure,
    theme,
    wants_log,
)
from genmeasures.tables.schema import per_layer_rows

MAX_TICK_LABELS = 30
#: hue levels keyed in a legend; more are told apart by the sequential palette alone
MAX_KEYED = 12


def layer_profiles(
    long_table: pd.DataFrame,
    measure: str,
    stem: str | os.PathLike,
    *,
    hue: str = "epoch",
    options: str | None = None,
) -> PlotResult:
    """A measure's per-layer values (x: layers in network order) for every checkpoint.

    ``long_table`` is the table ``genmeasures score`` writes: the rows of ``measure`` with a
    non-empty ``layer`` are drawn, one line per checkpoint, coloured by ``hue`` (default the
    epoch; a sequential palette for numbers), keyed right of the axes for up to 12 levels.
    Layers keep the order of first appearance, which is the network's order. ``options``
    picks one options string where the measure was scored with several. The y axis is
    logarithmic where positive values span more than two orders of magnitude; NaN values
    are not drawn and counted in the title.

    ``data``, read back from the lines: ``checkpoint``, ``hue`` (under its own name),
    ``layer``, ``position``, ``value``.
    """
    require_columns(long_table, "checkpoint", "measure", "layer", "value")
    rows = per_layer_rows(long_table[long_table["measure"] == measure])
    if rows.empty:
        raise DataError(f"measure {measure!r} has no per-layer rows in the table")
    if "options" in rows.columns:
        variants = rows["options"].fillna("").astype(str).unique().tolist()
        if options is not None:
            rows = rows[rows["options"].fillna("").astype(str) == options]
            if rows.empty:
                raise DataError(f"measure {measure!r} has no rows with options {options!r}")
        elif len(variants) > 1:
            raise DataError(
                f"measure {measure!r} was scored with several options ({' | '.join(variants)}); "
                "pick one with options="
            )
    hue = hue if hue in rows.columns else "checkpoint"
    layers = list(dict.fromkeys(rows["layer"].astype(str)))
    position = {layer: float(k) for k, layer in enumerate(layers)}
    n_nan = int(rows["value"].isna().sum())
    checkpoints = list(dict.fromkeys(rows["checkpoint"]))
    hue_of = rows.drop_duplicates("checkpoint").set_index("checkpoint")[hue]
    palette = _palette(hue_of)
    values = rows["value"].to_numpy(dtype=float)
    with theme():
        keyed = len(palette) <= MAX_KEYED
        width = max(5.0, 0.3 * len(layers) + 2.0) + (LEGEND_WIDTH if keyed else 0.0)
        figure, axes = new_figure(width, 3.8)
        ax = axes[0, 0]
        labelled: set = set()
        for checkpoint in checkpoints:
            mine = rows[(rows["checkpoint"] == checkpoint) & rows["value"].notna()]
            level = hue_of[checkpoint]
            label = None if level in labelled else f"{level}"
            labelled.add(level)
            (line,) = ax.plot(
                [position[str(layer)] for layer in mine["layer"]],
                mine["value"].to_numpy(dtype=float),
                marker="o",
                ms=3,
                lw=1.2,
                color=palette[level],
                label=label,
            )
            line.set_gid("profile")
            line.checkpoint, line.hue_level = checkpoint, level
        step = max(1, int(np.ceil(len(layers) / MAX_TICK_LABELS)))
        ticks = list(range(0, len(layers), step))
        ax.set_xticks(ticks, [layers[k] for k in ticks], rotation=60, ha="right", fontsize="small")
        if wants_log(values):
            ax.set_yscale("log")
        ax.set_ylabel(measure)
        ax.set_xlabel("layer")
        if keyed:
            legend_outside(figure, [ax], title=hue)
        if n_nan:
            ax.set_title(f"{n_nan} NaN value(s) not drawn", fontsize="small")
        data = _read_back(ax, hue, layers)
        png, pdf = save(figure, stem)
    return PlotResult(png, pdf, data)


def _palette(hue_of: pd.Series) -> dict:
    levels = list(dict.fromkeys(hue_of.tolist()))
    if pd.api.types.is_numeric_dtype(hue_of) and len(levels) > 1:
        levels = sorted(levels)
        return dict(zip(levels, sns.color_palette(SEQUENTIAL, len(levels)), strict=True))
    return dict(zip(levels, colors(len(levels)), strict=True))


def _read_back(ax, hue: str, layers: list[str]) -> pd.DataFrame:
    frames = []
    for line in ax.get_lines():
        if line.get_gid() != "profile":
            continue
        x = np.asarray(line.get_xdata(), dtype=float)
        frames.append(
            pd.DataFrame(
                {
                    "checkpoint": line.checkpoint,
                    hue: line.hue_level,
                    "layer": [layers[int(k)] for k in x],
                    "position": x,
                    "value": np.asarray(line.get_ydata(), dtype=float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
