"""How the listing commands (``measures``, ``algorithms``, ``config``) print an option.

Every line comes from the option's one declaration, its annotation: the type and range
(``float > 0``, ``int >= 1``, ``one of a|b``) from :func:`genmeasures._coerce.describe_type`
and, with ``--verbose``, the help string written inside the ``Annotated``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from genmeasures._coerce import describe_type, split_annotated, type_hints


def first_paragraph(docstring: str | None) -> str:
    """A docstring's first paragraph, joined onto one line (a summary that wraps in the
    source is not cut at the line break)."""
    return " ".join((docstring or "").strip().split("\n\n")[0].split())


def option_line(name: str, annotation: Any, default: Any, help_text: str, *, verbose: bool) -> str:
    """``    --  name (type range) = default`` and, verbose, the help text below it."""
    line = f"    --  {name} ({describe_type(annotation)}) = {default!r}"
    if verbose and help_text:
        line += f"\n          {help_text}"
    return line


def dataclass_options(cls: type) -> Iterator[tuple[str, Any, Any, str]]:
    """``(name, annotation, default, help)`` of every init field of dataclass ``cls``."""
    hints = type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        annotation, help_text = split_annotated(hints[field.name])
        yield field.name, annotation, default, help_text


def mapping_options(
    types: Mapping[str, Any], defaults: Mapping[str, Any]
) -> Iterator[tuple[str, Any, Any, str]]:
    """``(name, annotation, default, help)`` of settings declared as a name -> annotation
    table."""
    for name, annotation in types.items():
        bare, help_text = split_annotated(annotation)
        yield name, bare, defaults.get(name), help_text
