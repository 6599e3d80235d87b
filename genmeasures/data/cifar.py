"""CIFAR-10/100 "python version" folders (``cifar``), read with a restricted unpickler.

The batches are pickles holding only dicts of numpy arrays, lists and bytes. Unpickling can run
arbitrary code, so :class:`SafeUnpickler` resolves only numpy's array-reconstruction globals
and refuses every other global with a :class:`DataError`; nothing from the file is executed.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from genmeasures._coerce import option_error
from genmeasures.constraints import Strict
from genmeasures.data.base import ChannelStd, ChannelValues, TensorDataset, per_channel
from genmeasures.data.loading import register_dataset
from genmeasures.errors import DataError, one_line

__all__ = ["SafeUnpickler", "cifar", "read_cifar_batch"]

_NAME = "cifar"
_WHERE = f"dataset {_NAME!r}"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"


def _numpy_global(new: str, old: str, name: str) -> Any:
    import importlib

    for module in (new, old):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


_RECONSTRUCT = _numpy_global("numpy._core.multiarray", "numpy.core.multiarray", "_reconstruct")
_FROMBUFFER = _numpy_global("numpy._core.numeric", "numpy.core.numeric", "_frombuffer")

#: The only globals a CIFAR batch may reference: numpy's array reconstruction.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (decoding with ``bytes``)."""

    def __init__(self, file: io.BufferedIOBase, path: str | os.PathLike[str]) -> None:
        super().__init__(file, encoding="bytes")
        self.path = os.fspath(path)

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise DataError(f"refusing to unpickle {self.path}: it references {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"refusing to unpickle {self.path}: it uses a persistent id")


def read_cifar_batch(path: str | os.PathLike[str]) -> dict[bytes, Any]:
    """Safely unpickle one CIFAR batch file into a dict with ``bytes`` keys."""
    try:
        with open(path, "rb") as file:
            content = SafeUnpickler(file, path).load()
    except DataError:
        raise
    except Exception as exc:  # a corrupt file can fail in many ways; report it in one line
        raise DataError(f"cannot read CIFAR batch {path}: {one_line(exc)}") from None
    if not isinstance(content, dict):
        raise DataError(
            f"cannot read CIFAR batch {path}: expected a dict, got {type(content).__name__}"
        )
    return {k.encode() if isinstance(k, str) else k: v for k, v in content.items()}


def _batch_arrays(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_batch(path)
    if b"data" not in batch:
        raise DataError(f"CIFAR batch {path} has no b'data' entry")
    if label_key not in batch:
        raise DataError(f"CIFAR batch {path} has no {label_key!r} entry")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"CIFAR batch {path}: b'data' must be a uint8 array")
    if data.ndim == 4 and data.shape[1:] == (3, 32, 32):
        data = data.reshape(len(data), -1)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR batch {path}: b'data' must have shape (N, 3072), got {data.shape}")
    try:
        labels = np.asarray(batch[label_key])
    except (TypeError, ValueError) as exc:
        raise DataError(f"CIFAR batch {path}: bad {label_key!r} ({one_line(exc)})") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"CIFAR batch {path}: {label_key!r} must be a list of integers")
    if len(labels) != len(data):
        raise DataError(
            f"CIFAR batch {path} has {len(data)} images but {len(labels)} {label_key!r}"
        )
    return data, labels.astype(np.int64)


@register_dataset(_NAME)
def cifar(
    path: str,
    split: Annotated[Literal["train", "test"], Strict()] = "train",
    label_type: Annotated[Literal["fine", "coarse"], Strict()] = "fine",
    mean: ChannelValues = None,
    std: ChannelStd = None,
) -> TensorDataset:
    """A CIFAR-10 or CIFAR-100 "python version" folder, as ``(N, 3, 32, 32)`` float32.

    CIFAR-10 folders hold ``data_batch_1``..``data_batch_5`` (train) and ``test_batch``;
    CIFAR-100 folders hold ``train`` and ``test``. Each is a pickled dict with ``b'data'``
    (``N x 3072`` uint8, channel-major) and ``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` /
    ``b'coarse_labels'`` (CIFAR-100; pick with ``label_type``: 100 fine or 20 coarse classes).
    Inputs are scaled to ``[0, 1]`` then normalized per channel with ``mean``/``std``
    (default ``None``: no normalization).
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"no such file or directory: {path}")
    mean_values = per_channel(mean, 3, where=_WHERE, name="mean")
    std_values = per_channel(std, 3, where=_WHERE, name="std")

    if (root / "data_batch_1").is_file() or (root / CIFAR10_TEST).is_file():
        if label_type != "fine":
            raise option_error(
                _WHERE, "label_type", f"must be 'fine': {path} is a CIFAR-10 folder", label_type
            )
        files = CIFAR10_TRAIN if split == "train" else (CIFAR10_TEST,)
        label_key, num_classes = b"labels", 10
    elif (root / "train").is_file() and (root / "test").is_file():
        files = (split,)
        if label_type == "fine":
            label_key, num_classes = b"fine_labels", 100
        else:
            label_key, num_classes = b"coarse_labels", 20
    else:
        raise DataError(
            f"{path} is not a CIFAR python folder: expected data_batch_1..data_batch_5 and "
            "test_batch (CIFAR-10) or train and test (CIFAR-100)"
        )
    kind = "CIFAR-10" if label_key == b"labels" else "CIFAR-100"
    for name in files:
        if not (root / name).is_file():
            raise DataError(f"{kind} folder {path} is missing {name}")
    parts = [_batch_arrays(root / name, label_key) for name in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    inputs = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    if mean_values is not None:
        inputs -= torch.tensor(mean_values).reshape(1, 3, 1, 1)
    if std_values is not None:
        inputs /= torch.tensor(std_values).reshape(1, 3, 1, 1)
    return TensorDataset(inputs, labels, num_classes=num_classes, spec=_NAME)
