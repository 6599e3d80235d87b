"""Reproductions and studies: compositions of the library that end in a report folder.

The default study (:data:`DEFAULT_STUDY`, run by ``genmeasures study``) is part of the
library; figures come from installed packages through the ``genmeasures.figures`` entry
point group (the papers' figures are in ``genmeasures_papers``, which the library never
imports).
"""

from genmeasures.reproduce.default_study import DEFAULT_STUDY
from genmeasures.reproduce.figures import (
    FIGURE_ENTRY_POINTS,
    FIGURES,
    Claim,
    Experiment,
    FigureResult,
    FigureSpec,
    get_figure,
    list_figures,
    register_figure,
    reproduce,
)
from genmeasures.reproduce.study import FigureData, Study, StudyGroup, StudyResult, run_study

__all__ = [
    "DEFAULT_STUDY",
    "FIGURES",
    "FIGURE_ENTRY_POINTS",
    "Claim",
    "Experiment",
    "FigureData",
    "FigureResult",
    "FigureSpec",
    "Study",
    "StudyGroup",
    "StudyResult",
    "get_figure",
    "list_figures",
    "register_figure",
    "reproduce",
    "run_study",
]
