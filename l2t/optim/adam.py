"""Pure Adam (Kingma & Ba 2015): ``Adam``, the teacher's outer optimizer, and ``InnerAdam``, the
student's (differentiable, with the backward step every hypergradient walk takes).

``Adam``'s state is a flat dict of tensors plus a step count, so a checkpoint is one
safetensors file. Same arithmetic as ``torch.optim.Adam`` (no AMSGrad, no weight decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Adam:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"Invalid learning rate: {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Invalid betas: {self.betas}")

    def init(self, params: Params) -> dict:
        return {
            "step": 0,
            "m": {k: torch.zeros_like(v) for k, v in params.items()},
            "v": {k: torch.zeros_like(v) for k, v in params.items()},
        }

    def update(self, grads: Params, state: dict, params: Params) -> tuple[Params, dict]:
        b1, b2 = self.betas
        step = state["step"] + 1
        m = {k: b1 * state["m"][k] + (1 - b1) * g for k, g in grads.items()}
        v = {k: b2 * state["v"][k] + (1 - b2) * g * g for k, g in grads.items()}
        c1, c2 = 1 - b1**step, 1 - b2**step
        new = {
            k: params[k] - (self.lr / c1) * m[k] / (v[k].sqrt() / math.sqrt(c2) + self.eps)
            for k in params
        }
        return new, {"step": step, "m": m, "v": v}


def _sqrt0(x: torch.Tensor) -> torch.Tensor:
    """``√x`` for ``x ≥ 0`` whose derivative is 0 (not infinite) where ``x = 0``, so that a graph
    through a weight that never had a gradient stays finite."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


@dataclass(frozen=True)
class InnerAdam:
    """Adam as the *student's* optimizer (``inner.optimizer = "adam"``), differentiable.

        d_t = g_t + λ ω_t                                (L2 folded into the gradient, not AdamW)
        m_{t+1} = β₁ m_t + (1 − β₁) d_t,   s_{t+1} = β₂ s_t + (1 − β₂) d_t²
        ω_{t+1} = ω_t − (η_t / c₁) m_{t+1} / (√s_{t+1} / √c₂ + ε),   c_i = 1 − β_iᵗ⁺¹

    the arithmetic of ``torch.optim.Adam`` (a float64 test checks it step by step), with the
    global step as Adam's step count, so an episode started from a snapshot continues its run.
    The state is one flat dict: ``"m:NAME"`` and ``"s:NAME"`` per weight. It has the interface of
    :class:`~l2t.optim.sgd.MomentumSGD` (``init``, ``update``, ``vjp``); its backward step needs
    the step's state and gradient (``walk_needs_state``), so ``reverse`` stores the state as well
    as the weights (3× the trajectory), and ``reversible`` (exact inversion of momentum SGD) and
    the compiled products refuse it (:func:`l2t.hypergrad.check_optimizer`).
    """

    lr: Callable[[int], float]
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    walk_needs_state = True

    def __post_init__(self) -> None:
        # β₂ > 0: then s' = 0 only where every gradient so far was 0, and there m' = 0 too
        if not (0.0 <= self.betas[0] < 1.0 and 0.0 < self.betas[1] < 1.0):
            raise ValueError(f"Invalid betas: {self.betas}")
        if not self.eps > 0:
            raise ValueError(f"Invalid epsilon: {self.eps}")
        if self.weight_decay < 0.0:
            raise ValueError(f"Invalid weight decay: {self.weight_decay}")

    def init(self, params: Params) -> Params:
        """The first and second moments, zero."""
        return {f"{which}:{k}": torch.zeros_like(v) for which in ("m", "s") for k, v in params.items()}

    def _moments(self, grads: Params, state: Params, params: Params) -> tuple[Params, Params, Params]:
        b1, b2 = self.betas
        lam = self.weight_decay
        d = grads if lam == 0.0 else {k: g + lam * params[k] for k, g in grads.items()}
        m = {k: b1 * state[f"m:{k}"] + (1 - b1) * d[k] for k in params}
        s = {k: b2 * state[f"s:{k}"] + (1 - b2) * d[k] * d[k] for k in params}
        return d, m, s

    def update(self, grads: Params, state: Params, params: Params, step: int = 0) -> tuple[Params, Params]:
        _, m, s = self._moments(grads, state, params)
        c1, c2 = 1 - self.betas[0] ** (step + 1), 1 - self.betas[1] ** (step + 1)
        scale = self.lr(step) / c1
        params = {k: params[k] - scale * m[k] / (_sqrt0(s[k]) / math.sqrt(c2) + self.eps) for k in params}
        return params, {**{f"m:{k}": v for k, v in m.items()}, **{f"s:{k}": v for k, v in s.items()}}

    def vjp(self, grads: Params, state: Params, params: Params, step: int, d_params: Params,
            d_state: Params) -> tuple[Params, Params, Params]:
        """Adjoints of one step, from those of its outputs ``(ω_{t+1}, state_{t+1})``:
        ``(d g_t, d state_t, ∂/∂ω_t by the direct path)``. The caller adds ``(∂g_t/∂ω_t)ᵀ d g_t``."""
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** (step + 1), 1 - b2 ** (step + 1)
        scale = self.lr(step) / c1
        d, m, s = self._moments(grads, state, params)
        d_g, d_prev, d_direct = {}, {}, {}
        for k in params:
            r = _sqrt0(s[k])
            denom = r / math.sqrt(c2) + self.eps
            w = d_params[k]
            dm = d_state[f"m:{k}"] - w * scale / denom
            # ∂ω'/∂s' = scale · m' / denom² / (2 √c₂ √s'); taken as 0 where s' = 0, which with β₂ > 0
            # means every gradient so far was 0 (or underflowed to 0 when squared), so m' = 0 as well
            # (up to such underflow: then m' is below √(smallest normal) and the step below it/ε)
            pos = r > 0
            ds = d_state[f"s:{k}"] + torch.where(
                pos, w * scale * m[k] / (denom * denom * 2 * math.sqrt(c2) * torch.where(pos, r, torch.ones_like(r))),
                torch.zeros_like(r))
            d_g[k] = (1 - b1) * dm + 2 * (1 - b2) * d[k] * ds
            d_prev[f"m:{k}"], d_prev[f"s:{k}"] = b1 * dm, b2 * ds
            d_direct[k] = w + self.weight_decay * d_g[k] if self.weight_decay else w
        return d_g, d_prev, d_direct
