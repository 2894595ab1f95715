"""What every teacher is: ``teacher(features, memory) -> (coeffs, memory)``.

A teacher is an ``nn.Module`` that defines the architecture; its weights travel as an explicit
``teacher_params`` dict (``torch.func.functional_call``), like the student's. ``memory`` is the
state a teacher carries from one phase of student training to the next (``None`` for a teacher
without memory, e.g. the attention teacher; an LSTM state for the L2T-DLN teacher).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from l2t.registry import Registry

TEACHERS: Registry[nn.Module] = Registry("teacher")


class Teacher(nn.Module):
    """Base class. Subclasses define ``forward(features, memory) -> (coeffs, memory)``."""

    #: name of the learned loss (in :data:`l2t.losses.LOSSES`) whose coefficients this teacher sets
    loss_name: str = "bilinear"
    #: whether it reads the student's state features; a teacher that does not (its coefficients
    #: depend on ``t/T`` at most) spares the dev pass of every refresh
    reads_state: bool = True

    def init_memory(self) -> Any:
        """The memory at the very start of teaching: ``None``, or a pytree of tensors."""
        return None

    def loss_kwargs(self) -> dict:
        """Keyword arguments of the learned loss that belong with this teacher (e.g. its scale)."""
        return {}

    def config(self) -> dict:
        """Constructor keyword arguments; with the registered name they rebuild the architecture."""
        raise NotImplementedError

    def project(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``params`` moved into the teacher's feasible set (``teach`` applies it after every
        optimizer step: projected gradient descent). Unconstrained by default."""
        return params


def teacher_params(teacher: nn.Module, dtype: torch.dtype | None = None, device=None) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(device=device, dtype=dtype).clone() for k, v in teacher.named_parameters()}


def call_teacher(teacher: nn.Module, params: dict[str, torch.Tensor], features: torch.Tensor, memory: Any):
    return functional_call(teacher, params, (features, memory))
