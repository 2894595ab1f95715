"""Pascal VOC and COCO readers, on tiny fixtures written in the real formats."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from l2t.data.coco import read_coco_detection
from l2t.data.voc import VOC_CLASSES, read_voc_detection, read_voc_segmentation
from l2t.errors import L2TError

S = 20  # the resize target
# id -> (width, height, left-half class, right-half class)
VOC_IMAGES = {"2007_000001": (40, 30, 15, 0), "2007_000002": (50, 50, 12, 8), "2007_000003": (33, 47, 1, 20)}
# id -> objects (name, difficult or None for no tag, xmin, ymin, xmax, ymax), 1-based pixels
VOC_OBJECTS = {
    "2007_000001": [("dog", 0, 1, 1, 20, 15), ("person", 1, 11, 6, 40, 30)],
    "2007_000002": [("cat", 0, 11, 21, 30, 50), ("aeroplane", None, 1, 1, 5, 5)],
    "2007_000003": [("tvmonitor", 1, 2, 2, 10, 10)],
}
BORDER = 4  # a void (255) frame this wide around every mask


def voc_palette():
    """VOC's colour map (bit-interleaved), as PASCAL's VOCcode builds it."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def mask_array(w, h, left, right):
    m = np.full((h, w), right, np.uint8)
    m[:, : w // 2] = left
    m[:BORDER], m[-BORDER:], m[:, :BORDER], m[:, -BORDER:] = 255, 255, 255, 255
    return m


def write_mask(path, array):
    h, w = array.shape
    im = Image.frombytes("P", (w, h), np.ascontiguousarray(array, np.uint8).tobytes())
    im.putpalette(voc_palette())
    im.save(path)


def write_xml(path, image_id, w, h, objects):
    parts = [f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename>",
             f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"]
    for name, difficult, x0, y0, x1, y1 in objects:
        tag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{tag}"
                     f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    Path(path).write_text("".join(parts) + "</annotation>\n", encoding="utf-8")


def write_voc(root):
    """``root/VOCdevkit/VOC2012`` with 3 images of different sizes; returns the VOC2012 folder."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for image_id, (w, h, left, right) in VOC_IMAGES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        write_mask(voc / "SegmentationClass" / f"{image_id}.png", mask_array(w, h, left, right))
        write_xml(voc / "Annotations" / f"{image_id}.xml", image_id, w, h, VOC_OBJECTS[image_id])
    ids = "\n".join(VOC_IMAGES) + "\n"
    (voc / "ImageSets/Segmentation/train.txt").write_text(ids)
    (voc / "ImageSets/Main/train.txt").write_text(ids)
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000002\n")
    return voc


def pil_resized(path):
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB").resize((S, S), Image.Resampling.BILINEAR))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def test_voc_classes():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background"
    assert VOC_CLASSES[1] == "aeroplane" and VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"


@pytest.mark.parametrize("which", ["VOC2012", "VOCdevkit", "parent"])
def test_voc_segmentation(tmp_path, which):
    voc = write_voc(tmp_path)
    root = {"VOC2012": voc, "VOCdevkit": voc.parent, "parent": tmp_path}[which]
    images, masks = read_voc_segmentation(root, "train", S)
    assert images.shape == (3, 3, S, S) and images.dtype == torch.uint8
    assert masks.shape == (3, S, S) and masks.dtype == torch.long
    for i, (image_id, (w, h, left, right)) in enumerate(VOC_IMAGES.items()):
        assert torch.equal(images[i], pil_resized(voc / "JPEGImages" / f"{image_id}.jpg"))
        m = masks[i]
        assert set(m.unique().tolist()) == {left, right, 255}
        # the void frame stays void, the outer rows and columns of the resized mask included
        assert (m[0] == 255).all() and (m[-1] == 255).all() and (m[:, 0] == 255).all() and (m[:, -1] == 255).all()
        # each half's interior (well away from its edges) keeps its class
        assert (m[5:15, 3:8] == left).all() and (m[5:15, 12:17] == right).all()
        # and the whole mask is exactly the nearest sample of the original (Pillow samples pixel centres)
        cols, rows = (np.floor((np.arange(S) + 0.5) * n / S).astype(int) for n in (w, h))
        assert torch.equal(m, torch.from_numpy(mask_array(w, h, left, right)[rows][:, cols].astype(np.int64)))
    assert read_voc_segmentation(root, "val", S)[1].shape == (1, S, S)


def test_voc_mask_palette_indices_not_colours(tmp_path):
    voc = write_voc(tmp_path)
    im = Image.frombytes("P", (40, 30), mask_array(40, 30, 15, 0).tobytes())
    im.putpalette([7] * 768)  # every class the same colour: only the indices carry the classes
    im.save(voc / "SegmentationClass" / "2007_000001.png")
    _, masks = read_voc_segmentation(voc, "train", S)
    assert set(masks[0].unique().tolist()) == {0, 15, 255}


def test_voc_detection(tmp_path):
    voc = write_voc(tmp_path)
    images, targets = read_voc_detection(voc.parent, "train", S)
    assert images.shape == (3, 3, S, S) and images.dtype == torch.uint8 and len(targets) == 3
    for t in targets:
        assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.long
        assert t["boxes"].shape == (len(t["labels"]), 4)
    # 40x30 -> 20x20: x * 0.5, y * 2/3; (xmin - 1, ymin - 1, xmax, ymax)
    # the difficult person is kept, flagged to be ignored
    assert torch.allclose(targets[0]["boxes"], torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5 * 2 / 3, 20.0, 20.0]]))
    assert targets[0]["labels"].tolist() == [12, 15] and targets[0]["ignore"].tolist() == [False, True]
    # 50x50 -> 20x20: * 0.4
    assert torch.allclose(targets[1]["boxes"], torch.tensor([[4.0, 8.0, 12.0, 20.0], [0.0, 0.0, 2.0, 2.0]]))
    assert targets[1]["labels"].tolist() == [8, 1] and targets[1]["ignore"].tolist() == [False, False]
    # 33x47 -> 20x20: x * 20/33, y * 20/47; its only object is difficult
    assert torch.allclose(targets[2]["boxes"], torch.tensor([[20 / 33, 20 / 47, 200 / 33, 200 / 47]]))
    assert targets[2]["labels"].tolist() == [20] and targets[2]["ignore"].tolist() == [True]

    _, kept = read_voc_detection(voc, "train", S, keep_difficult=True)
    assert torch.allclose(kept[0]["boxes"], targets[0]["boxes"])
    assert kept[0]["labels"].tolist() == [12, 15] and not kept[0]["ignore"].any()
    assert torch.allclose(kept[2]["boxes"], targets[2]["boxes"])
    assert kept[2]["labels"].tolist() == [20] and not kept[2]["ignore"].any()


def _seg(voc):
    return read_voc_segmentation(voc, "train", S)


def _det(voc):
    return read_voc_detection(voc, "train", S)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


VOC_BAD = {
    "missing split": (lambda v: (v / "ImageSets/Segmentation/train.txt").unlink(), _seg, "missing VOC split list"),
    "non-utf8 split": (lambda v: (v / "ImageSets/Main/train.txt").write_bytes(b"\xff\xfe\x00x\n"), _det,
                       "cannot read VOC split list .*train.txt"),
    "listed, no file": (lambda v: (v / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2007_000009\n"),
                        _seg, "missing image file .*2007_000009.jpg"),
    "bad id": (lambda v: (v / "ImageSets/Main/train.txt").write_text("../../etc/x\n"), _det, "bad file name"),
    "garbage jpeg": (lambda v: (v / "JPEGImages/2007_000002.jpg").write_bytes(b"not a jpeg"), _seg,
                     "cannot decode image file .*2007_000002.jpg"),
    "truncated jpeg": (lambda v: _truncate(v / "JPEGImages/2007_000002.jpg"), _det,
                       "cannot decode image file .*2007_000002.jpg"),
    "missing mask": (lambda v: (v / "SegmentationClass/2007_000003.png").unlink(), _seg,
                     "missing mask file .*2007_000003.png"),
    "mask size": (lambda v: write_mask(v / "SegmentationClass/2007_000001.png", np.zeros((10, 10), np.uint8)), _seg,
                  r"2007_000001.png is 10x10 but its image is 40x30"),
    "mask value": (lambda v: write_mask(v / "SegmentationClass/2007_000002.png", mask_array(50, 50, 21, 0)), _seg,
                   r"2007_000002.png has values \[21\]"),
    "rgb mask": (lambda v: Image.new("RGB", (40, 30), (128, 0, 0)).save(v / "SegmentationClass/2007_000001.png"),
                 _seg, "2007_000001.png must be a palette"),
    "missing xml": (lambda v: (v / "Annotations/2007_000003.xml").unlink(), _det,
                    "missing VOC annotation file .*2007_000003.xml"),
    "invalid xml": (lambda v: (v / "Annotations/2007_000001.xml").write_text("<annotation><object>"), _det,
                    "cannot parse VOC annotation .*2007_000001.xml"),
    "non-utf8 xml": (lambda v: (v / "Annotations/2007_000001.xml").write_bytes(
        b"<annotation><object><name>\xff\xfe</name></object></annotation>"), _det,
        "cannot parse VOC annotation .*2007_000001.xml"),
    "unknown class": (lambda v: write_xml(v / "Annotations/2007_000002.xml", "x", 50, 50,
                                          [("unicorn", 0, 1, 1, 5, 5)]), _det,
                      "2007_000002.xml: unknown VOC class 'unicorn'"),
    "bad number": (lambda v: write_xml(v / "Annotations/2007_000002.xml", "x", 50, 50,
                                       [("cat", 0, "left", 1, 5, 5)]), _det,
                   "2007_000002.xml: <xmin> must be a number"),
    "inverted box": (lambda v: write_xml(v / "Annotations/2007_000002.xml", "x", 50, 50,
                                         [("cat", 0, 9, 1, 5, 5)]), _det, "2007_000002.xml: box .* xmax < xmin"),
    "bad difficult": (lambda v: write_xml(v / "Annotations/2007_000002.xml", "x", 50, 50,
                                          [("cat", "yes", 1, 1, 5, 5)]), _det, "<difficult> must be 0 or 1"),
}


@pytest.mark.parametrize("case", list(VOC_BAD))
def test_voc_bad_input(tmp_path, case):
    voc = write_voc(tmp_path)
    spoil, read, match = VOC_BAD[case]
    spoil(voc)
    with pytest.raises(L2TError, match=match):
        read(voc)


def test_voc_bad_root_and_size(tmp_path):
    with pytest.raises(L2TError, match="no such VOC folder"):
        read_voc_segmentation(tmp_path / "nope", "train", S)
    with pytest.raises(L2TError, match="no VOC data in"):
        read_voc_detection(tmp_path, "train", S)
    voc = write_voc(tmp_path)
    with pytest.raises(L2TError, match="missing VOC split list .*test.txt"):
        read_voc_detection(voc, "test", S)
    with pytest.raises(L2TError, match="image size must be a positive integer"):
        read_voc_segmentation(voc, "train", 0)
    (voc / "ImageSets/Main/train.txt").write_text("\n\n")
    with pytest.raises(L2TError, match="lists no images"):
        read_voc_detection(voc, "train", S)


# ---- COCO ----

COCO_IMAGES = [  # listed out of id order on purpose
    {"id": 7, "file_name": "b.jpg", "width": 40, "height": 30},
    {"id": 12, "file_name": "sub/c.png", "width": 33, "height": 47},
    {"id": 3, "file_name": "a.jpg", "width": 50, "height": 50},
]
COCO_CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 5, "name": "airplane"}]
COCO_ANNOTATIONS = [
    {"id": 1, "image_id": 3, "category_id": 90, "bbox": [10, 5, 20, 25], "iscrowd": 0, "area": 500},
    {"id": 2, "image_id": 3, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1, "area": 2500},
    {"id": 3, "image_id": 7, "category_id": 5, "bbox": [4, 3, 16, 12], "iscrowd": 0, "area": 192},
    {"id": 4, "image_id": 7, "category_id": 1, "bbox": [0, 0, 0, 10], "iscrowd": 0, "area": 0},
    {"id": 5, "image_id": 7, "category_id": 1, "bbox": [20.5, 15, 19.5, 15.0], "iscrowd": 0, "area": 292.5},
]


def write_coco(root, **changes):
    images_dir = root / "images"
    (images_dir / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for r in COCO_IMAGES:
        pixels = rng.integers(0, 256, (r["height"], r["width"], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images_dir / r["file_name"])
    data = {"info": {}, "licenses": [], "images": COCO_IMAGES, "annotations": COCO_ANNOTATIONS,
            "categories": COCO_CATEGORIES, **changes}
    path = root / "instances_val.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return images_dir, path


def write_coco_2017(tmp_path):
    """A COCO folder in the 2017 layout (``train2017/``, ``val2017/``, ``annotations/``), both
    splits the fixture of :func:`write_coco`; returns its root."""
    import shutil

    root = tmp_path / "coco"
    for split in ("train2017", "val2017"):
        images, ann = write_coco(tmp_path / split)
        shutil.move(images, root / split)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        shutil.move(ann, root / "annotations" / f"instances_{split}.json")
    return root


def test_coco_detection(tmp_path):
    images_dir, path = write_coco(tmp_path)
    images, targets, names = read_coco_detection(images_dir, path, S)
    assert names == ("background", "person", "airplane", "toothbrush")  # ids 1, 5, 90 -> 1, 2, 3
    assert images.shape == (3, 3, S, S) and images.dtype == torch.uint8 and len(targets) == 3
    # sorted by id: 3 (a.jpg), 7 (b.jpg), 12 (sub/c.png)
    for i, name in enumerate(["a.jpg", "b.jpg", "sub/c.png"]):
        assert torch.equal(images[i], pil_resized(images_dir / name))
    for t in targets:
        assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.long
    # image 3, 50x50 -> * 0.4; its crowd annotation is kept, flagged to be ignored
    assert torch.allclose(targets[0]["boxes"], torch.tensor([[4.0, 2.0, 12.0, 12.0], [0.0, 0.0, 20.0, 20.0]]))
    assert targets[0]["labels"].tolist() == [3, 1] and targets[0]["ignore"].tolist() == [False, True]
    assert not targets[1]["ignore"].any()
    # image 7, 40x30 -> x * 0.5, y * 2/3; the zero-width box is skipped
    assert torch.allclose(targets[1]["boxes"], torch.tensor([[2.0, 2.0, 10.0, 10.0], [10.25, 10.0, 20.0, 20.0]]))
    assert targets[1]["labels"].tolist() == [2, 1]
    assert targets[2]["boxes"].shape == (0, 4) and targets[2]["labels"].shape == (0,)

    images2, targets2, names2 = read_coco_detection(images_dir, path, S, max_images=2)
    assert images2.shape == (2, 3, S, S) and torch.equal(images2, images[:2]) and names2 == names
    assert [t["labels"].tolist() for t in targets2] == [[3, 1], [2, 1]]


COCO_BAD = {
    "unknown category": ({"annotations": COCO_ANNOTATIONS + [
        {"id": 9, "image_id": 3, "category_id": 2, "bbox": [1, 1, 2, 2], "iscrowd": 0}]},
        r"annotations\[5\] refers to unknown image id 3 or category id 2"),
    "unknown image": ({"annotations": [{"id": 9, "image_id": 4, "category_id": 1, "bbox": [1, 1, 2, 2]}]},
                      "unknown image id 4"),
    "bad bbox": ({"annotations": [{"id": 9, "image_id": 3, "category_id": 1, "bbox": [1, 1, -2, 2], "iscrowd": 0}]},
                 r"bad bbox \[1, 1, -2, 2\] for image id 3"),
    "short bbox": ({"annotations": [{"id": 9, "image_id": 3, "category_id": 1, "bbox": [1, 1], "iscrowd": 0}]},
                   "bad bbox"),
    "iscrowd text": ({"annotations": [{"id": 9, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": "0"}]},
                     r"annotations\[0\] has iscrowd '0' \(expected 0 or 1\)"),
    "images not a list": ({"images": {"id": 3}}, "'images' must be a list"),
    "image record": ({"images": [{"id": 3}]}, r"images\[0\] must be an object with id, file_name"),
    "duplicate image ids": ({"images": COCO_IMAGES + [COCO_IMAGES[0]]}, "duplicate image ids"),
    "duplicate category ids": ({"categories": COCO_CATEGORIES + [{"id": 5, "name": "x"}]}, "duplicate category ids"),
    "size mismatch": ({"images": [{"id": 3, "file_name": "a.jpg", "width": 60, "height": 50}], "annotations": []},
                      r"a.jpg is 50x50 but .*instances_val.json says 60x50"),
    "missing image": ({"images": [{"id": 3, "file_name": "zzz.jpg", "width": 50, "height": 50}],
                       "annotations": []}, "missing image file .*zzz.jpg"),
    "escaping name": ({"images": [{"id": 3, "file_name": "../a.jpg"}], "annotations": []},
                      "bad file name or image id '../a.jpg'"),
    "no images": ({"images": [], "annotations": []}, "lists no images"),
}


@pytest.mark.parametrize("case", list(COCO_BAD))
def test_coco_bad_json_content(tmp_path, case):
    changes, match = COCO_BAD[case]
    images_dir, path = write_coco(tmp_path, **changes)
    with pytest.raises(L2TError, match=match):
        read_coco_detection(images_dir, path, S)


def test_coco_bad_files(tmp_path):
    images_dir, path = write_coco(tmp_path)
    with pytest.raises(L2TError, match="no such COCO images folder"):
        read_coco_detection(tmp_path / "nope", path, S)
    with pytest.raises(L2TError, match="missing COCO annotation file"):
        read_coco_detection(images_dir, tmp_path / "nope.json", S)
    with pytest.raises(L2TError, match="max_images must be a positive integer"):
        read_coco_detection(images_dir, path, S, max_images=0)
    with pytest.raises(L2TError, match="image size must be a positive integer"):
        read_coco_detection(images_dir, path, -3)
    (images_dir / "b.jpg").write_bytes(b"\x00" * 100)
    with pytest.raises(L2TError, match="cannot decode image file .*b.jpg"):
        read_coco_detection(images_dir, path, S)
    path.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(L2TError, match="cannot read COCO annotation file .*instances_val.json"):
        read_coco_detection(images_dir, path, S)
    path.write_bytes(b'{"images": "\xff"}')
    with pytest.raises(L2TError, match="cannot read COCO annotation file .*instances_val.json"):
        read_coco_detection(images_dir, path, S)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(L2TError, match="expected a JSON object"):
        read_coco_detection(images_dir, path, S)
