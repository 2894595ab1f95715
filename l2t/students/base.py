"""A functional view on an ``nn.Module`` student.

The module only defines the architecture. Training works on explicit ``params`` / ``buffers``
dicts through :func:`torch.func.functional_call`, so the unrolled inner loop can hold many
versions of the weights at once and differentiate through them; the module's own parameters are
never written to.
"""

from __future__ import annotations

import copy
from typing import Callable, NamedTuple, Optional

import torch
from torch import nn
from torch.func import functional_call

from l2t.errors import L2TError
from l2t.registry import Registry

Params = dict[str, torch.Tensor]

STUDENTS: Registry[nn.Module] = Registry("student")


class HeadOutputs(NamedTuple):
    """What a loss that works on the classifier's geometry (large-margin softmax) needs: the logits,
    the features entering the final linear layer ``(B, D)``, and that layer's weight ``(C, D)`` and
    bias ``(C,)``."""

    logits: torch.Tensor
    features: torch.Tensor
    weight: torch.Tensor
    bias: Optional[torch.Tensor]


def he_init(module: nn.Module) -> None:
    """He-normal convolution weights (fan out), as the ResNet / WRN / DenseNet papers use."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def check_image(input_shape: tuple[int, ...], name: str) -> None:
    """A convolutional student needs ``(C, H, W)`` inputs."""
    if len(input_shape) != 3:
        raise L2TError(f"{name} expects images (C, H, W), got input shape {input_shape}")


class ConvClassifier(nn.Module):
    """What the CIFAR students (ResNet, WRN, DenseNet-BC) share: He-initialised convolutions, and
    a head that averages the last feature map over space into the final linear layer ``fc``."""

    fc: nn.Linear

    def reset_parameters(self) -> None:
        he_init(self)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` feature map -> ``(B, classes)`` logits."""
        return self.fc(x.mean(dim=(2, 3)))


class Student:
    """``init(seed) -> (params, buffers)``; ``apply(params, buffers, x, train) -> (outputs, buffers)``."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name, self.module = name, module
        heads = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        self.head_name, self.head = heads[-1] if heads else (None, None)  # the final classifier

    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def init(self, seed: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[Params, Params]:
        """Fresh random weights, a pure function of ``seed`` (drawn on the CPU, then moved).

        The draws happen on a copy: the module itself is never written to."""
        module = copy.deepcopy(self.module)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # layers first, in forward order; then networks with an initialisation of their own
            # (He for the convolutions of the CIFAR nets), outermost last, so it wins
            resettable = [m for m in module.modules() if hasattr(m, "reset_parameters")]
            for m in resettable:
                if not any(True for _ in m.children()):
                    m.reset_parameters()
            for m in reversed(resettable):
                if any(True for _ in m.children()):
                    m.reset_parameters()
        params = {k: v.detach().to(device=device, dtype=dtype) for k, v in module.named_parameters()}
        buffers = {
            k: v.detach().to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
            for k, v in module.named_buffers()
        }
        return params, buffers

    def apply(
        self, params: Params, buffers: Params, x: torch.Tensor, train: bool = True, features: bool = False
    ) -> tuple[torch.Tensor | HeadOutputs, Params]:
        """Forward pass. In train mode BatchNorm uses batch statistics and the returned buffers hold
        the updated running statistics (the input ``buffers`` are left untouched). With
        ``features`` the outputs are :class:`HeadOutputs` (logits plus the final layer's input and
        weights)."""
        if buffers:
            buffers = {k: v.clone() for k, v in buffers.items()}
        self.module.train(train)
        if not features:
            return functional_call(self.module, (params, buffers), (x,)), buffers
        if self.head is None:
            raise L2TError(f"student {self.name!r} has no final linear layer to take features from")
        seen: list[torch.Tensor] = []
        hook = self.head.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0]))
        try:
            logits = functional_call(self.module, (params, buffers), (x,))
        finally:
            hook.remove()
        bias = params.get(f"{self.head_name}.bias")
        return HeadOutputs(logits, seen[-1], params[f"{self.head_name}.weight"], bias), buffers


def create_student(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> Student:
    """Build a registered student for inputs of ``input_shape`` (without the batch axis)."""
    factory: Callable[..., nn.Module] = STUDENTS.get(name)
    try:
        module = factory(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise L2TError(f"bad options for student {name!r}: {e}") from None
    return Student(name, module)
