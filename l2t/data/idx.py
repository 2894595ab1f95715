"""MNIST-family IDX files (MNIST, Fashion-MNIST, KMNIST), raw or gzipped, read from a folder.

Format (LeCun's): a big-endian header ``0x00 0x00 <dtype> <ndim>``, ``ndim`` big-endian uint32
sizes, then the data. Only unsigned bytes (dtype 0x08) are used by these data sets.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from l2t.data.splits import DataSplits, make_splits
from l2t.errors import L2TError

FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a uint8 array; corrupt files raise :class:`L2TError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise L2TError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise L2TError(f"corrupt IDX file {path}: bad magic number")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise L2TError(f"unsupported IDX file {path}: data type 0x{dtype_code:02x}, expected 0x08")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise L2TError(f"corrupt IDX file {path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise L2TError(
            f"corrupt IDX file {path}: header promises {expected} bytes of data, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_file(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise L2TError(f"{folder}: missing IDX file {stem} (or {stem}.gz)")


def load_idx_folder(
    folder: str | Path,
    *,
    name: str | None = None,
    class_names: tuple[str, ...] | None = None,
    dev_size: int = 5000,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """Images become ``(N, 1, H, W)`` floats in [0, 1] before standardisation."""
    folder = Path(folder)
    if not folder.is_dir():
        raise L2TError(f"no such data folder: {folder}")
    arrays = {k: read_idx(find_idx_file(folder, stem)) for k, stem in FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1:
            raise L2TError(
                f"{folder}: {split} images must be 3-D and labels 1-D IDX arrays, "
                f"got {x.ndim}-D and {y.ndim}-D"
            )
    x_train = torch.from_numpy(arrays["x_train"].astype(np.float32) / 255.0).unsqueeze(1)
    x_test = torch.from_numpy(arrays["x_test"].astype(np.float32) / 255.0).unsqueeze(1)
    y_train = torch.from_numpy(arrays["y_train"].astype(np.int64))
    y_test = torch.from_numpy(arrays["y_test"].astype(np.int64))
    return make_splits(
        name or folder.name, x_train, y_train, x_test, y_test,
        dev_size=dev_size, num_classes=len(class_names) if class_names else None,
        class_names=class_names, train_size=train_size, test_size=test_size, split_seed=split_seed,
    )
