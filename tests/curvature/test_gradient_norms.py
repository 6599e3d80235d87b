"""Exact Gauss-Newton block traces from layer inputs and output gradients (gradient_norms).

Every case is a tiny float64 model; the reference is Tr of each block of G = (1/m) sum_j
J_j^T Lambda_j J_j built from torch.func's full Jacobian (tests/curvature/oracle.py), and the
blocks the rules cover are asserted, so that a rule that silently stops applying fails too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from genmeasures.curvature import FunctionalModel
from genmeasures.curvature.ggn import ggn_block_traces
from genmeasures.curvature.gradient_norms import (
    CoverageLost,
    covered_blocks,
    rule_for,
    signed_norm_sums,
)
from genmeasures.measures import cross_entropy_per_sample
from tests.curvature.oracle import Oracle, split


def _with_statistics(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


class ConvNet(nn.Module):
    """Strided, dilated, padded and 'same' convolutions, BatchNorm with an in-place ReLU."""

    def __init__(self, same_kernel: int = 3) -> None:
        super().__init__()
        self.conv_strided = nn.Conv2d(2, 3, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(3)
        self.conv_dilated = nn.Conv2d(3, 3, 2, dilation=2, bias=False)
        self.conv_same = nn.Conv2d(3, 2, same_kernel, padding="same")
        self.head = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x):
        x = torch.relu_(self.norm(self.conv_strided(x)))  # in place on the norm's output
        x = torch.tanh(self.conv_dilated(x))
        x = self.conv_same(x)
        return self.head(x.flatten(1))


class SequenceNet(nn.Module):
    """Conv1d over a sequence, LayerNorm, a Linear on every token, a head on the mean token."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.norm = nn.LayerNorm(4)
        self.norm_without_bias = nn.LayerNorm(4, bias=False)
        self.mix = nn.Linear(4, 16)  # 6 tokens, 4 -> 16: the gradients themselves
        self.wide = nn.Linear(16, 16)  # 6 tokens, 16 -> 16: the Gram form is cheaper
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        tokens = self.conv(x).transpose(1, 2)  # (N, 6, 4)
        tokens = self.norm_without_bias(torch.nn.functional.gelu(self.norm(tokens)))
        tokens = self.wide(torch.sin(self.mix(tokens)))
        return self.head(tokens.mean(dim=1))


class Doubled(nn.Linear):
    def forward(self, x):  # a subclass with its own forward: no rule applies
        return 2 * super().forward(x)


class Quiet(nn.Linear):
    """A subclass keeping Linear's forward (as nn.MultiheadAttention's out_proj): covered."""


class SharedAndRepeated(nn.Module):
    """A layer applied twice, weights tied between two layers, a BatchNorm1d, subclasses."""

    def __init__(self) -> None:
        super().__init__()
        self.twice = nn.Linear(4, 4)
        self.tied_a = nn.Linear(4, 4, bias=False)
        self.tied_b = nn.Linear(4, 4, bias=False)
        self.tied_b.weight = self.tied_a.weight
        self.norm = nn.BatchNorm1d(4)
        self.doubled = Doubled(4, 4)
        self.quiet = Quiet(4, 3)

    def forward(self, x):
        x = torch.tanh(self.twice(torch.tanh(self.twice(x))))
        x = self.tied_b(torch.tanh(self.tied_a(x)))
        return self.quiet(torch.tanh(self.doubled(self.norm(x))))


CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], set[str]]] = {
    # name: (model, input shape, the parameters a rule covers before the pass)
    "conv": (
        ConvNet,
        (2, 10, 10),
        {
            "conv_strided.weight",
            "conv_strided.bias",
            "norm.weight",
            "norm.bias",
            "conv_dilated.weight",
            "conv_same.weight",
            "conv_same.bias",
            "head.weight",
            "head.bias",
        },
    ),
    # 'same' padding of an even kernel pads one side more: not an unfold, the vmapped pass.
    "conv_asymmetric_same": (
        lambda: ConvNet(same_kernel=2),
        (2, 10, 10),
        {
            "conv_strided.weight",
            "conv_strided.bias",
            "norm.weight",
            "norm.bias",
            "conv_dilated.weight",
            "head.weight",
            "head.bias",
        },
    ),
    "sequence": (
        SequenceNet,
        (2, 6),
        {
            "conv.weight",
            "conv.bias",
            "norm.weight",
            "norm.bias",
            "norm_without_bias.weight",
            "mix.weight",
            "mix.bias",
            "wide.weight",
            "wide.bias",
            "head.weight",
            "head.bias",
        },
    ),
    # Tied weights are refused beforehand; the layer applied twice is found out on the pass.
    "shared": (
        SharedAndRepeated,
        (4,),
        {"twice.weight", "twice.bias", "norm.weight", "norm.bias", "quiet.weight", "quiet.bias"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_block_traces_match_the_exact_gauss_newton_matrix(case: str) -> None:
    make, shape, expected_covered = CASES[case]
    torch.manual_seed(0)
    model = _with_statistics(make().double()).eval()
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(7, *shape, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (7,), generator=generator)
    names = [n for n, _ in model.named_parameters()]
    fmodel = FunctionalModel.create(model, names, cross_entropy_per_sample)
    assert {names[i] for i in covered_blocks(fmodel)} == expected_covered
    traces, spent = ggn_block_traces(fmodel, split(inputs, targets, 3))
    oracle = Oracle(model, names, inputs, targets)
    ggn = oracle.ggn()
    expected = [float(oracle.block(ggn, i).trace()) for i in range(len(names))]
    assert traces == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert spent == 3 * len(targets)


def test_a_layer_that_runs_twice_is_found_out_on_the_pass() -> None:
    model = SharedAndRepeated().double().eval()
    names = [n for n, _ in model.named_parameters()]
    fmodel = FunctionalModel.create(model, names, cross_entropy_per_sample)
    covered = covered_blocks(fmodel)
    inputs = torch.randn(3, 4, dtype=torch.float64)
    factor = torch.randn(3, 3, 3, dtype=torch.float64)
    with pytest.raises(CoverageLost) as lost:
        signed_norm_sums(fmodel, covered, inputs, factor, torch.ones(3, 3))
    assert lost.value.paths == ("twice",)


def test_batchnorm_in_training_mode_is_not_covered() -> None:
    norm = nn.BatchNorm2d(3).eval()
    assert rule_for(norm) is not None
    assert rule_for(norm.train()) is None
    assert rule_for(Doubled(2, 2)) is None and rule_for(Quiet(2, 2)) is not None
    assert rule_for(nn.Conv2d(2, 2, 3, groups=2)) is None
    assert rule_for(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")) is None
