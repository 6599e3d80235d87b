"""The one coercion layer: a user's value checked against an option's type annotation.

Measure options, algorithm options, config sections, sweep settings, dataset options and
label-noise arguments all go through :func:`check_option` (or :func:`check_fields` for a
dataclass, :func:`checked_arguments` for a function), so every refusal has one wording::

    <where>: <name> must be <requirement>, got <value>

e.g. ``measure 'noise_stability': sigma must be > 0, got 0.0`` or
``config: train.lr must be >= 0, got -0.1``.

Supported annotations: int, float (ints are accepted; numpy scalars too), str, bool (never
from 0/1), None, Literal[...] (choices, case-insensitive for strings), unions, list[T],
dict, Any, and ``Annotated[T, ...]`` whose extras are constraints from
:mod:`genmeasures.constraints` (``Positive()``, ``NonNegative()``, ``AtLeast(n)``,
``Interval(lo, hi)``, ``Strict()``) and help strings. :func:`coerce` returns the value
converted (an int to a float, a case-insensitive string to the Literal's spelling) or raises
:class:`TypeMismatch`. NaN and infinity are refused everywhere, inside dicts, lists and
``Any`` values too: no setting of the toolkit means anything when it is not finite, and a NaN
learning rate trains silently.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from typing import (
    Annotated,
    Any,
    Literal,
    SupportsInt,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
)

from genmeasures.constraints import Constraint, OneOf, Strict
from genmeasures.errors import OptionError

F = TypeVar("F", bound=Callable[..., Any])


class TypeMismatch(Exception):
    """The value does not fit the annotation; callers turn this into a one-line message.

    ``requirement`` is set when the type fitted but a constraint did not (``must be > 0``);
    otherwise the message describes the expected type.
    """

    def __init__(self, requirement: str | None = None) -> None:
        super().__init__(requirement or "")
        self.requirement = requirement


# ----------------------------------------------------------------------------- messages


def option_error(
    where: str, name: str, requirement: str, value: Any, *, shown: str | None = None
) -> OptionError:
    """The one wording of a refused option: ``<where>: <name> <requirement>, got <value>``.

    ``value`` is written with ``repr``; ``shown`` replaces that (``0.8 + 0.3``).
    """
    prefix = f"{where}: " if where else ""
    return OptionError(f"{prefix}{name} {requirement}, got {shown or repr(value)}")


def describe_mismatch(value: Any, annotation: Any, mismatch: TypeMismatch | None = None) -> str:
    """What a refused value should have been: 'must be int', 'must be > 0', 'must be finite'."""
    if not _all_finite(value):
        return "must be finite"
    if mismatch is not None and mismatch.requirement:
        return mismatch.requirement
    return f"must be {describe_type(annotation, ranges=False)}"


def check_option(value: Any, annotation: Any, *, where: str, name: str) -> Any:
    """``value`` coerced to ``annotation``, or an :class:`OptionError` in the one wording."""
    try:
        return coerce(value, annotation)
    except TypeMismatch as mismatch:
        raise option_error(
            where, name, describe_mismatch(value, annotation, mismatch), value
        ) from None


# ----------------------------------------------------------------------------- annotations


def split_annotated(annotation: Any) -> tuple[Any, str]:
    """``(annotation without its help strings, the help text)``; constraints are kept."""
    if get_origin(annotation) is not Annotated:
        return annotation, ""
    base, *extras = get_args(annotation)
    help_text = " ".join(e for e in extras if isinstance(e, str))
    rules = tuple(e for e in extras if not isinstance(e, str))
    return (Annotated[(base, *rules)] if rules else base), help_text


def type_hints(owner: Any) -> dict[str, Any]:
    """The annotations of a class or function, with ``Annotated`` extras kept."""
    return typing.get_type_hints(owner, include_extras=True)


def describe_type(annotation: Any, *, ranges: bool = True) -> str:
    """A short human description: 'one of a|b', 'int >= 1 or none', 'float in [0, 1)'.

    ``ranges=False`` leaves the constraints out (what a value of the wrong type should be).
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        choices = [e for e in extras if isinstance(e, OneOf)]
        if choices:
            return choices[0].describe()
        text = describe_type(base, ranges=ranges)
        rules = [e.describe() for e in extras if isinstance(e, Constraint)] if ranges else []
        if rules:
            text = f"({text})" if " or " in text else text
            text += " " + ", ".join(rules)
        return text
    if origin is Literal:
        return "one of " + "|".join(str(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a, ranges=ranges) for a in get_args(annotation))
    if origin is list or annotation is list:
        (item,) = get_args(annotation) or (Any,)
        return f"list of {describe_type(item, ranges=ranges)}"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


# ----------------------------------------------------------------------------- coercion


def coerce(value: Any, annotation: Any, *, strict: bool = False) -> Any:
    """``value`` converted to fit ``annotation`` and its constraints, or :class:`TypeMismatch`.

    ``strict`` (set by a ``Strict()`` marker): no integral float for an int, exact Literal
    spelling.
    """
    if not _all_finite(value):
        raise TypeMismatch
    if annotation is Any:
        return value
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        strict = strict or any(isinstance(e, Strict) for e in extras)
        result = coerce(value, base, strict=strict)
        for rule in extras:
            if isinstance(rule, Constraint) and not _satisfies(result, rule):
                raise TypeMismatch(f"must be {rule.describe()}")
            if isinstance(rule, OneOf):
                result = _one_of(result, rule, strict)
        return result
    if origin is Literal:
        for choice in get_args(annotation):
            if value == choice and type(value) is type(choice):
                return choice
            if (
                not strict
                and isinstance(choice, str)
                and isinstance(value, str)
                and value.lower() == choice
            ):
                return choice
        raise TypeMismatch
    if origin in (Union, types.UnionType):
        refusals = []
        for member in get_args(annotation):
            try:
                return coerce(value, member, strict=strict)
            except TypeMismatch as mismatch:
                refusals.append(mismatch)
        # A member whose type fitted but whose range did not says what is wrong.
        raise next((m for m in refusals if m.requirement), TypeMismatch())
    if origin is list or annotation is list:
        (item,) = get_args(annotation) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise TypeMismatch
        return [coerce(v, item, strict=strict) for v in value]
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
        if isinstance(value, bool):
            raise TypeMismatch
        if isinstance(value, numbers.Integral):
            return int(value)
        if not strict and isinstance(value, numbers.Real) and float(value).is_integer():
            # typeshed's numbers.Real has no __int__; every concrete Real converts with int()
            return int(cast(SupportsInt, value))
        raise TypeMismatch
    if annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise TypeMismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise TypeMismatch
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise TypeMismatch


def _one_of(value: Any, rule: OneOf, strict: bool) -> str:
    names = rule.names()
    for name in names:
        if value == name or (not strict and isinstance(value, str) and value.lower() == name):
            return name
    raise TypeMismatch(f"must be {rule.describe()}")


def _satisfies(value: Any, rule: Constraint) -> bool:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return rule.allows(cast(float, value))  # a Real compares like a float
    if isinstance(value, list | tuple):
        return all(_satisfies(v, rule) for v in value)
    return True  # None, strings, mappings: a range says nothing about them


def _all_finite(value: Any) -> bool:
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True


# ----------------------------------------------------------------------------- front ends


def check_fields(instance: Any, *, where: str, prefix: str = "") -> None:
    """Check (and coerce, in place) every init field of a dataclass against its annotation.

    Called from ``__post_init__`` (see :class:`CheckedFields`), so a frozen dataclass built
    from a config or directly from Python is checked the same way; a refusal names the field
    as ``<prefix><field>``.
    """
    cls: type = type(instance)  # (a type[Any] is not Hashable to mypy)
    hints = _class_hints(cls)
    for field in dataclasses.fields(instance):
        if not field.init:
            continue
        value = getattr(instance, field.name)
        checked = check_option(value, hints[field.name], where=where, name=prefix + field.name)
        if checked is not value:
            object.__setattr__(instance, field.name, checked)


class CheckedFields:
    """Base of option dataclasses whose fields are checked against their annotations.

    Subclasses set ``option_where`` (the ``<where>`` of messages) and ``option_prefix`` (put
    before each field's name, e.g. ``"train."``). A subclass with cross-field rules calls
    ``super().__post_init__()`` first.
    """

    option_where: typing.ClassVar[str] = "config"
    option_prefix: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_fields(self, where=self.option_where, prefix=self.option_prefix)


@functools.cache
def _class_hints(cls: type) -> dict[str, Any]:
    return type_hints(cls)


def check_arguments(
    function: Callable[..., Any], arguments: Mapping[str, Any], *, where: str
) -> dict[str, Any]:
    """``arguments`` (keyword name -> value) checked against ``function``'s annotations."""
    hints = _function_hints(function)
    return {
        key: check_option(value, hints[key], where=where, name=key) if key in hints else value
        for key, value in arguments.items()
    }


def checked_arguments(where: str) -> Callable[[F], F]:
    """Decorator: every argument of a call is checked against its annotation first.

    Defaults are trusted (they are not checked); ``where`` starts each message.
    """

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            checked = check_arguments(function, bound.arguments, where=where)
            bound.arguments.update(checked)
            return function(*bound.args, **bound.kwargs)

        wrapper.__checked_arguments__ = True  # type: ignore[attr-defined]
        return typing.cast(F, wrapper)

    return decorate


def _function_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return type_hints(function)
    except Exception:  # an annotation that does not resolve: check nothing
        return {}
