"""Relaxed dev measures (SPEC §2): what the teacher is trained to improve.

Each objective maps ``(outputs, targets)`` on the dev set to a scalar *outer loss* to minimise.
``expected_accuracy`` is the paper's relaxation of 0-1 accuracy, ``m̃ = p_ω(y|x)``, negated;
``ce`` (dev cross entropy) is a smoother alternative.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from l2t.registry import Registry

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OBJECTIVES: Registry[Objective] = Registry("dev objective")


def expected_accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean ``p(y|x)`` (higher is better)."""
    return F.softmax(outputs, dim=-1).gather(-1, targets.unsqueeze(-1)).mean()


OBJECTIVES.register("expected_accuracy")(lambda: lambda o, y: -expected_accuracy(o, y))
OBJECTIVES.register("ce")(lambda: lambda o, y: F.cross_entropy(o, y))


def create_objective(name: str) -> Objective:
    return OBJECTIVES.create(name)
