"""Pure heavy-ball momentum SGD, the student's inner optimizer (docs/method.md §1).

    d_t     = g_t + λ ω_t            (weight decay folded into the gradient)
    v_{t+1} = γ v_t + d_t            (no dampening, v_0 = 0)
    ω_{t+1} = ω_t − η_t v_{t+1}

This is exactly ``torch.optim.SGD(momentum=γ, dampening=0, nesterov=False, weight_decay=λ)``;
a float64 test checks it step by step. ``update`` never writes in place, so every version of the
weights can be kept and differentiated through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class MomentumSGD:
    lr: Callable[[int], float]
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"Invalid momentum: {self.momentum}")
        if self.weight_decay < 0.0:
            raise ValueError(f"Invalid weight decay: {self.weight_decay}")

    def init(self, params: Params) -> Params:
        """The velocity, zero."""
        return {k: torch.zeros_like(v) for k, v in params.items()}

    def direction(self, grads: Params, params: Params) -> Params:
        """``d = g + λ ω``: what the velocity accumulates."""
        if self.weight_decay == 0.0:
            return grads
        return {k: g + self.weight_decay * params[k] for k, g in grads.items()}

    def update(self, grads: Params, velocity: Params, params: Params, step: int = 0) -> tuple[Params, Params]:
        d = self.direction(grads, params)
        eta = self.lr(step)
        velocity = {k: self.momentum * velocity[k] + d[k] for k in params}
        params = {k: params[k] - eta * velocity[k] for k in params}
        return params, velocity

    walk_needs_state = False  # its backward step needs neither the velocity nor the gradient

    def vjp(self, grads: Params | None, velocity: Params | None, params: Params | None, step: int, d_params: Params,
            d_velocity: Params) -> tuple[Params, Params, Params]:
        """Adjoints of one step from those of ``(ω_{t+1}, v_{t+1})``: ``(d g_t, d v_t, ∂/∂ω_t by
        the direct path)`` (docs/method.md §3: ``u = dv − η dω``, ``dv_t = γ u``, ``dω += λ u``)."""
        eta = self.lr(step)
        u = {k: d_velocity[k] - eta * d_params[k] for k in d_params}
        lam = self.weight_decay
        direct = {k: d_params[k] + lam * u[k] for k in u} if lam else d_params
        return u, {k: self.momentum * u[k] for k in u}, direct
