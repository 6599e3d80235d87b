"""genmeasures: generalization measures for fine-tuned neural networks.

Score checkpoints against their initialization (distance from init, layer-wise distance,
Hessian-based measures), fine-tune with the papers' algorithms, and correlate measures with
the observed generalization gap.

    >>> import genmeasures
    >>> table = genmeasures.score(model, init, (x, y), ["distance_from_init"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genmeasures.checkpoints import (
        Checkpoint,
        CheckpointMeta,
        ModelSpec,
        RunWriter,
        load_checkpoint,
        save_checkpoint,
    )
    from genmeasures.errors import GenMeasuresError
    from genmeasures.measures import (
        LayerValue,
        MeasureContext,
        MeasureResult,
        list_measures,
        register_measure,
    )
    from genmeasures.scoring import read_table, score, score_checkpoints, write_table

# The public names are imported on first use (PEP 562), so that `import genmeasures` (and the
# command line's --help) does not pay for torch, pandas and statsmodels before it needs them.
_HOME = {
    **dict.fromkeys(
        ["Checkpoint", "CheckpointMeta", "ModelSpec", "RunWriter", "load_checkpoint"],
        "genmeasures.checkpoints",
    ),
    "save_checkpoint": "genmeasures.checkpoints",
    "GenMeasuresError": "genmeasures.errors",
    **dict.fromkeys(
        ["LayerValue", "MeasureContext", "MeasureResult", "list_measures", "register_measure"],
        "genmeasures.measures",
    ),
    **dict.fromkeys(
        ["read_table", "score", "score_checkpoints", "write_table"], "genmeasures.scoring"
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'genmeasures' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "CheckpointMeta",
    "GenMeasuresError",
    "LayerValue",
    "MeasureContext",
    "MeasureResult",
    "ModelSpec",
    "RunWriter",
    "__version__",
    "list_measures",
    "load_checkpoint",
    "read_table",
    "register_measure",
    "save_checkpoint",
    "score",
    "score_checkpoints",
    "write_table",
]
