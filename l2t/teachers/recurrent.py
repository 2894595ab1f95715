"""A teacher with memory: the attention teacher reading a recurrent summary of the states so far.

    h_t = GRU(s_t, h_{t−1}),   Φ_t = c·I + W softmax(U h_t),   loss scale 4/c

The memory ``h`` is carried from phase to phase within a student's training and, by ``l2t teach``,
from one teacher step to the next (detached there, like L2T-DLN's LSTM state). Each episode of a
teacher step starts from the memory the step started with; the memory the next step starts
from is that of the step's first usable episode (finite, not diverged; docs/architecture.md,
"Coefficients and memory are pytrees").
Started at ``W = 0``: cross entropy's gradient whatever the memory, like the attention teacher.
"""

from __future__ import annotations

import torch
from torch import nn

from l2t.teachers.base import TEACHERS, Teacher


@TEACHERS.register("recurrent", doc="with memory: a GRU over the states feeds the attention keys, Φ_t = c·I + W softmax(U h_t)")
class RecurrentTeacher(Teacher):
    """A GRU cell over the state features (``hidden`` units), ``keys`` attention keys over ``W``."""

    loss_name = "bilinear"

    def __init__(self, num_classes: int, state_dim: int, hidden: int = 16, keys: int = 4, base: float = 0.1,
                 w_init_std: float = 0.0) -> None:
        super().__init__()
        if hidden < 1 or keys < 1:
            raise ValueError(f"Invalid recurrent teacher sizes: hidden {hidden}, keys {keys}")
        if base <= 0:
            raise ValueError(f"Invalid base: {base} (> 0)")
        self.num_classes, self.state_dim, self.hidden, self.keys = num_classes, state_dim, hidden, keys
        self.base, self.w_init_std = base, w_init_std
        self.cell = nn.GRUCell(state_dim, hidden)
        self.U = nn.Parameter(torch.empty(keys, hidden))
        self.W = nn.Parameter(torch.empty(num_classes, num_classes, keys))
        self.register_buffer("eye", torch.eye(num_classes), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()
        nn.init.normal_(self.U)
        nn.init.normal_(self.W, std=self.w_init_std) if self.w_init_std > 0 else nn.init.zeros_(self.W)

    def init_memory(self) -> torch.Tensor:
        return torch.zeros(self.hidden, dtype=self.U.dtype, device=self.U.device)

    def forward(self, features: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features (|s|,)``, ``memory (hidden,)`` -> ``(Φ (C, C), memory)``."""
        h = self.cell(features[None], memory[None])[0]  # (hidden,)
        attn = torch.softmax(self.U @ h, dim=-1)  # (keys,)
        return self.base * self.eye.to(self.W.dtype) + self.W @ attn, h

    def loss_kwargs(self) -> dict:
        return {"scale": 4.0 / self.base}

    def config(self) -> dict:
        return dict(num_classes=self.num_classes, state_dim=self.state_dim, hidden=self.hidden, keys=self.keys,
                    base=self.base, w_init_std=self.w_init_std)
