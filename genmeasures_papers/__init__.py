"""The papers' figures and experiments, built on the genmeasures library (which never
imports this package).

Each figure is a composition of the library: an experiment per scale (a
:class:`~genmeasures.reproduce.Study` sweep config, or an experiment of its own such as
:mod:`genmeasures_papers.matrix_sensing`), a drawing made by a genmeasures.plots function, and
the paper's claim checked on the plotted numbers, all in one :class:`FigureSpec` named
``SPEC``. A figure lives in ``genmeasures_papers/<name>.py``, or, when it brings an experiment
of its own, in ``genmeasures_papers/<name>/figure.py`` beside that experiment's code.

The library finds the figures through the ``genmeasures.figures`` entry point that
pyproject.toml declares for :func:`figures`, so a new figure only needs its own file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genmeasures.reproduce import FigureSpec

# The module of an experiment package that holds its figure.
FIGURE_MODULE = "figure"


def figures() -> list[FigureSpec]:
    """Every figure of this package: the ``SPEC`` of each public module, or of the
    ``figure`` module of each public subpackage, in name order."""
    specs = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        name = f"{__name__}.{module.name}"
        if module.ispkg:
            name = f"{name}.{FIGURE_MODULE}"
        specs.append(importlib.import_module(name).SPEC)
    return specs
