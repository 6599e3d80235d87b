"""Fine-tuning configuration: TOML or YAML files, ``key=value`` overrides, strict validation.

A config has four sections. Every key is checked: an unknown key, a value of the wrong type, a
negative rate or a noise rate >= 1 is an error whose one-line message names the dotted key::

    [model]                       # the network and where its pretrained weights come from
    name = "cnn"
    kwargs = {}                   # num_classes is set from the training data
    pretrained = "runs/pretrained.safetensors"   # "" = train from the random init
    [data]
    train = "digits-target:split=train,n_per_class=30"
    val = "digits-target:split=val"              # "" = no validation split
    test = "digits-target:split=test"
    noise = "none"                # none | symmetric | symmetric_all | pair
    noise_rate = 0.0
    noise_seed = 0
    [train]
    epochs = 10
    batch_size = 16
    optimizer = "sgd"             # sgd | adam | adamw
    lr = 0.01
    ...
    [algorithm]
    name = "constraint"           # erm, l2sp, constraint, regsl, robust, nso, wp, rwp, sam,
    distance = 1.0                # asam, label_smoothing, mixup; its own options follow
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genmeasures._coerce import TypeMismatch, coerce, describe_mismatch
from genmeasures._io import read_small_text
from genmeasures._specs import parse_value
from genmeasures.errors import OptionError


@dataclass(frozen=True)
class ModelConfig:
    name: str = "cnn"
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str = ""
    seed: int = 0  # seed of the new head's initialization


NoiseKind = Literal["none", "symmetric", "symmetric_all", "pair"]


@dataclass(frozen=True)
class DataConfig:
    train: str = "digits-target:split=train"
    val: str = ""
    test: str = "digits-target:split=test"
    noise: NoiseKind = "none"
    noise_rate: float = 0.0
    noise_seed: int = 0
    train_size: int = 0  # use a seeded random subset of this many training samples (0 = all)
    subset_seed: int = 0
    batch_size_eval: int = 512
    workers: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.noise_rate < 1:
            raise OptionError(f"data.noise_rate must be in [0, 1), got {self.noise_rate}")
        _positive("data.batch_size_eval", self.batch_size_eval)
        _non_negative("data.train_size", self.train_size)
        _non_negative("data.workers", self.workers)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = 10
    step_gamma: float = 0.1
    seed: int = 0
    save_every: int = 1
    early_stopping: int = 0  # patience in epochs on validation accuracy; 0 = off
    freeze: int = 0  # freeze the first m blocks
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = False  # mixed precision (CUDA only)
    # torch CPU threads of this run (0 = torch's default). Pinned so that a run's numbers do
    # not depend on whether it ran alone or beside others (--jobs).
    threads: int = 1

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "save_every", "step_size"):
            _positive(f"train.{key}", getattr(self, key))
        for key in ("lr", "momentum", "weight_decay", "step_gamma"):
            _non_negative(f"train.{key}", getattr(self, key))
        for key in ("early_stopping", "freeze", "threads"):
            _non_negative(f"train.{key}", getattr(self, key))


@dataclass(frozen=True)
class FinetuneConfig:
    """The whole configuration of one fine-tuning run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    algorithm: dict[str, Any] = field(default_factory=lambda: {"name": "erm"})

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @property
    def algorithm_name(self) -> str:
        return str(self.algorithm.get("name", "erm"))


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def load_config(
    path: str | os.PathLike | None = None, overrides: Sequence[str] = ()
) -> FinetuneConfig:
    """Read a TOML/YAML config (or start from defaults), apply ``key=value`` overrides, check."""
    raw: dict[str, Any] = read_config_file(path) if path is not None else {}
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise OptionError(f"bad override {item!r}; expected section.key=value")
        set_dotted(raw, key.strip(), parse_value(value.strip()))
    return config_from_mapping(raw)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise OptionError(f"no such config file: {path}")
    text = read_small_text(path, "config file", OptionError)
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raise OptionError(f"config {path} must be .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise OptionError(f"cannot parse config {path}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError
        if type(exc).__module__.startswith("yaml"):
            raise OptionError(f"cannot parse config {path}: {str(exc).splitlines()[0]}") from None
        raise
    if not isinstance(raw, dict):
        raise OptionError(f"config {path} must hold a mapping of sections")
    return raw


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    target = raw
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise OptionError(f"cannot set {key}: {part} is not a section")
    target[parts[-1]] = value


def config_from_mapping(raw: Mapping[str, Any]) -> FinetuneConfig:
    unknown = [key for key in raw if key not in (*SECTIONS, "algorithm", "grid")]
    if unknown:
        raise OptionError(
            f"unknown config section {unknown[0]!r}; valid: model, data, train, algorithm"
        )
    sections = {
        name: build_section(cls, raw.get(name) or {}, name) for name, cls in SECTIONS.items()
    }
    algorithm = dict(raw.get("algorithm") or {"name": "erm"})
    algorithm.setdefault("name", "erm")
    from genmeasures.finetune.algorithm import resolve_algorithm_options

    algorithm = resolve_algorithm_options(algorithm)
    return FinetuneConfig(**sections, algorithm=algorithm)


def build_section(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, checking keys and types."""
    if not isinstance(values, Mapping):
        raise OptionError(f"config section {prefix!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            valid = ", ".join(fields)
            raise OptionError(f"unknown key '{prefix}.{key}'; valid: {valid}")
        kwargs[key] = coerce_key(value, hints[key], f"{prefix}.{key}")
    return cls(**kwargs)


def coerce_key(value: Any, annotation: Any, key: str) -> Any:
    try:
        return coerce(value, annotation)
    except TypeMismatch:
        raise OptionError(f"{key} {describe_mismatch(value, annotation)}") from None


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise OptionError(f"{key} must be positive, got {value}")


def _non_negative(key: str, value: float) -> None:
    if value < 0:
        raise OptionError(f"{key} must not be negative, got {value}")
