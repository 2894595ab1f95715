"""Dense-prediction data: composite canvases of real items, the grid encoding of boxes, and splits.

**Composites** (``fashion-seg``, ``fashion-det``, and the embedded ``digits-seg``,
``digits-det``). Each canvas holds 2–4 items (Fashion-MNIST garments, or scikit-learn digits)
resized with Pillow to a random side and placed at random on a black canvas; an item's pixels
above ``threshold`` of its maximum are its mask, they overwrite the canvas and the class mask
(``1 + its class``; 0 = background), and its box is the extent of those pixels. A placement is
drawn again (up to 50 times, then the canvas has fewer items) when its box overlaps another's by
more than ``max_iou``, or when its box centre falls in a grid cell already holding one, so every
object has a cell of its own. Everything is drawn from ``numpy.random.Generator(PCG64)`` seeded
by ``(seed, split)``, so a canvas never changes between runs or machines. Train and dev canvases
draw items from disjoint parts of the items' training split (the last sixth is dev's), test
canvases from the items' test split: no item appears in two splits.

**Boxes on a grid** (:func:`encode_boxes`). A detector predicts, at every cell of the
``stride``-pixel grid, one of ``1 + K`` classes (0 = background) and, at object cells, the box
``(dx, dy, log w/stride, log h/stride)``, with ``(dx, dy)`` the box centre's offset inside its cell.
An object's cell is the one holding its box centre; of two objects in one cell the larger keeps it
(the composites never have two; a VOC or COCO image can, and then the smaller object is only in
the evaluation, where it counts as missed). An object to be ignored (a COCO crowd region, a VOC
``difficult`` object) marks :data:`IGNORED_CELL` its own cell and every cell whose centre lies inside
its box, masked out of every loss, unless a real object holds the cell, and goes to the evaluation
as a region that counts neither way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from l2t.data.examples import TensorExamples
from l2t.data.splits import DataSplits
from l2t.errors import L2TError
from l2t.types import DetectionTask, SegmentationTask

IGNORE = 255  # a segmentation mask's void label (Pascal VOC's)
IGNORED_CELL = -1  # a detection grid cell no loss is taken on (never a class: COCO-format sets can have 255+)


@dataclass(frozen=True)
class Composites:
    """Canvases ``(N, 1, S, S)`` in [0, 1], class masks ``(N, S, S)`` and per canvas the boxes
    ``(k, 4)`` (xyxy, pixels) and their labels ``(k,)`` in ``1 … K``."""

    images: torch.Tensor
    masks: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def compose(items: np.ndarray, item_labels: np.ndarray, count: int, *, canvas: int, seed: tuple[int, ...], side: tuple[int, int],
            per_canvas: tuple[int, int] = (2, 4), threshold: float = 0.25, max_iou: float = 0.2,
            stride: int = 4) -> Composites:
    """``count`` canvases of ``canvas`` pixels from ``items (M, h, w)`` uint8 and their classes
    ``(M,)`` (see the module documentation); items are resized to a side in ``side`` (inclusive)."""
    from PIL import Image

    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(seed))))
    images = np.zeros((count, canvas, canvas), np.uint8)
    masks = np.zeros((count, canvas, canvas), np.int64)
    all_boxes, all_labels = [], []
    for n in range(count):
        boxes, labels, cells = [], [], set()
        for _ in range(int(rng.integers(per_canvas[0], per_canvas[1] + 1))):
            for _attempt in range(50):
                k = int(rng.integers(len(items)))
                s = int(rng.integers(side[0], side[1] + 1))
                item = np.asarray(Image.fromarray(items[k]).resize((s, s), Image.BILINEAR))
                on = item > threshold * max(int(item.max()), 1)
                if not on.any():
                    continue
                x0, y0 = (int(v) for v in rng.integers(0, canvas - s + 1, size=2))
                rows, cols = np.nonzero(on)
                box = np.array([x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1], np.float64)
                cell = (int((box[1] + box[3]) / 2 // stride), int((box[0] + box[2]) / 2 // stride))
                if cell in cells or any(_iou(box, b) > max_iou for b in boxes):
                    continue
                region = (slice(y0, y0 + s), slice(x0, x0 + s))
                images[n][region] = np.where(on, item, images[n][region])
                masks[n][region] = np.where(on, 1 + int(item_labels[k]), masks[n][region])
                boxes.append(box)
                labels.append(1 + int(item_labels[k]))
                cells.add(cell)
                break
        all_boxes.append(torch.tensor(np.array(boxes).reshape(-1, 4), dtype=torch.float32))
        all_labels.append(torch.tensor(labels, dtype=torch.long))
    return Composites(torch.from_numpy(images).unsqueeze(1).float() / 255.0, torch.from_numpy(masks), all_boxes, all_labels)


def encode_boxes(boxes: torch.Tensor, labels: torch.Tensor, size: tuple[int, int], stride: int,
                 ignore: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's boxes ``(k, 4)`` (xyxy, pixels) and labels ``(k,)`` -> cell classes ``(Gh, Gw)``
    (0 = background) and box targets ``(Gh, Gw, 4)`` (zero at background cells). An object flagged
    in ``ignore`` (a crowd region, a difficult object) marks :data:`IGNORED_CELL` its own cell and
    every cell whose centre lies inside its box, unless a real object holds the cell: no loss is
    taken there, so a crowd of people is not taught as background."""
    gh, gw = size[0] // stride, size[1] // stride
    cls = torch.zeros(gh, gw, dtype=torch.long)
    target = torch.zeros(gh, gw, 4)
    area = torch.zeros(gh, gw)
    ignored = []
    flags = [False] * len(labels) if ignore is None else ignore.tolist()
    for (x0, y0, x1, y1), label, skip in zip(boxes.tolist(), labels.tolist(), flags):
        w, h = x1 - x0, y1 - y0
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
        i, j = min(max(int(cy), 0), gh - 1), min(max(int(cx), 0), gw - 1)
        if skip:  # its own cell, and every cell whose centre lies inside its box
            ignored.append((i, j))
            rows = range(max(0, int(np.ceil(y0 / stride - 0.5))), min(gh, int(np.floor(y1 / stride - 0.5)) + 1))
            cols = range(max(0, int(np.ceil(x0 / stride - 0.5))), min(gw, int(np.floor(x1 / stride - 0.5)) + 1))
            ignored.extend((r, c) for r in rows for c in cols)
            continue
        if cls[i, j] and area[i, j] >= w * h:
            continue  # the larger object keeps the cell
        cls[i, j], area[i, j] = label, w * h
        target[i, j] = torch.tensor([cx - j, cy - i, np.log(w / stride), np.log(h / stride)])
    for i, j in ignored:
        if cls[i, j] == 0:
            cls[i, j] = IGNORED_CELL
    return cls, target


def check_stride(name: str, size: int, stride: int) -> None:
    """A detector halves its resolution ``log2(stride)`` times: the stride must be a power of two
    that divides the image side, or the grid of its outputs and of the targets would differ."""
    if not isinstance(stride, int) or stride < 1 or stride & (stride - 1) or size % stride or size < stride:
        raise L2TError(f"{name}: the grid stride must be a power of two dividing the image side {size}, got {stride}")


def dense_splits(name: str, task: SegmentationTask | DetectionTask, splits: dict[str, tuple]) -> DataSplits:
    """``splits``: ``train``/``dev``/``test`` -> ``(images (N, C, H, W) float, masks (N, H, W))``
    for segmentation, or ``(images, boxes, labels[, ignore])`` for detection (``ignore``: per image,
    ``(k,)`` bool flags of the objects no loss is taken on and the evaluation ignores). Images are standardised by the
    training split's mean and std per channel; detection targets are encoded on the task's grid,
    and the true boxes are kept for the evaluation (``DataSplits.objects``)."""
    x_train = splits["train"][0]
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)[0]
    std = x_train.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-8)
    examples, objects = {}, {}
    for split, (x, *targets) in splits.items():
        if len(x) == 0:
            raise L2TError(f"{name}: the {split} split is empty")
        if tuple(x.shape[1:]) != task.input_shape:
            raise L2TError(f"{name}: {split} images have shape {tuple(x.shape[1:])}, expected {task.input_shape}")
        x = (x.float() - mean) / std
        if isinstance(task, SegmentationTask):
            (y,) = targets
            bad = (y != task.ignore_index) & ((y < 0) | (y >= task.num_classes))
            if bad.any():
                raise L2TError(f"{name}: {split} masks hold labels outside [0, {task.num_classes}) "
                               f"(and not the ignore label {task.ignore_index}): {int(y[bad][0])}")
            examples[split] = TensorExamples(x, y.long(), ignore_index=task.ignore_index)
        else:
            boxes, labels, *flags = targets
            ignore = flags[0] if flags else [torch.zeros(len(lab), dtype=torch.bool) for lab in labels]
            if not len(boxes) == len(labels) == len(ignore) == len(x) or any(
                    not len(b) == len(lab) == len(ig) for b, lab, ig in zip(boxes, labels, ignore)):
                raise L2TError(f"{name}: {split} has images, boxes, labels and ignore flags of different counts")
            check_stride(name, task.input_shape[1], task.stride)
            check_stride(name, task.input_shape[2], task.stride)
            bad = [int(lab.min()) for lab in labels if len(lab) and (lab.min() < 1 or lab.max() >= task.num_classes)]
            if bad:
                raise L2TError(f"{name}: {split} has box labels outside [1, {task.num_classes})")
            enc = [encode_boxes(b, lab, task.input_shape[1:], task.stride, ig) for b, lab, ig in zip(boxes, labels, ignore)]
            y = torch.stack([c for c, _ in enc])
            # a mask only where some object is ignored, so that other data sets' batches stay as they were
            examples[split] = TensorExamples(x, y, aux=torch.stack([t for _, t in enc]),
                                             ignore_index=IGNORED_CELL if any(ig.any() for ig in ignore) else None)
            objects[split] = list(zip(boxes, labels, ignore))
    return DataSplits(name, examples["train"], examples["dev"], examples["test"], task, objects=objects or None)


#: composite sources: canvas size, items' side range (as fractions of the canvas) and split sizes by default
SOURCES = {
    "fashion": {"canvas": 64, "side": (0.28, 0.47), "sizes": (4000, 500, 1000)},
    "digits": {"canvas": 32, "side": (0.28, 0.44), "sizes": (600, 150, 200)},
}


def load_composites(source: str, kind: str, items: dict[str, tuple[np.ndarray, np.ndarray]], item_classes: tuple[str, ...],
                    *, train_size: int | None = None, dev_size: int | None = None, test_size: int | None = None,
                    split_seed: int = 0, canvas: int | None = None, stride: int = 4) -> DataSplits:
    """``items``: ``train`` and ``test`` -> ``(images (M, h, w) uint8, classes (M,))``; see the
    module documentation. ``kind``: ``segmentation`` or ``detection``."""
    spec = SOURCES[source]
    canvas = canvas or spec["canvas"]
    if not isinstance(canvas, int) or canvas % 4 or canvas < 16:
        raise L2TError(f"{source}-{kind[:3]}: canvas {canvas} must be a multiple of 4 and at least 16 pixels")
    check_stride(f"{source}-{kind[:3]}", canvas, stride)
    side = tuple(round(f * canvas) for f in spec["side"])
    sizes = [s if s is not None else d for s, d in zip((train_size, dev_size, test_size), spec["sizes"])]
    if min(sizes) < 1:
        raise L2TError(f"{source}-{kind[:3]}: split sizes must be positive, got {sizes}")
    x_tr, y_tr = items["train"]
    cut = len(x_tr) * 5 // 6
    pools = {"train": (x_tr[:cut], y_tr[:cut]), "dev": (x_tr[cut:], y_tr[cut:]), "test": items["test"]}
    names = ("background",) + tuple(item_classes)
    task = (SegmentationTask((1, canvas, canvas), len(names), names, IGNORE) if kind == "segmentation"
            else DetectionTask((1, canvas, canvas), len(names), names, stride))
    splits = {}
    for tag, (split, n) in enumerate(zip(("train", "dev", "test"), sizes)):
        c = compose(*pools[split], n, canvas=canvas, seed=(split_seed, tag), side=side, stride=stride)
        splits[split] = (c.images, c.masks) if kind == "segmentation" else (c.images, c.boxes, c.labels)
    return dense_splits(f"{source}-{'seg' if kind == 'segmentation' else 'det'}", task, splits)


def _hold_out(name: str, n: int, dev_size: int, train_size: int | None, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the dev split held out of a training list, and of the training split left."""
    if not 0 < dev_size < n:
        raise L2TError(f"{name}: dev_size {dev_size} must be in [1, {n - 1}] ({n} training images)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    train = perm[dev_size:]
    if train_size is not None:
        if not 0 < train_size <= len(train):
            raise L2TError(f"{name}: train_size {train_size} must be in [1, {len(train)}]")
        train = train[:train_size]
    return perm[:dev_size], train


def _image_splits(name: str, kind: str, task, train, test, dev_size: int, train_size, test_size,
                  split_seed: int) -> DataSplits:
    """``train``/``test``: ``(images uint8 (N, 3, S, S), masks)``, ``(images, [{"boxes", "labels",
    "ignore"}])``, or a reader with ``len()`` and ``take(positions) -> (images, targets)`` that
    decodes only the images a split uses (:class:`l2t.data.coco.CocoDetection`); the dev split is
    held out of train."""
    n_train = len(train) if hasattr(train, "take") else len(train[0])
    n_all_test = len(test) if hasattr(test, "take") else len(test[0])
    dev_idx, train_idx = _hold_out(name, n_train, dev_size, train_size, split_seed)
    n_test = n_all_test if test_size is None else min(test_size, n_all_test)

    def pick(split, idx):
        if hasattr(split, "take"):
            images, targets = split.take(idx.tolist())
        else:
            images = split[0][idx]
            if kind == "segmentation":
                return images.float() / 255.0, split[1][idx]
            targets = [split[1][i] for i in idx.tolist()]
        return (images.float() / 255.0, [t["boxes"] for t in targets], [t["labels"] for t in targets],
                [t["ignore"] for t in targets])

    return dense_splits(name, task, {"train": pick(train, train_idx), "dev": pick(train, dev_idx),
                                     "test": pick(test, torch.arange(n_test))})


def load_voc(root, kind: str, *, size: int = 128, dev_size: int | None = None, train_size: int | None = None,
             test_size: int | None = None, split_seed: int = 0, stride: int = 4) -> DataSplits:
    """Pascal VOC from a user's folder (:mod:`l2t.data.voc`): the ``train`` list, less a dev split
    held out of it (300 images, at most a fifth, by default), and the ``val`` list as the test split; images resized
    to ``size``."""
    from l2t.data.voc import IGNORE_INDEX, VOC_CLASSES, read_voc_detection, read_voc_segmentation

    read = read_voc_segmentation if kind == "segmentation" else read_voc_detection
    train, test = read(root, "train", size), read(root, "val", size)
    task = (SegmentationTask((3, size, size), len(VOC_CLASSES), VOC_CLASSES, IGNORE_INDEX) if kind == "segmentation"
            else DetectionTask((3, size, size), len(VOC_CLASSES), VOC_CLASSES, stride))
    dev = min(300, max(1, len(train[0]) // 5)) if dev_size is None else dev_size
    return _image_splits(f"voc-{kind[:3]}", kind, task, train, test, dev, train_size, test_size, split_seed)


def load_coco(root, *, size: int = 128, dev_size: int | None = None, train_size: int | None = None,
              test_size: int | None = None, split_seed: int = 0, stride: int = 4, max_images: int | None = None) -> DataSplits:
    """COCO detection from a user's folder in the layout of the 2017 release: ``train2017/``,
    ``val2017/`` and ``annotations/instances_{train,val}2017.json``. ``val2017`` is the test split;
    the dev split is held out of ``train2017`` (``max_images`` keeps the first images of each). Only
    the images of the splits are decoded: ``train_size`` and ``test_size`` bound the time and
    memory, not only the split."""
    from pathlib import Path

    from l2t.data.coco import CocoDetection

    root = Path(root)
    tr = CocoDetection(root / "train2017", root / "annotations" / "instances_train2017.json", size, max_images)
    te = CocoDetection(root / "val2017", root / "annotations" / "instances_val2017.json", size, max_images)
    if tr.class_names != te.class_names:
        raise L2TError(f"{root}: train2017 and val2017 annotations list different categories")
    task = DetectionTask((3, size, size), len(tr.class_names), tr.class_names, stride)
    dev = min(500, max(1, len(tr) // 5)) if dev_size is None else dev_size
    return _image_splits("coco-det", "detection", task, tr, te, dev, train_size, test_size, split_seed)
