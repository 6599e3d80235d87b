"""Measure options declared as typed keyword-only parameters, validated before any work starts.

A measure declares ``norm: Annotated[Literal["frobenius", "mars"], "which norm"] = "frobenius"``;
this module turns that into an :class:`OptionSpec` that checks and coerces user values
(from Python or from the CLI's ``name:key=value`` syntax) and describes itself for ``--help``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from genmeasures._coerce import TypeMismatch, coerce, describe_mismatch, describe_type
from genmeasures.errors import OptionError


@dataclass(frozen=True)
class OptionSpec:
    """One option of a measure: its name, type annotation, default and help text."""

    name: str
    annotation: Any
    default: Any
    help: str = ""

    @property
    def type_name(self) -> str:
        return describe_type(self.annotation)

    def validate(self, value: Any, owner: str) -> Any:
        """Return ``value`` coerced to the option's type, or raise OptionError naming it."""
        try:
            return coerce(value, self.annotation)
        except TypeMismatch:
            raise OptionError(
                f"option {self.name!r} of {owner} {describe_mismatch(value, self.annotation)}"
            ) from None


def options_from_signature(fn: Any) -> dict[str, OptionSpec]:
    """Build option specs from a function's keyword-only parameters (each needs a default)."""
    import inspect

    hints = typing.get_type_hints(fn, include_extras=True)
    specs = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"option {param.name!r} of {fn.__qualname__} needs a default")
        annotation, help_text = _split_annotated(hints.get(param.name, Any))
        specs[param.name] = OptionSpec(param.name, annotation, param.default, help_text)
    return specs


def resolve_options(
    specs: Mapping[str, OptionSpec], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Validate ``given`` against ``specs`` and fill in defaults."""
    unknown = [key for key in given if key not in specs]
    if unknown:
        valid = ", ".join(f"{s.name} ({s.type_name})" for s in specs.values()) or "none"
        raise OptionError(f"unknown option {unknown[0]!r} for {owner}; valid options: {valid}")
    resolved = {name: spec.default for name, spec in specs.items()}
    for key, value in given.items():
        resolved[key] = specs[key].validate(value, owner)
    return resolved


def _split_annotated(annotation: Any) -> tuple[Any, str]:
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        return base, " ".join(str(e) for e in extras if isinstance(e, str))
    return annotation, ""
