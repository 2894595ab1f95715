"""A detector's fixed box term: smooth L1 between the predicted and the target box of every
object cell (l2t.data.dense), summed over the four coordinates and averaged over the object cells
of the batch. The teacher never sets it; it is added to the taught classification loss at every
training step (``InnerProblem.fixed_term``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from l2t.types import Batch


def box_regression(boxes: torch.Tensor, batch: Batch, *, weight: float = 1.0, beta: float = 0.1) -> torch.Tensor:
    """``boxes (B, Gh, Gw, 4)`` predicted; ``batch.aux`` the targets, ``batch.targets > 0`` the
    object cells. Background cells are selected away (``where``), never multiplied by zero."""
    objects = batch.targets > 0
    if batch.mask is not None:
        objects = objects & batch.mask
    per_cell = F.smooth_l1_loss(boxes, batch.aux, beta=beta, reduction="none").sum(-1)
    total = torch.where(objects, per_cell, torch.zeros_like(per_cell)).sum()
    return weight * total / objects.sum().clamp_min(1)
