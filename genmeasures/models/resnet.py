"""ResNet-18/34/50/101 with torchvision's architecture, initialization and state-dict names.

The module tree matches ``torchvision.models.resnet`` exactly (``conv1``, ``bn1``, ``relu``,
``maxpool``, ``layer1`` ... ``layer4`` made of ``BasicBlock`` / ``Bottleneck`` blocks with
``conv1``/``bn1``/``conv2``/``bn2``[/``conv3``/``bn3``] and ``downsample.0``/``downsample.1``,
``avgpool``, ``fc``), so torchvision weight files load with ``strict=True``. Bottlenecks put the
stride on the 3x3 convolution (ResNet v1.5), as torchvision does; ``zero_init_residual`` is off.

Two extensions keep those names: ``width_multiplier`` scales the base width 64 of every stage
(``1.0`` gives torchvision's shapes) and ``small_input=True`` swaps the 7x7/stride-2 stem for a
3x3/stride-1 ``conv1`` and drops the max-pool (``maxpool`` becomes an ``nn.Identity``), for
8x8 or 32x32 images. A third, ``activation`` (default ``relu``), swaps every ReLU for another
activation of :data:`~genmeasures.models.activations.ACTIVATIONS` (e.g. ``gelu``: a smooth
network for claims about smooth losses); the modules keep the name ``relu`` and hold no
weights, so state dicts are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genmeasures.errors import ModelError
from genmeasures.models.activations import activation_class
from genmeasures.models.architecture import Architecture

_STAGES = ("layer1", "layer2", "layer3", "layer4")


def resnet_blocks(model: nn.Module) -> list[tuple[str, ...]]:
    """The stem (``conv1``, ``bn1``), then every residual block (``layer1.0``, ``layer1.1``,
    ...) in network order."""
    return [("conv1", "bn1")] + [
        (f"{stage}.{index}",) for stage in _STAGES for index in range(len(getattr(model, stage)))
    ]


def resnet_stage(name: str) -> int:
    """Depth of a parameter for depth-scaled radii, as published: 0 for the stem and stages
    1-2, 1 for stage 3, 2 for stage 4 (and 0 for the head)."""
    for stage, depth in (("layer3", 1), ("layer4", 2)):
        if name.startswith(stage + "."):
            return depth
    return 0


#: Head ``fc``; blocks: the stem, then each residual block; stages: see :func:`resnet_stage`.
RESNET_ARCHITECTURE = Architecture(head="fc", blocks=resnet_blocks, stage=resnet_stage)


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (torchvision's ``BasicBlock``)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = activation()
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 convolutions, expansion 4 (torchvision's ``Bottleneck``)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = activation()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` (groups=1, width_per_group=64, no dilation) with the extensions
    described in the module docstring. The classification head is ``fc``."""

    architecture = RESNET_ARCHITECTURE
    head_name = RESNET_ARCHITECTURE.head

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        width_multiplier: float = 1.0,
        in_channels: int = 3,
        small_input: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        act = activation_class(activation, "resnet")
        if not float(width_multiplier) > 0:
            raise ModelError(f"resnet: width_multiplier must be > 0, got {width_multiplier}")
        if int(num_classes) < 1 or int(in_channels) < 1:
            raise ModelError(
                f"resnet: num_classes and in_channels must be >= 1, got "
                f"num_classes={num_classes}, in_channels={in_channels}"
            )
        self.num_classes = int(num_classes)
        base = max(1, round(64 * float(width_multiplier)))
        self.inplanes = base
        kernel, stride, padding = (3, 1, 1) if small_input else (7, 2, 3)
        self.conv1 = nn.Conv2d(
            in_channels, base, kernel, stride=stride, padding=padding, bias=False
        )
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = act()
        self.maxpool: nn.Module = (
            nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        )
        self.layer1 = self._make_layer(block, base, layers[0], activation=act)
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2, activation=act)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2, activation=act)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2, activation=act)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * block.expansion, self.num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        *,
        activation: type[nn.Module],
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        act = activation
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample, act)]
        self.inplanes = planes * block.expansion
        layers.extend(block(self.inplanes, planes, activation=act) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _resnet(
    block: type[BasicBlock | Bottleneck],
    layers: Sequence[int],
    num_classes: int,
    width_multiplier: float,
    in_channels: int,
    small_input: bool,
    activation: str,
) -> ResNet:
    return ResNet(
        block,
        layers,
        num_classes=num_classes,
        width_multiplier=width_multiplier,
        in_channels=in_channels,
        small_input=small_input,
        activation=activation,
    )


def resnet18(
    *,
    num_classes: int = 1000,
    width_multiplier: float = 1.0,
    in_channels: int = 3,
    small_input: bool = False,
    activation: str = "relu",
) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); 11,689,512 parameters at the defaults."""
    return _resnet(
        BasicBlock,
        (2, 2, 2, 2),
        num_classes,
        width_multiplier,
        in_channels,
        small_input,
        activation,
    )


def resnet34(
    *,
    num_classes: int = 1000,
    width_multiplier: float = 1.0,
    in_channels: int = 3,
    small_input: bool = False,
    activation: str = "relu",
) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]); 21,797,672 parameters at the defaults."""
    return _resnet(
        BasicBlock,
        (3, 4, 6, 3),
        num_classes,
        width_multiplier,
        in_channels,
        small_input,
        activation,
    )


def resnet50(
    *,
    num_classes: int = 1000,
    width_multiplier: float = 1.0,
    in_channels: int = 3,
    small_input: bool = False,
    activation: str = "relu",
) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]); 25,557,032 parameters at the defaults."""
    return _resnet(
        Bottleneck,
        (3, 4, 6, 3),
        num_classes,
        width_multiplier,
        in_channels,
        small_input,
        activation,
    )


def resnet101(
    *,
    num_classes: int = 1000,
    width_multiplier: float = 1.0,
    in_channels: int = 3,
    small_input: bool = False,
    activation: str = "relu",
) -> ResNet:
    """ResNet-101 (Bottleneck, [3, 4, 23, 3]); 44,549,160 parameters at the defaults."""
    return _resnet(
        Bottleneck,
        (3, 4, 23, 3),
        num_classes,
        width_multiplier,
        in_channels,
        small_input,
        activation,
    )
