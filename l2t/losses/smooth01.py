"""Smooth 0-1 loss (Nguyen & Sanner, ICML 2013), multi-class form of L2T-DLF section 4.1."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth01(logits: torch.Tensor, targets: torch.Tensor, coeffs: None = None, *, K: float = 50.0) -> torch.Tensor:
    """``-log σ(K (log p(y|x) - max_{y*≠y} log p(y*|x)))``, per example.

    The log-probability margin equals the logit margin ``z_y - max_{j≠y} z_j``, and
    ``-log σ(a) = softplus(-a)`` is the numerically stable form. As ``K -> ∞`` the loss becomes
    the 0-1 error.
    """
    z_y = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, targets.unsqueeze(-1), float("-inf"))
    margin = z_y - others.amax(dim=-1)
    return F.softplus(-K * margin)
