"""Dense prediction: the composites, the grid encoding of boxes, the scores, masks and the fixed box
term, and a tiny segmentation and detection teach + train end to end."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from l2t.cli import main
from l2t.data import load_data
from l2t.data.dense import IGNORED_CELL, compose, dense_splits, encode_boxes
from l2t.data.examples import TensorExamples
from l2t.errors import L2TError
from l2t.losses import box_regression, create_loss, focal, init_loss_network, reduce_loss
from l2t.metrics import coco_map, detect, iou_scores
from l2t.students import create_student
from l2t.types import Batch, DetectionTask, SegmentationTask

SMALL = {"train_size": 40, "dev_size": 12, "test_size": 10}


def test_composites_are_deterministic_and_masks_match_boxes():
    a = load_data("digits-det", **SMALL)
    b = load_data("digits-det", **SMALL)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a.objects["test"], b.objects["test"]))
    other = load_data("digits-det", **SMALL, split_seed=1)
    assert not torch.equal(a.train.x, other.train.x)

    items = (torch.rand(20, 8, 8) * 255).to(torch.uint8).numpy()
    c = compose(items, torch.arange(20).remainder(10).numpy(), 30, canvas=32, seed=(0, 0), side=(9, 14))
    assert c.images.shape == (30, 1, 32, 32) and c.masks.shape == (30, 32, 32)
    for mask, boxes, labels in zip(c.masks, c.boxes, c.labels):
        assert 2 <= len(boxes) <= 4
        inside = torch.zeros_like(mask, dtype=torch.bool)
        for (x0, y0, x1, y1), label in zip(boxes.long().tolist(), labels.tolist()):
            region = mask[y0:y1, x0:x1]
            assert (region == label).any()  # a box holds pixels of its object
            inside[y0:y1, x0:x1] |= region == label
        assert torch.equal(inside, mask > 0)  # and every object pixel lies in a box of its class


def test_seg_and_det_are_two_views_of_one_canvas_set():
    seg, det = load_data("digits-seg", **SMALL), load_data("digits-det", **SMALL)
    assert torch.equal(seg.train.x, det.train.x)
    assert isinstance(seg.task, SegmentationTask) and isinstance(det.task, DetectionTask)
    assert seg.task.num_classes == det.task.num_classes == 11 and det.task.grid == (8, 8)


def test_box_encoding_round_trips_through_detect_and_scores_perfectly():
    data = load_data("digits-det", **SMALL)
    ex, truth = data.test, data.objects["test"]
    logits = torch.where(torch.nn.functional.one_hot(ex.y, 11).bool(), 10.0, -10.0)
    found = detect(logits, ex.aux, data.task.stride)
    for (boxes, scores, labels), (true_boxes, true_labels, ignore) in zip(found, truth):
        assert not ignore.any()  # composites have no crowd or difficult objects
        order = torch.argsort(labels * 1000 + boxes[:, 0])
        want = torch.argsort(true_labels * 1000 + true_boxes[:, 0])
        assert torch.equal(labels[order], true_labels[want])
        assert torch.allclose(boxes[order], true_boxes[want], atol=1e-4)
    assert coco_map(found, truth, 11) == pytest.approx((1.0, 1.0))


def test_larger_object_keeps_a_shared_cell():
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [1.0, 1.0, 7.0, 7.0]])
    cls, target = encode_boxes(boxes, torch.tensor([3, 5]), (16, 16), 4)
    assert cls[1, 1] == 3 and int((cls > 0).sum()) == 1
    assert torch.allclose(target[1, 1], torch.tensor([0.0, 0.0, torch.log(torch.tensor(2.0)), torch.log(torch.tensor(2.0))]))


def test_an_ignored_object_marks_its_cells_ignored_unless_a_real_object_holds_them():
    # a larger ignored object listed first covers cells (0..1, 0..1) and shares (1, 1) with a real
    # one; a small ignored object lies alone in cell (3, 3)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [1.0, 1.0, 7.0, 7.0], [13.0, 13.0, 15.0, 15.0]])
    cls, target = encode_boxes(boxes, torch.tensor([2, 3, 5]), (16, 16), 4, torch.tensor([True, False, True]))
    assert cls[1, 1] == 3 and cls[3, 3] == IGNORED_CELL and not target[3, 3].any()
    assert cls[0, 0] == cls[0, 1] == cls[1, 0] == IGNORED_CELL  # the crowd's other cells: no background loss
    assert int((cls == IGNORED_CELL).sum()) == 4 and int((cls > 0).sum()) == 1 and not (cls[2:, :3] != 0).any()
    assert torch.allclose(target[1, 1], torch.tensor([0.0, 0.0, torch.log(torch.tensor(1.5)), torch.log(torch.tensor(1.5))]))
    examples = TensorExamples(torch.zeros(1, 1, 16, 16), cls[None], aux=target[None], ignore_index=IGNORED_CELL)
    batch = examples.take(torch.arange(1))
    assert not batch.mask[0, 3, 3] and not batch.mask[0, 0, 0] and int(batch.mask.sum()) == 12
    assert batch.targets[0, 3, 3] == 0
    # a box holding no cell centre ignores its own cell; a box's edge through a cell's centre
    # counts as inside; a crowd over the whole image ignores every cell but the real object's
    one = torch.tensor([1])
    cls, _ = encode_boxes(torch.tensor([[3.0, 3.0, 5.0, 5.0]]), one, (16, 16), 4, torch.tensor([True]))
    assert cls[1, 1] == IGNORED_CELL and int((cls == IGNORED_CELL).sum()) == 1
    cls, _ = encode_boxes(torch.tensor([[2.0, 2.0, 6.0, 6.0]]), one, (16, 16), 4, torch.tensor([True]))
    assert (cls[:2, :2] == IGNORED_CELL).all() and int((cls == IGNORED_CELL).sum()) == 4
    cls, _ = encode_boxes(torch.tensor([[0.0, 0.0, 16.0, 16.0], [4.0, 4.0, 8.0, 8.0]]), torch.tensor([1, 2]),
                          (16, 16), 4, torch.tensor([True, False]))
    assert cls[1, 1] == 2 and int((cls == IGNORED_CELL).sum()) == 15
    # rows from y, columns from x: a wide flat crowd marks one row, on a grid of 4 rows by 2 columns
    cls, _ = encode_boxes(torch.tensor([[0.0, 0.0, 8.0, 5.0]]), one, (16, 8), 4, torch.tensor([True]))
    assert cls.shape == (4, 2) and (cls[0] == IGNORED_CELL).all() and not cls[1:].any()


def test_map_ignores_crowd_and_difficult_objects():
    # image 0: a real object and an ignored one; a detection of each
    truth = [(torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]), torch.tensor([1, 1]),
              torch.tensor([False, True]))]
    both = [(truth[0][0], torch.tensor([0.8, 0.9]), torch.tensor([1, 1]))]
    assert coco_map(both, truth, 2) == pytest.approx((1.0, 1.0))  # the ignored hit is no false positive
    counted = [(truth[0][0], truth[0][1])]
    assert coco_map(both, counted, 2)[0] == pytest.approx(1.0)  # both real: both right
    only_real = [(truth[0][0][:1], torch.tensor([0.8]), torch.tensor([1]))]
    assert coco_map(only_real, truth, 2) == pytest.approx((1.0, 1.0))  # the ignored one is no miss
    assert coco_map(only_real, counted, 2)[0] == pytest.approx(0.5, abs=0.01)  # counted, it is one


def test_voc_difficult_objects_are_masked_in_training_and_ignored_in_evaluation(tmp_path):
    from tests.test_dense_readers import write_voc

    voc = write_voc(tmp_path / "voc")
    (voc / "ImageSets/Main/val.txt").write_text("2007_000001\n")  # its person is difficult
    det = load_data("voc-det", dev_size=1, options={"root": str(tmp_path / "voc"), "size": 16})
    boxes, labels, ignore = det.objects["test"][0]
    assert labels.tolist() == [12, 15] and ignore.tolist() == [False, True]
    # the train list's difficult objects (a person in 2007_000001, a monitor in 2007_000003) are in
    # train or dev; 2007_000001 is also the test split. At 16x16 (4x4 cells of 4 pixels) the person,
    # x 4..16 and y 2.7..16, holds 9 cell centres, one of them the dog's cell: 8 masked cells; the
    # monitor, x 0.5..4.8 and y 0.3..3.4, holds one
    masked = {}
    for name in ("train", "dev", "test"):
        split = getattr(det, name)
        batch = split.take(torch.arange(len(split)))
        masked[name] = 0 if batch.mask is None else int((~batch.mask).sum())
        assert int((batch.targets == 15).sum()) == int((batch.targets == 20).sum()) == 0  # no object cells
    assert masked["test"] == 8 and masked["train"] + masked["dev"] == 9
    with pytest.raises(L2TError, match="different counts"):
        dense_splits("x", det.task, {s: (torch.zeros(1, 3, 16, 16), [boxes], [labels], [ignore[:1]])
                                     for s in ("train", "dev", "test")})


def test_iou_and_map_on_hand_made_cases():
    miou, per_class = iou_scores(torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 1, 1, 2]), 4)
    assert per_class[:3] == pytest.approx([1 / 2, 2 / 3, 1.0]) and per_class[3] != per_class[3]  # absent class: NaN
    assert miou == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    truth = [(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([1]))]
    half = [(torch.tensor([[0.0, 0.0, 10.0, 5.0]]), torch.tensor([0.9]), torch.tensor([1]))]  # IoU 0.5
    assert coco_map(half, truth, 2) == pytest.approx((1.0, 0.1))  # a hit only at the 0.5 threshold
    wrong_class = [(truth[0][0], torch.tensor([0.9]), torch.tensor([1 + 1]))]
    assert coco_map(wrong_class, truth, 3)[0] == 0.0


def test_ignore_pixels_never_change_a_loss_or_gradient():
    data = load_data("digits-seg", **SMALL)
    y = data.train.y[:6].clone()
    y[:, :3] = 255  # a void band
    x = data.train.x[:6]
    examples = TensorExamples(x, y, ignore_index=255)
    batch = examples.take(torch.arange(6))
    assert batch.mask is not None and not batch.mask[:, :3].any() and batch.mask[:, 3:].all()
    junk = Batch(batch.inputs, torch.where(batch.mask, batch.targets, torch.randint(0, 11, y.shape)), batch.mask)
    student = create_student("unet", data.task, widths=[4, 8])
    params, buffers = student.init(0)
    losses = {"bilinear": torch.eye(11) * 0.5, "dln": init_loss_network(0, residual=False), "ce": None}
    for name, coeffs in losses.items():
        loss_fn = create_loss(name)
        results = []
        for b in (batch, junk):
            p = {k: v.clone().requires_grad_() for k, v in params.items()}
            out, _ = student.apply(p, buffers, b.inputs, "train")
            value = reduce_loss(loss_fn(out, b.targets, coeffs), b.mask)
            results.append((value, torch.autograd.grad(value, list(p.values()))))
        (v1, g1), (v2, g2) = results
        assert torch.equal(v1, v2) and all(torch.equal(a, b) for a, b in zip(g1, g2)), name


def test_box_term_reads_object_cells_only_and_focal_at_zero_is_cross_entropy():
    targets = torch.zeros(2, 4, 4, dtype=torch.long)
    targets[0, 1, 2], targets[1, 3, 0] = 4, 7
    aux = torch.randn(2, 4, 4, 4)
    boxes = torch.randn(2, 4, 4, 4)
    value = box_regression(boxes, Batch(None, targets, aux=aux))
    aux2 = torch.where((targets > 0)[..., None], aux, torch.randn_like(aux) * 100)  # junk at background cells
    assert torch.equal(value, box_regression(boxes, Batch(None, targets, aux=aux2)))
    assert box_regression(aux, Batch(None, targets, aux=aux)) == 0
    logits = torch.randn(5, 11)
    y = torch.randint(0, 11, (5,))
    assert torch.allclose(focal(logits, y, gamma=0.0), create_loss("ce")(logits, y, None))
    assert (focal(logits, y) <= create_loss("ce")(logits, y, None)).all()


def test_dense_students_check_their_task():
    seg, det = load_data("digits-seg", **SMALL), load_data("digits-det", **SMALL)
    out, _ = create_student("unet", seg.task).apply(*create_student("unet", seg.task).init(0), seg.train.x[:2], "eval")
    assert out.shape == (2, 32, 32, 11)
    student = create_student("detector", det.task)
    (logits, boxes), _ = student.apply(*student.init(0), det.train.x[:2], "eval", aux=True)
    assert logits.shape == (2, 8, 8, 11) and boxes.shape == (2, 8, 8, 4)
    with pytest.raises(L2TError, match="detector is a detection student; the data set poses a segmentation task"):
        create_student("detector", seg.task)
    with pytest.raises(L2TError, match="unet is a segmentation student"):
        create_student("unet", det.task)


def test_bad_dense_data_is_one_line():
    task = SegmentationTask((1, 8, 8), 3)
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(L2TError, match="labels outside"):
        dense_splits("d", task, {s: (x, torch.full((2, 8, 8), 7)) for s in ("train", "dev", "test")})
    with pytest.raises(L2TError, match="canvas 30 must be a multiple of 4"):
        load_data("digits-seg", options={"canvas": 30})
    with pytest.raises(L2TError, match="stride must be a power of two dividing the image side 32, got 3"):
        load_data("digits-det", options={"stride": 3})
    boxes, labels = [torch.tensor([[0.0, 0.0, 4.0, 4.0]])] * 2, [torch.tensor([11])] * 2
    with pytest.raises(L2TError, match=r"box labels outside \[1, 11\)"):
        dense_splits("d", DetectionTask((1, 8, 8), 11), {s: (x, boxes, labels) for s in ("train", "dev", "test")})


def test_augmenting_a_dense_task_is_refused(capsys):
    code = main(["train", "--data", "digits-seg", "--student", "unet", "--loss", "ce", "--steps", "1", "--no-progress",
                 "--set", "data.augment=crop_flip", "--set", 'data.options={"canvas": 16}'])
    assert code == 2 and "moves images but not their segmentation labels" in capsys.readouterr().err


def _cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.mark.parametrize("data,student,teacher", [("digits-seg", "unet", "schedule"), ("digits-det", "detector", "dln")])
def test_tiny_dense_teach_and_train_end_to_end(tmp_path, capsys, data, student, teacher):
    common = ["--data", data, "--student", student, "--steps", "6", "--batch-size", "8", "--no-progress",
              "--set", 'data.options={"canvas": 16}', "--set", "data.train_size=32", "--set", "data.dev_size=8",
              "--set", "data.test_size=8", "--set", f'student.options={{"widths": [4, 4{", 4" if student == "detector" else ""}]}}']
    teach = tmp_path / "teach"
    online = ["--set", "outer.protocol=online", "--set", "outer.episode_steps=3"] if teacher == "dln" else []
    _cli(["teach", *common, "--teacher", teacher, "--set", "outer.steps=2", "--set", "outer.episodes=1",
          "--set", "teacher.state_every=3", *online, "--out", str(teach)], capsys)
    for loss in ("ce", f"teacher:{teach}"):
        out = _cli(["train", *common, "--loss", loss, "--out", str(tmp_path / loss.split(":")[0])], capsys)
        assert ("test mIoU" if student == "unet" else "test mAP@0.5") in out
    summary = json.loads((tmp_path / "teacher" / "summary.json").read_text())
    key = "test_miou" if student == "unet" else "test_map50"
    assert 0 <= summary[key] <= 1
    assert 0 <= summary[key.replace("test", "dev")] <= 1  # the dev score a user tunes by
    _cli(["report", str(tmp_path), "--out", str(tmp_path / "report")], capsys)
    text = (tmp_path / "report" / "report.md").read_text()
    assert ("Test mIoU (%)" if student == "unet" else "Test mAP@0.5 (%)") in text and "paper (" not in text


@pytest.mark.parametrize("student,teacher", [("unet", "attention"), ("unet", "dln"), ("detector", "schedule"),
                                             pytest.param("detector", "dln", marks=pytest.mark.slow)])
def test_dense_hypergradients_are_exact(student, teacher):
    """Every exact method through a U-Net (per-pixel loss, BatchNorm in batch mode) and the grid
    detector (its fixed box term in every step) agrees with `unrolled` and with float64 finite
    differences, for a DLF and the DLN teacher."""
    from l2t.gradcheck import check, check_loss_network, tiny_problem
    from l2t.hypergrad import hypergradient

    cp = tiny_problem(student=student, teacher=teacher, steps=6, every=3)
    if teacher == "dln":  # the loss network's hypergradient and the LSTM's gradient through stage 3
        first, third = check_loss_network(cp, "reverse", directions=2)  # the other methods: tests/test_dln.py
        assert first.max_rel_error < 1e-6 and third.max_rel_error < 1e-6
        return
    flat = lambda g: torch.cat([g[k].flatten() for k in cp.teacher_params])  # noqa: E731
    ref = flat(hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled").grads)
    assert ref.norm() > 0
    for method in ("reverse", "checkpoint:2", "reversible"):
        res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
        assert (flat(res.grads) - ref).norm() < 1e-9 * ref.norm(), method
    assert check(cp, "reverse", directions=2).max_rel_error < 1e-6


def test_voc_and_coco_folders_load_as_dense_data_sets(tmp_path):
    from tests.test_dense_readers import write_coco_2017, write_voc

    voc = write_voc(tmp_path / "voc")
    (voc / "ImageSets/Main/val.txt").write_text("2007_000003\n")
    seg = load_data("voc-seg", dev_size=1, options={"root": str(tmp_path / "voc"), "size": 16})
    assert seg.sizes() == {"train": 2, "dev": 1, "test": 1} and seg.task.input_shape == (3, 16, 16)
    assert seg.num_classes == 21 and seg.class_names[15] == "person"
    batch = seg.train.take(torch.arange(2))
    assert batch.mask is not None and not batch.mask.all() and int(batch.targets.max()) < 21  # the void border
    det = load_data("voc-det", dev_size=1, options={"root": str(tmp_path / "voc"), "size": 16})
    assert det.task.grid == (4, 4) and len(det.objects["test"]) == 1 and det.train.aux.shape[1:] == (4, 4, 4)

    root = write_coco_2017(tmp_path)
    coco = load_data("coco-det", dev_size=1, options={"root": str(root), "size": 16})
    assert coco.class_names == ("background", "person", "airplane", "toothbrush") and coco.sizes()["test"] == 3
    with pytest.raises(L2TError, match="coco-det has no --download"):
        load_data("coco-det", download=True, options={"root": str(root)})
    with pytest.raises(L2TError, match="no such folder"):
        load_data("voc-seg", options={"root": str(tmp_path / "missing")})


def test_coco_decodes_only_the_images_its_splits_use(tmp_path, monkeypatch):
    """train2017 has 118,000 images: a small split must not decode them all. The splits equal the
    eager reader's, an undecodable image outside them is never opened, and every annotation is
    still checked."""
    import json

    import l2t.data.coco as coco_mod
    from l2t.data.coco import read_coco_detection
    from l2t.data.dense import _image_splits
    from tests.test_dense_readers import write_coco_2017

    root = write_coco_2017(tmp_path)
    opened = []
    real_open = coco_mod.open_image
    monkeypatch.setattr(coco_mod, "open_image",
                        lambda path, *a, **k: opened.append(path.relative_to(root).as_posix()) or real_open(path, *a, **k))
    small = load_data("coco-det", dev_size=1, train_size=1, test_size=1, options={"root": str(root), "size": 16})
    assert small.sizes() == {"train": 1, "dev": 1, "test": 1} and len(opened) == 3
    # val2017's images sorted by id are a.jpg, b.jpg, sub/c.png: test_size=1 takes a.jpg alone
    assert [o for o in opened if o.startswith("val2017/")] == ["val2017/a.jpg"]
    # the same splits as the eager reader's tuples, to the bit
    ann = root / "annotations"
    tr = read_coco_detection(root / "train2017", ann / "instances_train2017.json", 16)
    te = read_coco_detection(root / "val2017", ann / "instances_val2017.json", 16)
    eager = _image_splits("coco-det", "detection", small.task, tr[:2], te[:2], 1, 1, 1, 0)
    for split in ("train", "dev", "test"):
        a, b = getattr(eager, split).take(torch.arange(1)), getattr(small, split).take(torch.arange(1))
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) and torch.equal(a.aux, b.aux)
        for x, y in zip(eager.objects[split][0], small.objects[split][0]):
            assert torch.equal(x, y)
    (root / "val2017" / "sub" / "c.png").write_bytes(b"\x00" * 100)
    load_data("coco-det", dev_size=1, train_size=1, test_size=1, options={"root": str(root), "size": 16})
    with pytest.raises(L2TError, match="cannot decode image file .*c.png"):
        load_data("coco-det", dev_size=1, options={"root": str(root), "size": 16})
    # a bad box of an image outside every split is still an error
    data = json.loads((ann / "instances_val2017.json").read_text())
    data["annotations"].append({"id": 99, "image_id": 12, "category_id": 1, "bbox": [1, 1, -2, 2]})
    (ann / "instances_val2017.json").write_text(json.dumps(data))
    with pytest.raises(L2TError, match=r"bad bbox \[1, 1, -2, 2\] for image id 12"):
        load_data("coco-det", dev_size=1, train_size=1, test_size=1, options={"root": str(root), "size": 16})


def test_a_dense_data_set_in_the_data_dir_is_read_without_a_download(tmp_path, monkeypatch):
    from tests.test_dense_readers import write_voc

    import l2t.data as data_module

    voc = write_voc(tmp_path / "voc")
    (voc / "ImageSets/Main/val.txt").write_text("2007_000003\n")
    monkeypatch.setenv("L2T_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data_module, "download", lambda *a: pytest.fail("downloaded without --download"))
    assert load_data("voc-det", dev_size=1, options={"size": 16}).sizes()["test"] == 1


def test_a_report_never_pools_different_measures(tmp_path, capsys):
    from l2t.report import metric_name

    assert metric_name([{"test_error": 0.1, "test_miou": 0.4}]) == "test mIoU (%)"
    with pytest.raises(L2TError, match="cannot share a table"):
        metric_name([{"test_error": 0.1, "test_miou": 0.4}, {"test_error": 0.2}])


def test_a_segmentation_teacher_drives_a_users_own_loop(tmp_path, capsys):
    """TeacherLoss with a U-Net teacher from `l2t teach`, on the user's own nn.Module and
    torch.optim.SGD, with a void label in the dev masks."""
    from l2t import TeacherLoss

    args = ["teach", "--data", "digits-seg", "--student", "unet", "--teacher", "attention", "--steps", "4",
            "--batch-size", "8", "--no-progress", "--set", 'data.options={"canvas": 16}', "--set", "data.train_size=16",
            "--set", "data.dev_size=8", "--set", "data.test_size=8", "--set", 'student.options={"widths": [4, 4]}',
            "--set", "outer.steps=1", "--set", "outer.episodes=1", "--set", "teacher.state_every=2", "--out", str(tmp_path / "t")]
    _cli(args, capsys)
    data = load_data("digits-seg", train_size=16, dev_size=8, test_size=8, options={"canvas": 16})
    y_dev = data.dev.y.clone()
    y_dev[:, 0] = 255
    model = _ChannelsLast(torch.nn.Conv2d(1, 11, 3, padding=1))  # the user's own module
    criterion = TeacherLoss.load(tmp_path / "t", data.dev.x, y_dev, total_steps=4, ignore_index=255)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(4):
        batch = data.train.take(torch.arange(8) + 8 * (step % 2))
        targets = batch.targets.clone()
        targets[:, -1] = 255  # the user's void labels, no mask given: ignore_index masks them
        twin = copy.deepcopy(criterion)  # the same history, given the mask instead
        loss = criterion(model(batch.inputs), targets, step=step, model=model)
        targets[:, -1] = 0
        mask = torch.ones_like(targets, dtype=torch.bool)
        mask[:, -1] = False
        assert torch.equal(loss, twin(model(batch.inputs), targets, step=step, model=model, mask=mask))
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert criterion.coeffs is not None and criterion.coeffs.shape == (11, 11)


class _ChannelsLast(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).permute(0, 2, 3, 1)


def test_balanced_dev_cross_entropy_weighs_background_and_objects_half_each():
    from l2t.objectives import create_objective

    outputs, targets = torch.randn(2, 4, 4, 5), torch.zeros(2, 4, 4, dtype=torch.long)
    targets[0, 1, 1], targets[1, 2, 2] = 3, 4
    mask = torch.ones_like(targets, dtype=torch.bool)
    mask[1, 0, 0] = False
    ce = torch.nn.functional.cross_entropy(outputs.reshape(-1, 5), targets.reshape(-1), reduction="none").view(targets.shape)
    values = create_objective("balanced_ce")(outputs, targets, mask)
    want = 0.5 * ce[(targets > 0) & mask].mean() + 0.5 * ce[(targets == 0) & mask].mean()
    assert torch.allclose(torch.where(mask, values, 0).sum() / mask.sum(), want)
    assert torch.equal(create_objective("balanced_ce")(outputs, torch.zeros_like(targets)),
                       create_objective("ce")(outputs, torch.zeros_like(targets)))


def test_dense_scores_are_named_by_their_split_and_tuning_reads_dev():
    from l2t.build import build_student, load_splits
    from l2t.config import load_config
    from l2t.train import dense_scores, parse_loss, train_student, tuning_error

    cfg = load_config(overrides={"data.name": "digits-seg", "data.options": {"canvas": 16}, "data.train_size": 32,
                                 "data.dev_size": 8, "data.test_size": 8, "student.name": "unet",
                                 "student.options": {"widths": [4, 4]}, "inner.steps": 4, "inner.batch_size": 8})
    data = load_splits(cfg)
    loss = parse_loss("ce")
    res = train_student(cfg, data, loss, 0, keep_weights=True)
    student = build_student(cfg, data)
    dev, test = dense_scores(student, data, res.weights, "dev"), dense_scores(student, data, res.weights, "test")
    assert set(dev) == {"dev_miou", "dev_iou"} and set(test) == {"test_miou", "test_iou"}
    assert tuning_error(cfg, data, loss, 0) == pytest.approx(1 - dev["dev_miou"])
