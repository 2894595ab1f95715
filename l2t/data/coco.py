"""COCO object detection: a folder of images and an ``instances_*.json`` file, read with ``json``.

The JSON (COCO's "instances" format) is an object with ``images`` (``{"id", "file_name", "width",
"height"}``, ``file_name`` relative to the images folder), ``annotations`` (``{"image_id",
"category_id", "bbox": [x, y, w, h], "iscrowd", "area"}``, ``bbox`` in 0-based continuous pixels
of the original image) and ``categories`` (``{"id", "name"}``). Category ids (1..90 with gaps in
COCO) become contiguous labels 1..K in increasing id order, 0 being the background. Crowd
annotations are kept, flagged in ``ignore``: no detector is trained on them, and the evaluation
passes them to ``COCOeval`` as ``iscrowd``, as COCO's protocol does. Boxes of zero width or height
are skipped; images are taken in increasing id order, resized to ``size x size`` (no letterbox)
with Pillow's bilinear filter, boxes scaled to match.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from l2t.data.voc import check_relative, check_size, open_image, resize_rgb
from l2t.errors import L2TError


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _records(data: dict, key: str, fields: tuple[str, ...], path: Path) -> list[dict]:
    items = data.get(key)
    if not isinstance(items, list):
        raise L2TError(f"COCO annotations {path}: {key!r} must be a list")
    for j, item in enumerate(items):
        if not isinstance(item, dict) or any(f not in item for f in fields):
            raise L2TError(f"COCO annotations {path}: {key}[{j}] must be an object with {', '.join(fields)}")
    return items


def read_coco_json(path: str | Path) -> dict:
    """The parsed JSON object; a missing, non-UTF-8 or invalid file raises :class:`L2TError`."""
    path = Path(path)
    if not path.is_file():
        raise L2TError(f"missing COCO annotation file {path}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise L2TError(f"cannot read COCO annotation file {path}: {e}") from None
    if not isinstance(data, dict):
        raise L2TError(f"COCO annotations {path}: expected a JSON object, got {type(data).__name__}")
    return data


def _check_bbox(bbox: object, image_id: int, path: Path) -> None:
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
            or bbox[2] < 0 or bbox[3] < 0):
        raise L2TError(f"COCO annotations {path}: bad bbox {bbox!r} for image id {image_id} "
                       "(expected [x, y, w, h], w and h >= 0)")


class CocoDetection:
    """A COCO instances file, parsed and checked whole, whose images are decoded only when taken.

    ``len()`` is the number of images (the first ``max_images`` by id); :meth:`take` decodes the
    images at the given positions of that id order. So a split of 5,000 images out of train2017's
    118,000 decodes 5,000, and every annotation is still checked, bboxes included, also those of
    images past ``max_images``: a bad one is an error wherever it is."""

    def __init__(self, images_dir: str | Path, annotations_json: str | Path, size: int,
                 max_images: int | None = None):
        self.size, self.images_dir, path = check_size(size), Path(images_dir), Path(annotations_json)
        self.path = path
        if max_images is not None and (not _is_int(max_images) or max_images < 1):
            raise L2TError(f"max_images must be a positive integer or None, got {max_images!r}")
        if not self.images_dir.is_dir():
            raise L2TError(f"no such COCO images folder: {self.images_dir}")
        data = read_coco_json(path)
        categories = _records(data, "categories", ("id", "name"), path)
        records = _records(data, "images", ("id", "file_name"), path)
        annotations = _records(data, "annotations", ("image_id", "category_id", "bbox"), path)

        if any(not _is_int(c["id"]) or not isinstance(c["name"], str) for c in categories):
            raise L2TError(f"COCO annotations {path}: category ids must be integers and names strings")
        ids = sorted(c["id"] for c in categories)
        if len(set(ids)) != len(ids):
            raise L2TError(f"COCO annotations {path}: duplicate category ids")
        self.label_of = {cid: k + 1 for k, cid in enumerate(ids)}
        names = {c["id"]: c["name"] for c in categories}
        self.class_names = ("background", *(names[cid] for cid in ids))

        if any(not _is_int(r["id"]) or not isinstance(r["file_name"], str) for r in records):
            raise L2TError(f"COCO annotations {path}: image ids must be integers and file names strings")
        records = sorted(records, key=lambda r: r["id"])
        if len({r["id"] for r in records}) != len(records):
            raise L2TError(f"COCO annotations {path}: duplicate image ids")
        known = {r["id"] for r in records}
        self.records = records[:max_images]
        if not self.records:
            raise L2TError(f"COCO annotations {path} lists no images")
        for r in self.records:
            check_relative(r["file_name"], path)

        self.per_image: dict[int, list[dict]] = {r["id"]: [] for r in self.records}
        for j, a in enumerate(annotations):
            if "iscrowd" in a and not (_is_int(a["iscrowd"]) and a["iscrowd"] in (0, 1)):
                raise L2TError(f"COCO annotations {path}: annotations[{j}] has iscrowd {a.get('iscrowd')!r} "
                               "(expected 0 or 1)")
            if not (_is_int(a["image_id"]) and a["image_id"] in known and _is_int(a["category_id"])
                    and a["category_id"] in self.label_of):
                raise L2TError(f"COCO annotations {path}: annotations[{j}] refers to unknown image id "
                               f"{a['image_id']!r} or category id {a['category_id']!r}")
            _check_bbox(a["bbox"], a["image_id"], path)
            if a["image_id"] in self.per_image:
                self.per_image[a["image_id"]].append(a)

    def __len__(self) -> int:
        return len(self.records)

    def take(self, positions: Sequence[int]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Images ``(n, 3, size, size)`` uint8 and their targets, at ``positions`` of the id order."""
        size = self.size
        images = torch.empty((len(positions), 3, size, size), dtype=torch.uint8)
        targets = []
        for i, pos in enumerate(positions):
            r = self.records[pos]
            image = open_image(self.images_dir / r["file_name"])
            width, height = image.size
            if (r.get("width", width), r.get("height", height)) != (width, height):
                raise L2TError(f"image {self.images_dir / r['file_name']} is {width}x{height} but {self.path} says "
                               f"{r.get('width')}x{r.get('height')}")
            images[i] = resize_rgb(image, size)
            boxes, labels, crowd = [], [], []
            for a in self.per_image[r["id"]]:
                x, y, w, h = (float(v) for v in a["bbox"])
                if w == 0 or h == 0:
                    continue
                sx, sy = size / width, size / height
                boxes.append([min(max(v, 0.0), size) for v in (x * sx, y * sy, (x + w) * sx, (y + h) * sy)])
                labels.append(self.label_of[a["category_id"]])
                crowd.append(a.get("iscrowd", 0) == 1)
            targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                            "labels": torch.tensor(labels, dtype=torch.long),
                            "ignore": torch.tensor(crowd, dtype=torch.bool)})
        return images, targets


def read_coco_detection(
    images_dir: str | Path, annotations_json: str | Path, size: int, max_images: int | None = None
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]], tuple[str, ...]]:
    """Images ``(N, 3, size, size)`` uint8, one ``{"boxes": (k, 4) float32 xyxy, "labels": (k,) long
    in 1..K, "ignore": (k,) bool (crowd)}`` per image, and ``("background", name_1, ..., name_K)``. ``max_images`` keeps the first
    images by id. A ``width``/``height`` in the JSON must match the decoded image. Every image is
    decoded: :class:`CocoDetection` decodes only the ones taken."""
    coco = CocoDetection(images_dir, annotations_json, size, max_images)
    images, targets = coco.take(range(len(coco)))
    return images, targets, coco.class_names
