"""The student's state features ``s_t`` that every teacher reads (SPEC §4), built in one place.

For ``C`` classes, ``s_t`` has ``3 + C`` numbers, all in [0, 1]:

1. ``t / T``: the training step, relative to the run's length;
2. training accuracy: the fraction of correctly classified examples in the mini-batches seen since
   the previous refresh, the current one included (free: the forward pass computes them anyway);
3. dev accuracy of the current weights;
4. dev precision of each class: of the dev examples predicted as class ``c``, the fraction that
   are ``c`` (0 when none is predicted as ``c``).

**How often.** The state is refreshed at the first step of every *phase* of ``every`` steps, and
the teacher's output ``Φ`` is held for the whole phase. The dev features cost a forward pass over
the dev set, so refreshing at every step would cost more than the training itself; the paper's
teacher also sets one loss per *phase* of training (Fig. 1, Fig. 4 shows epochs 20/40/60).

Accuracies are piecewise constant in the student's weights (they jump when an argmax flips), so
their derivative is zero almost everywhere: the features are constants to every hypergradient
method, and the hypergradient is exact for the function the teacher really optimises.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from l2t.students.base import Params, Student


@dataclass(frozen=True)
class StateSpec:
    """How the state of a classification student is built."""

    num_classes: int
    total_steps: int
    every: int
    x_dev: torch.Tensor
    y_dev: torch.Tensor
    eval_batch: int = 1024

    @property
    def dim(self) -> int:
        return 3 + self.num_classes

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"Invalid state refresh interval: {self.every}")


@torch.no_grad()
def predict(student: Student, params: Params, buffers: Params, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Predicted classes for ``x`` in eval mode, in chunks of ``batch``."""
    out = [student.apply(params, buffers, x[i : i + batch], train=False)[0].argmax(-1) for i in range(0, len(x), batch)]
    return torch.cat(out)


class StateTracker:
    """Accumulates training accuracy between refreshes and builds ``s_t`` at each refresh."""

    def __init__(self, spec: StateSpec) -> None:
        self.spec = spec
        self.reset()

    def reset(self) -> None:
        self._correct = 0.0
        self._seen = 0

    def is_refresh(self, step: int) -> bool:
        return step % self.spec.every == 0

    @torch.no_grad()
    def observe(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self._correct += float((outputs.argmax(-1) == targets).sum())
        self._seen += targets.numel()

    @torch.no_grad()
    def features(self, step: int, dev_pred: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``s_t`` from the predicted classes of the dev set ``dev_pred (N_dev,)``; resets the
        training-accuracy window."""
        spec = self.spec
        correct = dev_pred == spec.y_dev
        pred = dev_pred
        counts = torch.bincount(pred, minlength=spec.num_classes).to(dtype)
        hits = torch.bincount(pred[correct], minlength=spec.num_classes).to(dtype)
        precision = torch.where(counts > 0, hits / counts.clamp_min(1), torch.zeros_like(counts))
        train_acc = self._correct / self._seen if self._seen else 0.0
        self.reset()
        head = torch.tensor(
            [step / spec.total_steps, train_acc, correct.to(dtype).mean().item()],
            dtype=dtype, device=precision.device,
        )
        return torch.cat([head, precision])
