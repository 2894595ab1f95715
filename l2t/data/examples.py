"""A split of a data set: examples that can be taken by index into a :class:`~l2t.types.Batch`.

* :class:`TensorExamples`: fixed-shape inputs ``x (N, ...)`` and labels ``y (N,)`` (images), or
  one label per pixel or grid cell ``y (N, H, W)`` (dense prediction), with ``ignore_index`` for
  labels that count nowhere and ``aux`` for a fixed loss term's targets (a detector's boxes).
* :class:`SequencePairs`: token sequences padded to a common length; a batch is trimmed to its
  longest member and masked (``{"src", "tgt_in"}`` inputs, ``tgt_out`` targets).

Both give the dev and test splits as a sequence of batches (:meth:`chunks`), so that every
evaluation and the dev objective count real positions only, whatever the task.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import torch

from l2t.pytree import tree_map
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
    """``x (N, ...)``, ``y (N,)`` or ``(N, H, W)``; labels equal to ``ignore_index`` are masked
    out of every batch (and replaced by class 0 behind the mask, so that no loss indexes with
    them); ``aux`` is a pytree of ``(N, ...)`` tensors that batches carry as ``Batch.aux``."""

    x: torch.Tensor
    y: torch.Tensor
    aux: Any = None
    ignore_index: Optional[int] = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.y.device

    def _batch(self, index) -> Batch:
        y, mask = self.y[index], None
        if self.ignore_index is not None:
            mask = y != self.ignore_index
            y = torch.where(mask, y, torch.zeros_like(y))
        aux = None if self.aux is None else tree_map(lambda t: t[index], self.aux)
        return Batch(self.x[index], y, mask, aux=aux)

    def take(self, idx: torch.Tensor) -> Batch:
        return self._batch(idx)

    def chunks(self, size: int) -> list[Batch]:
        """Consecutive batches of about ``size`` examples (``size <= 0``: one batch)."""
        return [self._batch(slice(a, b)) for a, b in chunk_bounds(len(self), size)]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "TensorExamples":
        aux = None if self.aux is None else tree_map(lambda t: t.to(device=device, dtype=dtype), self.aux)
        return replace(self, x=self.x.to(device=device, dtype=dtype), y=self.y.to(device=device, dtype=torch.long), aux=aux)

    def subset(self, idx: torch.Tensor) -> "TensorExamples":
        aux = None if self.aux is None else tree_map(lambda t: t[idx], self.aux)
        return replace(self, x=self.x[idx], y=self.y[idx], aux=aux)


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
