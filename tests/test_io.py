import json
import os

import pytest
import torch

from l2t.errors import L2TError
from l2t.io import append_jsonl, load_tensors, read_jsonl, save_tensors, write_json
from l2t.teachers import AttentionTeacher, load_teacher, save_teacher, teacher_params


def test_teacher_checkpoint_round_trip(tmp_path):
    t = AttentionTeacher(4, 7, keys=3, base=0.2, w_init_std=0.5)
    params = teacher_params(t)
    save_teacher(tmp_path / "t.safetensors", t, params, name="attention", state_every=5, total_steps=40)
    loaded = load_teacher(tmp_path / "t.safetensors", dtype=torch.float64)
    assert loaded.state_every == 5 and loaded.meta["loss_kwargs"] == {"scale": 20.0}
    s = torch.rand(7, dtype=torch.float64)
    expected, _ = t.double()(s, None)
    got, _ = torch.func.functional_call(loaded.teacher, loaded.params, (s, None))
    torch.testing.assert_close(got, expected)
    # a run folder holding teacher.safetensors works as well as the file
    (tmp_path / "run").mkdir()
    (tmp_path / "t.safetensors").rename(tmp_path / "run" / "teacher.safetensors")
    assert load_teacher(tmp_path / "run").state_every == 5


def test_checkpoint_with_nan_is_refused(tmp_path):
    t = AttentionTeacher(3, 6)
    params = teacher_params(t)
    params["W"][0, 0, 0] = float("nan")
    save_teacher(tmp_path / "t.safetensors", t, params, name="attention", state_every=5)
    with pytest.raises(L2TError, match="holds NaN or Inf in tensor 'W'"):
        load_teacher(tmp_path / "t.safetensors")


def test_corrupt_and_mismatched_checkpoints(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(L2TError, match="corrupt checkpoint"):
        load_teacher(tmp_path / "junk.safetensors")
    with pytest.raises(L2TError, match="no teacher checkpoint"):
        load_teacher(tmp_path / "none.safetensors")
    save_tensors(tmp_path / "other.safetensors", {"x": torch.zeros(2)}, {"format": "something-else"})
    with pytest.raises(L2TError, match="is not an l2t teacher checkpoint"):
        load_teacher(tmp_path / "other.safetensors")
    t = AttentionTeacher(3, 6)
    p = teacher_params(t)
    p["V"] = torch.zeros(2, 2)
    save_teacher(tmp_path / "shape.safetensors", t, p, name="attention", state_every=5)
    with pytest.raises(L2TError, match="do not match teacher"):
        load_teacher(tmp_path / "shape.safetensors")


def test_checkpoint_loading_never_unpickles(tmp_path):
    """A pickle-based file (torch.save) is refused as corrupt, not executed."""
    torch.save({"W": torch.zeros(1)}, tmp_path / "evil.safetensors")
    with pytest.raises(L2TError, match="corrupt checkpoint"):
        load_tensors(tmp_path / "evil.safetensors")


def test_atomic_writes_leave_no_temp_files_and_keep_old_file_on_failure(tmp_path, monkeypatch):
    write_json(tmp_path / "a.json", {"x": 1})
    with pytest.raises(ValueError):
        write_json(tmp_path / "a.json", {"x": float("nan")})  # JSON has no NaN
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_read_jsonl_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 0})
    append_jsonl(path, {"step": 1})
    with open(path, "a") as f:
        f.write('{"step": 2, "dev')  # a writer killed mid-line
    assert read_jsonl(path) == [{"step": 0}, {"step": 1}]


class _FakeWriter:
    """Stands in for TensorBoard's SummaryWriter (not installed in the test environment): one
    event file per writer, a line per scalar."""

    def __init__(self, log_dir):
        self.path = os.path.join(log_dir, f"events.out.tfevents.{id(self)}")

    def __enter__(self):
        self.f = open(self.path, "w")
        return self

    def __exit__(self, *exc):
        self.f.close()

    def add_scalar(self, key, value, step):
        self.f.write(f"{key} {value} {step}\n")


def test_tensorboard_folder_is_replaced_not_appended_to_on_resume(tmp_path, monkeypatch):
    import l2t.io as io

    monkeypatch.setattr(io, "_summary_writer_class", lambda: _FakeWriter)
    io.write_tensorboard(tmp_path, [{"step": 0, "loss": 1.0}])
    io.write_tensorboard(tmp_path, [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5, "ok": True}])
    events = list((tmp_path / "tensorboard").iterdir())
    assert len(events) == 1 and events[0].read_text() == "loss 1.0 0\nloss 0.5 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tensorboard"]  # no temporary folder left


def test_a_killed_tensorboard_write_leaves_the_old_folder_and_its_temporary_is_removed(tmp_path, monkeypatch):
    import l2t.io as io

    monkeypatch.setattr(io, "_summary_writer_class", lambda: _FakeWriter)
    io.write_tensorboard(tmp_path, [{"step": 0, "loss": 1.0}])
    monkeypatch.setattr(_FakeWriter, "add_scalar", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        io.write_tensorboard(tmp_path, [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tensorboard"]
    assert next((tmp_path / "tensorboard").iterdir()).read_text() == "loss 1.0 0\n"
    left = tmp_path / f".tensorboard-new-x{io.TMP_SUFFIX}"  # what a kill -9 mid-write leaves
    left.mkdir()
    (left / "events.out.tfevents.1").write_text("half")
    (tmp_path / f".not-ours{io.TMP_SUFFIX}").mkdir()  # a folder l2t did not make: left alone
    assert io.remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".not-ours{io.TMP_SUFFIX}", "tensorboard"]
    assert (tmp_path / "tensorboard").stat().st_mode & 0o777 == 0o777 & ~io._UMASK  # not mkdtemp's 0700


def test_tensorboard_through_a_symlinked_folder_replaces_its_events_in_place(tmp_path, monkeypatch):
    import l2t.io as io

    monkeypatch.setattr(io, "_summary_writer_class", lambda: _FakeWriter)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "keep.txt").write_text("other")
    run = tmp_path / "run"
    run.mkdir()
    (run / "tensorboard").symlink_to(shared)
    for n in (1, 2):
        io.write_tensorboard(run, [{"step": s, "loss": 1.0} for s in range(n)])
    events = sorted(p.name for p in shared.iterdir() if p.name.startswith("events"))
    assert len(events) == 1 and (shared / events[0]).read_text() == "loss 1.0 0\nloss 1.0 1\n"
    assert (shared / "keep.txt").exists() and (run / "tensorboard").is_symlink()


def test_checkpoints_get_the_mode_a_plain_open_gives(tmp_path):
    import l2t.io as io

    save_tensors(tmp_path / "a.safetensors", {"w": torch.ones(2)})
    write_json(tmp_path / "a.json", {})
    for name in ("a.safetensors", "a.json"):  # other users can read a shared run folder's files alike
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~io._UMASK, name
