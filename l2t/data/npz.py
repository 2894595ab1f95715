"""A user's own data as one ``.npz`` file: ``x_train, y_train, x_test, y_test`` and optionally
``x_dev, y_dev`` and ``class_names``. Without a dev split one is held out from train."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from l2t.data.splits import DataSplits, make_splits
from l2t.errors import L2TError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def load_npz(
    path: str | Path,
    *,
    dev_size: int | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int = 0,
) -> DataSplits:
    path = Path(path)
    if not path.is_file():
        raise L2TError(f"no such data file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise L2TError(f"corrupt .npz file {path}: {e}") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise L2TError(f"{path}: missing arrays {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    for k, a in arrays.items():
        if k != "class_names" and a.dtype.kind not in "biuf":
            raise L2TError(f"{path}: array {k} has non-numeric dtype {a.dtype}")
    t = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in arrays.items() if k != "class_names"}
    names = tuple(str(c) for c in arrays["class_names"]) if "class_names" in arrays else None
    if dev_size is None:
        dev_size = max(1, len(t["y_train"]) // 10)
    return make_splits(
        path.stem, t["x_train"], t["y_train"], t["x_test"], t["y_test"],
        x_dev=t.get("x_dev"), y_dev=t.get("y_dev"), dev_size=dev_size,
        num_classes=len(names) if names else None, class_names=names,
        train_size=train_size, test_size=test_size, split_seed=split_seed,
    )
