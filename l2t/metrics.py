"""Dense-prediction scores from well-kept implementations: mean IoU by torchmetrics, COCO mAP by
pycocotools (the ``dense`` extra).

* :func:`segmentation_scores`: per-class IoU and their mean over the classes (background
  included, as Pascal VOC counts it), over the real pixels (ignore pixels count nowhere);
* :func:`detection_scores`: mAP@0.5 and mAP@[.5:.95] (COCO's ``bbox`` evaluation) of the boxes
  :func:`detect` decodes, against every true box of the split.
"""

from __future__ import annotations

import contextlib
import io
import math

import torch
import torch.nn.functional as F

from l2t.errors import L2TError
from l2t.types import Params


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise L2TError(f"dense-prediction scores need {module.split('.')[0]}: pip install 'l2t[dense]'") from None


def iou_scores(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> tuple[float, list[float]]:
    """``(mean IoU, IoU per class)`` of predicted against true classes at the real pixels
    (flattened); a class absent from both counts as NaN in its entry and nowhere in the mean."""
    jaccard = _require("torchmetrics.classification").MulticlassJaccardIndex
    metric = jaccard(num_classes=num_classes, average="none", zero_division=math.nan)
    per_class = metric(preds.cpu(), targets.cpu()).double()
    present = ~torch.isnan(per_class)
    return float(per_class[present].mean()), per_class.tolist()


@torch.no_grad()
def segmentation_scores(student, params: Params, buffers: Params, batches) -> dict:
    preds, targets = [], []
    for b in batches:
        out, _ = student.apply(params, buffers, b.inputs, "eval")
        preds.append(b.real(out.argmax(-1)))
        targets.append(b.real(b.targets))
    miou, per_class = iou_scores(torch.cat(preds), torch.cat(targets), student.task.num_classes)
    return {"miou": miou, "iou": [None if math.isnan(v) else v for v in per_class]}


@torch.no_grad()
def detect(logits: torch.Tensor, boxes: torch.Tensor, stride: int, *, top: int = 50, min_score: float = 0.01) -> list:
    """Per image, ``(boxes (n, 4) xyxy, scores (n,), labels (n,))`` from a detector's cell logits
    ``(B, Gh, Gw, 1 + K)`` and boxes ``(B, Gh, Gw, 4)``: every class's probability map keeps its
    3×3 local maxima (CenterNet's peak extraction, in place of non-maximum suppression); the
    ``top`` best above ``min_score`` are kept."""
    B, gh, gw, C = logits.shape
    prob = logits.float().softmax(-1)[..., 1:].permute(0, 3, 1, 2)  # (B, K, Gh, Gw)
    peaks = prob * (prob == F.max_pool2d(prob, 3, stride=1, padding=1))
    jj, ii = torch.meshgrid(torch.arange(gw), torch.arange(gh), indexing="xy")
    b = boxes.float()
    cx, cy = (jj.to(b) + b[..., 0]) * stride, (ii.to(b) + b[..., 1]) * stride
    w, h = b[..., 2].clamp(max=20).exp() * stride, b[..., 3].clamp(max=20).exp() * stride
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(B, -1, 4)  # (B, cells, 4)
    out = []
    for n in range(B):
        scores, idx = peaks[n].reshape(-1).topk(min(top, peaks[n].numel()))
        keep = scores > min_score
        scores, idx = scores[keep], idx[keep]
        label, cell = idx // (gh * gw), idx % (gh * gw)
        out.append((xyxy[n, cell], scores, label + 1))
    return out


def coco_map(detections: list, truth: list, num_classes: int) -> tuple[float, float]:
    """``(mAP@0.5, mAP@[.5:.95])`` by pycocotools' ``COCOeval`` (``bbox``) of per-image detections
    ``(boxes xyxy, scores, labels)`` against per-image true ``(boxes xyxy, labels[, ignore])``.
    Objects flagged in ``ignore`` go to ``COCOeval`` as ``iscrowd``: they count in no recall, and a
    detection matched to one counts neither as right nor as wrong (COCO's rule for crowd regions,
    under which a detection matches one when their intersection covers the IoU threshold's share of
    the detection's area)."""
    coco_mod, eval_mod = _require("pycocotools.coco"), _require("pycocotools.cocoeval")

    def xywh(box):
        x0, y0, x1, y1 = (float(v) for v in box)
        return [x0, y0, x1 - x0, y1 - y0]

    images = [{"id": i} for i in range(len(truth))]
    anns = []
    for i, (boxes, labels, *flags) in enumerate(truth):
        ignore = flags[0].tolist() if flags else [False] * len(labels)
        for box, lab, crowd in zip(boxes, labels, ignore):
            x, y, w, h = xywh(box)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab), "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": int(crowd)})
    gt = coco_mod.COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": k} for k in range(1, num_classes)]}
    dets = [{"image_id": i, "category_id": int(lab), "bbox": xywh(box), "score": float(s)}
            for i, (boxes, scores, labels) in enumerate(detections) for box, s, lab in zip(boxes, scores, labels)]
    if not anns or not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        res = gt.loadRes(dets)
        ev = eval_mod.COCOeval(gt, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(float(ev.stats[1]), 0.0), max(float(ev.stats[0]), 0.0)


@torch.no_grad()
def detection_scores(student, params: Params, buffers: Params, batches, truth: list) -> dict:
    detections = []
    for b in batches:
        logits, boxes = student.apply(params, buffers, b.inputs, "eval", aux=True)[0]
        detections += detect(logits, boxes, student.task.stride)
    map50, map_ = coco_map(detections, truth, student.task.num_classes)
    return {"map50": map50, "map": map_}
