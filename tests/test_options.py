"""The option vocabulary: each constraint kind through the one coercion layer, and the one
wording of a refusal ("<where>: <name> must be ..., got <value>")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

import numpy as np
import pytest

from genmeasures._coerce import (
    CheckedFields,
    TypeMismatch,
    check_option,
    checked_arguments,
    coerce,
    describe_type,
    option_error,
    split_annotated,
)
from genmeasures.constraints import AtLeast, Interval, NonNegative, OneOf, Positive, Strict
from genmeasures.errors import OptionError


def refusal(value, annotation) -> str:
    with pytest.raises(OptionError) as info:
        check_option(value, annotation, where="here", name="x")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_positive() -> None:
    kind = Annotated[float, Positive()]
    assert coerce(1, kind) == 1.0 and isinstance(coerce(1, kind), float)
    assert coerce(1e-300, kind) == 1e-300
    assert refusal(0, kind) == "here: x must be > 0, got 0"
    assert refusal(-1, kind) == "here: x must be > 0, got -1"
    assert describe_type(kind) == "float > 0"


def test_non_negative() -> None:
    kind = Annotated[int, NonNegative()]
    assert coerce(0, kind) == 0
    assert refusal(-1, kind) == "here: x must be >= 0, got -1"
    assert describe_type(kind) == "int >= 0"


def test_at_least() -> None:
    kind = Annotated[int, AtLeast(2)]
    assert coerce(2, kind) == 2
    assert coerce(3.0, kind) == 3  # an integral float is an int (without Strict)
    assert refusal(1, kind) == "here: x must be >= 2, got 1"
    assert describe_type(kind) == "int >= 2"


@pytest.mark.parametrize(
    ("closed", "text", "accepted", "refused"),
    [
        ("both", "in [0, 1]", [0, 0.5, 1], [-0.1, 1.1]),
        ("left", "in [0, 1)", [0, 0.5], [1, 1.5, -0.1]),
        ("right", "in (0, 1]", [0.5, 1], [0, 1.5]),
        ("neither", "in (0, 1)", [0.5], [0, 1]),
    ],
)
def test_interval(closed, text, accepted, refused) -> None:
    kind = Annotated[float, Interval(0, 1, closed=closed)]
    assert describe_type(kind) == f"float {text}"
    for value in accepted:
        assert coerce(value, kind) == value
    for value in refused:
        assert refusal(value, kind) == f"here: x must be {text}, got {value!r}"


def test_interval_rejects_an_unknown_closed() -> None:
    with pytest.raises(ValueError, match="closed"):
        Interval(0, 1, closed="open")  # type: ignore[arg-type]


def test_large_powers_of_two_read_as_powers() -> None:
    kind = Annotated[int, Interval(0, 2**64, closed="left")]
    assert describe_type(kind) == "int in [0, 2**64)"


def test_choices() -> None:
    kind = Literal["frobenius", "mars"]
    assert coerce("MARS", kind) == "mars"  # case-insensitive by default
    assert refusal("l1", kind) == "here: x must be one of frobenius|mars, got 'l1'"
    strict = Annotated[kind, Strict()]
    assert coerce("mars", strict) == "mars"
    assert refusal("MARS", strict) == "here: x must be one of frobenius|mars, got 'MARS'"
    assert describe_type(strict) == "one of frobenius|mars"


def test_strict_refuses_integral_floats() -> None:
    kind = Annotated[int, Strict(), AtLeast(1)]
    assert coerce(np.int64(3), kind) == 3
    assert refusal(3.0, kind) == "here: x must be int, got 3.0"


def test_wrong_type_and_non_finite_values() -> None:
    kind = Annotated[float, Positive()]
    assert refusal("x", kind) == "here: x must be float, got 'x'"
    assert refusal(True, kind) == "here: x must be float, got True"
    assert refusal(float("nan"), kind) == "here: x must be finite, got nan"
    assert refusal(np.float32("inf"), kind).startswith("here: x must be finite")
    assert coerce(np.float64(0.5), kind) == 0.5


def test_ranges_inside_unions_and_lists() -> None:
    optional = Annotated[int, AtLeast(1)] | None
    assert coerce(None, optional) is None
    assert refusal(0, optional) == "here: x must be >= 1, got 0"
    assert refusal("a", optional) == "here: x must be int or none, got 'a'"
    assert describe_type(optional) == "int >= 1 or none"
    each = Annotated[float | list[float], Positive()]
    assert coerce([1, 2], each) == [1.0, 2.0]
    assert refusal([1, 0, 1], each) == "here: x must be > 0, got [1, 0, 1]"
    assert describe_type(each) == "(float or list of float) > 0"
    digits = list[Annotated[int, Interval(0, 9)]]
    assert refusal([3, 10], digits) == "here: x must be in [0, 9], got [3, 10]"


def test_help_strings_are_split_off_and_ranges_kept() -> None:
    annotation, help_text = split_annotated(Annotated[float, Positive(), "noise level"])
    assert help_text == "noise level"
    assert describe_type(annotation) == "float > 0"
    assert split_annotated(Annotated[int, "plain"]) == (int, "plain")


def test_option_error_is_the_one_wording() -> None:
    error = option_error("dataset 'digits'", "classes", "must not repeat a digit", [1, 1])
    assert str(error) == "dataset 'digits': classes must not repeat a digit, got [1, 1]"
    shown = option_error("w", "a + b", "must be < 1", (0.5, 0.6), shown="0.5 + 0.6")
    assert str(shown) == "w: a + b must be < 1, got 0.5 + 0.6"


@dataclass(frozen=True)
class Section(CheckedFields):
    option_prefix: ClassVar[str] = "section."

    rate: Annotated[float, Interval(0, 1, closed="left"), "a rate"] = 0.5
    count: Annotated[int, Positive()] = 1
    tags: list[str] = field(default_factory=list)


def test_dataclass_fields_are_checked_and_coerced_when_built() -> None:
    section = Section(rate=0, count=2.0)  # type: ignore[arg-type]
    assert section.rate == 0.0 and isinstance(section.rate, float)
    assert section.count == 2 and isinstance(section.count, int)
    with pytest.raises(OptionError, match=r"^config: section\.rate must be in \[0, 1\), got 1$"):
        Section(rate=1)
    with pytest.raises(OptionError, match=r"^config: section\.count must be > 0, got 0$"):
        Section(count=0)
    with pytest.raises(OptionError, match=r"^config: section\.tags must be list of str, got 3$"):
        Section(tags=3)  # type: ignore[arg-type]


def test_function_arguments_are_checked_on_every_call() -> None:
    @checked_arguments("builder 'b'")
    def build(n: Annotated[int, AtLeast(1)] = 1, *, mode: Literal["a", "b"] = "a") -> tuple:
        return n, mode

    assert build(2.0, mode="B") == (2, "b")
    with pytest.raises(OptionError, match=r"^builder 'b': n must be >= 1, got 0$"):
        build(0)
    with pytest.raises(OptionError, match=r"^builder 'b': mode must be one of a\|b, got 'c'$"):
        build(mode="c")


def test_one_of_reads_its_choices_when_a_value_is_checked() -> None:
    """A registry's names as choices: a name added after the annotation was written is
    valid, case is ignored (unless Strict), and a refusal lists the names of that moment."""
    names = ["hessian", "ggn"]
    annotation = Annotated[str, OneOf(lambda: names), "the matrix"]
    assert coerce("GGN", annotation) == "ggn"
    with pytest.raises(TypeMismatch, match=r"must be one of hessian\|ggn"):
        coerce("fisher", annotation)
    names.append("fisher")
    assert coerce("fisher", annotation) == "fisher"
    assert describe_type(annotation) == "one of hessian|ggn|fisher"
    with pytest.raises(TypeMismatch):
        coerce("FISHER", Annotated[str, OneOf(lambda: names), Strict()])
