"""The checkpoint format: safetensors weights plus a JSON sidecar, and readers for other files.

``NAME.safetensors`` holds the state dict (parameters and buffers); ``NAME.json`` beside it holds
the metadata: the model spec (a registered model name and its kwargs), the epoch, the metrics
recorded at that epoch, the training-set size and the run config. Plain PyTorch files
(``.pt``/``.pth``/``.tar``/``.bin``) are read with ``torch.load(weights_only=True)``, either
as a bare state dict or as the ``{'arch', 'epoch', 'state_dict'}`` dicts that the papers'
published training scripts save. No reader ever executes code from a file.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from genmeasures._io import (
    atomic_write_bytes,
    atomic_write_json,
    read_small_text,
    sha256_bytes,
)
from genmeasures.errors import CheckpointError

FORMAT = "genmeasures.checkpoint/1"
SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# safetensors stores tensors in its own order; the network (state-dict) order is kept here.
_ORDER_KEY = "genmeasures.order"


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name (or ``package.module:function``) and its keyword arguments."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_json(cls, obj: Any) -> ModelSpec | None:
        """``None``, a name, or ``{"name": str, "kwargs": {...}}`` (ValueError otherwise)."""
        if obj is None:
            return None
        if isinstance(obj, str) and obj:
            return cls(obj)
        if not isinstance(obj, Mapping) or not isinstance(obj.get("name"), str) or not obj["name"]:
            raise ValueError(f"'model' must be a name or {{name, kwargs}}, got {_shown(obj)}")
        kwargs = obj.get("kwargs") or {}
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise ValueError(f"'model.kwargs' must be an object, got {_shown(kwargs)}")
        return cls(obj["name"], dict(kwargs))


@dataclass(frozen=True)
class CheckpointMeta:
    """What a sidecar records about a checkpoint; every field is optional."""

    model: ModelSpec | None = None
    epoch: int | None = None
    tag: str | None = None  # "init", "epoch", "last" or "best"
    metrics: Mapping[str, float] = field(default_factory=dict)
    n_train: int | None = None
    data: str | None = None  # the dataset spec the model was trained on
    config: Mapping[str, Any] = field(default_factory=dict)
    # The labels it was trained on when they differ from the dataset's (label noise,
    # corrections): "FILE#KEY", a tensor in a safetensors file of the run directory.
    labels: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model.to_json() if self.model else None,
            "epoch": self.epoch,
            "tag": self.tag,
            "metrics": dict(self.metrics),
            "n_train": self.n_train,
            "data": self.data,
            "config": dict(self.config),
            "labels": self.labels,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CheckpointMeta:
        """Read a sidecar's fields, each checked for its type (ValueError naming the field):
        a sidecar from another tool or a careless edit never enters a table as the wrong type.
        """
        metrics = _field(obj, "metrics", Mapping) or {}
        for key, value in metrics.items():
            if not isinstance(key, str) or not (value is None or _is_real(value)):
                raise ValueError(f"metrics[{key!r}] must be a number, got {_shown(value)}")
        return cls(
            model=ModelSpec.from_json(obj.get("model")),
            epoch=_field(obj, "epoch", int),
            tag=_field(obj, "tag", str),
            metrics=dict(metrics),
            n_train=_field(obj, "n_train", int, positive=True),
            data=_field(obj, "data", str),
            config=dict(_field(obj, "config", Mapping) or {}),
            labels=_field(obj, "labels", str),
        )


def _field(obj: Mapping[str, Any], key: str, kind: type[Any], positive: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = {int: "an integer", str: "a string", Mapping: "an object"}[kind]
        raise ValueError(f"{key!r} must be {name}, got {_shown(value)}")
    if positive and value < 1:
        raise ValueError(f"{key!r} must be positive, got {value}")
    return value


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its weights (on CPU), metadata and a digest of the file's bytes."""

    path: Path
    state: Mapping[str, torch.Tensor]
    meta: CheckpointMeta
    digest: str
    # Where the tensor order comes from: "recorded" (a genmeasures file's stored network
    # order, or a PyTorch state dict's own order) or "file" (a safetensors file from another
    # tool: the order of its header, deterministic but not necessarily the network's).
    order: str = "recorded"
    # The tensors as the file names them, when they were renamed onto a registered model
    # (the papers' wrapper layout): a user's own --model may use the file's names.
    original: Mapping[str, torch.Tensor] | None = None

    @property
    def ordered(self) -> bool:
        """Whether the tensors are in the network's own (state-dict) order."""
        return self.order == "recorded"

    @property
    def name(self) -> str:
        return self.path.name


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(
    path: str | os.PathLike, state: Mapping[str, torch.Tensor], meta: CheckpointMeta
) -> Path:
    """Write ``state`` as safetensors and ``meta`` as the JSON sidecar, each atomically.

    The sidecar is written after the weights, so a sidecar always describes complete weights.
    """
    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        path = path.with_name(path.name + SAFETENSORS_SUFFIX)
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}
    order = json.dumps(list(tensors))
    atomic_write_bytes(path, safetensors_save(tensors, metadata={_ORDER_KEY: order}))
    atomic_write_json(sidecar_path(path), meta.to_json())
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a ``.safetensors`` (+ sidecar) or a PyTorch file; raise CheckpointError if unusable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file (a device or a pipe)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not data:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    order = "recorded"
    if path.suffix == SAFETENSORS_SUFFIX:
        state, meta = _read_safetensors(path, data), _read_sidecar(path)
        header = _safetensors_header(data)
        names = _recorded_order(header)
        if names is None or set(names) != set(state):
            # safetensors returns its tensors in a different order in every process: use the
            # header's, which only the file's bytes decide.
            names, order = [name for name in header if name != "__metadata__"], "file"
        state = {name: state[name] for name in names}
    elif path.suffix in TORCH_SUFFIXES:
        state, meta = _read_torch(path, data)
        meta = _merge(meta, _read_sidecar(path))
    else:
        raise CheckpointError(
            f"unsupported checkpoint type {path.suffix!r} for {path}; "
            f"expected .safetensors or one of {', '.join(TORCH_SUFFIXES)}"
        )
    if not state:
        raise CheckpointError(f"checkpoint {path} holds no tensors")
    original = state
    state, meta = _recognized(state, meta)
    return Checkpoint(
        path=path,
        state=state,
        meta=meta,
        digest=sha256_bytes(data),
        order=order,
        original=original if list(state) != list(original) else None,
    )


def _recognized(
    state: dict[str, torch.Tensor], meta: CheckpointMeta
) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """A file that names no registered model but holds one (the papers' wrapper layout, a
    torchvision state dict): its tensors in the model's names, and the model's spec. A name
    that is not a registered model (the scripts' 'ResNet18', or 'DataParallel') is dropped
    rather than kept as a spec nothing can build."""
    from genmeasures.checkpoints import papers

    recorded = meta.model
    if recorded is not None and ":" in recorded.name:
        return state, meta  # a factory (the scorer refuses to import it from a file)
    if recorded is not None and recorded.kwargs and not papers.is_wrapped(state):
        return state, meta  # a full spec, as genmeasures writes it
    found = papers.recognize(state, recorded.name if recorded else None)
    if found is None:
        registered = recorded is not None and _is_registered(recorded.name)
        return state, meta if registered else replace(meta, model=None)
    renamed, spec = found
    return renamed, replace(meta, model=spec)


def _is_registered(name: str) -> bool:
    from genmeasures.models import MODELS

    return name in MODELS.names()


def _read_safetensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return safetensors_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: corrupt or truncated safetensors ({_first_line(exc)})"
        ) from None


def _safetensors_header(data: bytes) -> dict[str, Any]:
    """The safetensors header: an 8-byte little-endian length, then that many bytes of JSON
    (read after the tensors loaded, so it is well formed)."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length])


def _recorded_order(header: Mapping[str, Any]) -> list[str] | None:
    """The tensor order genmeasures stored in the safetensors header, if any."""
    try:
        names = json.loads(header["__metadata__"][_ORDER_KEY])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


def _read_sidecar(path: Path) -> CheckpointMeta:
    sidecar = sidecar_path(path)
    if not sidecar.exists() and not sidecar.is_symlink():
        return CheckpointMeta()
    try:
        obj = json.loads(read_small_text(sidecar, "sidecar", CheckpointError))
        if not isinstance(obj, dict):
            raise ValueError("top level is not an object")
        return CheckpointMeta.from_json(obj)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"cannot read sidecar {sidecar}: {_first_line(exc)}") from None


def read_sidecar_fields(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's sidecar as raw JSON, for a quick look (epoch, tag) while listing a run;
    empty when there is none or it cannot be read (loading the checkpoint then says why)."""
    try:
        obj = json.loads(read_small_text(sidecar_path(path), "sidecar", CheckpointError))
    except (CheckpointError, ValueError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}


def load_torch_file(source: bytes | Path, path: Path, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors that tell corrupt bytes from an
    attempt to run code, and that never pass on torch's advice to load unsafely."""
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        with warnings.catch_warnings():
            # torch's note on files written with a newer pickle protocol: not ours to show
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # garbage bytes, not an attempt to run code
            raise CheckpointError(
                f"cannot read {what} {path}: corrupt or truncated, or not a PyTorch weights "
                f"file ({_unpickler_reason(exc)})"
            ) from None
        raise CheckpointError(
            f"refusing to load {what} {path}: it is not a plain weights file and loading it "
            f"would run code ({_unpickler_reason(exc)}); genmeasures only reads tensors, "
            "numbers and strings from PyTorch files"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors...
        raise CheckpointError(
            f"cannot read {what} {path}: corrupt or truncated ({_unpickler_reason(exc)})"
        ) from None


def _read_torch(path: Path, data: bytes) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    obj = load_torch_file(data, path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a state dict or a dict with "
            f"a 'state_dict' entry"
        )
    meta = CheckpointMeta()
    wrapper = next((key for key in _WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
    if wrapper is not None:
        arch, epoch = obj.get("arch"), obj.get("epoch")
        meta = CheckpointMeta(
            model=ModelSpec(str(arch)) if isinstance(arch, str) else None,
            epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
            metrics={k: float(obj[k]) for k in ("best_acc1", "acc1") if _is_number(obj.get(k))},
        )
        obj = obj[wrapper]
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {path}: entry {name!r} is a {type(value).__name__}, not a tensor"
            )
    state = dict(obj)
    # An SWA file (torch.optim.swa_utils.AveragedModel) holds the averaged model under
    # 'module.' and the number of models averaged, which is not a weight.
    if "n_averaged" in state and all(k.startswith("module.") for k in state if k != "n_averaged"):
        del state["n_averaged"]
    # Weights saved from nn.DataParallel / DistributedDataParallel carry a 'module.' prefix.
    state = {name.removeprefix("module."): value for name, value in state.items()}
    return state, meta


def _merge(base: CheckpointMeta, sidecar: CheckpointMeta) -> CheckpointMeta:
    updates = {
        key: value
        for key, value in vars(sidecar).items()
        if value is not None and value != {} and value != getattr(CheckpointMeta(), key)
    }
    return replace(base, **updates)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Phrases of torch's and numpy's messages that advise loading a file unsafely.
_UNSAFE_ADVICE = re.compile(r"weights_only|allow_pickle|safe_globals|trust", re.IGNORECASE)


def _unpickler_reason(exc: Exception) -> str:
    """What the weights-only unpickler objected to, without torch's advice on how to load the
    file anyway (that advice leads to running the file's code)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        after = text.split("WeightsUnpickler error:", 1)[1].splitlines()
        reason = next((line.strip() for line in after if line.strip()), "")
        if reason:
            return reason.split(". ")[0].rstrip(".")[:200]
    first = _first_line(exc)
    return type(exc).__name__ if _UNSAFE_ADVICE.search(first) else first


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
