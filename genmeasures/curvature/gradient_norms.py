"""Per-sample squared gradient norms from each layer's input and output gradient.

For a layer y_p = W a_p + b applied at positions p (a token; a pixel of a convolution, whose
input is then unfolded into patches a_p), the gradient of a sample's scalar s in W is

    G = sum_p g_p a_p^T,   g_p = ds/dy_p,

so ||G||^2 needs only the layer's input and the gradient at its output. One batched backward
pass gives g for every sample at once, and no per-sample gradient of any parameter is formed
beyond the one being measured: the trick behind BackPACK's ``BatchL2Grad`` and exact
``DiagGGN`` (Dangel, Kunstner & Hennig, ICLR 2020). Per layer the cheaper of two evaluations is
taken: G itself (about O D P multiply-adds, O outputs, D inputs) or the Gram form
sum_{p,q} (g_p . g_q)(a_p . a_q) (about P^2 (O + D)), which wins for few positions.

Rules are registered per module class (BackPACK's class -> extension registry) and apply only
to a module whose ``forward`` is the registered class's own, whose configuration the rule
knows (a convolution with zero padding and one group; normalization in eval mode with running
statistics), and which runs exactly once per forward pass (checked on every pass). Other
blocks are left to the caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmeasures.curvature.functional import FunctionalModel


class NormRule(ABC):
    """How to get per-sample squared gradient norms of one module class's parameters."""

    def applies(self, module: nn.Module) -> bool:
        """Whether the rule computes this module's gradients exactly (its configuration)."""
        return True

    @abstractmethod
    def features(self, module: nn.Module, layer_input: torch.Tensor) -> Any:
        """What the norms need from the layer's input, taken when the module runs."""

    @abstractmethod
    def squared_norms(
        self, module: nn.Module, features: Any, grad_output: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """||dL_n/dparam||^2 for every sample n, shape (N,), keyed by parameter attribute."""


NORM_RULES: dict[type[nn.Module], NormRule] = {}


def register_norm_rule(*classes: type[nn.Module]) -> Callable[[type[NormRule]], type[NormRule]]:
    def decorate(rule: type[NormRule]) -> type[NormRule]:
        for cls in classes:
            NORM_RULES[cls] = rule()
        return rule

    return decorate


def rule_for(module: nn.Module) -> NormRule | None:
    """The registered rule for ``module``: its class or a base whose ``forward`` it keeps."""
    for cls in type(module).__mro__:
        rule = NORM_RULES.get(cls)
        if rule is not None:
            same_function = type(module).forward is cls.forward  # type: ignore[attr-defined]
            return rule if same_function and rule.applies(module) else None
    return None


# Layers y_p = W a_p + b ------------------------------------------------------------------


@dataclass(frozen=True)
class _Patches:
    """A layer's inputs as (N, P, D) patches, with their Gram matrices when those are cheaper."""

    patches: torch.Tensor
    gram: torch.Tensor | None


def _patches(patches: torch.Tensor, outputs: int) -> _Patches:
    positions, inputs = patches.shape[1], patches.shape[2]
    use_gram = positions > 1 and positions * (outputs + inputs) < outputs * inputs
    gram = patches @ patches.transpose(1, 2) if use_gram else None
    return _Patches(patches, gram)


def _outer_sum_norms(features: _Patches, grads: torch.Tensor) -> torch.Tensor:
    """||sum_p g_p a_p^T||_F^2 per sample; ``grads`` (N, P, O)."""
    a = features.patches
    if a.shape[1] == 1:
        return grads.pow(2).sum(dim=(1, 2)) * a.pow(2).sum(dim=(1, 2))
    if features.gram is not None:
        return (features.gram * (grads @ grads.transpose(1, 2))).sum(dim=(1, 2))
    return torch.einsum("npo,npd->nod", grads, a).pow(2).sum(dim=(1, 2))


def _affine_norms(module: nn.Module, features: _Patches, grads: torch.Tensor) -> dict:
    out = {"weight": _outer_sum_norms(features, grads)}
    if getattr(module, "bias", None) is not None:
        out["bias"] = grads.sum(dim=1).pow(2).sum(dim=1)
    return out


@register_norm_rule(nn.Linear)
class LinearRule(NormRule):
    def features(self, module, layer_input):
        rows = layer_input.reshape(layer_input.shape[0], -1, layer_input.shape[-1])
        return _patches(rows, module.out_features)

    def squared_norms(self, module, features, grad_output):
        grads = grad_output.reshape(grad_output.shape[0], -1, grad_output.shape[-1])
        return _affine_norms(module, features, grads)


def _symmetric_padding(module: nn.modules.conv._ConvNd) -> tuple[int, ...] | None:
    """The convolution's padding per side, or None when it is not the same on both sides."""
    padding = module.padding
    if padding == "valid":
        return (0,) * len(module.kernel_size)
    if padding == "same":
        totals = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size, strict=True)]
        return None if any(t % 2 for t in totals) else tuple(t // 2 for t in totals)
    assert not isinstance(padding, str), padding  # torch accepts only "valid" and "same"
    return tuple(padding)


@register_norm_rule(nn.Conv1d, nn.Conv2d)
class ConvolutionRule(NormRule):
    """Conv1d and Conv2d with one group and zero padding (Conv1d as a Conv2d of height 1)."""

    def applies(self, module):
        return (
            module.groups == 1
            and module.padding_mode == "zeros"
            and _symmetric_padding(module) is not None
        )

    def features(self, module, layer_input):
        padding = _symmetric_padding(module)
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
        if isinstance(module, nn.Conv1d):
            layer_input = layer_input[:, :, None, :]
            kernel, dilation, stride = (1, *kernel), (1, *dilation), (1, *stride)
            padding = (0, *padding)
        columns = F.unfold(layer_input, kernel, dilation=dilation, padding=padding, stride=stride)
        return _patches(columns.transpose(1, 2), module.out_channels)

    def squared_norms(self, module, features, grad_output):
        grads = grad_output.reshape(grad_output.shape[0], grad_output.shape[1], -1)
        return _affine_norms(module, features, grads.transpose(1, 2))


# Normalization layers y = gamma * xhat + beta ----------------------------------------------


def _scale_shift_norms(module: nn.Module, normalized: torch.Tensor, grads: torch.Tensor) -> dict:
    """``normalized`` and ``grads`` as (N, positions, features)."""
    out = {}
    if module.weight is not None:  # type: ignore[attr-defined]
        out["weight"] = (grads * normalized).sum(dim=1).pow(2).sum(dim=1)
    if module.bias is not None:  # type: ignore[attr-defined]
        out["bias"] = grads.sum(dim=1).pow(2).sum(dim=1)
    return out


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (N, positions, C)."""
    return tensor.reshape(tensor.shape[0], tensor.shape[1], -1).transpose(1, 2)


@register_norm_rule(nn.modules.batchnorm._BatchNorm)
class BatchNormRule(NormRule):
    """BatchNorm1d/2d/3d in eval mode with running statistics: an affine map per channel."""

    def applies(self, module):
        return not module.training and module.running_mean is not None

    def features(self, module, layer_input):
        shape = (1, -1) + (1,) * (layer_input.ndim - 2)
        mean = module.running_mean.reshape(shape)
        scale = torch.rsqrt(module.running_var.reshape(shape) + module.eps)
        return _channels_last((layer_input - mean) * scale)

    def squared_norms(self, module, features, grad_output):
        return _scale_shift_norms(module, features, _channels_last(grad_output))


@register_norm_rule(nn.LayerNorm)
class LayerNormRule(NormRule):
    def features(self, module, layer_input):
        normalized = F.layer_norm(layer_input, module.normalized_shape, eps=module.eps)
        return normalized.reshape(layer_input.shape[0], -1, *module.normalized_shape).flatten(2)

    def squared_norms(self, module, features, grad_output):
        grads = grad_output.reshape(features.shape)
        return _scale_shift_norms(module, features, grads)


# The pass --------------------------------------------------------------------------------


@dataclass
class _Hooked:
    module: nn.Module
    rule: NormRule
    blocks: dict[str, int]  # parameter attribute -> block index of the functional model
    calls: int = 0
    features: Any = None
    output: torch.Tensor | None = None


def covered_blocks(fmodel: FunctionalModel) -> dict[int, tuple[str, str]]:
    """Block index -> (module path, attribute) for every block a registered rule covers.

    A parameter shared by two modules (tied weights) is never covered: its gradient is the
    sum of both uses, whose squared norm no single module's quantities give.
    """
    uses: dict[int, int] = {}
    for _, parameter in fmodel.model.named_parameters(remove_duplicate=False):
        uses[id(parameter)] = uses.get(id(parameter), 0) + 1
    covered = {}
    for index, name in enumerate(fmodel.names):
        path, _, attribute = name.rpartition(".")
        module = fmodel.model.get_submodule(path)
        if rule_for(module) is None or attribute not in ("weight", "bias"):
            continue
        if uses.get(id(getattr(module, attribute)), 0) != 1:
            continue
        covered[index] = (path, attribute)
    return covered


class CoverageLost(Exception):
    """A covered module did not run exactly once with one tensor input in this pass."""

    def __init__(self, paths: Sequence[str]):
        super().__init__(", ".join(paths))
        self.paths = tuple(paths)


@dataclass(frozen=True)
class NormSums:
    """The signed sums per covered block (float64 scalars), and the bytes the pass held per
    sample in layer features (for the caller's chunking)."""

    sums: dict[int, torch.Tensor]
    feature_bytes_per_sample: int


def signed_norm_sums(
    fmodel: FunctionalModel,
    covered: dict[int, tuple[str, str]],
    inputs: torch.Tensor,
    cotangents: torch.Tensor,
    signs: torch.Tensor,
) -> NormSums:
    """sum_n sum_k s_nk ||d(r_nk^T f(x_n))/dW_i||^2 for every covered block i (float64).

    ``cotangents`` (N, C, K): column k of sample n is r_nk, ``signs`` (N, K). One forward
    pass records each covered module's input features (and clones its output, so that an
    in-place operation after it cannot alter the tensor differentiated), then one backward
    pass per column k gives the output gradients of every sample at once. Raises
    :class:`CoverageLost` naming the modules that did not run exactly once.
    """
    hooked: dict[str, _Hooked] = {}
    for index, (path, attribute) in covered.items():
        module = fmodel.model.get_submodule(path)
        entry = hooked.setdefault(path, _Hooked(module, rule_for(module), {}))  # type: ignore[arg-type]
        entry.blocks[attribute] = index

    def record(entry: _Hooked):
        def hook(module, args, output):
            entry.calls += 1
            if entry.calls > 1 or len(args) != 1 or not isinstance(output, torch.Tensor):
                return None
            entry.features = entry.rule.features(module, args[0].detach())
            entry.output = output
            return output.clone()

        return hook

    handles = [entry.module.register_forward_hook(record(entry)) for entry in hooked.values()]
    try:
        params = tuple(p.detach().requires_grad_(True) for p in fmodel.params)
        with torch.enable_grad():
            logits = fmodel.outputs(params, inputs)
    finally:
        for handle in handles:
            handle.remove()
    lost = [p for p, e in hooked.items() if e.calls != 1 or e.output is None]
    if lost:
        raise CoverageLost(lost)
    entries = list(hooked.values())
    outputs = [e.output for e in entries if e.output is not None]  # all: none was lost
    sums = {index: torch.zeros((), dtype=torch.float64) for index in covered}
    columns = cotangents.shape[2]
    for k in range(columns):
        grads = torch.autograd.grad(
            logits,
            outputs,
            grad_outputs=cotangents[:, :, k].to(logits.dtype),
            retain_graph=k < columns - 1,
            allow_unused=True,
        )
        weights = signs[:, k].double()
        for entry, grad_output in zip(entries, grads, strict=True):
            if grad_output is None:  # the logits do not depend on this module: zero gradient
                continue
            norms = entry.rule.squared_norms(entry.module, entry.features, grad_output.detach())
            for attribute, index in entry.blocks.items():
                sums[index] += (weights * norms[attribute].double()).sum()
    held = sum(_bytes(e.features) + _bytes(e.output) for e in entries)
    return NormSums(sums, held // max(len(inputs), 1))


def _bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, _Patches):
        return _bytes(value.patches) + _bytes(value.gram)
    return 0
