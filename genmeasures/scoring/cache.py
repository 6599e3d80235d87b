"""A content-addressed cache of measure results.

The key hashes everything a result depends on: the bytes of the checkpoint and of its init,
the measure's name, version and options, the model spec and the tensor order (which fix the
order of per-layer results), and (only for measures that read them) the data's fingerprint,
sample size and batch size (when not the default 256), the device type, the seed and
n_train. Not the number of processes: a distributed run's results are one process's. Each
result is one small JSON file written atomically as soon as it is computed, so an interrupted
run resumes where it stopped and a rerun of an unchanged sweep computes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genmeasures._io import atomic_write_json, sha256_json
from genmeasures.data.evalset import DEFAULT_BATCH_SIZE
from genmeasures.measures import MeasureResult, MeasureSpec

CACHE_FORMAT = 2


def default_cache_dir() -> Path:
    explicit = os.environ.get("GENMEASURES_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genmeasures" / "scores"


def result_key(spec: MeasureSpec, options: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """Cache key of one measure on one checkpoint; ``inputs`` holds the digests it may read."""
    needs = spec.needs
    relevant = {
        "checkpoint": inputs["checkpoint"],
        "init": inputs.get("init") if "init" in needs else None,
        "data": inputs.get("data") if "data" in needs else None,
        "n_samples": inputs.get("n_samples") if "data" in needs else None,
        # The model spec and the tensor order it fixes change per-layer results of every
        # measure, weight-space ones included.
        "model": inputs.get("model"),
        "order": inputs.get("order"),
        "device": inputs.get("device") if needs & {"model", "data", "curvature"} else None,
        "seed": inputs.get("seed") if spec.stochastic else None,
        "n_train": inputs.get("n_train") if "n_train" in needs else None,
        **_batch_size_key(needs, inputs.get("batch_size")),
    }
    return sha256_json(
        {
            "format": CACHE_FORMAT,
            "measure": spec.name,
            "version": spec.version,
            "options": dict(options),
            "inputs": relevant,
        }
    )


def _batch_size_key(needs: frozenset[str], batch_size: Any) -> dict[str, Any]:
    """The evaluation batch size, for measures that read data, when it is not the default:
    curvature sums run over the batches, so another size gives other last bits (and keys
    made before the size could be chosen stay valid)."""
    if "data" not in needs or batch_size in (None, DEFAULT_BATCH_SIZE):
        return {}
    return {"batch_size": batch_size}


class ResultCache:
    """Measure results stored as ``ROOT/ab/abcdef....json``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> MeasureResult | None:
        path = self._path(key)
        try:
            return MeasureResult.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # a damaged entry is recomputed and overwritten

    def put(self, key: str, result: MeasureResult) -> None:
        atomic_write_json(self._path(key), result.to_json())
