"""Model registry, model building, architecture adapters and classification-head utilities.

Built-in models (factories taking keyword arguments, all accepting ``num_classes``):
``mlp``, ``cnn``, ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` (torchvision's
architecture and state-dict names), ``vit_b_16`` and ``vit_tiny`` (torchvision's
``VisionTransformer`` names). Each is registered with its :class:`Architecture` (head, blocks,
stages, default measure layers); :func:`architecture_of` gives any model's, through one
documented fallback for models that declare none (:mod:`genmeasures.models.architecture`).
Every built-in model also stores the dotted name of its head in ``model.head_name``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from genmeasures._registry import Registry
from genmeasures.errors import GenMeasuresError, ModelError
from genmeasures.models.architecture import (
    Architecture,
    architecture_of,
    conv_linear_weight_names,
)
from genmeasures.models.cnn import CNN_ARCHITECTURE, cnn
from genmeasures.models.mlp import MLP_ARCHITECTURE, mlp
from genmeasures.models.resnet import (
    RESNET_ARCHITECTURE,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
)
from genmeasures.models.vit import VIT_ARCHITECTURE, vit_b_16, vit_tiny

__all__ = [
    "MODELS",
    "Architecture",
    "architecture_of",
    "build_model",
    "conv_linear_weight_names",
    "head_name",
    "register_model",
    "registered_architecture",
    "replace_head",
]

ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")
# The architecture registered with each factory (name -> adapter); see register_model.
_ARCHITECTURES: dict[str, Architecture] = {}

_ATTRIBUTES = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"
_IMPORT_SPEC = re.compile(rf"^{_ATTRIBUTES}:{_ATTRIBUTES}$")


def register_model(
    name: str, *, architecture: Architecture | None = None
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering ``fn(*, num_classes: int, **kwargs) -> nn.Module`` as ``name``.

    ``architecture`` (head, blocks, stages, default layers) is attached to every model
    :func:`build_model` builds from ``name`` unless the model declares its own; without it,
    such models use the fallback of :func:`architecture_of`.
    """
    if architecture is not None and not isinstance(architecture, Architecture):
        raise ModelError(
            f"model {name!r}: architecture must be an Architecture, "
            f"got {type(architecture).__name__}"
        )
    register = MODELS.decorator(name)

    def register_with_architecture(factory: ModelFactory) -> ModelFactory:
        registered = register(factory)
        _ARCHITECTURES.pop(name, None)
        if architecture is not None:
            _ARCHITECTURES[name] = architecture
        return registered

    return register_with_architecture


def registered_architecture(name: str) -> Architecture | None:
    """The architecture registered with the factory ``name`` (None if it has none)."""
    return _ARCHITECTURES.get(name)


_BUILT_IN: list[tuple[str, ModelFactory, Architecture]] = [
    ("mlp", mlp, MLP_ARCHITECTURE),
    ("cnn", cnn, CNN_ARCHITECTURE),
    ("resnet18", resnet18, RESNET_ARCHITECTURE),
    ("resnet34", resnet34, RESNET_ARCHITECTURE),
    ("resnet50", resnet50, RESNET_ARCHITECTURE),
    ("resnet101", resnet101, RESNET_ARCHITECTURE),
    ("vit_b_16", vit_b_16, VIT_ARCHITECTURE),
    ("vit_tiny", vit_tiny, VIT_ARCHITECTURE),
]
for _name, _factory, _architecture in _BUILT_IN:
    MODELS.add(_name, _factory)
    _ARCHITECTURES[_name] = _architecture


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _accepted_kwargs(factory: Callable[..., Any]) -> tuple[list[str], bool] | None:
    """Keyword names the factory accepts and whether it takes ``**kwargs``; None if unknown."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _resolve_import(spec: str) -> ModelFactory:
    """The factory an import spec names: ``package.module:function`` (imported with the
    current directory on the path, as ``python -c`` would) or ``path/to/file.py:function``."""
    path_text, _, attr_path = spec.rpartition(":")
    if path_text.endswith(".py") and re.fullmatch(_ATTRIBUTES, attr_path):
        obj = _import_file(spec, Path(path_text))
    elif _IMPORT_SPEC.match(spec):
        module_name, _, attr_path = spec.partition(":")
        obj = _import_module(spec, module_name)
    else:
        raise ModelError(
            f"model {spec!r} is not a valid import spec 'package.module:function' or "
            "'path/to/file.py:function'"
        )
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ModelError(
                f"model {spec!r}: {path_text!r} has no attribute {attr_path!r}"
            ) from None
    if not callable(obj):
        raise ModelError(f"model {spec!r}: {attr_path!r} is not callable")
    return obj


def _import_module(spec: str, module_name: str) -> Any:
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(
            f"model {spec!r}: cannot import module {module_name!r} ({_one_line(exc)})"
        ) from exc
    finally:
        if added:
            sys.path.remove(cwd)


def _import_file(spec: str, path: Path) -> Any:
    import importlib.util

    if not path.is_file():
        raise ModelError(f"model {spec!r}: no such file {path}")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    name = f"genmeasures_user_model_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ModelError(f"model {spec!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelError(f"model {spec!r}: importing {path} failed ({_one_line(exc)})") from exc
    return module


def build_model(
    name: str, kwargs: Mapping[str, Any] | None = None, *, allow_import: bool = False
) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments ``kwargs``.

    ``name`` may also be an import spec ``package.module:function`` (found on the path or in
    the current directory) or ``path/to/file.py:function`` naming a factory; it is imported
    and called only when ``allow_import=True`` (it runs user code). Unknown registered
    names raise the registry's ``OptionError``; every other failure raises a one-line
    ``ModelError`` naming the model.
    """
    if not isinstance(name, str) or not name:
        raise ModelError(f"model name must be a non-empty string, got {name!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise ModelError(f"model {name!r}: kwargs must be a mapping, got {type(kwargs).__name__}")
    kwargs = dict(kwargs)
    if bad := [k for k in kwargs if not isinstance(k, str)]:
        raise ModelError(f"model {name!r}: keyword argument names must be strings, got {bad!r}")

    if ":" in name:
        if not allow_import:
            raise ModelError(
                f"model {name!r} is an importable factory; pass allow_import=True "
                "(CLI: --allow-import) to run user code"
            )
        factory = _resolve_import(name)
    else:
        factory = MODELS.get(name)

    accepted = _accepted_kwargs(factory)
    accepted_text = ""
    if accepted is not None:
        names, var_kw = accepted
        accepted_text = ", ".join(names + (["**kwargs"] if var_kw else [])) or "(none)"
        unknown = [] if var_kw else [k for k in kwargs if k not in names]
        if unknown:
            raise ModelError(
                f"model {name!r} got unexpected keyword argument(s) "
                f"{', '.join(repr(k) for k in unknown)}; accepted: {accepted_text}"
            )
    try:
        model = factory(**kwargs)
    except GenMeasuresError:
        raise
    except TypeError as exc:
        hint = f"; accepted: {accepted_text}" if accepted_text else ""
        raise ModelError(
            f"model {name!r}: bad keyword arguments {sorted(kwargs)} ({_one_line(exc)}){hint}"
        ) from exc
    except Exception as exc:
        raise ModelError(f"model {name!r} failed to build ({_one_line(exc)})") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"model {name!r}: factory returned {type(model).__name__}, not a torch.nn.Module"
        )
    architecture = _ARCHITECTURES.get(name)
    # (A model using the name ``architecture`` for something else keeps it: fallback.)
    if architecture is not None and not hasattr(model, "architecture"):
        model.architecture = architecture  # type: ignore[assignment]  # Module stubs: Tensor | Module
    return model


def head_name(model: nn.Module) -> str:
    """Dotted module name of ``model``'s classification head: ``architecture_of(model).head``.

    Kept for callers that need only the head. For a model that declares no architecture:
    ``model.head_name`` when it names an ``nn.Linear`` submodule, else the last ``nn.Linear``
    in module order. Raises ``ModelError`` when there is none.
    """
    return architecture_of(model).head


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the head (see :func:`head_name`) in place by a freshly initialized ``nn.Linear``.

    The new layer keeps the old one's ``in_features``, bias presence, device and dtype, and has
    ``num_classes`` outputs (default ``nn.Linear`` initialization). Returns ``model``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
    name = head_name(model)
    old = model.get_submodule(name)
    assert isinstance(old, nn.Linear)
    new = nn.Linear(
        old.in_features,
        num_classes,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    if isinstance(getattr(model, "num_classes", None), int):
        model.num_classes = num_classes  # type: ignore[assignment]  # Module stubs: Tensor | Module
    return model
