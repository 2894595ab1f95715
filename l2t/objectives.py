"""Relaxed dev measures (docs/method.md §2): what the teacher is trained to improve.

An objective maps ``(outputs (..., C), targets (...), mask)`` to one *outer loss* value per
position (example, token), to minimise; :meth:`l2t.inner.InnerProblem.outer_loss` averages it over the real
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


def expected_ngrams(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None, n: int = 4) -> torch.Tensor:
    """A smooth stand-in for BLEU from teacher-forced probabilities, per position: the mean over
    ``k = 1 … n`` of the probability that the k-gram of the reference starting there is produced,
    ``Π_{i<k} p(y_{r+i} | x, y_{<r+i})`` (0 where it runs past the sentence). For one class per
    example it is the expected accuracy."""
    p = expected_accuracy(outputs, targets)  # (B,) or (B, T)
    if p.dim() < 2:
        return p
    if mask is not None:
        p = torch.where(mask, p, torch.zeros_like(p))
    total, prod = p, p
    for k in range(2, n + 1):
        prod = prod[:, :-1] * p[:, k - 1 :]  # (B, T - k + 1): the k-grams
        total = total + F.pad(prod, (0, k - 1))
    return total / n


@OBJECTIVES.register("expected_accuracy")
def _negated_expected_accuracy() -> Objective:
    """−p(y|x): the paper's relaxed accuracy (per token: expected token accuracy)."""
    return lambda o, y, mask=None: -expected_accuracy(o, y)


@OBJECTIVES.register("ce")
def _dev_cross_entropy() -> Objective:
    """Dev cross entropy −log p(y|x)."""
    return lambda o, y, mask=None: F.cross_entropy(o.reshape(-1, o.shape[-1]), y.reshape(-1), reduction="none").view(y.shape)


def balanced_ce(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross entropy per position, weighted so that the background (class 0) and the objects
    (every other class) each make half of the batch's mean: for detection and segmentation, where
    background cells or pixels are most of the positions and plain dev cross entropy is mostly
    theirs. A batch without one of the two weights the other as plain cross entropy."""
    ce = F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), reduction="none").view(targets.shape)
    real = torch.ones_like(targets, dtype=torch.bool) if mask is None else mask.bool()
    fg, bg = real & (targets > 0), real & (targets == 0)
    n, n_fg, n_bg = real.sum(), fg.sum(), bg.sum()
    if n_fg == 0 or n_bg == 0:
        return ce
    weight = torch.where(fg, n / (2 * n_fg), n / (2 * n_bg)).to(ce.dtype)
    return weight * ce


@OBJECTIVES.register("balanced_ce")
def _balanced_ce() -> Objective:
    """Dev cross entropy with background and objects weighted half each (dense tasks)."""
    return balanced_ce


@OBJECTIVES.register("expected_ngrams")
def _negated_expected_ngrams() -> Objective:
    """−expected 1- to 4-gram matches under teacher forcing: a smooth stand-in for BLEU."""
    return lambda o, y, mask=None: -expected_ngrams(o, y, mask)


def create_objective(name: str) -> Objective:
    return OBJECTIVES.create(name)
