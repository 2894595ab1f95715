"""A split of a data set: examples that can be taken by index into a :class:`~l2t.types.Batch`.

* :class:`TensorExamples`: fixed-shape inputs ``x (N, ...)`` and labels ``y (N,)`` (images).
* :class:`SequencePairs`: token sequences padded to a common length; a batch is trimmed to its
  longest member and masked (``{"src", "tgt_in"}`` inputs, ``tgt_out`` targets).

Both give the dev and test splits as a sequence of batches (:meth:`chunks`), so that every
evaluation and the dev objective count real positions only, whatever the task.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from l2t.types import Batch


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Consecutive ranges ``[a, b)`` of ``size`` over ``n`` examples (``size <= 0``: one range); a
    tail of a single example joins the range before it (BatchNorm cannot normalise one example)."""
    size = n if size <= 0 else size
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    bounds = starts + [n]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass(frozen=True)
class TensorExamples:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.y.device

    def take(self, idx: torch.Tensor) -> Batch:
        return Batch(self.x[idx], self.y[idx])

    def chunks(self, size: int) -> list[Batch]:
        """Consecutive batches of about ``size`` examples (``size <= 0``: one batch)."""
        return [Batch(self.x[a:b], self.y[a:b]) for a, b in chunk_bounds(len(self), size)]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "TensorExamples":
        return TensorExamples(self.x.to(device=device, dtype=dtype), self.y.to(device=device, dtype=torch.long))

    def subset(self, idx: torch.Tensor) -> "TensorExamples":
        return TensorExamples(self.x[idx], self.y[idx])


@dataclass(frozen=True)
class SequencePairs:
    """``src (N, S)`` and ``tgt (N, T)`` token ids padded with ``pad_id``; ``tgt`` rows are
    ``BOS y_1 … y_n EOS``. A batch feeds ``tgt[:, :-1]`` to the decoder and predicts
    ``tgt[:, 1:]`` at the positions that are not padding."""

    src: torch.Tensor
    tgt: torch.Tensor
    pad_id: int = 0

    def __post_init__(self) -> None:
        if self.src.dim() != 2 or self.tgt.dim() != 2 or len(self.src) != len(self.tgt):
            raise ValueError(f"Invalid sequence pairs: src {tuple(self.src.shape)}, tgt {tuple(self.tgt.shape)}")

    def __len__(self) -> int:
        return len(self.src)

    @property
    def device(self) -> torch.device:
        return self.src.device

    def _batch(self, src: torch.Tensor, tgt: torch.Tensor) -> Batch:
        s_len = int((src != self.pad_id).sum(1).max())
        t_len = int((tgt != self.pad_id).sum(1).max())
        src, tgt = src[:, :s_len], tgt[:, :t_len]  # trim to the longest member: (B, S), (B, T + 1)
        targets = tgt[:, 1:]
        return Batch({"src": src, "tgt_in": tgt[:, :-1]}, targets, targets != self.pad_id)

    def take(self, idx: torch.Tensor) -> Batch:
        return self._batch(self.src[idx], self.tgt[idx])

    def chunks(self, size: int) -> list[Batch]:
        """Consecutive batches of about ``size`` sentence pairs (``size <= 0``: one batch)."""
        return [self._batch(self.src[a:b], self.tgt[a:b]) for a, b in chunk_bounds(len(self), size)]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "SequencePairs":
        return replace(self, src=self.src.to(device), tgt=self.tgt.to(device))

    def subset(self, idx: torch.Tensor) -> "SequencePairs":
        return replace(self, src=self.src[idx], tgt=self.tgt[idx])


Examples = TensorExamples | SequencePairs
