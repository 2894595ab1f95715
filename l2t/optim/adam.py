"""Pure Adam (Kingma & Ba 2015), the teacher's outer optimizer.

The state is a flat dict of tensors plus a step count, so a checkpoint is one safetensors file.
Same arithmetic as ``torch.optim.Adam`` (no AMSGrad, no weight decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
