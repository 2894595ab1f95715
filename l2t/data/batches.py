"""Mini-batch schedules that are pure functions of ``(seed, step)``.

Reverse-mode hypergradient methods walk the training run backwards and recompute steps; they are
exact only if step ``t`` sees the very same batch, augmentation and dropout masks on the way back
as on the way forward. :class:`BatchSchedule` guarantees this: ``schedule(t)`` depends only on the
seed and ``t``, never on call order or on global RNG state, and the batch carries the seed of the
step's own randomness (``Batch.seed``, from which the student's stochastic layers draw).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from l2t.data.examples import Examples
from l2t.types import Batch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from a tuple of integers (run seed, purpose tag, step, ...).

    Each key enters as its low 32 bits (derived seeds are 63-bit and feed further derivations),
    so a user's seed must be below 2^32: the config refuses larger ones, which would alias."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, np.uint64)[0] >> 1)


# Purpose tags for derive_seed, so different uses of one run seed never collide.
TAG_TEACH, TAG_EVAL, TAG_BATCHES, TAG_INIT, TAG_AUGMENT, TAG_TEACHER_INIT, TAG_TUNE, TAG_REFERENCE = 1, 2, 3, 4, 5, 6, 7, 8
TAG_STEP_RNG = 9  # dropout and other stochastic layers inside a training step

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class BatchSchedule:
    """Epochs of shuffled, equal-sized batches of ``examples`` (the ragged tail of an epoch is
    dropped).

    ``augment(x, generator)`` is applied to tensor inputs with a generator seeded from
    ``(seed, step)``; ``Batch.seed`` is derived from ``(seed, step)`` too.
    """

    def __init__(self, examples: Examples, batch_size: int, seed: int, augment: Augment | None = None) -> None:
        if not 0 < batch_size <= len(examples):
            raise ValueError(f"Invalid batch size {batch_size} for {len(examples)} training examples")
        self.examples, self.batch_size, self.seed, self.augment = examples, batch_size, seed, augment
        self.steps_per_epoch = len(examples) // batch_size
        self._epoch, self._perm = -1, None  # cache only; results never depend on it

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, TAG_BATCHES, epoch))
            self._perm = torch.randperm(len(self.examples), generator=g).to(self.examples.device)
            self._epoch = epoch
        return self._perm

    def __call__(self, step: int) -> Batch:
        epoch, i = divmod(step, self.steps_per_epoch)
        idx = self._permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        batch = self.examples.take(idx)
        inputs = batch.inputs
        if self.augment is not None:
            g = torch.Generator().manual_seed(derive_seed(self.seed, TAG_AUGMENT, step))
            inputs = self.augment(inputs, g)
        return Batch(inputs, batch.targets, batch.mask, derive_seed(self.seed, TAG_STEP_RNG, step), batch.aux)
