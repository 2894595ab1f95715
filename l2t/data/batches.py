"""Mini-batch schedules that are pure functions of ``(seed, step)``.

Reverse-mode hypergradient methods walk the training run backwards and recompute steps; they are
exact only if step ``t`` sees the very same batch (and the very same augmentation randomness) on
the way back as on the way forward. :class:`BatchSchedule` guarantees this: ``schedule(t)`` depends
only on the seed and ``t``, never on call order or on global RNG state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch


@dataclass(frozen=True)
class Batch:
    """``inputs (B, ...)``, ``targets (B,)`` or ``(B, T)``; ``mask (B, T)`` marks real tokens."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: Optional[torch.Tensor] = None


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from a tuple of integers (run seed, purpose tag, step, ...)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, np.uint64)[0] >> 1)


# Purpose tags for derive_seed, so different uses of one run seed never collide.
TAG_TEACH, TAG_EVAL, TAG_BATCHES, TAG_INIT, TAG_AUGMENT, TAG_TEACHER_INIT, TAG_TUNE, TAG_REFERENCE = 1, 2, 3, 4, 5, 6, 7, 8

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class BatchSchedule:
    """Epochs of shuffled, equal-sized batches (the ragged tail of an epoch is dropped).

    ``augment(x, generator)`` is applied with a generator seeded from ``(seed, step)``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        augment: Augment | None = None,
    ) -> None:
        if not 0 < batch_size <= len(y):
            raise ValueError(f"Invalid batch size {batch_size} for {len(y)} training examples")
        self.x, self.y, self.batch_size, self.seed, self.augment = x, y, batch_size, seed, augment
        self.steps_per_epoch = len(y) // batch_size
        self._epoch, self._perm = -1, None  # cache only; results never depend on it

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, TAG_BATCHES, epoch))
            self._perm = torch.randperm(len(self.y), generator=g).to(self.y.device)
            self._epoch = epoch
        return self._perm

    def __call__(self, step: int) -> Batch:
        epoch, i = divmod(step, self.steps_per_epoch)
        idx = self._permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        x = self.x[idx]
        if self.augment is not None:
            g = torch.Generator().manual_seed(derive_seed(self.seed, TAG_AUGMENT, step))
            x = self.augment(x, g)
        return Batch(x, self.y[idx])
