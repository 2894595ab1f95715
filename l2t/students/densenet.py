"""DenseNet-BC (Huang et al., CVPR 2017) for 32x32 images: depth L, growth rate k, three dense
blocks of (L − 4)/6 bottleneck layers (BN-ReLU-conv1x1 to 4k channels, BN-ReLU-conv3x3 to k),
transitions compressing channels by 0.5 (BN-ReLU-conv1x1, 2x2 average pooling). The paper's
DenseNet-BC (L = 190, k = 40) has 25,624,430 parameters for 10 classes; the small DenseNet-BC
(L = 100, k = 12) 769,162."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS, ConvClassifier, image_task
from l2t.types import Task


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        return torch.cat([x, y], dim=1)  # (B, c_in + growth, H, W)


class Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetBC(ConvClassifier):
    def __init__(self, depth: int, growth: int, num_classes: int, in_channels: int = 3, compression: float = 0.5) -> None:
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise L2TError(f"DenseNet-BC depth must be 6n + 4 with n >= 1 (40, 100, 190, ...), got {depth}")
        n = (depth - 4) // 6
        c = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, 1, 1, bias=False)]
        for block in range(3):
            for _ in range(n):
                layers.append(Bottleneck(c, growth))
                c += growth
            if block < 2:
                c_out = int(c * compression)
                layers.append(Transition(c, c_out))
                c = c_out
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(F.relu(self.bn(self.features(x))))


@STUDENTS.register("densenet_bc")
def densenet_bc(*, task: Task, depth: int = 100, growth: int = 12) -> nn.Module:
    """DenseNet-BC of depth 6n + 4 and growth rate k (Huang et al. 2017)."""
    return DenseNetBC(depth, growth, task.num_classes, image_task(task, "densenet_bc").input_shape[0])


@STUDENTS.register("densenet_bc_100_12")
def densenet_bc_100_12(*, task: Task) -> nn.Module:
    """DenseNet-BC (L = 100, k = 12), 769,162 parameters (10 classes)."""
    return densenet_bc(task=task, depth=100, growth=12)


@STUDENTS.register("densenet_bc_190_40")
def densenet_bc_190_40(*, task: Task) -> nn.Module:
    """DenseNet-BC (L = 190, k = 40), the paper's, 25,624,430 parameters (10 classes)."""
    return densenet_bc(task=task, depth=190, growth=40)
