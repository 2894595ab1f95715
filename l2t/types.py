"""The types every layer of l2t shares: a batch, a task description, a classifier head's outputs.

They live here, apart from the packages that produce or consume them, so that a loss, a student
and an engine depend on the contract and not on each other.

**The step contract.** A :class:`Batch` carries

* ``inputs``: a pytree of tensors with a leading batch axis: one ``(B, C, H, W)`` tensor for an
  image classifier, ``{"src": (B, S), "tgt_in": (B, T)}`` token ids for a seq2seq student;
* ``targets``: integer classes, ``(B,)``, one per position ``(B, T)``, or one per pixel or grid
  cell ``(B, H, W)`` (segmentation, detection);
* ``mask``: ``None`` (every position is real) or a bool tensor shaped like ``targets`` that is
  ``True`` at real positions; losses, metrics and state features count real positions only;
* ``aux``: what a task's fixed loss term needs besides the classes, or ``None`` (detection: the
  box targets of every grid cell, ``(B, Gh, Gw, 4)``);
* ``seed``: the randomness of the training step (dropout and any other stochastic layer), derived
  from ``(episode seed, step)`` so that every replay of the step draws the same masks.

It flows unchanged through :meth:`l2t.students.Student.apply`, the losses, the teacher's session,
the state features and the dev objective (the dev split is a sequence of such batches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Batch:
    """``inputs`` (pytree, batch axis first), ``targets (B, ...)``, ``mask`` like ``targets``
    (``True`` = real position) or ``None``, ``seed`` of the step's randomness, ``aux`` (a pytree
    with a batch axis, for a task's fixed loss term) or ``None``."""

    inputs: Any
    targets: torch.Tensor
    mask: Optional[torch.Tensor] = None
    seed: Optional[int] = None
    aux: Any = None

    def count(self) -> int:
        """Real positions: examples, or tokens that are not padding."""
        return self.targets.numel() if self.mask is None else int(self.mask.sum())

    def real(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` shaped like ``targets`` (or with trailing axes) at the real positions, flattened."""
        if self.mask is None:
            return values.reshape(-1, *values.shape[self.targets.dim():])
        return values[self.mask]


class HeadOutputs(NamedTuple):
    """What a loss that works on the classifier's geometry (large-margin softmax) needs: the logits,
    the features entering the final linear layer ``(B, D)``, and that layer's weight ``(C, D)`` and
    bias ``(C,)``."""

    logits: torch.Tensor
    features: torch.Tensor
    weight: torch.Tensor
    bias: Optional[torch.Tensor]


@dataclass(frozen=True)
class ClassificationTask:
    """One class per example: inputs of ``input_shape`` (without the batch axis), ``num_classes``."""

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...] = ()

    kind = "classification"


@dataclass(frozen=True)
class Seq2SeqTask:
    """Sequence to sequence: source and target token vocabularies; one target class per position.

    ``pad_id`` marks padding in both sides' tensors, ``bos_id`` starts every decoder input,
    ``eos_id`` ends every target."""

    src_vocab: int
    tgt_vocab: int
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    max_len: int = 256

    kind = "seq2seq"

    @property
    def num_classes(self) -> int:
        return self.tgt_vocab

    @property
    def class_names(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class SegmentationTask:
    """One class per pixel: images ``input_shape = (C, H, W)``, targets ``(H, W)``;
    ``ignore_index`` marks pixels that count nowhere (VOC's void border: 255)."""

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...] = ()
    ignore_index: int = 255

    kind = "segmentation"


@dataclass(frozen=True)
class DetectionTask:
    """Boxes on a grid (docs/dense.md): images ``input_shape = (C, H, W)``; every cell of the
    ``(H / stride, W / stride)`` grid has one class, 0 = background and ``1 … K`` the object whose
    box centre falls in it, and at object cells a box target ``(dx, dy, log w, log h)``.
    ``num_classes`` counts the background."""

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...] = ()
    stride: int = 4

    kind = "detection"

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_shape[1] // self.stride, self.input_shape[2] // self.stride


Task = ClassificationTask | Seq2SeqTask | SegmentationTask | DetectionTask
