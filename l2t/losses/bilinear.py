"""The learned bilinear loss of L2T-DLF (section 4.1, Fig. 2a): ``-σ(y⃗ᵀ Φ log p)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bilinear(logits: torch.Tensor, targets: torch.Tensor, coeffs: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """``-scale · σ(Φ[y] · log p)``, per example.

    ``logits (..., C)``, ``targets (...)``, ``coeffs`` = ``Φ (C, C)`` set by the teacher. With
    ``Φ = I`` and no sigmoid this is cross entropy. Near ``Φ = c·I`` with small ``c``,
    ``σ(c·z) ≈ 1/2 + c·z/4``, so ``scale = 4/c`` gives the gradient of cross entropy
    (SPEC §8); a teacher initialised there starts at the standard loss.
    """
    logp = F.log_softmax(logits, dim=-1)  # (..., C)
    z = (coeffs[targets] * logp).sum(dim=-1)  # row y of Φ times log p -> (...)
    return -scale * torch.sigmoid(z)
