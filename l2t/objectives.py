"""Relaxed dev measures (docs/method.md §2): what the teacher is trained to improve.

An objective maps ``(outputs (..., C), targets (...))`` to one *outer loss* value per position
(example, token), to minimise; :meth:`l2t.inner.InnerProblem.outer_loss` averages it over the real
positions of every dev batch. ``expected_accuracy`` is the paper's relaxation of 0-1 accuracy,
``m̃ = p_ω(y|x)``, negated; ``ce`` (dev cross entropy) is a smoother alternative.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from l2t.registry import Registry

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OBJECTIVES: Registry[Objective] = Registry("dev objective")


def expected_accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``p(y|x)`` per position (higher is better)."""
    return F.softmax(outputs, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@OBJECTIVES.register("expected_accuracy")
def _negated_expected_accuracy() -> Objective:
    """−p(y|x): the paper's relaxed accuracy."""
    return lambda o, y: -expected_accuracy(o, y)


@OBJECTIVES.register("ce")
def _dev_cross_entropy() -> Objective:
    """Dev cross entropy −log p(y|x)."""
    return lambda o, y: F.cross_entropy(o.reshape(-1, o.shape[-1]), y.reshape(-1), reduction="none").view(y.shape)


def create_objective(name: str) -> Objective:
    return OBJECTIVES.create(name)
