"""Label smoothing (Szegedy et al., CVPR 2016): cross entropy against ``(1 − ε)·y⃗ + ε/C``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothing(logits: torch.Tensor, targets: torch.Tensor, coeffs: None = None, *, eps: float = 0.1) -> torch.Tensor:
    """Per example (or token): ``−(1 − ε) log p_y − ε · mean_j log p_j``."""
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (1 - eps) * nll - eps * logp.mean(dim=-1)
