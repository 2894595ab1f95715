"""CIFAR-10 and CIFAR-100 in their python pickle format, read from a folder.

The format is a pickle of a dict holding a uint8 ``data`` array ``(N, 3072)`` (1024 red, 1024
green, 1024 blue values of a 32x32 image, row-major) and a list of labels (``labels`` for
CIFAR-10, ``fine_labels`` for CIFAR-100), written by Python 2. A pickle can run arbitrary code
when loaded, so these files are read by an unpickler that refuses every global except the numpy
names an array needs and ``_codecs.encode`` (text to bytes: how Python 3 pickles ``bytes`` at
protocol 2, as in re-saved copies): a tampered file raises an error instead of executing.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from l2t.data.splits import DataSplits, make_splits
from l2t.errors import L2TError

LAYOUTS = {
    10: {"folder": "cifar-10-batches-py", "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
         "meta": "batches.meta", "names_key": "label_names", "labels_key": "labels"},
    100: {"folder": "cifar-100-python", "train": ["train"], "test": ["test"],
          "meta": "meta", "names_key": "fine_label_names", "labels_key": "fine_labels"},
}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core" if hasattr(np, "_core") else "numpy.core", 1)
        return super().find_class(module, name)


def read_cifar_pickle(path: str | Path) -> dict:
    """One CIFAR batch or meta file as a dict with ``str`` keys; only numpy arrays may be built."""
    path = Path(path)
    if not path.is_file():
        raise L2TError(f"missing CIFAR file {path}")
    try:
        obj = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise L2TError(f"corrupt or unsafe CIFAR file {path}: {e}") from None
    if not isinstance(obj, dict):
        raise L2TError(f"corrupt CIFAR file {path}: expected a dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _read_split(folder: Path, files: list[str], labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in files:
        d = read_cifar_pickle(folder / name)
        if "data" not in d or labels_key not in d:
            raise L2TError(f"corrupt CIFAR file {folder / name}: needs 'data' and '{labels_key}'")
        data = np.asarray(d["data"])
        try:
            labels = np.asarray(d[labels_key], dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as e:
            raise L2TError(f"corrupt CIFAR file {folder / name}: labels are not integers ({e})") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise L2TError(f"corrupt CIFAR file {folder / name}: data {data.shape}, {len(labels)} labels")
        if data.dtype.kind not in "iu" or (data.size and (data.min() < 0 or data.max() > 255)):
            raise L2TError(f"corrupt CIFAR file {folder / name}: pixels must be integers in 0..255, got {data.dtype}"
                           + (f" in [{data.min()}, {data.max()}]" if data.dtype.kind in "iuf" and data.size else ""))
        xs.append(data.astype(np.uint8).reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def find_cifar_folder(root: str | Path, classes: int) -> Path:
    """``root`` itself or ``root/cifar-10-batches-py`` (``cifar-100-python``)."""
    root, layout = Path(root), LAYOUTS[classes]
    for candidate in (root, root / layout["folder"]):
        if (candidate / layout["train"][0]).is_file():
            return candidate
    raise L2TError(f"no CIFAR-{classes} python files in {root} (expected {layout['folder']}/{layout['train'][0]})")


def load_cifar(
    root: str | Path,
    classes: int = 10,
    *,
    dev_size: int = 5000,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """Images ``(N, 3, 32, 32)`` in [0, 1], then standardised per channel on the training split."""
    if classes not in LAYOUTS:
        raise L2TError(f"CIFAR has 10 or 100 classes, not {classes}")
    layout = LAYOUTS[classes]
    folder = find_cifar_folder(root, classes)
    x_train, y_train = _read_split(folder, layout["train"], layout["labels_key"])
    x_test, y_test = _read_split(folder, layout["test"], layout["labels_key"])
    names = None
    if (folder / layout["meta"]).is_file():
        meta = read_cifar_pickle(folder / layout["meta"])
        raw = meta.get(layout["names_key"])
        if raw is not None:
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw)
    to_t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    return make_splits(
        f"cifar{classes}", to_t(x_train), torch.from_numpy(y_train), to_t(x_test), torch.from_numpy(y_test),
        dev_size=dev_size, num_classes=classes, class_names=names, train_size=train_size, test_size=test_size,
        split_seed=split_seed, per_channel=True,
    )
