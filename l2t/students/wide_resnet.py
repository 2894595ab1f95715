"""Wide residual networks (Zagoruyko & Komodakis, BMVC 2016): depth 6n + 4, widen factor k,
pre-activation basic blocks (BN-ReLU-conv3x3) with 16k, 32k, 64k channels, 1x1 convolution
shortcuts where the shape changes, optional dropout between the two convolutions. WRN-28-10 has
36,479,194 parameters for 10 classes, WRN-16-4 2,748,890."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS, ConvClassifier, image_task
from l2t.types import Task


ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


class WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, activation: str = "relu") -> None:
        super().__init__()
        self.act = ACTIVATIONS[activation]
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if (c_in == c_out and stride == 1) else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act(self.bn1(x))
        y = self.conv1(o)
        y = self.act(self.bn2(y))
        if self.dropout:
            y = F.dropout(y, self.dropout, self.training)
        y = self.conv2(y)
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(ConvClassifier):
    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3, dropout: float = 0.0,
                 activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise L2TError(f"unknown WRN activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.act = ACTIVATIONS[activation]
        if (depth - 4) % 6 or depth < 10:
            raise L2TError(f"WRN depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        if widen < 1:
            raise L2TError(f"WRN widen factor must be >= 1, got {widen}")
        n = (depth - 4) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks, c = [], 16
        for width, stride in ((16 * widen, 1), (32 * widen, 2), (64 * widen, 2)):
            for i in range(n):
                blocks.append(WideBlock(c, width, stride if i == 0 else 1, dropout, activation))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.act(self.bn(self.blocks(self.conv(x)))))


@STUDENTS.register("wrn")
def wrn(*, task: Task, depth: int = 16, widen: int = 4, dropout: float = 0.0, activation: str = "relu") -> nn.Module:
    """Wide ResNet of depth 6n + 4 and widen factor k, optional dropout (Zagoruyko & Komodakis 2016).

    ``activation`` relu (the paper's) | gelu | tanh: smooth ones avoid kinks in finite-difference checks."""
    return WideResNet(depth, widen, task.num_classes, image_task(task, "wrn").input_shape[0], dropout, activation)


@STUDENTS.register("wrn16_4")
def wrn16_4(*, task: Task) -> nn.Module:
    """WRN-16-4, 2,748,890 parameters (10 classes)."""
    return wrn(task=task, depth=16, widen=4)


@STUDENTS.register("wrn28_10")
def wrn28_10(*, task: Task) -> nn.Module:
    """WRN-28-10, 36,479,194 parameters (10 classes)."""
    return wrn(task=task, depth=28, widen=10)
