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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from l2t.losses import create_loss, reduce_loss
from l2t.teachers import LoadedTeacher, StateSpec, StateTracker, call_teacher, load_teacher


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
    ) -> None:
        num_classes = int(teacher.teacher.config()["num_classes"])
        every = teacher.state_every if state_every is None else state_every
        self.teacher, self.params = teacher.teacher, teacher.params
        self.loss = create_loss(teacher.meta["loss"], **teacher.meta["loss_kwargs"])
        self.tracker = StateTracker(StateSpec(num_classes, total_steps, every, x_dev, y_dev.long(), eval_batch))
        self.memory: Any = self.teacher.init_memory()
        self.coeffs: torch.Tensor | None = None  # the loss coefficients in force (Φ_t)

    @classmethod
    def load(cls, path: str | Path, x_dev: torch.Tensor, y_dev: torch.Tensor, total_steps: int, **kw) -> "TeacherLoss":
        """Load a teacher checkpoint (or run folder) onto ``x_dev``'s device and dtype."""
        return cls(load_teacher(path, x_dev.device, x_dev.dtype), x_dev, y_dev, total_steps, **kw)

    @torch.no_grad()
    def _dev_predictions(self, model: nn.Module) -> torch.Tensor:
        spec = self.tracker.spec
        was_training = model.training
        model.eval()
        try:
            return torch.cat([model(spec.x_dev[i : i + spec.eval_batch]).argmax(-1) for i in range(0, len(spec.x_dev), spec.eval_batch)])
        finally:
            model.train(was_training)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, *, step: int, model: nn.Module) -> torch.Tensor:
        self.tracker.observe(logits.detach(), targets)
        if self.coeffs is None or self.tracker.is_refresh(step):
            features = self.tracker.features(step, self._dev_predictions(model), logits.dtype)
            with torch.no_grad():
                self.coeffs, self.memory = call_teacher(self.teacher, self.params, features, self.memory)
        return reduce_loss(self.loss(logits, targets, self.coeffs))
