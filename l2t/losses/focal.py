"""Focal loss (Lin et al. 2017), per position: ``−(1 − p_y)^γ log p_y``, the classification loss
single-stage detectors use against the many easy background cells."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal(logits: torch.Tensor, targets: torch.Tensor, coeffs: None = None, *, gamma: float = 2.0) -> torch.Tensor:
    """``logits (..., C)``, ``targets (...)`` -> ``(...)``; ``gamma = 0`` is cross entropy."""
    if gamma < 0:
        raise ValueError(f"focal loss needs gamma >= 0, got {gamma}")
    logp_y = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    # 1 − p_y, kept above 0 so that (1 − p_y)^γ has a finite derivative for 0 < γ < 1
    return -((-torch.expm1(logp_y)).clamp_min(1e-12) ** gamma) * logp_y
