"""Dense-prediction students: a U-Net for segmentation and a single-stage grid detector.

Both return **channels-last** logits, ``(B, H, W, C)`` per pixel or ``(B, Gh, Gw, 1 + K)`` per grid
cell, so that every loss, the teacher's coefficients, the state features and the dev objective
treat a pixel or a cell exactly as a token of a sentence: one position with one class.

The detector (anchor-free, in the manner of CenterNet and FCOS): a convolutional backbone down to
the task's stride, then two heads: class logits per cell (0 = background) and, asked with
``forward(x, aux=True)``, the box ``(dx, dy, log w/stride, log h/stride)`` per cell
(l2t.data.dense). The teacher sets the loss of the class logits; the box term is fixed
(:func:`l2t.losses.box_regression`).

Options for finite-difference checks: ``activation="tanh"`` and ``pool="avg"`` remove the kinks
of ReLU and the ties of max pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS, he_init
from l2t.types import DetectionTask, SegmentationTask, Task

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def _task(task: Task, cls, name: str):
    if not isinstance(task, cls):
        raise L2TError(f"{name} is a {cls.kind} student; the data set poses a {task.kind} task")
    return task


def conv_block(c_in: int, c_out: int, activation: str, norm: str, stride: int = 1) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    if norm not in ("batch", "none"):
        raise ValueError(f"unknown norm {norm!r}; known: batch, none")
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm == "none")]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Ronneberger et al. 2015, small: per level two 3×3 convolutions (``widths`` channels), 2×
    pooling down, transposed-convolution up, skip connections by concatenation, a 1×1 head."""

    def __init__(self, task: Task, widths: tuple[int, ...] = (16, 32, 64), activation: str = "relu", norm: str = "batch",
                 pool: str = "max") -> None:
        super().__init__()
        task = _task(task, SegmentationTask, "unet")
        c, h, w = task.input_shape
        widths = tuple(widths)
        if h % 2 ** (len(widths) - 1) or w % 2 ** (len(widths) - 1):
            raise ValueError(f"images {h}x{w} are not divisible by 2^{len(widths) - 1} for {len(widths)} levels")
        if pool not in ("max", "avg"):
            raise ValueError(f"unknown pool {pool!r}; known: max, avg")
        block = lambda a, b: nn.Sequential(conv_block(a, b, activation, norm), conv_block(b, b, activation, norm))  # noqa: E731
        self.down = nn.ModuleList(block(a, b) for a, b in zip((c,) + widths[:-1], widths))
        self.pool = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.merge = nn.ModuleList(block(2 * a, a) for a in widths[:-1])
        self.head = nn.Conv2d(widths[0], task.num_classes, 1)

    def reset_parameters(self) -> None:
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x).permute(0, 2, 3, 1)  # (B, H, W, classes)


class GridDetector(nn.Module):
    """A backbone of 3×3 convolutions, one stride-2 convolution per halving down to the task's
    stride (``widths``: channels per resolution), then a class head and a box head per cell."""

    def __init__(self, task: Task, widths: tuple[int, ...] = (16, 32, 64), activation: str = "relu", norm: str = "batch") -> None:
        super().__init__()
        task = _task(task, DetectionTask, "detector")
        halvings = task.stride.bit_length() - 1
        if task.stride != 2 ** halvings or len(widths) != halvings + 1:
            raise ValueError(f"stride {task.stride} needs {halvings + 1} widths (one per resolution), got {len(widths)}")
        layers = [conv_block(task.input_shape[0], widths[0], activation, norm)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [conv_block(a, b, activation, norm, stride=2), conv_block(b, b, activation, norm)]
        self.backbone = nn.Sequential(*layers)
        top = widths[-1]
        self.cls_head = nn.Sequential(conv_block(top, top, activation, "none"), nn.Conv2d(top, task.num_classes, 1))
        self.box_head = nn.Sequential(conv_block(top, top, activation, "none"), nn.Conv2d(top, 4, 1))

    def reset_parameters(self) -> None:
        he_init(self)
        for head in (self.cls_head, self.box_head):
            nn.init.normal_(head[-1].weight, std=0.01)
            nn.init.zeros_(head[-1].bias)

    def forward(self, x: torch.Tensor, aux: bool = False):
        f = self.backbone(x)
        logits = self.cls_head(f).permute(0, 2, 3, 1)  # (B, Gh, Gw, 1 + K)
        if not aux:
            return logits
        return logits, self.box_head(f).permute(0, 2, 3, 1)  # (B, Gh, Gw, 4)


STUDENTS.register("unet", doc="U-Net for segmentation (widths, activation, norm, pool)", task="segmentation")(UNet)
STUDENTS.register("detector", doc="single-stage grid detector: class and box per cell (widths, activation, norm)",
                  task="detection")(GridDetector)
