"""Measure options declared as typed keyword-only parameters, validated before any work starts.

A measure declares ``norm: Annotated[Literal["frobenius", "mars"], "which norm"] = "frobenius"``
or ``sigma: Annotated[float, Positive(), "noise level"] = 0.01`` (the constraints of
:mod:`genmeasures.constraints`); this module turns that into an :class:`OptionSpec` that checks
and coerces user values (from Python or from the CLI's ``name:key=value`` syntax) through the
one coercion layer (:mod:`genmeasures._coerce`) and describes itself, with its range, for
``--help``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genmeasures._coerce import check_option, describe_type, split_annotated, type_hints
from genmeasures.errors import OptionError


@dataclass(frozen=True)
class OptionSpec:
    """One option of a measure: its name, type annotation (with its constraints), default and
    help text."""

    name: str
    annotation: Any
    default: Any
    help: str = ""

    @property
    def type_name(self) -> str:
        """The type and range as listings show them: ``float > 0``, ``one of a|b``."""
        return describe_type(self.annotation)

    def validate(self, value: Any, owner: str) -> Any:
        """Return ``value`` coerced to the option's type, or raise OptionError naming it."""
        return check_option(value, self.annotation, where=owner, name=self.name)


def options_from_signature(fn: Any) -> dict[str, OptionSpec]:
    """Build option specs from a function's keyword-only parameters (each needs a default)."""
    import inspect

    hints = type_hints(fn)
    specs = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"option {param.name!r} of {fn.__qualname__} needs a default")
        annotation, help_text = split_annotated(hints.get(param.name, Any))
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
