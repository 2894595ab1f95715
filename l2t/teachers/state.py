"""The student's state features ``s_t`` that every teacher reads (docs/method.md §4), built in one place.

A registered builder (:data:`STATE_FEATURES`) states its dimension and turns what it observed of
the training batches, plus one pass over the dev split, into ``s_t``:

* ``classification`` (the paper's, the default for classification): ``3 + C`` numbers in [0, 1]:
  ``t / T``; the training accuracy of the mini-batches seen since the previous refresh (free: the
  forward pass computes them anyway); the dev accuracy; the dev precision of each class (of the
  dev positions predicted as ``c``, the fraction that are ``c``; 0 when none is).
* ``generic`` (task-agnostic, the default for sequences; 8 numbers whatever the number of
  classes, for vocabularies of thousands): ``t / T``; the training cross entropy and accuracy
  since the previous refresh; the dev cross entropy and accuracy; the change of the training
  cross entropy, the dev cross entropy and the dev accuracy since the previous refresh (0 at the
  first). Cross entropies are divided by ``log C`` (1 for a uniform prediction) and capped at 4.

Every count is over real positions only (a batch's mask): padding never changes a feature.

**How often.** The state is refreshed at the first step of every *phase* of ``every`` steps, and
the teacher's output is held for the whole phase. The dev features cost a forward pass over the
dev set, so refreshing at every step would cost more than the training itself; the paper's
teacher also sets one loss per *phase* of training (Fig. 1, Fig. 4 shows epochs 20/40/60).

The features are read from detached outputs: every hypergradient method holds them constant (a
stop-gradient on the state). Accuracies are piecewise constant in the student's weights (they
jump when an argmax flips), so for them this is exact almost everywhere; cross entropies are
continuous, and with ``generic`` features the hypergradient is that of the objective with the
state held at its observed values (what ``l2t check-grad`` compares with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import torch
from l2t.losses import cross_entropy, masked_sum
from l2t.registry import Registry
from l2t.types import Batch, Params

STATE_FEATURES: Registry[type] = Registry("state features")

#: the builder a task uses unless the config names one (``teacher.features``)
DEFAULT_FEATURES = {"classification": "classification", "seq2seq": "generic", "segmentation": "classification",
                    "detection": "classification"}

CE_CAP = 4.0


@dataclass(frozen=True)
class DevStats:
    """One pass over the dev split: predicted and true classes at the real positions ``(N,)``,
    and the mean cross entropy there (when asked for)."""

    pred: torch.Tensor
    target: torch.Tensor
    ce: Optional[float] = None

    @staticmethod
    def collect(pairs: Iterable[tuple[torch.Tensor, Batch]], with_ce: bool) -> "DevStats":
        """From ``(logits, batch)`` pairs (logits detached, ``(..., C)``)."""
        preds, targets, ce, count = [], [], 0.0, 0
        for out, b in pairs:
            preds.append(b.real(out.argmax(-1)))
            targets.append(b.real(b.targets))
            if with_ce:
                ce += float(masked_sum(cross_entropy(out, b.targets), b.mask))
                count += b.count()
        return DevStats(torch.cat(preds), torch.cat(targets), ce / max(count, 1) if with_ce else None)


@torch.no_grad()
def dev_stats(student, params: Params, buffers: Params, batches: Iterable[Batch], with_ce: bool = False) -> DevStats:
    """Eval-mode predictions of a student on ``batches``."""
    return DevStats.collect(((student.apply(params, buffers, b.inputs, "eval")[0], b) for b in batches), with_ce)


@dataclass(frozen=True)
class StateSpec:
    """How a student's state is built: the builder ``features``, the classes per position, the run's
    length ``total_steps`` (for ``t / T``), the refresh interval and the dev split in batches."""

    num_classes: int
    total_steps: int
    every: int
    dev: tuple[Batch, ...]
    features: str = "classification"

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"Invalid state refresh interval: {self.every}")
        STATE_FEATURES.get(self.features)  # an unknown name lists the known ones

    @property
    def dim(self) -> int:
        return STATE_FEATURES.get(self.features).dim(self.num_classes)

    def tracker(self) -> "StateTracker":
        return STATE_FEATURES.get(self.features)(self)


class StateTracker:
    """Accumulates what a builder needs from the training batches between refreshes and builds
    ``s_t`` at each refresh. Subclasses: ``dim``, ``observe``, ``features``."""

    needs_dev_ce = False
    continuous = False  # piecewise constant in the weights (accuracies, precisions)

    def __init__(self, spec: StateSpec) -> None:
        self.spec = spec
        self.reset()

    @staticmethod
    def dim(num_classes: int) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        self._correct, self._seen, self._ce = 0.0, 0, 0.0

    def is_refresh(self, step: int) -> bool:
        return step % self.spec.every == 0

    @torch.no_grad()
    def observe(self, outputs: torch.Tensor, batch: Batch) -> None:
        """A training batch's detached logits ``(..., C)``."""
        hits = batch.real(outputs.argmax(-1) == batch.targets)
        self._correct += float(hits.sum())
        self._seen += hits.numel()

    def train_accuracy(self) -> float:
        return self._correct / self._seen if self._seen else 0.0

    def dev(self, student, params: Params, buffers: Params) -> DevStats:
        return dev_stats(student, params, buffers, self.spec.dev, self.needs_dev_ce)

    def features(self, step: int, dev: DevStats, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError


@STATE_FEATURES.register("classification")
class ClassificationState(StateTracker):
    """``3 + C`` features: t/T, training accuracy, dev accuracy, dev precision of each class."""

    @staticmethod
    def dim(num_classes: int) -> int:
        return 3 + num_classes

    @torch.no_grad()
    def features(self, step: int, dev: DevStats, dtype: torch.dtype) -> torch.Tensor:
        """``s_t``; resets the training-accuracy window."""
        spec = self.spec
        correct = dev.pred == dev.target
        counts = torch.bincount(dev.pred, minlength=spec.num_classes).to(dtype)
        hits = torch.bincount(dev.pred[correct], minlength=spec.num_classes).to(dtype)
        precision = torch.where(counts > 0, hits / counts.clamp_min(1), torch.zeros_like(counts))
        train_acc = self.train_accuracy()
        self.reset()
        head = torch.tensor(
            [step / spec.total_steps, train_acc, correct.to(dtype).mean().item()],
            dtype=dtype, device=precision.device,
        )
        return torch.cat([head, precision])


def _capped(x: float) -> float:
    """A normalised cross entropy in [0, CE_CAP]; a non-finite one (a diverged student) is the cap."""
    return min(x, CE_CAP) if math.isfinite(x) else CE_CAP


@STATE_FEATURES.register("generic")
class GenericState(StateTracker):
    """8 task-agnostic features: t/T, training and dev cross entropy and accuracy, and the change
    of three of them since the previous refresh."""

    needs_dev_ce = True
    continuous = True  # cross entropies move with every change of the weights

    def __init__(self, spec: StateSpec) -> None:
        super().__init__(spec)
        self._previous: tuple[float, float, float] | None = None

    @staticmethod
    def dim(num_classes: int) -> int:
        return 8

    @torch.no_grad()
    def observe(self, outputs: torch.Tensor, batch: Batch) -> None:
        super().observe(outputs, batch)
        self._ce += float(masked_sum(cross_entropy(outputs, batch.targets), batch.mask))

    @torch.no_grad()
    def features(self, step: int, dev: DevStats, dtype: torch.dtype) -> torch.Tensor:
        scale = math.log(self.spec.num_classes)
        train_ce = _capped(self._ce / self._seen / scale) if self._seen else 0.0
        train_acc = self.train_accuracy()
        dev_ce = _capped(dev.ce / scale)
        dev_acc = float((dev.pred == dev.target).to(dtype).mean())
        prev = self._previous or (train_ce, dev_ce, dev_acc)
        self._previous = (train_ce, dev_ce, dev_acc)
        self.reset()
        values = [step / self.spec.total_steps, train_ce, train_acc, dev_ce, dev_acc,
                  train_ce - prev[0], dev_ce - prev[1], dev_acc - prev[2]]
        return torch.tensor(values, dtype=dtype, device=dev.pred.device)
