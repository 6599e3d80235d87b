"""The ``name:key=value,key=value`` spec syntax used for measures, datasets and models."""

from __future__ import annotations

import json
from typing import Any

from genmeasures.errors import OptionError


def parse_value(text: str) -> Any:
    """Parse one option value: int, float, bool, none, a list ``[a,b]``/JSON, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    if text[:1] == "[" and text[-1:] == "]":  # an unquoted list: [fc.*,head.*]
        inner = text[1:-1].strip()
        return [parse_value(item.strip()) for item in _split_top_level(inner)] if inner else []
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``'name:opt=1,other=x'`` into ``('name', {'opt': 1, 'other': 'x'})``.

    Values may not contain commas except inside brackets (``classes=[0,1,2]``).
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise OptionError(f"empty name in spec {spec!r}; expected 'name:key=value,...'")
    options: dict[str, Any] = {}
    for item in _split_top_level(rest):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise OptionError(f"bad option {item!r} in spec {spec!r}; expected key=value")
        options[key.strip()] = parse_value(value.strip())
    return name, options


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Like :func:`parse_spec`, but the name may be an import path ``package.module:function``.

    ``'resnet18:num_classes=5'`` -> ``('resnet18', {'num_classes': 5})``;
    ``'mypkg.models:net:width=2'`` -> ``('mypkg.models:net', {'width': 2})``.
    """
    head, sep, rest = spec.partition(":")
    function, sep2, options = rest.partition(":")
    if sep and function and "=" not in function:
        name, _ = parse_spec(f"{head}:")
        _, parsed = parse_spec(f"x:{options}") if sep2 else (None, {})
        return f"{name}:{function.strip()}", parsed
    return parse_spec(spec)


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
