"""Fine-tuning configuration: TOML or YAML files, ``key=value`` overrides, strict validation.

A config has four sections. Every key is declared once, as an annotated dataclass field (type,
range from :mod:`genmeasures.constraints`, help text), and checked by the one coercion layer
(:mod:`genmeasures._coerce`): an unknown key, a value of the wrong type or out of range is an
error whose one-line message names the dotted key (``config: train.lr must be >= 0, got -1``).
``genmeasures config -v`` lists every key with its type, range, default and help::

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

import copy
import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from genmeasures._coerce import CheckedFields, check_option, type_hints
from genmeasures._io import read_small_text
from genmeasures._specs import parse_value
from genmeasures.constraints import Interval, NonNegative, Positive
from genmeasures.errors import OptionError


@dataclass(frozen=True)
class ModelConfig(CheckedFields):
    """``[model]``: the network and where its pretrained weights come from."""

    option_prefix: ClassVar[str] = "model."

    name: Annotated[str, "architecture (a registered model name or module:function)"] = "cnn"
    kwargs: Annotated[dict[str, Any], "keyword arguments of the model factory"] = field(
        default_factory=dict
    )
    pretrained: Annotated[str, "pretrained weights file; '' = train from the random init"] = ""
    seed: Annotated[int, "seed of the new head's initialization"] = 0


NoiseKind = Literal["none", "symmetric", "symmetric_all", "pair"]


@dataclass(frozen=True)
class DataConfig(CheckedFields):
    """``[data]``: the dataset specs and the training labels' noise."""

    option_prefix: ClassVar[str] = "data."

    train: Annotated[str, "training dataset spec"] = "digits-target:split=train"
    val: Annotated[str, "validation dataset spec; '' = no validation split"] = ""
    test: Annotated[str, "test dataset spec"] = "digits-target:split=test"
    noise: Annotated[NoiseKind, "label noise on the training labels"] = "none"
    noise_rate: Annotated[float, Interval(0, 1, closed="left"), "label noise rate"] = 0.0
    noise_seed: Annotated[int, "seed of the label noise draw"] = 0
    train_size: Annotated[
        int, NonNegative(), "a seeded random subset of this many training samples (0 = all)"
    ] = 0
    subset_seed: Annotated[int, "seed of that subset"] = 0
    batch_size_eval: Annotated[int, Positive(), "batch size of evaluation passes"] = 512
    workers: Annotated[int, NonNegative(), "data loader worker processes"] = 0


@dataclass(frozen=True)
class TrainConfig(CheckedFields):
    """``[train]``: the optimizer, its schedule and the run's bookkeeping."""

    option_prefix: ClassVar[str] = "train."

    epochs: Annotated[int, Positive(), "training epochs"] = 10
    batch_size: Annotated[int, Positive(), "training batch size"] = 32
    optimizer: Annotated[Literal["sgd", "adam", "adamw"], "the optimizer"] = "sgd"
    lr: Annotated[float, NonNegative(), "learning rate"] = 0.01
    momentum: Annotated[float, NonNegative(), "SGD momentum"] = 0.9
    weight_decay: Annotated[float, NonNegative(), "the optimizer's weight decay"] = 0.0
    schedule: Annotated[Literal["constant", "step", "cosine"], "learning-rate schedule"] = (
        "constant"
    )
    step_size: Annotated[int, Positive(), "epochs between steps of schedule=step"] = 10
    step_gamma: Annotated[float, NonNegative(), "lr factor at each step of schedule=step"] = 0.1
    seed: Annotated[int, "seed of the run's randomness"] = 0
    save_every: Annotated[int, Positive(), "save a checkpoint every this many epochs"] = 1
    early_stopping: Annotated[
        int, NonNegative(), "patience in epochs on validation accuracy; 0 = off"
    ] = 0
    freeze: Annotated[int, NonNegative(), "freeze the first m blocks"] = 0
    device: Annotated[Literal["auto", "cpu", "cuda"], "where to train (auto: CUDA if present)"] = (
        "auto"
    )
    amp: Annotated[bool, "mixed precision (CUDA only)"] = False
    # Pinned so that a run's numbers do not depend on whether it ran alone or beside others
    # (--jobs).
    threads: Annotated[
        int, NonNegative(), "torch CPU threads of this run (0 = torch's default)"
    ] = 1


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


#: The ``<where>`` of every config message: ``config: train.lr must be >= 0, got -1``.
CONFIG = "config"

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
    """Instantiate dataclass ``cls`` from ``values``, checking keys, types and ranges."""
    if not isinstance(values, Mapping):
        raise OptionError(f"config section {prefix!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            valid = ", ".join(fields)
            raise OptionError(f"unknown key '{prefix}.{key}'; valid: {valid}")
        kwargs[key] = coerce_key(value, hints[key], f"{prefix}.{key}")
    return cls(**kwargs)


def coerce_key(value: Any, annotation: Any, key: str) -> Any:
    """``value`` of the dotted config ``key`` checked against ``annotation`` (one wording)."""
    return check_option(value, annotation, where=CONFIG, name=key)


def config_difference(saved: Mapping[str, Any], config: FinetuneConfig) -> str | None:
    """The first dotted key (in sorted order) where ``saved`` differs from ``config``, or None.

    ``saved`` is a config as a run directory recorded it (``run.json``'s ``config``). Keys
    added to the config since it was written count as their defaults, so a run from an
    earlier version is still the same run; ``train.epochs`` is ignored, since a rerun may
    train a run for more epochs. A saved config that no longer validates is compared as it
    is, and its differing key is reported (``"config"`` when the difference is not in a
    section, such as a section that is not a mapping).
    """
    old, new = _with_defaults(saved), config.to_json()
    for values in (old, new):
        train = values.get("train")
        if isinstance(train, dict):
            train.pop("epochs", None)
    return None if old == new else _first_difference(old, new)


def _with_defaults(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config with the keys added since it was written set to their defaults; as
    saved if it no longer validates (its differing key is then reported)."""
    try:
        return config_from_mapping(saved).to_json()
    except OptionError:
        return copy.deepcopy(dict(saved))


def _first_difference(old: Any, new: Any, prefix: str = "") -> str:
    """The first dotted key below ``prefix`` where two nested mappings differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "config"
