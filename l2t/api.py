"""Using a trained teacher inside your own PyTorch training loop.

    from l2t import TeacherLoss

    criterion = TeacherLoss.load("runs/demo/teach/teacher.safetensors", x_dev, y_dev, total_steps=len(loader) * epochs)
    for step, (x, y) in enumerate(batches):
        logits = model(x)
        loss = criterion(logits, y, step=step, model=model)
        optimizer.zero_grad(); loss.backward(); optimizer.step()

The criterion keeps the student's state features up to date: it counts training accuracy on the
batches it sees, and every ``state_every`` steps (the teacher's own setting unless overridden)
it evaluates ``model`` on the dev set (in eval mode, without gradients, restoring the mode
after), asks the teacher for new coefficients and holds them until the next refresh.

Dense prediction works the same way: ``model`` returns channels-last logits ``(B, H, W, C)``,
``y_dev`` is ``(N, H, W)`` (``ignore_index`` marks pixels that count nowhere) and the criterion
takes the batch's ``mask`` (True at real pixels).
"""

from __future__ import annotations

import logging

from pathlib import Path
from typing import Any

import torch
from torch import nn

from l2t.data.examples import TensorExamples
from l2t.errors import L2TError
from l2t.losses import create_loss, reduce_loss
from l2t.teachers import DevStats, LoadedTeacher, StateSpec, call_teacher, load_teacher
from l2t.types import Batch


log = logging.getLogger(__name__)


class TeacherLoss:
    """``criterion(logits, targets, step=..., model=...) -> scalar loss`` from a frozen teacher."""

    def __init__(
        self,
        teacher: LoadedTeacher,
        x_dev: torch.Tensor,
        y_dev: torch.Tensor,
        total_steps: int,
        *,
        state_every: int | None = None,
        eval_batch: int = 1024,
        ignore_index: int | None = None,
    ) -> None:
        num_classes = int(teacher.teacher.config()["num_classes"])
        teacher.check_fits(num_classes)
        every = teacher.state_every if state_every is None else state_every
        self.teacher, self.params = teacher.teacher, teacher.params
        self.loss = create_loss(teacher.meta["loss"], **teacher.meta["loss_kwargs"])
        dev = tuple(TensorExamples(x_dev, y_dev.long(), ignore_index=ignore_index).chunks(eval_batch))
        self.tracker = StateSpec(num_classes, total_steps, every, dev, teacher.features).tracker()
        self.ignore_index = ignore_index
        self.memory: Any = teacher.memory  # the teacher's memory (None for a teacher without)
        self.coeffs: Any = None  # the loss coefficients in force (Φ_t)
        self._warned = False

    @classmethod
    def load(cls, path: str | Path, x_dev: torch.Tensor, y_dev: torch.Tensor, total_steps: int, **kw) -> "TeacherLoss":
        """Load a teacher checkpoint (or run folder) onto ``x_dev``'s device and dtype."""
        return cls(load_teacher(path, x_dev.device, x_dev.dtype), x_dev, y_dev, total_steps, **kw)

    @torch.no_grad()
    def _dev_stats(self, model: nn.Module) -> DevStats:
        was_training = model.training
        model.eval()
        try:
            return DevStats.collect(((model(b.inputs), b) for b in self.tracker.spec.dev), self.tracker.needs_dev_ce)
        finally:
            model.train(was_training)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, *, step: int, model: nn.Module,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """The mean loss over the real positions of ``logits (..., C)`` (``mask`` like ``targets``,
        True at real positions; ``None``: all, or those whose label is not ``ignore_index``)."""
        spec = self.tracker.spec
        if logits.shape[-1] != spec.num_classes:
            raise L2TError(f"TeacherLoss: the teacher sets a loss over {spec.num_classes} classes, the logits have "
                           f"{logits.shape[-1]}")
        if logits.shape[:-1] != targets.shape or targets.is_floating_point():
            raise L2TError(f"TeacherLoss: targets must be integer classes of shape {tuple(logits.shape[:-1])}, got "
                           f"{targets.dtype} {tuple(targets.shape)}")
        if step >= spec.total_steps and not self._warned:
            self._warned = True
            log.warning("TeacherLoss: step %d is past total_steps = %d: the teacher's t/T feature leaves the range "
                        "it was trained on", step, spec.total_steps)
        if mask is None and self.ignore_index is not None:
            mask = targets != self.ignore_index
        if mask is not None:
            if mask.shape != targets.shape:
                raise L2TError(f"TeacherLoss: mask of shape {tuple(mask.shape)} for targets {tuple(targets.shape)}")
            targets = torch.where(mask, targets, torch.zeros_like(targets))  # an ignored label never indexes a loss
        self.tracker.observe(logits.detach(), Batch(None, targets, mask))
        if self.coeffs is None or self.tracker.is_refresh(step):
            features = self.tracker.features(step, self._dev_stats(model), logits.dtype)
            with torch.no_grad():
                self.coeffs, self.memory = call_teacher(self.teacher, self.params, features, self.memory)
        return reduce_loss(self.loss(logits, targets, self.coeffs), mask)
