"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math

from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS
from l2t.types import ClassificationTask, Task

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}


@STUDENTS.register("mlp")
def mlp(
    *,
    task: Task,
    widths: tuple[int, ...] | list[int] = (64,),
    activation: str = "relu",
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> nn.Module:
    """Multi-layer perceptron ``in -> widths[0] -> ... -> classes`` (default 64-64-10 on digits).

    ``widths=(500,)`` is MNIST's 784-500-10. ``activation`` in relu | tanh | gelu | softplus
    (smooth ones avoid kinks in finite-difference checks); ``batchnorm`` puts a BatchNorm1d before
    each hidden activation; ``dropout`` after it.
    """
    if not isinstance(task, ClassificationTask):
        raise L2TError(f"mlp is a classifier; the data set poses a {task.kind} task")
    input_shape, num_classes = task.input_shape, task.num_classes
    if not 0.0 <= dropout < 1.0:
        raise L2TError(f"mlp dropout must be in [0, 1), got {dropout}")
    widths = tuple(int(w) for w in widths)
    if any(w <= 0 for w in widths):
        raise L2TError(f"mlp widths must be positive, got {widths}")
    if activation not in ACTIVATIONS:
        raise L2TError(f"unknown mlp activation {activation!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    sizes = (math.prod(input_shape), *widths, num_classes)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
