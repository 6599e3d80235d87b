"""Typed measure results that turn into tidy table rows.

A :class:`MeasureResult` carries the whole-model value with its standard error (NaN when the
value is exact), per-layer values, named secondary quantities (``extras``) and the cost of
computing it. ``rows()`` flattens it: one row for the whole model (``layer == ""``), one per
layer, and one per extra quantity named ``measure.extra``, so every number lands in the same
``measure, layer, value, stderr`` columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NAN = math.nan


@dataclass(frozen=True)
class LayerValue:
    """A measure's value on one layer (a state-dict parameter name)."""

    layer: str
    value: float
    stderr: float = NAN
    extras: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MeasureResult:
    """What a measure returns.

    A measure function fills in ``value``, ``stderr``, ``layers``, ``extras`` and
    ``n_matvecs``; the registry adds ``measure``, ``options``, ``seed``, ``n_samples`` and
    ``seconds``.
    ``n_matvecs`` counts Hessian-vector products (0 for measures that need none);
    ``seed`` is None for deterministic measures; ``seconds`` is wall-clock time.
    """

    value: float
    stderr: float = NAN
    layers: tuple[LayerValue, ...] = ()
    extras: Mapping[str, float] = field(default_factory=dict)
    measure: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    n_samples: int | None = None
    seed: int | None = None
    seconds: float = NAN
    n_matvecs: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """Flatten into table rows with columns measure, options, layer, value, stderr, ..."""
        common = {
            "options": format_options(self.options),
            "n_samples": self.n_samples,
            "score_seed": self.seed,
            "seconds": self.seconds,
            "n_matvecs": self.n_matvecs,
        }
        # Extras in sorted order: a result read back from the cache (stored with sorted
        # keys) gives the same rows in the same order as one just computed.
        rows = [self._row(self.measure, "", self.value, self.stderr, common)]
        rows += [
            self._row(f"{self.measure}.{key}", "", value, NAN, common)
            for key, value in sorted(self.extras.items())
        ]
        for layer in self.layers:
            rows.append(self._row(self.measure, layer.layer, layer.value, layer.stderr, common))
            rows += [
                self._row(f"{self.measure}.{key}", layer.layer, value, NAN, common)
                for key, value in sorted(layer.extras.items())
            ]
        return rows

    @staticmethod
    def _row(measure: str, layer: str, value: float, stderr: float, common: dict) -> dict:
        return {"measure": measure, "layer": layer, "value": value, "stderr": stderr, **common}

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "value": _encode(self.value),
            "stderr": _encode(self.stderr),
            "layers": [
                {
                    "layer": lv.layer,
                    "value": _encode(lv.value),
                    "stderr": _encode(lv.stderr),
                    "extras": {k: _encode(v) for k, v in lv.extras.items()},
                }
                for lv in self.layers
            ],
            "extras": {k: _encode(v) for k, v in self.extras.items()},
            "options": dict(self.options),
            "n_samples": self.n_samples,
            "seed": self.seed,
            "seconds": _encode(self.seconds),
            "n_matvecs": self.n_matvecs,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> MeasureResult:
        return cls(
            measure=obj["measure"],
            value=_decode(obj["value"]),
            stderr=_decode(obj["stderr"]),
            layers=tuple(
                LayerValue(
                    layer=lv["layer"],
                    value=_decode(lv["value"]),
                    stderr=_decode(lv["stderr"]),
                    extras={k: _decode(v) for k, v in lv["extras"].items()},
                )
                for lv in obj["layers"]
            ),
            extras={k: _decode(v) for k, v in obj["extras"].items()},
            options=dict(obj["options"]),
            n_samples=obj["n_samples"],
            seed=obj["seed"],
            seconds=_decode(obj["seconds"]),
            n_matvecs=obj["n_matvecs"],
        )


def format_options(options: Mapping[str, Any]) -> str:
    """Canonical ``key=value,...`` text of options (sorted), as the CLI would accept them."""
    return ",".join(f"{key}={_format_value(options[key])}" for key in sorted(options))


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# JSON has no NaN/Inf; store them as strings so the cache round-trips exactly.
def _encode(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def _decode(value: float | str) -> float:
    return float(value)
