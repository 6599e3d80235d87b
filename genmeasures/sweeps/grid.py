"""Sweep configs: a base fine-tuning config, a grid over dotted keys, and seeds.

::

    [sweep]
    out = "runs/sweep"            # one run directory per grid point and seed below it
    seeds = [0, 1, 2]             # each sets train.seed and model.seed (not data.noise_seed)
    jobs = 2                      # parallel processes on CPU
    score = true                  # score every run when training is done
    measures = ["distance_from_init", "hessian_bound"]
    score_samples = 200           # evaluation subset for data measures (0 = all)
    score_checkpoints = "last"    # which checkpoints of each run: all, last or best

    [model] / [data] / [train] / [algorithm]     the base config, as for `finetune`

    [grid]
    algorithm = [{name = "erm"}, {name = "constraint", distance = 0.5}]   # whole sections
    "data.noise_rate" = [0.0, 0.4]                                         # or single keys

The grid is the cartesian product of its keys' value lists, times the seeds. Each point is
validated before anything runs. A sweep's seed sets the keys of :data:`SWEEP_SEED_KEYS`
(the head's init and the run's randomness); the noisy labels stay those of
``data.noise_seed`` (0 unless the config sets it), the same for every seed. A study
(:class:`genmeasures.reproduce.Study`) passes its own ``seed_keys``, by default also
``data.noise_seed``.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from genmeasures._coerce import option_error, type_hints
from genmeasures.constraints import AtLeast, NonNegative
from genmeasures.errors import OptionError
from genmeasures.finetune.config import (
    CONFIG,
    SECTIONS,
    FinetuneConfig,
    coerce_key,
    config_from_mapping,
    read_config_file,
    set_dotted,
)


@dataclass(frozen=True)
class SweepSettings:
    out: Path = Path("runs/sweep")
    seeds: tuple[int, ...] = (0,)
    jobs: int = 1
    score: bool = True
    measures: tuple[str, ...] = ()
    score_samples: int = 0
    score_checkpoints: str = "last"


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its directory name, the grid values that define it, its config."""

    name: str
    values: Mapping[str, Any]
    config: FinetuneConfig = field(compare=False)


def load_sweep(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None):
    """Read a sweep file: returns (settings, points), every point's config validated."""
    raw = read_config_file(path)
    settings = _settings(raw.pop("sweep", {}) or {}, overrides or {})
    grid = raw.pop("grid", {}) or {}
    return settings, expand(raw, grid, settings.seeds)


#: The config keys a sweep config's seed sets: the run's randomness (data order, algorithm
#: noise) and the new head's init. ``data.noise_seed`` is not one of them: every seed of a
#: sweep trains on the same noisy labels.
SWEEP_SEED_KEYS: tuple[str, ...] = ("train.seed", "model.seed")


def expand(
    base: Mapping[str, Any],
    grid: Mapping[str, Any],
    seeds: Sequence[int],
    *,
    seed_keys: Sequence[str] = SWEEP_SEED_KEYS,
) -> list[SweepPoint]:
    """Every grid point times every seed, as validated :class:`SweepPoint` s.

    Each seed is written to each dotted config key of ``seed_keys`` (over what ``base`` and
    the grid say for it): by default ``train.seed`` and ``model.seed``, as a sweep config's
    ``seeds`` do; a study adds ``data.noise_seed`` so that a seed also draws its own noisy
    labels. Each key must be a seed key of the config (:func:`config_seed_keys`, listed by
    ``genmeasures config -v``) and no grid key; a value ``base`` gives it is replaced. Run
    names end in ``_seedS`` whatever the keys.
    """
    if not isinstance(grid, Mapping):
        raise OptionError("[grid] must map keys to lists of values")
    seed_keys = _check_seed_keys(seed_keys)
    both = [key for key in grid if key in seed_keys]
    if both:
        raise OptionError(
            f"grid key {both[0]!r} is set by every seed (seed keys: {', '.join(seed_keys)}); "
            "vary it through the seeds instead"
        )
    keys = list(grid)
    for key in keys:
        if not isinstance(grid[key], list) or not grid[key]:
            raise OptionError(f"grid key {key!r} needs a non-empty list of values")
    points = []
    for combination in itertools.product(*(grid[key] for key in keys)):
        for seed in seeds:
            raw = copy.deepcopy(dict(base))
            values = dict(zip(keys, combination, strict=True))
            for key, value in values.items():
                if key == "algorithm":
                    if not isinstance(value, Mapping):
                        raise OptionError("grid 'algorithm' values must be tables")
                    raw["algorithm"] = dict(value)
                else:
                    set_dotted(raw, key, value)
            for key in seed_keys:
                set_dotted(raw, key, seed)
            config = config_from_mapping(raw)
            points.append(SweepPoint(_name(config, values, seed), {**values, "seed": seed}, config))
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise OptionError("two grid points have the same run name; make grid values distinct")
    return points


def _check_seed_keys(seed_keys: Sequence[str]) -> tuple[str, ...]:
    """``seed_keys`` as a tuple: distinct, non-empty, each a seed key of the config (an
    integer key named ``*seed``: ``train.seed``, ``model.seed``, ``data.noise_seed``,
    ``data.subset_seed``)."""
    if isinstance(seed_keys, str) or not isinstance(seed_keys, Sequence):
        raise OptionError(f"seed_keys must be a list of dotted config keys, got {seed_keys!r}")
    keys = tuple(seed_keys)
    if not keys or len(set(keys)) != len(keys):
        raise OptionError(f"seed_keys must be distinct and non-empty, got {list(keys)}")
    valid = config_seed_keys()
    for key in keys:
        if key not in valid:
            raise OptionError(
                f"seed_keys: {key!r} is not a seed key of the config; valid: {', '.join(valid)}"
            )
    return keys


def config_seed_keys() -> tuple[str, ...]:
    """The config keys a seed may set: the integer keys of [model], [data] and [train] whose
    name ends in ``seed``, in section order."""
    keys = []
    for prefix, section in SECTIONS.items():
        for name, hint in type_hints(section).items():
            base = get_args(hint)[0] if get_origin(hint) is Annotated else hint
            if base is int and name.endswith("seed"):
                keys.append(f"{prefix}.{name}")
    return tuple(keys)


def _name(config: FinetuneConfig, values: Mapping[str, Any], seed: int) -> str:
    parts = [config.algorithm_name]
    for key, value in values.items():
        if key == "algorithm":
            extra = {k: v for k, v in value.items() if k != "name"}
            parts += [f"{k}={_short(v)}" for k, v in sorted(extra.items())]
        else:
            parts.append(f"{key.split('.')[-1]}={_short(value)}")
    name = re.sub(r"[^A-Za-z0-9=._+-]+", "-", "_".join(parts))
    if len(name) > 110:  # cut, and told apart by a digest of the grid values; seed kept
        digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
        name = f"{name[:90]}_{digest.hexdigest()[:10]}"
    return f"{name}_seed{seed}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]
    return str(value)


# Each [sweep] key's exact type, range and help (listed by `genmeasures config`): a string is
# not a bool ("false" would be truthy), a bool is not an int (jobs = true).
SETTING_TYPES: dict[str, Any] = {
    "out": Annotated[str, "the folder of the sweep's run directories"],
    "seeds": Annotated[
        list[int],
        "seeds of every grid point (each sets train.seed, model.seed; not data.noise_seed)",
    ],
    "jobs": Annotated[int, AtLeast(1), "parallel processes"],
    "score": Annotated[bool, "score every run when training is done"],
    "measures": Annotated[list[str] | str, "measures to score (default: every measure)"],
    "score_samples": Annotated[int, NonNegative(), "evaluation subset for data measures (0 = all)"],
    "score_checkpoints": Annotated[
        Literal["all", "last", "best"], "which checkpoints of each run are scored"
    ],
}
#: The defaults of the [sweep] keys, as :class:`SweepSettings` has them.
SETTING_DEFAULTS: dict[str, Any] = {
    "out": "runs/sweep",
    "seeds": [0],
    "jobs": 1,
    "score": True,
    "measures": [],
    "score_samples": 0,
    "score_checkpoints": "last",
}


def _settings(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> SweepSettings:
    """The [sweep] section, every key checked for its exact type and range, and every
    measure resolved with its options, before any run trains."""
    if not isinstance(raw, Mapping):
        raise OptionError("[sweep] must be a table of settings")
    given = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in overrides.items()}
    merged = {**raw, **{k: v for k, v in given.items() if v is not None}}
    unknown = [k for k in merged if k not in SETTING_TYPES]
    if unknown:
        valid = ", ".join(sorted(SETTING_TYPES))
        raise OptionError(f"unknown key 'sweep.{unknown[0]}'; valid: {valid}")
    values = {key: coerce_key(v, SETTING_TYPES[key], f"sweep.{key}") for key, v in merged.items()}
    seeds = values.get("seeds", [0])
    if not seeds:
        raise option_error(CONFIG, "sweep.seeds", "must be a non-empty list of integers", [])
    if len(set(seeds)) != len(seeds):
        raise option_error(CONFIG, "sweep.seeds", "must not list a seed twice", seeds)
    jobs = values.get("jobs", 1)
    samples = values.get("score_samples", 0)
    measures = values.get("measures", [])
    if isinstance(measures, str):
        measures = [m.strip() for m in measures.split(",") if m.strip()]
    if measures:
        from genmeasures.measures import resolve_requests

        resolve_requests(measures)
    out = values.get("out", "runs/sweep")
    if not out:
        raise option_error(CONFIG, "sweep.out", "must name a folder", out)
    return SweepSettings(
        out=Path(out),
        seeds=tuple(seeds),
        jobs=jobs,
        score=values.get("score", True),
        measures=tuple(measures),
        score_samples=samples,
        score_checkpoints=values.get("score_checkpoints", "last"),
    )
