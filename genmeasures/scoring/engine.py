"""Shared pieces of scoring: devices, state dicts, label checks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from genmeasures.data.evalset import EvaluationSet
from genmeasures.errors import DataError, OptionError, describe_failure
from genmeasures.measures import MeasureSpec


def state_of(obj: nn.Module | Mapping[str, torch.Tensor] | None, what: str) -> dict | None:
    """A detached state dict from a module or a mapping (None passes through)."""
    if obj is None:
        return None
    if isinstance(obj, nn.Module):
        return {name: t.detach() for name, t in obj.state_dict().items()}
    if isinstance(obj, Mapping):
        bad = [name for name, t in obj.items() if not isinstance(t, torch.Tensor)]
        if bad:
            raise OptionError(f"{what}: entry {bad[0]!r} is not a tensor")
        return {name: t.detach() for name, t in obj.items()}
    raise OptionError(f"{what} must be an nn.Module or a state dict, got {type(obj).__name__}")


def uses_model(requests: Iterable[tuple[MeasureSpec, Any]]) -> bool:
    return any(spec.needs & {"model", "data", "curvature"} for spec, _ in requests)


def uses_data(requests: Iterable[tuple[MeasureSpec, Any]]) -> bool:
    return any("data" in spec.needs for spec, _ in requests)


def check_labels(model: nn.Module, data: EvaluationSet, device: torch.device) -> None:
    """Raise DataError if the data does not fit the model: inputs the model cannot take (the
    number of channels or features its first layer expects, named on both sides), or a label
    outside its output classes 0..K-1."""
    inputs, _ = next(data.batches(device))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _first_layer_check(model, data.description):
            num_classes = model(inputs[:1]).shape[-1]
    except DataError:
        raise
    except Exception as exc:  # RuntimeError from torch: a size or dtype that does not fit
        shape = "x".join(str(d) for d in inputs.shape[1:])
        raise DataError(
            f"{data.description}: the model cannot take its inputs of shape {shape} "
            f"({describe_failure(exc)})"
        ) from None
    finally:
        model.train(was_training)
    targets = data.targets()
    if targets.is_floating_point():
        return  # regression targets: nothing to check
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"{data.description}: label {bad} is outside the model's {num_classes} classes "
            f"(0..{num_classes - 1})"
        )


_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@contextmanager
def _first_layer_check(model: nn.Module, description: str) -> Iterator[None]:
    """While active, the first convolution or linear layer the forward pass reaches checks
    that its input has the channels (features) it expects, and raises a DataError naming both
    sides if not (torch's own message names neither the data nor the fix)."""
    seen = False

    def check(module: nn.Module, args: tuple) -> None:
        nonlocal seen
        if seen or not args or not isinstance(args[0], torch.Tensor):
            return
        seen = True
        x = args[0]
        if isinstance(module, _CONVOLUTIONS) and x.ndim >= 2 and x.shape[1] != module.in_channels:
            have, want = int(x.shape[1]), module.in_channels
            hint = ""
            if have == 1 and want == 3:
                hint = (
                    "; use 3-channel data (an image folder without grayscale=true) or a "
                    "model built for 1 channel (--model NAME:in_channels=1)"
                )
            raise DataError(
                f"{description}: data has {have} channel(s), the model expects {want} "
                f"(its first layer is a {type(module).__name__} with in_channels={want}){hint}"
            )
        if isinstance(module, nn.Linear) and x.shape[-1] != module.in_features:
            raise DataError(
                f"{description}: data has {int(x.shape[-1])} features per sample (inputs of "
                f"shape {'x'.join(str(d) for d in x.shape[1:])}), the model's first layer "
                f"expects {module.in_features}"
            )

    handles = [
        module.register_forward_pre_hook(check)
        for module in model.modules()
        if isinstance(module, (*_CONVOLUTIONS, nn.Linear))
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
