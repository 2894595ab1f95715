"""Data sets by name or path: ``digits`` (embedded), ``toy-reverse`` (generated sequences),
``fashion-seg``/``fashion-det`` and ``digits-seg``/``digits-det`` (generated composites for dense
prediction),
``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``trans-de-en`` and ``multi30k``
(parallel text), a folder of IDX files or of CIFAR python files, or a ``.npz`` file. ``load_data``
is the one entry point the CLI and configs use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from l2t.data.augment import AUGMENTATIONS, crop_flip, get_augment
from l2t.data.batches import BatchSchedule, derive_seed
from l2t.data.cifar import LAYOUTS as CIFAR_LAYOUTS
from l2t.data.cifar import load_cifar, read_cifar_pickle
from l2t.data.digits import load_digits
from l2t.data.examples import Examples, SequencePairs, TensorExamples
from l2t.data.download import download
from l2t.data.dense import load_coco, load_composites, load_voc
from l2t.data.idx import FASHION_CLASSES, find_idx_file, load_idx_folder, read_idx
from l2t.data.idx import FILES as IDX_FILES
from l2t.data.npz import load_npz
from l2t.data.parallel import Tokenizer, load_parallel
from l2t.data.splits import DataSplits, make_splits
from l2t.data.toy import load_reverse
from l2t.errors import L2TError
from l2t.registry import Registry

DATASETS: Registry[DataSplits] = Registry("data set")

# Where named data sets are looked for: $L2T_DATA_DIR/<name>, then the system location.
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}  # trans-de-en: l2t.data.parallel.DICTIONARY


def data_root(name: str) -> Path:
    env = os.environ.get("L2T_DATA_DIR")
    if env and (Path(env) / name).is_dir():
        return Path(env) / name
    if name in SYSTEM_DIRS and SYSTEM_DIRS[name].is_dir():
        return SYSTEM_DIRS[name]
    return Path(env or Path.home() / ".cache" / "l2t") / name


def _root_or_download(name: str, fetch: bool) -> Path:
    root = data_root(name)
    if fetch:
        download(name, root)
    if not root.is_dir():
        hint = " (install it with `make data`)" if name in SYSTEM_DIRS else ""
        raise L2TError(f"data set {name!r} not found at {root}{hint}; pass --data FOLDER, or --download")
    return root


def _named_idx(name: str, class_names: tuple[str, ...] | None):
    def factory(download: bool = False, **kw: Any) -> DataSplits:
        root = _root_or_download(name, download)
        kw = {k: v for k, v in kw.items() if v is not None}
        return load_idx_folder(root, name=name, class_names=class_names, **kw)

    return factory


def _named_cifar(classes: int):
    def factory(download: bool = False, **kw: Any) -> DataSplits:
        root = _root_or_download(f"cifar{classes}", download)
        return load_cifar(root, classes, **{k: v for k, v in kw.items() if v is not None})

    return factory


@DATASETS.register("digits", doc="scikit-learn's 8x8 digits, embedded: 1000 train / 300 dev / 497 test")
def _digits(download: bool = False, **kw: Any) -> DataSplits:
    return load_digits(**{k: v for k, v in kw.items() if v is not None})


@DATASETS.register("toy-reverse", doc="generated: reverse strings of 2-7 tokens (a padded, masked seq2seq task)")
def _reverse(download: bool = False, **kw: Any) -> DataSplits:
    return load_reverse(**kw)


@DATASETS.register("trans-de-en", doc="German-English sentence pairs from Debian's trans-de-en dictionary (make data)")
def _trans_de_en(download: bool = False, **kw: Any) -> DataSplits:
    return load_parallel("trans-de-en", **{k: v for k, v in kw.items() if k != "split_seed"})


@DATASETS.register("multi30k", doc="Multi30k task 1 German-English captions from $L2T_DATA_DIR/multi30k (--download; "
                                     "29,000 / 1,014 / 1,000 pairs, test = test_2016_flickr)")
def _multi30k(download: bool = False, **kw: Any) -> DataSplits:
    root = _root_or_download("multi30k", download)
    return load_parallel(str(root), **{k: v for k, v in kw.items() if k != "split_seed"})


def _fashion_items(download: bool) -> dict:
    root = _root_or_download("fashion-mnist", download)
    read = lambda stem: read_idx(find_idx_file(root, stem))  # noqa: E731
    return {split: (read(IDX_FILES[f"x_{split}"]), read(IDX_FILES[f"y_{split}"])) for split in ("train", "test")}


def _digits_items() -> dict:
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    x = (d.images * (255 / 16)).round().astype("uint8")
    return {"train": (x[:1497], d.target[:1497]), "test": (x[1497:], d.target[1497:])}


def _composites(source: str, kind: str):
    def factory(download: bool = False, **kw: Any) -> DataSplits:
        if source == "fashion":
            items, names = _fashion_items(download), FASHION_CLASSES
        else:
            items, names = _digits_items(), tuple(str(i) for i in range(10))
        return load_composites(source, kind, items, names, **{k: v for k, v in kw.items() if v is not None})

    return factory


for _source, _what in (("fashion", "Fashion-MNIST garments (make data)"), ("digits", "digits (embedded)")):
    DATASETS.register(f"{_source}-seg", doc=f"generated: canvases of 2-4 {_what}, a class per pixel (0 = background)")(
        _composites(_source, "segmentation"))
    DATASETS.register(f"{_source}-det", doc=f"generated: canvases of 2-4 {_what}, their boxes on a grid")(
        _composites(_source, "detection"))


def _user_folder(name: str, options_root: str | None, fetch: bool) -> Path:
    """A user's copy: ``data.options.root``, else ``$L2T_DATA_DIR/<name>`` (``--download`` fetches VOC there)."""
    if options_root is not None:
        if fetch:
            download(name, Path(options_root))
        if not Path(options_root).is_dir():
            raise L2TError(f"{name}: no such folder {options_root}")
        return Path(options_root)
    return _root_or_download(name, fetch)


def _voc(kind: str):
    def factory(download: bool = False, root: str | None = None, **kw: Any) -> DataSplits:
        return load_voc(_user_folder("voc", root, download), kind, **{k: v for k, v in kw.items() if v is not None})

    return factory


@DATASETS.register("coco-det", doc="COCO 2017 detection from a user's folder (data.options.root, or $L2T_DATA_DIR/coco)")
def _coco(download: bool = False, root: str | None = None, **kw: Any) -> DataSplits:
    if download:
        raise L2TError("coco-det has no --download (19 GB): fetch train2017, val2017 and the annotations from cocodataset.org")
    return load_coco(_user_folder("coco", root, False), **{k: v for k, v in kw.items() if v is not None})


DATASETS.register("voc-seg", doc="Pascal VOC segmentation from a user's folder (data.options.root, or $L2T_DATA_DIR/voc; --download)")(
    _voc("segmentation"))
DATASETS.register("voc-det", doc="Pascal VOC detection from a user's folder (data.options.root, or $L2T_DATA_DIR/voc; --download)")(
    _voc("detection"))


DATASETS.register("fashion-mnist", doc="Fashion-MNIST IDX files (make data installs Debian's copy)")(
    _named_idx("fashion-mnist", FASHION_CLASSES))
DATASETS.register("mnist", doc="MNIST IDX files from $L2T_DATA_DIR/mnist (--download fetches them)")(_named_idx("mnist", None))
DATASETS.register("cifar10", doc="CIFAR-10 python batches from $L2T_DATA_DIR/cifar10 (--download)")(_named_cifar(10))
DATASETS.register("cifar100", doc="CIFAR-100 python batches from $L2T_DATA_DIR/cifar100 (--download)")(_named_cifar(100))

#: augmentation used when the config does not say (CIFAR's standard crop and flip)
DEFAULT_AUGMENT = {"cifar10": "crop_flip", "cifar100": "crop_flip"}


def load_data(
    name_or_path: str,
    *,
    dev_size: int | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int = 0,
    download: bool = False,
    options: dict | None = None,
) -> DataSplits:
    """Load a registered data set by name (``download`` fetches it first, if it can be
    fetched; ``options`` are its loader's keyword arguments), or a user's folder of IDX or CIFAR
    files, or ``.npz`` file."""
    kw = dict(dev_size=dev_size, train_size=train_size, test_size=test_size, split_seed=split_seed)
    if name_or_path in DATASETS:
        try:
            return DATASETS.create(name_or_path, download=download, **kw, **(options or {}))
        except TypeError as e:
            raise L2TError(f"bad data.options for {name_or_path!r}: {e}") from None
    path = Path(name_or_path)
    options = dict(options or {})
    if path.suffix == ".tsv" or (path.is_dir() and any(path.glob("train.*")) and not any(path.glob("train-*"))):
        return load_parallel(str(path), **{k: v for k, v in kw.items() if k != "split_seed"}, **options)  # parallel text
    if options:
        raise L2TError(f"data.options {options} apply to named data sets and parallel text only, not to {name_or_path!r}")
    if path.suffix == ".npz":
        return load_npz(path, **kw)
    if path.is_dir():
        present = {kw_: v for kw_, v in kw.items() if v is not None}
        for classes, layout in CIFAR_LAYOUTS.items():
            if (path / layout["train"][0]).is_file() or (path / layout["folder"]).is_dir():
                return load_cifar(path, classes, **present)
        return load_idx_folder(path, **present)
    if path.exists():
        raise L2TError(f"cannot read data from {path}: expected a folder of IDX files or a .npz file")
    raise L2TError(
        f"unknown data set {name_or_path!r}: not a known name ({', '.join(DATASETS.list())}) "
        f"nor an existing folder or .npz file"
    )


__all__ = [
    "AUGMENTATIONS", "BatchSchedule", "DATASETS", "DEFAULT_AUGMENT", "DataSplits", "Examples", "FASHION_CLASSES",
    "SequencePairs", "TensorExamples", "Tokenizer", "load_parallel", "crop_flip", "data_root", "derive_seed", "download", "get_augment", "load_cifar",
    "load_data", "load_digits", "load_idx_folder", "load_npz", "load_reverse", "make_splits", "read_cifar_pickle",
    "read_idx",
]
