"""A functional view on an ``nn.Module`` student.

The module only defines the architecture. Training works on explicit ``params`` / ``buffers``
dicts through :func:`torch.func.functional_call`, so the unrolled inner loop can hold many
versions of the weights at once and differentiate through them; the module's own parameters are
never written to.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from l2t.errors import L2TError
from l2t.registry import Registry

Params = dict[str, torch.Tensor]

STUDENTS: Registry[nn.Module] = Registry("student")


class Student:
    """``init(seed) -> (params, buffers)``; ``apply(params, buffers, x, train) -> (outputs, buffers)``."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name, self.module = name, module

    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def init(self, seed: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[Params, Params]:
        """Fresh random weights, a pure function of ``seed`` (drawn on the CPU, then moved).

        The draws happen on a copy: the module itself is never written to."""
        module = copy.deepcopy(self.module)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in module.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        params = {k: v.detach().to(device=device, dtype=dtype) for k, v in module.named_parameters()}
        buffers = {
            k: v.detach().to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
            for k, v in module.named_buffers()
        }
        return params, buffers

    def apply(self, params: Params, buffers: Params, x: torch.Tensor, train: bool = True) -> tuple[torch.Tensor, Params]:
        """Forward pass. In train mode BatchNorm uses batch statistics and the returned buffers hold
        the updated running statistics (the input ``buffers`` are left untouched)."""
        if buffers:
            buffers = {k: v.clone() for k, v in buffers.items()}
        self.module.train(train)
        out = functional_call(self.module, (params, buffers), (x,))
        return out, buffers


def create_student(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> Student:
    """Build a registered student for inputs of ``input_shape`` (without the batch axis)."""
    factory: Callable[..., nn.Module] = STUDENTS.get(name)
    try:
        module = factory(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise L2TError(f"bad options for student {name!r}: {e}") from None
    return Student(name, module)
