"""Large-margin softmax (L-Softmax; Liu, Wen, Yu & Yang, ICML 2016).

The target logit ``W_y·x = ‖W_y‖‖x‖cos θ`` is replaced by ``‖W_y‖‖x‖ψ(θ)`` with

    ψ(θ) = (−1)^k cos(mθ) − 2k,   θ ∈ [kπ/m, (k+1)π/m],  k = 0 … m−1,

which asks for an angular margin m between the features and their class. Training starts
near the plain softmax and anneals towards the margin through λ:

    f_y = (λ‖W_y‖‖x‖cos θ + ‖W_y‖‖x‖ψ(θ)) / (1 + λ),   λ_t = max(λ_min, base·(1 + γt)^(−power)),

the schedule of the authors' implementation. λ_t is the loss's coefficient at step t
(:class:`LambdaSchedule` supplies it the way a teacher supplies ``Φ_t``). The paper's classifier
has no bias; a bias, where the student has one, is added to every logit unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from l2t.types import HeadOutputs


def _cos_m_theta(c: torch.Tensor, m: int) -> torch.Tensor:
    """cos(mθ) from c = cos θ (Chebyshev recursion T_m)."""
    t_prev, t = torch.ones_like(c), c
    if m == 0:
        return t_prev
    for _ in range(m - 1):
        t_prev, t = t, 2 * c * t - t_prev
    return t


def large_margin(outputs: HeadOutputs, targets: torch.Tensor, coeffs: torch.Tensor, *, m: int = 2) -> torch.Tensor:
    """Per-example L-Softmax loss; ``coeffs`` is λ (a scalar tensor)."""
    x, W = outputs.features, outputs.weight  # (B, D), (C, D)
    logits = x @ W.t()  # (B, C), bias-free
    w_norm = W.norm(dim=1)[targets]  # (B,)
    x_norm = x.norm(dim=1).clamp_min(1e-12)
    target = logits.gather(1, targets[:, None]).squeeze(1)
    cos = (target / (w_norm * x_norm).clamp_min(1e-12)).clamp(-1.0, 1.0)
    k = sum((cos <= math.cos(j * math.pi / m)).to(cos.dtype) for j in range(1, m))
    psi = (1 - 2 * torch.remainder(k, 2)) * _cos_m_theta(cos, m) - 2 * k
    lam = coeffs
    new_target = (lam * target + w_norm * x_norm * psi) / (1 + lam)
    logits = logits.scatter(1, targets[:, None], new_target[:, None])
    if outputs.bias is not None:
        logits = logits + outputs.bias
    return F.cross_entropy(logits, targets, reduction="none")


large_margin.needs_features = True  # the inner loop passes HeadOutputs


@dataclass(frozen=True)
class LambdaSchedule:
    """``coeffs_fn`` giving λ_t = max(λ_min, base·(1 + γt)^(−power)) as a scalar tensor."""

    base: float = 1000.0
    gamma: float = 0.12
    power: float = 1.0
    minimum: float = 0.0

    def value(self, step: int) -> float:
        return max(self.minimum, self.base * (1 + self.gamma * step) ** (-self.power))

    def __call__(self, step, outputs, batch, params, buffers) -> torch.Tensor:
        return torch.tensor(self.value(step), dtype=outputs.dtype, device=outputs.device)
