"""The learned bilinear loss of L2T-DLF (section 4.1, Fig. 2a): ``-σ(y⃗ᵀ Φ log p)``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def factored_logit(logp: torch.Tensor, targets: torch.Tensor, coeffs: dict) -> torch.Tensor:
    """``y⃗ᵀ Φ log p`` for a factored ``Φ = diag(d) + u·11ᵀ + U Wᵀ`` without forming the ``C × C``
    matrix: ``d[y] log p_y + u Σ_j log p_j + U[y]·(Wᵀ log p)``, O(C·k) per position.

    ``coeffs``: ``diag`` (a scalar or ``(C,)``), optionally ``uniform`` (a scalar, or ``(C,)``: one
    value per row ``y``) and ``U``, ``W``
    (``(C, k)`` each). For a vocabulary of thousands this is the form a teacher sets (the
    schedule teacher's ``Φ = c·g·((1 − ε)·I + ε/C)`` is ``diag = c·g·(1 − ε)``,
    ``uniform = c·g·ε/C``); docs/method.md §5."""
    lp_y = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (...)
    d = coeffs["diag"]
    z = (d[targets] if d.dim() else d) * lp_y
    if "uniform" in coeffs:
        u = coeffs["uniform"]
        z = z + (u[targets] if u.dim() else u) * logp.sum(-1)
    if "U" in coeffs:
        z = z + (coeffs["U"][targets] * (logp @ coeffs["W"])).sum(-1)
    return z


def bilinear(
    logits: torch.Tensor, targets: torch.Tensor, coeffs, *, scale: float = 1.0, eps: float = 0.0
) -> torch.Tensor:
    """``-scale · σ(Φ[y] · log p)``, per example.

    ``logits (..., C)``, ``targets (...)``, ``coeffs`` = ``Φ (C, C)`` set by the teacher, or a
    factored ``Φ`` as a dict (:func:`factored_logit`). With
    ``Φ = I`` and no sigmoid this is cross entropy. Near ``Φ = c·I`` with small ``c``,
    ``σ(c·z) ≈ 1/2 + c·z/4``, so ``scale = 4/c`` gives the gradient of cross entropy
    (docs/method.md §8); a teacher initialised there starts at the standard loss.

    ``eps > 0`` (not in the paper) reads the off-diagonal terms as ``Φ(y, j) · log(p_j + eps)``.
    In the paper's form the derivative of ``Φ(y, j) log p_j`` in the logit ``j`` is
    ``Φ(y, j)(1 - p_j)``: it never vanishes, so a negative ``Φ(y, j)`` pushes the wrong logits
    down without end and the logits grow through the whole run (README, "What the teacher's
    hypergradient does"). With ``eps`` that force fades once ``p_j ≪ eps``. The target term stays
    ``Φ(y, y) log p_y``, so ``Φ = c·I`` is still cross entropy.
    """
    logp = F.log_softmax(logits, dim=-1)  # (..., C)
    if isinstance(coeffs, dict):
        if eps > 0:
            raise ValueError("off_diagonal_eps needs a full Φ, not a factored one")
        return -scale * torch.sigmoid(factored_logit(logp, targets, coeffs))
    if eps > 0:
        bounded = torch.logaddexp(logp, torch.full_like(logp, math.log(eps)))  # log(p + eps)
        is_target = F.one_hot(targets, logp.shape[-1]).bool()
        logp = torch.where(is_target, logp, bounded)
    z = (coeffs[targets] * logp).sum(dim=-1)  # row y of Φ times log p -> (...)
    return -scale * torch.sigmoid(z)
