"""Errors genmeasures raises for bad input, and how any failure becomes one line.

Every message is one line that names the file, option or value at fault, so the CLI can print
it as ``error: <message>`` and exit non-zero. :func:`describe_failure` turns *any* exception
(a torch RuntimeError on a mismatched input, an OSError from a full disk, a MemoryError) into
such a line, so that one bad item of a batch is reported and the others still complete.
"""

from __future__ import annotations

import os

# Set (to anything but "" or "0") in the toolkit's own tests: unexpected exceptions, that is
# bugs rather than bad input, then propagate with their traceback instead of being reported
# as a one-line failure.
DEBUG_ENV = "GENMEASURES_DEBUG"


class GenMeasuresError(Exception):
    """Base class: a problem with the user's input, reported in one line."""


class CheckpointError(GenMeasuresError):
    """A checkpoint file is missing, corrupt, unsafe or does not match its init."""


class DataError(GenMeasuresError):
    """A dataset is unknown, empty, unreadable or inconsistent with the model."""


class ModelError(GenMeasuresError):
    """A model spec names an unknown architecture or a factory that is not allowed."""


class OptionError(GenMeasuresError):
    """An unknown name or option, or an option value of the wrong type."""


class MeasureError(GenMeasuresError):
    """A measure cannot be computed on this input (e.g. a NaN loss at the checkpoint)."""


class RunBusyError(GenMeasuresError):
    """A run directory is being trained by another process."""


class PluginError(GenMeasuresError):
    """An installed plug-in (an entry point) fails to load or clashes with another."""


class StudyError(GenMeasuresError):
    """A study or figure cannot produce its result (every run of it failed)."""


def one_line(exc: BaseException | str) -> str:
    """Collapse an exception message onto one line (the exception's type if it is empty)."""
    text = " ".join((exc if isinstance(exc, str) else str(exc)).split())
    if not isinstance(exc, str) and not text:
        text = type(exc).__name__
    return text


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` for an OSError (``[Errno 28] No space left on device`` -> the reason)."""
    reason = exc.strerror or one_line(exc)
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(os.fsdecode(p) for p in paths)
    return f"{where}: {reason}" if where else reason


def describe_failure(exc: BaseException) -> str:
    """One line for any failure: the toolkit's own message as it is, an OS error as the path
    and the reason (``/runs/s.csv: No space left on device``), anything else as its type and
    its message's first line."""
    if isinstance(exc, GenMeasuresError):
        return one_line(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, MemoryError):
        return "MemoryError: out of memory"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = " ".join(first.split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_bad_input(exc: BaseException) -> bool:
    """Whether a failure is reported as one line (True) or propagates (False).

    KeyboardInterrupt and SystemExit always propagate. Everything else is reported, except
    that under ``GENMEASURES_DEBUG`` (the toolkit's tests) only the toolkit's own errors, OS
    errors and memory errors are: any other exception there is a bug to see in full.
    """
    if not isinstance(exc, Exception):
        return False
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        return isinstance(exc, GenMeasuresError | OSError | MemoryError)
    return True
