"""LeNet-5 (LeCun et al. 1998) for 28x28 (padded) or 32x32 images: 61,706 parameters on MNIST."""

from __future__ import annotations

from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS, image_task
from l2t.types import Task


@STUDENTS.register("lenet")
def lenet(*, task: Task) -> nn.Module:
    """LeNet-5: conv5(6) - pool - conv5(16) - pool - fc120 - fc84 - fc(classes), ReLU, max pooling."""
    input_shape, num_classes = image_task(task, "lenet").input_shape, task.num_classes
    if input_shape[1:] not in ((28, 28), (32, 32)):
        raise L2TError(f"lenet expects inputs of shape (C, 28, 28) or (C, 32, 32), got {input_shape}")
    pad = 2 if input_shape[1] == 28 else 0
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),  # (6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # (16, 5, 5)
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )
