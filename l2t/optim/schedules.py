"""Learning-rate schedules: pure functions ``step -> lr`` (frozen dataclasses, so they can be
saved in a config and replayed exactly on the backward walk)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from l2t.errors import L2TError


@dataclass(frozen=True)
class Constant:
    lr: float

    def __call__(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class StepDecay:
    """``lr · gamma^k`` after the k-th milestone (milestones are step indices)."""

    lr: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** sum(step >= m for m in self.milestones)


@dataclass(frozen=True)
class Cosine:
    """Cosine decay from ``lr`` at step 0 to ``lr · final`` at step ``total``."""

    lr: float
    total: int
    final: float = 0.0

    def __call__(self, step: int) -> float:
        frac = min(step, self.total) / max(self.total, 1)
        return self.lr * (self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * frac)))


@dataclass(frozen=True)
class Warmup:
    """``schedule(step)`` times ``min(1, (step + 1) / steps)``: a linear warm-up (Transformers)."""

    schedule: object
    steps: int

    def __call__(self, step: int) -> float:
        return self.schedule(step) * min(1.0, (step + 1) / self.steps)


def make_schedule(name: str, lr: float, steps: int, milestones: tuple[float, ...] = (0.5, 0.75), gamma: float = 0.1,
                  warmup: int = 0):
    """``name`` in constant | step | cosine; step milestones are fractions of ``steps``; ``warmup``
    steps of linear warm-up in front of any of them."""
    if not lr > 0:
        raise L2TError(f"Invalid learning rate: {lr}")
    if name == "constant":
        schedule = Constant(lr)
    elif name == "step":
        schedule = StepDecay(lr, tuple(int(round(f * steps)) for f in milestones), gamma)
    elif name == "cosine":
        schedule = Cosine(lr, steps)
    else:
        raise L2TError(f"unknown lr schedule {name!r}; known: constant, cosine, step")
    return Warmup(schedule, warmup) if warmup > 0 else schedule
