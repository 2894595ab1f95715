"""The container every data set is loaded into: train / dev / test examples and the task."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import torch

from l2t.data.examples import Examples, TensorExamples
from l2t.errors import L2TError
from l2t.types import ClassificationTask, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSplits:
    """The three splits of a data set and the task they pose.

    ``dev`` is what the teacher is trained against and what the state features read; ``test``
    is used only for the final report.
    """

    name: str
    train: Examples
    dev: Examples
    test: Examples
    task: Task
    tokenizer: Any = None  # sequence data: the subword model (l2t.data.parallel.Tokenizer)
    texts: Any = None  # sequence data: split -> [(source, target)] raw sentences (BLEU's references)
    objects: Any = None  # detection: split -> [(boxes (k, 4) xyxy, labels (k,), ignore (k,) bool)] per image (mAP's ground truth)

    @property
    def num_classes(self) -> int:
        return self.task.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.task.class_names

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "DataSplits":
        return replace(self, train=self.train.to(device, dtype), dev=self.dev.to(device, dtype), test=self.test.to(device, dtype))

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def check_labels(y: torch.Tensor, num_classes: int | None, where: str) -> torch.Tensor:
    """Labels must be integers (in ``[0, num_classes)`` when given); returns them as ``long``."""
    if y.dim() != 1:
        raise L2TError(f"{where}: labels must be 1-D, got shape {tuple(y.shape)}")
    if y.dtype == torch.bool or y.is_complex():
        raise L2TError(f"{where}: labels must be integers, got {y.dtype}")
    if y.is_floating_point():
        if not torch.isfinite(y).all():
            raise L2TError(f"{where}: labels contain NaN or Inf")
        if not torch.equal(y, y.round()):
            raise L2TError(f"{where}: labels must be integers, got non-integer values")
        if len(y) and y.abs().max() >= 2**62:
            raise L2TError(f"{where}: labels out of range: max {float(y.abs().max()):.3g}")
    y = y.long()
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise L2TError(
            f"{where}: labels out of range [0, {num_classes}): min {int(y.min())}, max {int(y.max())}"
        )
    return y


def make_splits(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    x_dev: torch.Tensor | None = None,
    y_dev: torch.Tensor | None = None,
    dev_size: int,
    num_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int = 0,
    per_channel: bool = False,
) -> DataSplits:
    """Validate, hold out a dev split from train when none is given, subsample, standardise.

    Inputs are standardised by a mean and std computed on the training split (one scalar pair, or
    one per channel of ``(N, C, H, W)`` images with ``per_channel``), so the same affine map is
    applied to dev and test.
    """
    pairs = {"train": (x_train, y_train), "test": (x_test, y_test)}
    if (x_dev is None) != (y_dev is None):
        raise L2TError(f"{name}: give both x_dev and y_dev, or neither")
    if x_dev is not None:
        pairs["dev"] = (x_dev, y_dev)
    for split, (x, y) in pairs.items():
        if len(x) != len(y):
            raise L2TError(f"{name}: {split} has {len(x)} inputs but {len(y)} labels")
        if len(x) == 0:
            raise L2TError(f"{name}: {split} split is empty")
        if tuple(x.shape[1:]) != tuple(x_train.shape[1:]):
            raise L2TError(
                f"{name}: {split} inputs have shape {tuple(x.shape[1:])}, "
                f"train inputs {tuple(x_train.shape[1:])}"
            )
        if x.dim() < 2:
            raise L2TError(f"{name}: {split} inputs must have a feature axis, (N, ...), got shape {tuple(x.shape)}")
    labels = {s: check_labels(torch.as_tensor(y), None, f"{name} {s}") for s, (_, y) in pairs.items()}
    inferred = num_classes is None
    if inferred:
        if min(int(y.min()) for y in labels.values()) < 0:
            raise L2TError(f"{name}: labels must be 0 .. C-1, got a negative label")
        num_classes = max(int(y.max()) for y in labels.values()) + 1
    pairs = {s: (x.float(), check_labels(labels[s], num_classes, f"{name} {s}")) for s, (x, _) in pairs.items()}
    for split, (x, _) in pairs.items():
        if not torch.isfinite(x).all():
            raise L2TError(f"{name}: {split} inputs contain NaN or Inf")
    if num_classes < 2:
        raise L2TError(f"{name}: need at least 2 classes, labels give {num_classes}")
    present = torch.bincount(pairs["train"][1], minlength=num_classes)
    missing = [c for c in range(num_classes) if present[c] == 0]
    if missing and inferred:
        raise L2TError(f"{name}: labels must be 0 .. C-1 with every class in train; class(es) {missing[:10]} of "
                       f"{num_classes} never appear (labels 1-based, or with gaps?)")
    if missing:  # a known class count, and a training split too small to hold every class
        log.warning("%s: %d of %d classes have no training example (first: %s); the student can never predict them",
                    name, len(missing), num_classes, missing[:10])

    g = torch.Generator().manual_seed(split_seed)
    x_train, y_train = pairs["train"]
    if "dev" not in pairs:
        if dev_size <= 0 or dev_size >= len(y_train):
            raise L2TError(f"{name}: dev_size {dev_size} must be in [1, {len(y_train) - 1}]")
        perm = torch.randperm(len(y_train), generator=g)
        dev_idx, train_idx = perm[:dev_size], perm[dev_size:]
        pairs["dev"] = (x_train[dev_idx], y_train[dev_idx])
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    if train_size is not None:
        if not 0 < train_size <= len(y_train):
            raise L2TError(f"{name}: train_size {train_size} must be in [1, {len(y_train)}]")
        idx = torch.randperm(len(y_train), generator=g)[:train_size]
        x_train, y_train = x_train[idx], y_train[idx]
    x_dev, y_dev = pairs["dev"]
    x_test, y_test = pairs["test"]
    if test_size is not None:
        if not 0 < test_size <= len(y_test):
            raise L2TError(f"{name}: test_size {test_size} must be in [1, {len(y_test)}]")
        x_test, y_test = x_test[:test_size], y_test[:test_size]

    if per_channel and x_train.dim() == 4:
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)[0]  # (C, 1, 1)
        std = x_train.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-8)
    else:
        mean, std = x_train.mean(), x_train.std().clamp_min(1e-8)
    norm = lambda x: (x - mean) / std  # noqa: E731
    if class_names is None:
        class_names = tuple(str(i) for i in range(num_classes))
    if len(class_names) != num_classes:
        raise L2TError(f"{name}: {len(class_names)} class names for {num_classes} classes")
    task = ClassificationTask(tuple(x_train.shape[1:]), num_classes, tuple(class_names))
    return DataSplits(name, TensorExamples(norm(x_train), y_train), TensorExamples(norm(x_dev), y_dev),
                      TensorExamples(norm(x_test), y_test), task)
