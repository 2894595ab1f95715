"""Training-time augmentation, written as ``augment(x, generator) -> x`` for
:class:`~l2t.data.batches.BatchSchedule`, which seeds the generator from ``(seed, step)`` so a
recomputed step sees exactly the same augmented batch."""

from __future__ import annotations

import torch

from l2t.errors import L2TError


def crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``padding`` pixels, then a random horizontal flip, per
    image (the standard CIFAR augmentation). ``x (B, C, H, W)`` are standardised images, so the
    padding is the channel mean."""
    B, C, H, W = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)  # (B, C, H + 2p, W + 2p)
    dy = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(x.device)
    flip = (torch.rand(B, generator=generator) < 0.5).to(x.device)
    rows = dy[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


AUGMENTATIONS = {"none": None, "crop_flip": crop_flip}


def get_augment(name: str):
    if name not in AUGMENTATIONS:
        raise L2TError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]
