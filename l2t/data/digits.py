"""scikit-learn's 8x8 handwritten digits: the embedded default data set (no download)."""

from __future__ import annotations

import torch

from l2t.data.splits import DataSplits, make_splits
from l2t.errors import L2TError


def load_digits(
    *, dev_size: int = 300, test_size: int = 497, train_size: int | None = None, split_seed: int = 0, size: int = 8
) -> DataSplits:
    """1797 images of shape ``(1, 8, 8)``, 10 classes; by default 1000 train / 300 dev / 497 test.
    ``size`` > 8 upsamples them (bilinear) to ``(1, size, size)``, for students that need larger
    images (LeNet: 28)."""
    from sklearn.datasets import load_digits as _sk_digits

    if not 8 <= size <= 64:
        raise L2TError(f"digits: size must be in [8, 64], got {size}")
    d = _sk_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    x, y = x[perm], y[perm]
    return make_splits(
        "digits", x[test_size:], y[test_size:], x[:test_size], y[:test_size],
        dev_size=dev_size, num_classes=10, train_size=train_size, split_seed=split_seed,
    )
