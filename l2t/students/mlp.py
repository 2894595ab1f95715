"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math

from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}


@STUDENTS.register("mlp")
def mlp(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    widths: tuple[int, ...] | list[int] = (64,),
    activation: str = "relu",
    batchnorm: bool = False,
) -> nn.Module:
    """``in -> widths[0] -> ... -> num_classes``; the default is the digits demo's 64-64-10, ``widths=(500,)`` MNIST's 784-500-10.

    ``activation`` in relu | tanh | gelu | softplus (smooth ones avoid kinks in finite-difference
    checks); ``batchnorm`` puts a BatchNorm1d before each hidden activation.
    """
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
    return nn.Sequential(*layers)
