"""Atomic file writes and content hashes.

A reader never sees a half-written file: data goes to a temporary file in the same directory,
is flushed to disk, and replaces the target with ``os.replace`` (atomic on POSIX).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import torch


def _temporary_beside(target: Path, suffix: str) -> tuple[int, Path]:
    """Create a new, uniquely named file next to ``target``; return its descriptor and path.

    Unlike ``tempfile.mkstemp`` (always 0o600) the file gets the mode a plain ``open`` would
    give it (0o666 less the umask, applied by the kernel), so results stay readable to the
    group on a shared machine; when ``target`` exists its mode is kept.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if target.exists():
            # (On a file system without modes the new file keeps its own.)
            with suppress(OSError):
                os.chmod(tmp, target.stat().st_mode & 0o7777)
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file next to {target}")


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` only if the block completes."""
    target = Path(path)
    with _named_after(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_beside(target, ".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            with _named_after(target):
                handle.flush()
                os.fsync(handle.fileno())
        with _named_after(target):
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _named_after(target: Path) -> Iterator[None]:
    """An OS error while writing ``target`` names ``target`` (not the temporary file)."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(target)) from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_write_with(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Atomically produce ``path`` with a writer that takes a filename (e.g. pandas' to_parquet)."""
    target = Path(path)
    with _named_after(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_beside(target, target.suffix)
        os.close(fd)
    try:
        with _named_after(target):
            write(str(tmp))
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's dtype, shape and raw bytes (on the CPU, contiguous): what content digests
    of tensors hash, so equal bytes mean an equal tensor."""
    import torch  # on use: commands that never touch a tensor read this module too

    tensor = tensor.detach().cpu().contiguous()
    header = f"{tensor.dtype}:{tuple(tensor.shape)}:".encode()
    if not tensor.numel():
        return header
    return header + tensor.reshape(-1).view(torch.uint8).numpy().tobytes()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-serialisable object in canonical form (sorted keys, no whitespace)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return sha256_bytes(text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


# Metadata (sidecars, run.json, configs, metrics.csv) is small; anything larger is not what it
# claims to be (a sparse 50 GB file, a link to /dev/zero) and is refused before it is read.
MAX_METADATA_BYTES = 16 * 2**20


def read_small_file(
    path: str | os.PathLike,
    what: str,
    error: type[Exception],
    limit: int = MAX_METADATA_BYTES,
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; else ``error`` naming it.

    Directories, devices, FIFOs and oversized files are refused without reading them (a
    file that grows while it is read is cut at ``limit + 1`` bytes and refused too).
    """
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise error(f"{what} {path} is {kind}")
        if info.st_size > limit:
            raise error(f"{what} {path} is {info.st_size:,} bytes, more than the {limit:,} allowed")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is more than the {limit:,} bytes allowed")
    return data


def read_small_text(
    path: str | os.PathLike,
    what: str,
    error: type[Exception],
    limit: int = MAX_METADATA_BYTES,
) -> str:
    """:func:`read_small_file` decoded as UTF-8 (``error`` if it is not text)."""
    data = read_small_file(path, what, error, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def check_output_file(
    path: str | os.PathLike, what: str, error: type[Exception], suffixes: tuple[str, ...] = ()
) -> Path:
    """Refuse, before any work, an output file that could not be written: an unsupported
    suffix, a path that is a directory, or a parent that is a file or cannot be created."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise error(
            f"unsupported {what} type {path.suffix!r} for {path}; use {', '.join(suffixes)}"
        )
    if path.is_dir():
        raise error(f"{what} {path} is a directory; give a file name")
    _check_creatable_dir(path.parent, f"the folder of {what} {path}", error)
    return path


def check_output_dir(
    path: str | os.PathLike, what: str, error: type[Exception], *, writable: bool = True
) -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created (with
    ``writable=False`` an existing read-only folder is accepted: a cache that is only read)."""
    path = Path(path)
    _check_creatable_dir(path, f"{what} {path}", error, writable)
    return path


def _check_creatable_dir(
    folder: Path, what: str, error: type[Exception], writable: bool = True
) -> None:
    # The nearest existing ancestor must be a writable directory.
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == folder else f"is under {probe}, which is a file"
        raise error(f"{what} {where}")
    if probe.is_symlink() and not probe.exists():
        raise error(f"{what}: {probe} is a broken symbolic link")
    if probe == folder and not writable:
        return
    if not os.access(probe, os.W_OK | os.X_OK):
        raise error(f"{what}: {probe} is not writable")
