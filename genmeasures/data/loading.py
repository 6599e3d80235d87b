"""The dataset registry and :func:`load_dataset`, which turns a spec or a path into a dataset."""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from genmeasures._coerce import checked_arguments
from genmeasures._registry import Registry
from genmeasures._specs import parse_spec
from genmeasures.data.base import LabeledDataset
from genmeasures.errors import DataError, OptionError

__all__ = ["DATASETS", "canonical_spec", "load_dataset", "register_dataset"]

DatasetBuilder = Callable[..., LabeledDataset]

DATASETS: Registry[DatasetBuilder] = Registry("dataset", entry_point_group="genmeasures.datasets")

#: Options always written into a canonical spec, even at their default value.
_ALWAYS_IN_SPEC = ("path", "split")


def register_dataset(name: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Register ``fn(**options) -> LabeledDataset`` under ``name`` (a decorator).

    The builder's keyword parameters are the dataset's options, declared once in their
    annotations (type, range from :mod:`genmeasures.constraints`, choices as ``Literal``):
    every call, through :func:`load_dataset` or directly, checks the given values against
    them first (``dataset 'NAME': n must be >= 1, got 0``), and :func:`load_dataset` rejects
    any other option with an :class:`OptionError` listing them. :func:`load_dataset` also sets
    the dataset's canonical ``spec`` and validates it, so builders need not.
    """

    def register(builder: DatasetBuilder) -> DatasetBuilder:
        return DATASETS.add(name, _checked(name, builder))

    return register


def load_dataset(spec: str | os.PathLike[str], **options: Any) -> LabeledDataset:
    """Build a dataset from a registered name with options, or from a path.

    ``spec`` is either

    * a registered name with optional options, e.g. ``'digits:split=test,classes=[5,6,7,8,9]'``
      (see ``DATASETS.names()``), or
    * a filesystem path (optionally followed by ``:key=value`` options): a directory of class
      subfolders (``image-folder``), a CIFAR-10/100 python folder (``cifar``) or a ``.npz``
      file (``npz``). Path-based loaders accept ``split`` (``train``/``test``) where meaningful.

    ``options`` override those given in the spec string. The returned dataset carries a
    canonical ``spec`` (sorted keys, non-default options plus ``split`` and ``path``) that
    rebuilds it, and has been validated: it is not empty, its labels lie in
    ``[0, num_classes)`` and (for in-memory data) its inputs are finite.

    Raises:
        OptionError: unknown dataset name or option, or a bad option value.
        DataError: a missing, unreadable, corrupt or invalid dataset.
    """
    name, spec_options = _resolve(spec)
    merged = {**spec_options, **options}
    return build_dataset(name, merged)


def build_dataset(name: str, options: Mapping[str, Any]) -> LabeledDataset:
    """Call the builder registered as ``name`` with checked ``options``; validate the result."""
    builder = _checked(name, DATASETS.get(name))
    options = dict(options)
    if "path" in options and options["path"] is not None:
        options["path"] = _normalize_path(options["path"])
    defaults = _check_options(name, builder, options)
    dataset = builder(**options)
    if not isinstance(dataset, LabeledDataset):
        raise DataError(
            f"dataset builder '{name}' returned {type(dataset).__name__}, not a LabeledDataset"
        )
    dataset.spec = canonical_spec(name, {**defaults, **options}, defaults)
    dataset.validate(dataset.spec)
    return dataset


def canonical_spec(
    name: str, options: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> str:
    """Format ``name:key=value,...`` with sorted keys, leaving out options at their default.

    ``path`` and ``split`` are always written. Values are written so that
    :func:`genmeasures._specs.parse_spec` reads them back (lists as JSON, ``None`` as ``none``).
    """
    defaults = defaults or {}
    items = []
    for key in sorted(options):
        value = options[key]
        if key not in _ALWAYS_IN_SPEC and key in defaults and _same(value, defaults[key]):
            continue
        items.append(f"{key}={format_value(value)}")
    return f"{name}:{','.join(items)}" if items else name


def format_value(value: Any) -> str:
    """Write one option value in the spec syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return json.dumps([_plain(v) for v in value], separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return format_value(value.item())
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    a = list(a) if isinstance(a, tuple) else a
    b = list(b) if isinstance(b, tuple) else b
    try:
        return bool(a == b)
    except Exception:  # e.g. comparing arrays
        return False


def _checked(name: str, builder: DatasetBuilder) -> DatasetBuilder:
    """``builder`` wrapped to check its arguments against its annotations (once only)."""
    if getattr(builder, "__checked_arguments__", False) or not callable(builder):
        return builder
    try:
        inspect.signature(builder)
    except (TypeError, ValueError):
        return builder
    return checked_arguments(f"dataset {name!r}")(builder)


def _check_options(name: str, builder: DatasetBuilder, options: Mapping[str, Any]) -> dict:
    """Reject unknown or missing options; return the builder's defaults."""
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = {key: p for key, p in parameters.items() if p.kind in kinds}
    accepts_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not accepts_any:
        for key in options:
            if key not in named:
                valid = ", ".join(sorted(named)) or "(none)"
                raise OptionError(f"unknown option '{key}' for dataset '{name}'; valid: {valid}")
    for key, parameter in named.items():
        if parameter.default is inspect.Parameter.empty and key not in options:
            raise OptionError(f"dataset '{name}' requires option '{key}'")
    return {key: p.default for key, p in named.items() if p.default is not inspect.Parameter.empty}


def _resolve(spec: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """Split ``spec`` into a registered builder name and options."""
    if isinstance(spec, os.PathLike):
        path = os.fspath(spec)
        return detect_format(path), {"path": path}
    if not isinstance(spec, str):
        raise OptionError(f"dataset spec must be a string or a path, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise OptionError("empty dataset spec; expected a dataset name or a path")
    if text.partition(":")[0].strip() in DATASETS:  # registered names win over local files
        return parse_spec(text)
    if os.path.exists(os.path.expanduser(text)):
        return detect_format(text), {"path": text}
    name, options = parse_spec(text)
    if os.path.exists(os.path.expanduser(name)) or _looks_like_path(name):
        return detect_format(name), {**options, "path": name}
    valid = ", ".join(DATASETS.names())
    raise OptionError(
        f"unknown dataset '{name}' (and no such file or directory: {name}); valid: {valid}"
    )


def _looks_like_path(text: str) -> bool:
    separators = [sep for sep in (os.sep, os.altsep, "/") if sep]
    return (
        any(sep in text for sep in separators)
        or text.startswith((".", "~"))
        or text.lower().endswith(".npz")
    )


def _normalize_path(path: Any) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name the registered loader for ``path``: ``npz``, ``cifar`` or ``image-folder``."""
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.exists():
        raise DataError(f"no such file or directory: {os.fspath(path)}")
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return "npz"
        raise DataError(
            f"unsupported dataset file {os.fspath(path)}: expected a .npz file or a directory"
        )
    if (p / "data_batch_1").is_file() or (p / "test_batch").is_file():
        return "cifar"
    if (p / "train").is_file() and (p / "test").is_file():
        return "cifar"
    return "image-folder"
