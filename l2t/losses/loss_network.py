"""L2T-DLN's dynamic loss network (Hai et al., NeurIPS 2023): a small MLP is the loss.

For an example with logits ``z`` and target ``y``, one row per wrong class ``j``:

    r_j = [a(z)_y, a(z)_j, 1, 0],   a = σ (the authors' release: sigmoid of the logits) or softmax

goes through an MLP without biases, LeakyReLU between layers (4 → 40 → 40 → 40 → 40 → 1 in the
release); the example's loss is the mean of the rows' outputs. The network's weights are the
loss's coefficients (a dict of matrices), set by a teacher, never hidden in the loss.

**Start at cross entropy.** The release starts from a random network, whose gradient has
nothing to do with the task's. l2t's ``residual`` form (the default) adds the network to cross
entropy, ``ℓ = −log p_y + mean_j g_φ(r_j)``, and starts the last layer at zero: ``g_φ = 0`` and,
because the last layer multiplies everything before it, its gradient in the logits is zero too,
so the loss *and its gradient* are cross entropy's exactly at the start (a test), while the
hypergradient with respect to the last layer is not zero, so the teacher can move it. The
release's form is ``residual = False`` with every layer random.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIZES = (4, 40, 40, 40, 40, 1)  # the release's network
SLOPE = 0.01  # LeakyReLU's negative slope (torch's default)


ACTIVATIONS = {"leaky_relu": lambda h: F.leaky_relu(h, SLOPE), "tanh": torch.tanh, "gelu": F.gelu}


def loss_network(logits: torch.Tensor, targets: torch.Tensor, coeffs: dict, *, inputs: str = "sigmoid",
                 residual: bool = True, activation: str = "leaky_relu") -> torch.Tensor:
    """Per-example (or per-position) loss ``(...)`` from ``logits (..., C)``, ``targets (...)`` and
    ``coeffs = {"w0": (h1, 4), "w1": (h2, h1), ..., "wL": (1, hL)}``. ``activation`` between layers:
    leaky_relu (the release's) | tanh | gelu (smooth: no kinks for finite-difference checks)."""
    act_fn = ACTIVATIONS[activation]
    C = logits.shape[-1]
    act = torch.sigmoid(logits) if inputs == "sigmoid" else F.softmax(logits, dim=-1)  # (..., C)
    a_y = act.gather(-1, targets.unsqueeze(-1))  # (..., 1)
    wrong = ~F.one_hot(targets, C).bool()  # (..., C)
    rows = torch.stack([a_y.expand_as(act), act, torch.ones_like(act), torch.zeros_like(act)], dim=-1)  # (..., C, 4)
    h = rows
    n = len(coeffs)
    for i in range(n):
        h = h @ coeffs[f"w{i}"].t()
        if i < n - 1:
            h = act_fn(h)
    g = h.squeeze(-1)  # (..., C): one value per row; the target's own row is dropped
    value = torch.where(wrong, g, torch.zeros_like(g)).sum(-1) / (C - 1)
    if residual:
        value = value - F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return value


def init_loss_network(seed: int, sizes: tuple[int, ...] = SIZES, *, residual: bool = True,
                      dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Weights ``w0 … wL`` (Kaiming-uniform, as ``nn.Linear`` draws them), a pure function of
    ``seed``; with ``residual`` the last layer is zero (the loss starts at cross entropy)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / math.sqrt(a)
        w = (torch.rand(b, a, generator=g, dtype=torch.float64) * 2 - 1) * bound
        if residual and i == len(sizes) - 2:
            w = torch.zeros_like(w)
        out[f"w{i}"] = w.to(dtype)
    return out
