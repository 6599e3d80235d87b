"""In-memory datasets stored as ``.npz`` files (``npz``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

import numpy as np

from genmeasures.constraints import Strict
from genmeasures.data.base import TensorDataset
from genmeasures.data.loading import register_dataset
from genmeasures.errors import DataError, one_line

__all__ = ["npz"]

_NAME = "npz"
INPUT_KEYS = ("x", "inputs")
LABEL_KEYS = ("y", "targets", "labels")
Split = Annotated[Literal["train", "val", "test"], Strict()]
SPLITS = get_args(get_args(Split)[0])


def _get(arrays: dict[str, np.ndarray], keys: tuple[str, ...], suffix: str = "") -> str | None:
    for key in keys:
        if key + suffix in arrays:
            return key + suffix
    return None


def _read(file: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(file, allow_pickle=False)
    except Exception as exc:  # a corrupt file can fail in many ways; report it in one line
        if "allow_pickle" in str(exc):  # numpy took the bytes for a pickle
            raise DataError(
                f"cannot read npz file {file}: not an .npz archive (numpy reads it as a "
                "pickle, which genmeasures never loads)"
            ) from None
        raise DataError(f"cannot read npz file {file}: {one_line(exc)}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"npz file {file} holds a single array, not named arrays")
    try:
        with archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise DataError(f"cannot read npz file {file}: {one_line(exc)}") from None
        raise DataError(
            f"npz file {file} holds object arrays (pickled Python objects), which genmeasures "
            "never loads; save the inputs and labels as numeric arrays"
        ) from None
    except Exception as exc:
        raise DataError(f"cannot read npz file {file}: {one_line(exc)}") from None


@register_dataset(_NAME)
def npz(path: str, split: Split = "train") -> TensorDataset:
    """A ``.npz`` file (read with ``allow_pickle=False``) of inputs and integer labels.

    Layouts: arrays ``x`` (or ``inputs``) of shape ``(N, ...)`` and ``y`` (or ``targets`` /
    ``labels``) of shape ``(N,)``; or per-split arrays ``x_train``/``y_train``,
    ``x_test``/``y_test`` (and optionally ``x_val``/``y_val``), picked by ``split``. Inputs
    are converted to float32 as they are (not rescaled). An optional scalar array
    ``num_classes`` sets the number of classes, else it is ``max(label) + 1`` over all splits.
    """
    file = Path(path)
    if not file.exists():
        raise DataError(f"no such file or directory: {path}")
    arrays = _read(file)

    x_key, y_key = _get(arrays, INPUT_KEYS), _get(arrays, LABEL_KEYS)
    if x_key is not None and y_key is not None:
        if split != "train":
            raise DataError(
                f"npz file {path} has no per-split arrays (x_{split}, y_{split}), so "
                f"split={split!r} is not available (use split=train for the whole file)"
            )
        label_keys = [y_key]
    else:
        x_key, y_key = _get(arrays, INPUT_KEYS, f"_{split}"), _get(arrays, LABEL_KEYS, f"_{split}")
        if x_key is None or y_key is None:
            found = ", ".join(sorted(arrays)) or "none"
            raise DataError(
                f"npz file {path} has no inputs/labels for split={split!r}: expected arrays "
                f"x and y, or x_{split} and y_{split} (found: {found})"
            )
        label_keys = [key for key in arrays if key.split("_")[0] in LABEL_KEYS and "_" in key]

    inputs, labels = arrays[x_key], arrays[y_key]
    if inputs.dtype.kind not in "biuf":
        raise DataError(f"npz file {path}: {x_key} must be numeric, got dtype {inputs.dtype}")
    if inputs.ndim == 0:
        raise DataError(f"npz file {path}: {x_key} must have shape (N, ...), got a scalar")
    if labels.ndim != 1:
        raise DataError(f"npz file {path}: {y_key} must have shape (N,), got {labels.shape}")
    if labels.dtype.kind not in "iuf" or (
        labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels)))
    ):
        raise DataError(f"npz file {path}: {y_key} must hold integers, got dtype {labels.dtype}")
    if len(inputs) != len(labels):
        raise DataError(
            f"npz file {path}: {x_key} has {len(inputs)} samples but {y_key} has {len(labels)}"
        )
    if "num_classes" in arrays:
        value = arrays["num_classes"]
        if value.size != 1 or value.dtype.kind not in "iu" or int(value.reshape(-1)[0]) < 1:
            raise DataError(f"npz file {path}: num_classes must be one positive integer")
        num_classes = int(value.reshape(-1)[0])
    else:
        maxima = [
            int(arrays[k].max())
            for k in label_keys
            if arrays[k].size and arrays[k].dtype.kind in "iuf" and np.isfinite(arrays[k]).all()
        ]
        num_classes = max(maxima) + 1 if maxima else 0
    return TensorDataset(
        inputs.astype(np.float32), labels.astype(np.int64), num_classes=num_classes, spec=_NAME
    )
