"""Reproductions and studies: compositions of the library that end in a report folder."""

from genmeasures.reproduce.figures import (
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
    "FIGURES",
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
