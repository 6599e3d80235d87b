"""Checking a user's value against a type annotation, shared by measure options and configs.

Supported: int, float (ints are accepted), str, bool (never from 0/1), None, Literal[...],
unions, list[T], dict and Any. ``coerce`` returns the value converted (an int to a float, a
case-insensitive string to the Literal's spelling) or raises :class:`TypeMismatch`. NaN and
infinity are refused everywhere, inside dicts, lists and ``Any`` values too: no setting of
the toolkit means anything when it is not finite, and a NaN learning rate trains silently.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin


class TypeMismatch(Exception):
    """The value does not fit the annotation; callers turn this into a one-line message."""


def describe_type(annotation: Any) -> str:
    """A short human description: 'one of a|b', 'int or none', 'list of str'."""
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + "|".join(str(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in get_args(annotation))
    if origin is list or annotation is list:
        (item,) = get_args(annotation) or (Any,)
        return f"list of {describe_type(item)}"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def describe_mismatch(value: Any, annotation: Any) -> str:
    """The end of an error message for a value ``coerce`` refused: 'must be int, got 'x''."""
    if not _all_finite(value):
        return f"must be finite, got {value!r}"
    return f"must be {describe_type(annotation)}, got {value!r}"


def coerce(value: Any, annotation: Any) -> Any:
    if not _all_finite(value):
        raise TypeMismatch
    if annotation is Any:
        return value
    origin = get_origin(annotation)
    if origin is Literal:
        for choice in get_args(annotation):
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(choice, str) and isinstance(value, str) and value.lower() == choice:
                return choice
        raise TypeMismatch
    if origin in (Union, types.UnionType):
        for member in get_args(annotation):
            try:
                return coerce(value, member)
            except TypeMismatch:
                continue
        raise TypeMismatch
    if origin is list or annotation is list:
        (item,) = get_args(annotation) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise TypeMismatch
        return [coerce(v, item) for v in value]
    if annotation is type(None):
        if value is None:
            return None
        raise TypeMismatch
    if origin is dict or annotation is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise TypeMismatch
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise TypeMismatch
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeMismatch
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeMismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise TypeMismatch
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise TypeMismatch


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True
