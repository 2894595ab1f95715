"""Measuring a student on a split given as batches: error and expected accuracy over the real
positions (examples, or tokens that are not padding)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import math

import torch
import torch.nn.functional as F

from l2t.objectives import expected_accuracy
from l2t.types import Batch, Params


@dataclass(frozen=True)
class Evaluation:
    error: float  # fraction of real positions misclassified; a non-finite output counts as wrong
    expected_accuracy: float  # mean p(y|x) over real positions (the paper's relaxed accuracy)
    ce: float  # mean cross entropy over real positions (inf where an output is not finite)
    count: int


@torch.no_grad()
def evaluate(student, params: Params, buffers: Params, batches: Iterable[Batch]) -> Evaluation:
    """Eval-mode forward passes over ``batches``."""
    wrong, measure, ce, count = 0.0, 0.0, 0.0, 0
    for b in batches:
        out, _ = student.apply(params, buffers, b.inputs, "eval")
        finite = torch.isfinite(out).all(dim=-1)
        right = (out.argmax(-1) == b.targets) & finite
        p = torch.where(finite, expected_accuracy(out, b.targets), torch.zeros_like(finite, dtype=out.dtype))
        nll = F.cross_entropy(out.reshape(-1, out.shape[-1]), b.targets.reshape(-1), reduction="none").view(b.targets.shape)
        nll = torch.where(finite, nll, torch.full_like(nll, math.inf))
        n = b.count()
        wrong += n - float(b.real(right).sum())
        measure += float(b.real(p).sum())
        ce += float(b.real(nll).double().sum())
        count += n
    n = max(count, 1)
    return Evaluation(wrong / n, measure / n, ce / n, count)
