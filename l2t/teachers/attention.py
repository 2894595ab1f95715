"""The attention teacher of L2T-DLF (section 4.1, Fig. 2b): ``Φ_t = c·I + W softmax(V s_t)``."""

from __future__ import annotations

import torch
from torch import nn

from l2t.teachers.base import TEACHERS, Teacher


def smoothing_offset(num_classes: int, base: float, eps: float, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``c·(M − I) = c·ε·(1/C − I)``, ``M = (1 − ε)·I + ε/C``: the ``(C, C)`` offset that, added to
    ``Φ = c·I``, gives ``c·M``, the bilinear loss with the gradient of label smoothing ``ε``."""
    eye = torch.eye(num_classes, dtype=dtype)
    return base * eps * (torch.full_like(eye, 1.0 / num_classes) - eye)


@TEACHERS.register("attention", doc="the paper's: Φ_t = c·I + W softmax(V s_t), N keys, started at cross entropy")
class AttentionTeacher(Teacher):
    """``W ∈ R^{C×C×N}``, ``V ∈ R^{N×|s|}``, ``N`` keys (10 in the paper).

    The paper's teacher is ``W softmax(V s)``. We add a fixed ``c·I`` and start from ``W = 0``:
    the bilinear loss scaled by ``4/c`` then has the gradient of cross entropy (docs/method.md §8), so the
    teacher starts at the standard loss and can only be judged by whether it improves on it.
    ``base=0`` with ``w_init_std > 0`` gives the paper's plain form.

    ``off_diagonal_eps > 0`` bounds the loss's off-diagonal terms (``log(p_j + eps)``, see
    :func:`l2t.losses.bilinear`); 0, the default, is the paper's loss.

    ``init_smoothing = ε > 0`` starts every key's ``W`` at ``c·(M − I)``, ``M = (1 − ε)·I + ε/C``:
    ``Φ = c·M`` whatever the state, the bilinear loss with the gradient of label smoothing ``ε``
    (the best fixed member of the family measured on Fashion-MNIST, README). 0, the default,
    starts at cross entropy.

    ``V`` is drawn at random (std ``v_init_std``) so that different student states attend to
    different keys from the start; with ``W = 0`` the keys would otherwise stay interchangeable.
    """

    loss_name = "bilinear"

    def __init__(
        self,
        num_classes: int,
        state_dim: int,
        keys: int = 10,
        base: float = 0.1,
        v_init_std: float = 1.0,
        w_init_std: float = 0.0,
        off_diagonal_eps: float = 0.0,
        init_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if keys < 1:
            raise ValueError(f"Invalid number of keys: {keys}")
        if not 0.0 <= off_diagonal_eps < 1.0:
            raise ValueError(f"Invalid off_diagonal_eps: {off_diagonal_eps} (0 <= eps < 1)")
        if not 0.0 <= init_smoothing < 1.0:
            raise ValueError(f"Invalid init_smoothing: {init_smoothing} (0 <= eps < 1)")
        self.num_classes, self.state_dim, self.keys = num_classes, state_dim, keys
        self.base, self.v_init_std, self.w_init_std = base, v_init_std, w_init_std
        self.off_diagonal_eps, self.init_smoothing = off_diagonal_eps, init_smoothing
        self.W = nn.Parameter(torch.empty(num_classes, num_classes, keys))
        self.V = nn.Parameter(torch.empty(keys, state_dim))
        self.register_buffer("eye", torch.eye(num_classes), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.W, std=self.w_init_std) if self.w_init_std > 0 else nn.init.zeros_(self.W)
        if self.init_smoothing > 0:
            with torch.no_grad():  # the same offset for every key
                self.W += smoothing_offset(self.num_classes, self.base, self.init_smoothing).unsqueeze(-1)
        nn.init.normal_(self.V, std=self.v_init_std)

    def forward(self, features: torch.Tensor, memory: None = None) -> tuple[torch.Tensor, None]:
        """``features (|s|,)`` -> ``Φ (C, C)``."""
        attn = torch.softmax(self.V @ features, dim=-1)  # (N,)
        phi = self.base * self.eye.to(self.W.dtype) + self.W @ attn  # (C, C)
        return phi, memory

    def loss_kwargs(self) -> dict:
        kwargs = {"scale": 4.0 / self.base} if self.base > 0 else {}
        return kwargs | ({"eps": self.off_diagonal_eps} if self.off_diagonal_eps > 0 else {})

    def config(self) -> dict:
        return dict(
            num_classes=self.num_classes, state_dim=self.state_dim, keys=self.keys, base=self.base,
            v_init_std=self.v_init_std, w_init_std=self.w_init_std, off_diagonal_eps=self.off_diagonal_eps,
            init_smoothing=self.init_smoothing,
        )
