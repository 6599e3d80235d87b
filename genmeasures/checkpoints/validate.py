"""Checks that a checkpoint can be compared with its init: same names, shapes, finite values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from genmeasures.errors import CheckpointError

_MAX_LISTED = 3


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming the first tensor that holds NaN or Inf."""
    for name, tensor in state.items():
        floating = tensor.is_floating_point() or tensor.is_complex()
        if floating and not bool(torch.isfinite(tensor).all()):
            kind = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
            raise CheckpointError(f"{source}: tensor {name!r} contains {kind} values")


def check_matches_init(
    state: Mapping[str, torch.Tensor], init: Mapping[str, torch.Tensor], source: str
) -> None:
    """Raise CheckpointError if parameter names or shapes differ between a checkpoint and init."""
    difference = describe_difference(list(init), list(state), "the init", "the checkpoint")
    if difference:
        raise CheckpointError(f"{source} does not match the init: {difference}")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(init[name].shape):
            raise CheckpointError(
                f"{source} does not match the init: {name!r} has shape {tuple(tensor.shape)}, "
                f"init has {tuple(init[name].shape)}"
            )


def same_layout(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same names with the same shapes."""
    return set(a) == set(b) and all(tuple(a[n].shape) == tuple(b[n].shape) for n in a)


def describe_difference(
    expected: Sequence[str], found: Sequence[str], expected_side: str, found_side: str
) -> str:
    """A short account of how two lists of tensor names differ ('' when they hold the same
    names): how many are missing and unexpected, a few of each, and, when one side's names
    are the other's with a prefix added or removed ('module.' from DataParallel, a wrapper's
    'model.'), that prefix."""
    expected_set, found_set = set(expected), set(found)
    missing = [n for n in expected if n not in found_set]
    unexpected = [n for n in found if n not in expected_set]
    if not missing and not unexpected:
        return ""
    parts = []
    if missing:
        parts.append(f"{found_side} lacks {_listing(missing)}")
    if unexpected:
        parts.append(f"{found_side} has {_listing(unexpected)} that {expected_side} lacks")
    guess = _prefix_guess(missing, unexpected, found_side)
    return "; ".join(parts) + (f" ({guess})" if guess else "")


def _prefix_guess(missing: list[str], unexpected: list[str], found_side: str) -> str:
    if not missing or not unexpected:
        return ""
    prefix = _common_prefix(unexpected)
    if prefix and {n[len(prefix) :] for n in unexpected} >= set(missing):
        return f"{found_side} adds the prefix {prefix!r} to every name"
    prefix = _common_prefix(missing)
    if prefix and {n[len(prefix) :] for n in missing} >= set(unexpected):
        return f"{found_side}'s names lack the prefix {prefix!r}"
    return ""


def _common_prefix(names: list[str]) -> str:
    """The longest common prefix of ``names`` that ends at a dot ('' if none)."""
    first = names[0]
    end = 0
    while end < len(first) and all(len(n) > end and n[end] == first[end] for n in names):
        end += 1
    return first[: first.rfind(".", 0, end) + 1] if "." in first[:end] else ""


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return f"{len(names)} tensor(s): {shown}{more}"
