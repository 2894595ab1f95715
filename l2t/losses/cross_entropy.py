"""Cross entropy ``-log p(y|x)``, per example (or per token)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, coeffs: None = None) -> torch.Tensor:
    """``logits (..., C)``, integer ``targets (...)`` -> ``(...)``; ``coeffs`` is ignored."""
    logp = F.log_softmax(logits, dim=-1)
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
