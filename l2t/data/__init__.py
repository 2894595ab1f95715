"""Data sets by name or path: ``digits`` (embedded), ``fashion-mnist``, ``mnist``, a folder of
IDX files, or a ``.npz`` file. ``load_data`` is the one entry point the CLI and configs use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from l2t.data.batches import Batch, BatchSchedule, derive_seed
from l2t.data.digits import load_digits
from l2t.data.idx import FASHION_CLASSES, load_idx_folder, read_idx
from l2t.data.npz import load_npz
from l2t.data.splits import DataSplits, make_splits
from l2t.errors import L2TError
from l2t.registry import Registry

DATASETS: Registry[DataSplits] = Registry("data set")

# Where named data sets are looked for: $L2T_DATA_DIR/<name>, then the system location.
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}


def data_root(name: str) -> Path:
    env = os.environ.get("L2T_DATA_DIR")
    if env and (Path(env) / name).is_dir():
        return Path(env) / name
    if name in SYSTEM_DIRS and SYSTEM_DIRS[name].is_dir():
        return SYSTEM_DIRS[name]
    return Path(env or Path.home() / ".cache" / "l2t") / name


def _named_idx(name: str, class_names: tuple[str, ...] | None):
    def factory(**kw: Any) -> DataSplits:
        root = data_root(name)
        if not root.is_dir():
            hint = " (install it with `make data`)" if name in SYSTEM_DIRS else ""
            raise L2TError(f"data set {name!r} not found at {root}{hint}; pass --data FOLDER")
        kw = {k: v for k, v in kw.items() if v is not None}
        return load_idx_folder(root, name=name, class_names=class_names, **kw)

    return factory


@DATASETS.register("digits")
def _digits(**kw: Any) -> DataSplits:
    return load_digits(**{k: v for k, v in kw.items() if v is not None})


DATASETS.register("fashion-mnist")(_named_idx("fashion-mnist", FASHION_CLASSES))
DATASETS.register("mnist")(_named_idx("mnist", None))


def load_data(
    name_or_path: str,
    *,
    dev_size: int | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """Load a registered data set by name, or a user's folder of IDX files or ``.npz`` file."""
    kw = dict(dev_size=dev_size, train_size=train_size, test_size=test_size, split_seed=split_seed)
    if name_or_path in DATASETS:
        return DATASETS.create(name_or_path, **kw)
    path = Path(name_or_path)
    if path.suffix == ".npz":
        return load_npz(path, **kw)
    if path.is_dir():
        return load_idx_folder(path, **{k: v for k, v in kw.items() if v is not None})
    if path.exists():
        raise L2TError(f"cannot read data from {path}: expected a folder of IDX files or a .npz file")
    raise L2TError(
        f"unknown data set {name_or_path!r}: not a known name ({', '.join(DATASETS.list())}) "
        f"nor an existing folder or .npz file"
    )


__all__ = [
    "Batch", "BatchSchedule", "DATASETS", "DataSplits", "FASHION_CLASSES", "data_root",
    "derive_seed", "load_data", "load_digits", "load_idx_folder", "load_npz", "make_splits",
    "read_idx",
]
