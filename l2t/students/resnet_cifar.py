"""CIFAR ResNets of He et al. (CVPR 2016, section 4.2): depth 6n + 2, three stages of n basic
blocks with 16, 32, 64 channels, identity shortcuts with zero-padded channels when the shape
changes ("option A", parameter-free). For 10 classes ResNet-8, -20 and -32 have 75,290, 269,722
and 464,154 parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS, ConvClassifier, image_task
from l2t.types import Task


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:  # option A: zero channels for the new width
            shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + shortcut)


class ResNetCifar(ConvClassifier):
    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise L2TError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(BasicBlock(c, width, stride if i == 0 else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        return self.classify(self.blocks(x))  # blocks: (B, 64, H/4, W/4)


@STUDENTS.register("resnet")
def resnet(*, task: Task, depth: int = 20) -> nn.Module:
    """CIFAR ResNet of any depth 6n + 2 (He et al. 2016, option-A shortcuts)."""
    return ResNetCifar(depth, task.num_classes, image_task(task, "resnet").input_shape[0])


@STUDENTS.register("resnet8")
def resnet8(*, task: Task) -> nn.Module:
    """ResNet-8 for CIFAR, 75,290 parameters (10 classes)."""
    return resnet(task=task, depth=8)


@STUDENTS.register("resnet20")
def resnet20(*, task: Task) -> nn.Module:
    """ResNet-20 for CIFAR, 269,722 parameters (10 classes)."""
    return resnet(task=task, depth=20)


@STUDENTS.register("resnet32")
def resnet32(*, task: Task) -> nn.Module:
    """ResNet-32 for CIFAR, 464,154 parameters (10 classes)."""
    return resnet(task=task, depth=32)
