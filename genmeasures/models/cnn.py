"""A small convolutional network (``cnn``) for 8x8 digits images and larger (e.g. 32x32) inputs.

Module names: ``features.{i}.conv`` (3x3 conv, padding 1), ``features.{i}.bn`` (optional
BatchNorm2d), ``features.{i}.relu``, then ``pool`` (adaptive average pool to 1x1), ``flatten``,
``dropout`` and the classification head ``head`` (the last Linear).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from genmeasures.errors import ModelError
from genmeasures.models.architecture import Architecture

#: Head ``head``; blocks: ``features.0``, ``features.1``, ... where there are two or more
#: convolution blocks, else ``features`` as one block.
CNN_ARCHITECTURE = Architecture(head="head")


class SmallCNN(nn.Module):
    """``depth`` blocks of conv3x3 -> [BatchNorm] -> ReLU at constant ``width``, then a Linear head.

    Convolutions keep the spatial size (stride 1, padding 1), so any input of at least 1x1 works;
    the adaptive average pool makes the head independent of the input size.
    """

    architecture = CNN_ARCHITECTURE
    head_name = CNN_ARCHITECTURE.head

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 16,
        depth: int = 2,
        batchnorm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if min(int(in_channels), int(num_classes), int(width), int(depth)) < 1:
            raise ModelError(
                f"cnn: in_channels, num_classes, width and depth must be >= 1, got "
                f"in_channels={in_channels}, num_classes={num_classes}, width={width}, "
                f"depth={depth}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ModelError(f"cnn: dropout must be in [0, 1), got {dropout}")
        self.num_classes = int(num_classes)
        blocks: list[nn.Module] = []
        channels = int(in_channels)
        for _ in range(int(depth)):
            block: OrderedDict[str, nn.Module] = OrderedDict()
            block["conv"] = nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=not batchnorm)
            if batchnorm:
                block["bn"] = nn.BatchNorm2d(width)
            block["relu"] = nn.ReLU()
            blocks.append(nn.Sequential(block))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(width, self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool(self.features(x)))
        return self.head(self.dropout(x))


def cnn(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    width: int = 16,
    depth: int = 2,
    batchnorm: bool = True,
    dropout: float = 0.0,
) -> SmallCNN:
    """Factory for :class:`SmallCNN`."""
    return SmallCNN(
        in_channels=in_channels,
        num_classes=num_classes,
        width=width,
        depth=depth,
        batchnorm=batchnorm,
        dropout=dropout,
    )
