"""The option vocabulary: constraints written inside type annotations, declared once.

Every option of the toolkit (a measure's keyword, an algorithm's option, a config key, a
dataset option, a label-noise argument) is declared by its annotation; the markers below add
a range to the type, and a plain string adds help text::

    sigma: Annotated[float, Positive(), "noise standard deviation"] = 0.01
    draws: Annotated[int, AtLeast(1), "number of noise draws"] = 20
    rate: Annotated[float, Interval(0, 1, closed="left")] = 0.0
    norm: Literal["frobenius", "mars"] = "frobenius"          # choices: a Literal
    classes: Annotated[int, Strict()] = 3                     # no 3.0 for 3

:func:`genmeasures._coerce.coerce` applies them (one coercion layer for every kind of
option), :func:`genmeasures._coerce.describe_type` writes them into ``--help`` listings
(``float > 0``, ``int >= 1``, ``float in [0, 1)``). A range applies to a number, and to each
number of a list; ``None`` and strings pass it (``Annotated[int, AtLeast(1)] | None`` allows
``None``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal


class Constraint(ABC):
    """A rule a number must satisfy; subclasses say which (``allows``) and how (``describe``)."""

    @abstractmethod
    def allows(self, number: float) -> bool:
        """Whether ``number`` satisfies the rule."""

    @abstractmethod
    def describe(self) -> str:
        """The rule as it reads after "must be": ``> 0``, ``in [0, 1)``."""


@dataclass(frozen=True)
class Positive(Constraint):
    """The number is > 0."""

    def allows(self, number: float) -> bool:
        return number > 0

    def describe(self) -> str:
        return "> 0"


@dataclass(frozen=True)
class NonNegative(Constraint):
    """The number is >= 0."""

    def allows(self, number: float) -> bool:
        return number >= 0

    def describe(self) -> str:
        return ">= 0"


@dataclass(frozen=True)
class AtLeast(Constraint):
    """The number is >= ``minimum``."""

    minimum: float

    def allows(self, number: float) -> bool:
        return number >= self.minimum

    def describe(self) -> str:
        return f">= {format_bound(self.minimum)}"


@dataclass(frozen=True)
class Interval(Constraint):
    """The number lies between ``low`` and ``high``; ``closed`` says which ends are included
    (``both``: [low, high], ``left``: [low, high), ``right``: (low, high], ``neither``)."""

    low: float
    high: float
    closed: Literal["both", "left", "right", "neither"] = "both"

    def __post_init__(self) -> None:
        if self.closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval closed must be both|left|right|neither, got {self.closed}")

    def allows(self, number: float) -> bool:
        above = number >= self.low if self.closed in ("both", "left") else number > self.low
        below = number <= self.high if self.closed in ("both", "right") else number < self.high
        return above and below

    def describe(self) -> str:
        opening = "[" if self.closed in ("both", "left") else "("
        closing = "]" if self.closed in ("both", "right") else ")"
        return f"in {opening}{format_bound(self.low)}, {format_bound(self.high)}{closing}"


@dataclass(frozen=True)
class Strict:
    """No conversion: an ``int`` option refuses ``3.0`` and a ``Literal`` needs the exact
    spelling (without it, integral floats become ints and choices ignore case)."""


@dataclass(frozen=True)
class OneOf:
    """A string that is one of the names ``choices()`` returns when the value is checked.

    For choices that are a registry's names (curvatures, product methods): read when a value
    is checked, not when the annotation is written, so a plugin registered after the module
    that declares the option is a valid choice. Case is ignored, as for a ``Literal``.
    """

    choices: Callable[[], Iterable[str]]

    def names(self) -> tuple[str, ...]:
        return tuple(self.choices())

    def describe(self) -> str:
        return "one of " + "|".join(self.names())


def format_bound(bound: float) -> str:
    """A bound as written in a message: ``0``, ``0.5``, ``2**64`` for a large power of two."""
    if isinstance(bound, int) and bound >= 2**16 and bound & (bound - 1) == 0:
        return f"2**{bound.bit_length() - 1}"
    if isinstance(bound, float) and math.isfinite(bound) and bound.is_integer():
        return str(int(bound))
    return str(bound)


__all__ = ["AtLeast", "Constraint", "Interval", "NonNegative", "OneOf", "Positive", "Strict"]
