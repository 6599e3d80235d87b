"""Scoring: run measures on models or saved checkpoints and collect tidy tables."""

from genmeasures.scoring.api import score
from genmeasures.scoring.batch import (
    ScoreFailure,
    ScoreReport,
    score_checkpoints,
)
from genmeasures.scoring.cache import ResultCache, default_cache_dir
from genmeasures.tables import read_table, write_table

__all__ = [
    "ResultCache",
    "ScoreFailure",
    "ScoreReport",
    "default_cache_dir",
    "read_table",
    "score",
    "score_checkpoints",
    "write_table",
]
