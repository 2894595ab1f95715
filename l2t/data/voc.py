"""Pascal VOC (2007 or 2012) segmentation masks and detection boxes, read from a folder.

Layout (as in VOCtrainval_*.tar): a ``VOC20xx`` folder holding ``JPEGImages/<id>.jpg``,
``SegmentationClass/<id>.png`` (palette PNGs whose pixel values are class indices 0..20, 255 =
void, to be ignored), ``Annotations/<id>.xml`` (``<object>`` elements with ``<name>``,
``<difficult>`` and ``<bndbox>`` ``xmin ymin xmax ymax`` in 1-based, inclusive pixels) and split
lists ``ImageSets/{Segmentation,Main}/<split>.txt`` (one image id per line). ``root`` may be that
folder, or the ``VOCdevkit`` folder (or its parent) holding exactly one ``VOC20xx`` folder.

Every image is resized to ``size x size`` (no letterbox): images with Pillow's bilinear filter,
masks with nearest-neighbour, and boxes are scaled to match. The XML is parsed with
``xml.etree.ElementTree``, which expands no external entities and runs no code.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from l2t.errors import L2TError

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
IGNORE_INDEX = 255

_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def check_size(size: object) -> int:
    """``size`` if it is a positive int (not a bool), else :class:`L2TError`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise L2TError(f"image size must be a positive integer, got {size!r}")
    return size


def check_relative(name: str, listed_in: Path) -> str:
    """A file name taken from a user's list or JSON must stay inside its folder."""
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise L2TError(f"{listed_in}: bad file name or image id {name!r}")
    return name


def open_image(path: Path, what: str = "image", rgb: bool = True) -> Image.Image:
    """Decode ``path`` with Pillow (as RGB, or in its own mode); a missing or undecodable file
    raises :class:`L2TError`."""
    if not path.is_file():
        raise L2TError(f"missing {what} file {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB") if rgb else im.copy()
    except _PIL_ERRORS as e:
        raise L2TError(f"cannot decode {what} file {path}: {e}") from None


def resize_rgb(im: Image.Image, size: int) -> torch.Tensor:
    """An RGB image as ``(3, size, size)`` uint8, resized with Pillow's bilinear filter."""
    arr = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def find_voc_root(root: str | Path) -> Path:
    """``root`` itself, or the one ``VOC20xx`` folder in ``root`` or ``root/VOCdevkit``."""
    root = Path(root)
    if not root.is_dir():
        raise L2TError(f"no such VOC folder: {root}")
    if (root / "JPEGImages").is_dir():
        return root
    found = sorted(p for base in (root, root / "VOCdevkit") if base.is_dir()
                   for p in base.glob("VOC*") if (p / "JPEGImages").is_dir())
    if len(found) == 1:
        return found[0]
    if found:
        raise L2TError(f"{root} holds several VOC folders ({', '.join(p.name for p in found)}); pass one of them")
    raise L2TError(f"no VOC data in {root} (expected JPEGImages/ in it or in VOCdevkit/VOC20xx/)")


def read_split_list(folder: Path, task: str, split: str) -> list[str]:
    """Image ids of ``ImageSets/<task>/<split>.txt`` (first token of each non-blank line)."""
    path = folder / "ImageSets" / task / f"{check_relative(split, folder)}.txt"
    if not path.is_file():
        raise L2TError(f"missing VOC split list {path}")
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise L2TError(f"cannot read VOC split list {path}: {e}") from None
    ids = [check_relative(line.split()[0], path) for line in lines if line.strip()]
    if not ids:
        raise L2TError(f"VOC split list {path} lists no images")
    return ids


def read_voc_segmentation(root: str | Path, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, size, size)`` uint8 and masks ``(N, size, size)`` long, values in 0..20 or 255
    (void), for the ids of ``ImageSets/Segmentation/<split>.txt``, in the list's order."""
    size, folder = check_size(size), find_voc_root(root)
    ids = read_split_list(folder, "Segmentation", split)
    images = torch.empty((len(ids), 3, size, size), dtype=torch.uint8)
    masks = torch.empty((len(ids), size, size), dtype=torch.long)
    for i, image_id in enumerate(ids):
        image = open_image(folder / "JPEGImages" / f"{image_id}.jpg")
        mask_path = folder / "SegmentationClass" / f"{image_id}.png"
        mask = open_image(mask_path, "mask", rgb=False)
        if mask.mode not in ("P", "L"):
            raise L2TError(f"mask {mask_path} must be a palette (P) PNG of class indices, not mode {mask.mode}")
        if mask.size != image.size:
            raise L2TError(f"mask {mask_path} is {mask.size[0]}x{mask.size[1]} but its image is "
                           f"{image.size[0]}x{image.size[1]}")
        values = np.unique(np.asarray(mask))
        bad = values[(values >= len(VOC_CLASSES)) & (values != IGNORE_INDEX)]
        if bad.size:
            raise L2TError(f"mask {mask_path} has values {bad.tolist()[:5]}; expected 0..20 or 255")
        images[i] = resize_rgb(image, size)
        masks[i] = torch.from_numpy(np.asarray(mask.resize((size, size), Image.Resampling.NEAREST)).astype(np.int64))
    return images, masks


def _number(obj: ET.Element, tag: str, path: Path) -> float:
    text = obj.findtext(tag)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise L2TError(f"annotation {path}: <{tag}> must be a number, got {text!r}")
    return value


def read_voc_annotation(path: Path, width: int, height: int, size: int, keep_difficult: bool = False):
    """Boxes ``(k, 4)`` float32 xyxy in the resized image, labels ``(k,)`` long and the ``difficult``
    flags ``(k,)`` bool (all false with ``keep_difficult``) from one XML file."""
    if not path.is_file():
        raise L2TError(f"missing VOC annotation file {path}")
    try:
        tree = ET.fromstring(path.read_bytes())
    except (OSError, ET.ParseError) as e:
        raise L2TError(f"cannot parse VOC annotation {path}: {e}") from None
    boxes, labels, ignore = [], [], []
    for obj in tree.findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES[1:]:
            raise L2TError(f"annotation {path}: unknown VOC class {name!r}")
        difficult = (obj.findtext("difficult") or "0").strip()
        if difficult not in ("0", "1"):
            raise L2TError(f"annotation {path}: <difficult> must be 0 or 1, got {difficult!r}")
        box = obj.find("bndbox")
        if box is None:
            raise L2TError(f"annotation {path}: object {name!r} has no <bndbox>")
        x0, y0, x1, y1 = (_number(box, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x1 < x0 or y1 < y0:
            raise L2TError(f"annotation {path}: box {[x0, y0, x1, y1]} has xmax < xmin or ymax < ymin")
        # 1-based inclusive pixels -> 0-based continuous edges, scaled, clamped to the image
        sx, sy = size / width, size / height
        boxes.append([min(max(v, 0.0), size) for v in ((x0 - 1) * sx, (y0 - 1) * sy, x1 * sx, y1 * sy)])
        labels.append(VOC_CLASSES.index(name))
        ignore.append(difficult == "1" and not keep_difficult)
    return (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.long),
            torch.tensor(ignore, dtype=torch.bool))


def read_voc_detection(
    root: str | Path, split: str, size: int, keep_difficult: bool = False
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Images ``(N, 3, size, size)`` uint8 and one ``{"boxes": (k, 4) float32 xyxy, "labels": (k,)
    long in 1..20, "ignore": (k,) bool}`` per image, for the ids of ``ImageSets/Main/<split>.txt``, in
    the list's order. ``ignore`` flags the ``difficult`` objects (none with ``keep_difficult``): no
    detector is trained on them and the evaluation ignores them, as VOC's protocol does (by
    ``COCOeval``'s crowd rule, which matches by the intersection over the detection's area). Boxes are
    scaled by the decoded image's size (the XML's ``<size>`` is not used)."""
    size, folder = check_size(size), find_voc_root(root)
    ids = read_split_list(folder, "Main", split)
    images = torch.empty((len(ids), 3, size, size), dtype=torch.uint8)
    targets = []
    for i, image_id in enumerate(ids):
        image = open_image(folder / "JPEGImages" / f"{image_id}.jpg")
        images[i] = resize_rgb(image, size)
        boxes, labels, ignore = read_voc_annotation(folder / "Annotations" / f"{image_id}.xml", *image.size, size,
                                                    keep_difficult)
        targets.append({"boxes": boxes, "labels": labels, "ignore": ignore})
    return images, targets
