"""A teacher in the student's training loop: one episode of teaching.

At each step the inner loop asks the session for the loss coefficients. At the first step of a
phase the session reads the student's state, runs the teacher (threading its memory) and records
the phase; within a phase it returns the same coefficients.

Recorded phases are what hypergradient methods need: the features are constants, and the
coefficients are recomputed from them with the teacher's weights under autograd
(:func:`replay`) to chain ``d outer / d coeffs`` into ``d outer / d teacher_params``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from l2t.pytree import detach
from l2t.students.base import Student
from l2t.teachers.base import call_teacher
from l2t.teachers.state import StateSpec
from l2t.types import Batch, Params


@dataclass
class Phase:
    """A phase of teaching: its first global step, the state features read there and the
    coefficients (a pytree: one ``Φ``, or several tensors) the teacher set for it."""

    start: int
    features: torch.Tensor
    coeffs: Any


class TeachingSession:
    """``session(step, outputs, batch, params, buffers) -> coeffs``.

    With ``differentiable=True`` the coefficients keep their graph to ``teacher_params`` (used by
    the ``unrolled`` reference method); otherwise they are detached. ``frozen_features`` replays
    the features of an earlier run instead of reading the student (finite-difference checks).
    ``memory`` is the teacher's memory at the start (``None``: ``teacher.init_memory()``);
    :attr:`memory` holds it after the last phase.
    """

    def __init__(
        self,
        teacher: torch.nn.Module,
        teacher_params: dict[str, torch.Tensor],
        spec: StateSpec,
        student: Student,
        *,
        memory: Any = None,
        differentiable: bool = False,
        frozen_features: list[torch.Tensor] | None = None,
    ) -> None:
        self.teacher, self.teacher_params, self.student = teacher, teacher_params, student
        self.tracker = spec.tracker()
        self.memory0 = teacher.init_memory() if memory is None else memory
        self.memory = self.memory0
        self.differentiable = differentiable
        self.frozen_features = frozen_features
        self.phases: list[Phase] = []
        self.phase_of_step: dict[int, int] = {}  # global step -> index into phases

    def __call__(self, step: int, outputs: torch.Tensor, batch: Batch, params: Params, buffers: Params) -> Any:
        self.tracker.observe(outputs, batch)
        if self.tracker.is_refresh(step) or not self.phases:
            if self.frozen_features is not None:
                features = self.frozen_features[len(self.phases)]
            elif not getattr(self.teacher, "reads_state", True):  # only t/T: no dev pass
                first = next(iter(params.values()))
                features = torch.zeros(self.tracker.spec.dim, dtype=first.dtype, device=first.device)
                features[0] = step / self.tracker.spec.total_steps
                self.tracker.reset()
            else:
                dtype = next(iter(params.values())).dtype
                features = self.tracker.features(step, self.tracker.dev(self.student, params, buffers), dtype)
            with torch.set_grad_enabled(self.differentiable):
                coeffs, self.memory = call_teacher(self.teacher, self.teacher_params, features, self.memory)
            if not self.differentiable:
                coeffs, self.memory = detach(coeffs), detach(self.memory)
            self.phases.append(Phase(step, features, coeffs))
        self.phase_of_step[step] = len(self.phases) - 1
        return self.phases[-1].coeffs


def replay(teacher: torch.nn.Module, teacher_params: dict[str, torch.Tensor], features: list[torch.Tensor], memory: Any) -> list[Any]:
    """Recompute each phase's coefficients from recorded features, with autograd to the teacher
    (through its memory, from the memory the episode started with)."""
    out = []
    for f in features:
        coeffs, memory = call_teacher(teacher, teacher_params, f, memory)
        out.append(coeffs)
    return out
