"""Every kind of bad input ends with exactly one ``l2t: error: ...`` line and exit status 2,
never a traceback and never a silent wrong result (a table of cases); and a property-based test
over config values and data shapes: a valid result or one error line, nothing else."""

import gzip
import json
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2t.cli import main

from conftest import TINY

SHORT = ["--config", str(TINY), "--no-progress", "--set", "inner.steps=3", "--set", "outer.steps=1"]


def run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- fixtures in the formats users have ----------------------------------------------------------

def npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = dict(x_train=rng.random((300, 5)), y_train=np.arange(300) % 3, x_test=rng.random((15, 5)),
                y_test=np.arange(15) % 3)
    base.update({k: v for k, v in arrays.items() if v is not None})
    for k in [k for k, v in arrays.items() if v is None]:
        base.pop(k)
    np.savez(path, **base)
    return path


def idx_folder(folder, train_labels, test_labels):
    folder.mkdir()

    def write(name, array):
        header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
        with gzip.open(folder / f"{name}.gz", "wb") as f:
            f.write(header + array.astype(np.uint8).tobytes())

    rng = np.random.default_rng(0)
    write("train-images-idx3-ubyte", rng.integers(0, 255, (len(train_labels), 28, 28)))
    write("train-labels-idx1-ubyte", np.asarray(train_labels))
    write("t10k-images-idx3-ubyte", rng.integers(0, 255, (len(test_labels), 28, 28)))
    write("t10k-labels-idx1-ubyte", np.asarray(test_labels))
    return folder


def cifar_folder(folder, data=None, labels=None):
    folder.mkdir()
    rng = np.random.default_rng(0)
    good = rng.integers(0, 255, (20, 3072)).astype(np.uint8)
    good_labels = list(range(10)) * 2
    for i in range(1, 6):
        batch = {"data": good if i > 1 or data is None else data,
                 "labels": good_labels if i > 1 or labels is None else labels}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": good, "labels": good_labels}, protocol=2))
    return folder


def teacher_file(path, meta=None, **changes):
    """A real attention teacher for 3 classes, its header edited."""
    from l2t.io import save_tensors
    from l2t.teachers import AttentionTeacher, teacher_params
    from l2t.teachers.checkpoint import FORMAT

    t = AttentionTeacher(3, 6, keys=2)
    header = {"format": FORMAT, "teacher": "attention", "config": t.config(), "loss": "bilinear",
              "loss_kwargs": t.loss_kwargs(), "state_every": 5}
    header.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        header.pop(k)
    if meta is not None:
        header = meta
    save_tensors(path, teacher_params(t), header)
    return path


def config_file(path, text, binary=False):
    (path.write_bytes if binary else path.write_text)(text)
    return path


# --- the table -------------------------------------------------------------------------------------

def fake_run(folder, kind):
    """A folder that looks like a finished teacher's (``checkpoints/``) or student's run."""
    folder.mkdir()
    if kind == "teacher":
        (folder / "checkpoints").mkdir()
    else:
        (folder / "summary.json").write_text(json.dumps({"test_error": 0.1, "loss": "ce", "seed": 0}))
    return folder


def cases(tmp):
    """(id, argv, part of the one error line). ``tmp`` is a fresh folder for the case's files."""
    three = npz(tmp / "three.npz")
    return [
        ("seeds-0", ["experiment", "--seeds", "0"], "--seeds must be at least 1"),
        ("epochs-inf", ["train", "--loss", "ce", "--epochs", "inf"], "--epochs must be positive and finite"),
        ("lr-inf", ["train", "--loss", "ce", "--set", "inner.lr=Infinity"], "inner.lr must be positive and finite"),
        ("train-into-a-teachers-folder", ["train", "--loss", "ce", "--out", fake_run(tmp / "tf", "teacher"), "--overwrite"],
         "holds a teacher's run, not a student's"),
        ("teach-into-a-students-folder", ["teach", "--out", fake_run(tmp / "sf", "student")], "holds a student's run"),
        ("dln-offline", ["teach", "--teacher", "dln"], "taught online: set outer.protocol"),
        # config values
        ("batch-size-0", ["train", "--loss", "ce", "--set", "inner.batch_size=0"], "inner.batch_size must be at least 1"),
        ("checkpoint-every-0", ["teach", "--set", "outer.checkpoint_every=0"], "outer.checkpoint_every must be at least 1"),
        ("episodes-0", ["teach", "--set", "outer.episodes=0"], "outer.episodes must be at least 1"),
        ("outer-steps-negative", ["teach", "--set", "outer.steps=-2"], "outer.steps must be at least 1"),
        ("outer-lr-negative", ["teach", "--set", "outer.lr=-1", "--set", "outer.optimizer=sgd"], "outer.lr must be positive"),
        ("inner-lr-0", ["train", "--loss", "ce", "--set", "inner.lr=0"], "inner.lr must be positive"),
        ("inner-lr-nan", ["train", "--loss", "ce", "--set", "inner.lr=NaN"], "inner.lr must be positive"),
        ("momentum-1", ["train", "--loss", "ce", "--set", "inner.momentum=1.0"], "inner.momentum must be in [0, 1)"),
        ("weight-decay-negative", ["train", "--loss", "ce", "--set", "inner.weight_decay=-0.1"], "inner.weight_decay"),
        ("seed-negative", ["train", "--loss", "ce", "--seed", "-1"], "seed must be in [0, 2^32)"),
        ("seed-aliasing", ["train", "--loss", "ce", "--seed", str(2**32)], "seed must be in [0, 2^32)"),
        ("inner-steps-0", ["train", "--loss", "ce", "--set", "inner.steps=0"], "inner.steps must be at least 1"),
        ("state-every-0", ["teach", "--set", "teacher.state_every=0"], "teacher.state_every must be at least 1"),
        ("widths-string", ["train", "--loss", "ce", "--set", 'student.options={"widths": "abc"}'], "bad options for student 'mlp'"),
        ("widths-zero", ["train", "--loss", "ce", "--set", 'student.options={"widths": [0]}'], "mlp widths must be positive"),
        ("unknown-key", ["train", "--loss", "ce", "--set", "inner.speed=3"], "unknown config key(s) inner.speed"),
        ("wrong-type", ["train", "--loss", "ce", "--set", "inner.lr=fast"], "expected float"),
        ("dtype", ["train", "--loss", "ce", "--set", "dtype=float16"], "dtype must be one of float32, float64"),
        ("protocol", ["teach", "--set", "outer.protocol=greedy"], "outer.protocol must be one of full, phases"),
        ("outer-optimizer", ["teach", "--set", "outer.optimizer=rmsprop"], "outer.optimizer must be one of sgd, adam"),
        ("lr-schedule", ["train", "--loss", "ce", "--set", "inner.lr_schedule=linear"], "inner.lr_schedule must be one of"),
        ("objective", ["teach", "--set", "outer.objective=bleu"], "unknown dev objective 'bleu'"),
        ("hypergrad", ["teach", "--hypergrad", "magic"], "unknown hypergradient method 'magic'"),
        ("lr-grid", ["experiment", "--set", "lr_grid=[0.1, -1]"], "lr_grid must be a list of positive learning rates"),
        ("features", ["teach", "--set", "teacher.features=colour"], "unknown state features 'colour'"),
        ("data-options", ["train", "--loss", "ce", "--set", 'data.options={"size": 3}'], "digits: size must be in [8, 64]"),
        ("config-not-utf8", ["train", "--loss", "ce", "--config", config_file(tmp / "c.toml", b"seed = \xff\n", binary=True)],
         "is not UTF-8 text"),
        ("config-not-a-table", ["train", "--loss", "ce", "--config", config_file(tmp / "c.json", "[1, 2]")], "is not a table"),
        ("config-bad-toml", ["train", "--loss", "ce", "--config", config_file(tmp / "b.toml", "seed = = 1")], "cannot parse config"),
        ("config-section-is-a-value", ["train", "--loss", "ce", "--config", config_file(tmp / "s.toml", "inner = 3")],
         "config inner: expected a section"),
        ("train-out-under-a-file", ["train", "--loss", "ce", "--out", config_file(tmp / "f", "x") / "run"], "cannot create run folder"),
        ("teach-out-is-a-file", ["teach", "--out", config_file(tmp / "g", "x")], "is a file"),
        # check-grad
        ("check-grad-every-0", ["check-grad", "--every", "0"], "teacher.state_every must be at least 1"),
        ("check-grad-momentum-1", ["check-grad", "--momentum", "1.0"], "inner.momentum must be in [0, 1)"),
        ("check-grad-steps-0", ["check-grad", "--steps", "0"], "inner.steps must be at least 1"),
        ("check-grad-momentum-adam", ["check-grad", "--momentum", "0.9", "--set", "inner.optimizer=adam"],
         "--momentum is momentum SGD's"),
        ("check-grad-momentum-adam-config", ["check-grad", "--momentum", "0.5", "--set", "inner.optimizer=adam"],
         "inner.momentum is for inner.optimizer = 'sgd'"),
        ("train-betas-under-sgd", ["train", "--loss", "ce", "--set", "inner.betas=[0.5, 0.9]"],
         "inner.betas is for inner.optimizer = 'adam'"),
        ("check-grad-directions-0", ["check-grad", "--directions", "0"], "--directions must be at least 1"),
        # data
        ("npz-nan-label", ["train", "--loss", "ce", "--data", npz(tmp / "n.npz", y_train=np.r_[np.nan, np.arange(299) % 3])],
         "labels contain NaN or Inf"),
        ("npz-1d-x", ["train", "--loss", "ce", "--data", npz(tmp / "o.npz", x_train=np.zeros(300), x_test=np.zeros(15))],
         "inputs must have a feature axis"),
        ("npz-gap-in-labels", ["train", "--loss", "ce", "--data", npz(tmp / "g.npz", y_train=(np.arange(300) % 2) * 2,
                                                                       y_test=(np.arange(15) % 2) * 2)], "never appear"),
        ("npz-string-array", ["train", "--loss", "ce", "--data", npz(tmp / "s.npz", x_test=np.array(["a"] * 15))],
         "non-numeric dtype"),
        ("idx-label-200", ["train", "--loss", "ce", "--student", "lenet",
                           "--data", idx_folder(tmp / "idx200", [0, 1, 200] * 20, [0, 1, 1] * 5)], "never appear"),
        ("idx-one-based-train", ["train", "--loss", "ce", "--student", "lenet",
                                 "--data", idx_folder(tmp / "idx1", [1, 2, 3] * 20, [0, 1, 2] * 5)], "never appear"),
        ("cifar-float-pixels", ["train", "--loss", "ce", "--student", "resnet8",
                                "--data", cifar_folder(tmp / "cf", data=np.full((20, 3072), 1e6))], "pixels must be integers in 0..255"),
        ("cifar-negative-pixels", ["train", "--loss", "ce", "--student", "resnet8",
                                   "--data", cifar_folder(tmp / "cn", data=-np.ones((20, 3072), dtype=np.int64))], "0..255"),
        ("cifar-string-labels", ["train", "--loss", "ce", "--student", "resnet8",
                                 "--data", cifar_folder(tmp / "cs", labels=["cat"] * 20)], "labels are not integers"),
        ("cifar-label-2-70", ["train", "--loss", "ce", "--student", "resnet8",
                              "--data", cifar_folder(tmp / "cl", labels=[2**70] * 20)], "labels are not integers"),
        ("cifar-object-array", ["train", "--loss", "ce", "--student", "resnet8",
                                "--data", cifar_folder(tmp / "co", data=np.array([object()] * 20 * 3072).reshape(20, 3072))],
         "corrupt or unsafe CIFAR file"),
        # teacher files
        ("teacher-keys-0", ["train", "--data", three, "--loss", f"teacher:{teacher_file(tmp / 'k0.st', config={'num_classes': 3, 'state_dim': 6, 'keys': 0})}"],
         "cannot rebuild teacher 'attention'"),
        ("teacher-keys-huge", ["train", "--data", three, "--loss", f"teacher:{teacher_file(tmp / 'kh.st', config={'num_classes': 3, 'state_dim': 6, 'keys': 10**12})}"],
         "do not match teacher 'attention'"),
        ("teacher-no-name", ["train", "--data", three, "--loss", f"teacher:{teacher_file(tmp / 'nn.st', teacher=None)}"],
         "lacks 'teacher'"),
        ("teacher-config-is-a-list", ["train", "--data", three, "--loss", f"teacher:{teacher_file(tmp / 'cl.st', config=[3, 6])}"],
         "'config' must be a dict"),
        ("teacher-state-every-0", ["train", "--data", three, "--loss", f"teacher:{teacher_file(tmp / 'se.st', state_every=0)}"],
         "'state_every' must be at least 1"),
        ("teacher-state-every-text", ["train", "--data", three, "--loss", f"teacher:{teacher_file(tmp / 'st.st', state_every='often')}"],
         "'state_every' must be a int"),
        ("teacher-meta-is-a-list", ["train", "--data", three, "--loss", f"teacher:{teacher_file(tmp / 'ml.st', meta=[1, 2])}"],
         "is not an l2t teacher checkpoint"),
        ("teacher-other-classes", ["train", "--data", npz(tmp / "four.npz", y_train=np.arange(300) % 4, y_test=np.arange(15) % 4),
                                   "--loss", f"teacher:{teacher_file(tmp / 'c3.st')}"], "was trained for 3 classes; this data has 4"),
        ("teacher-not-a-file", ["train", "--loss", "teacher:/no/such/teacher.safetensors"], "no teacher checkpoint"),
        ("teacher-garbage", ["train", "--loss", f"teacher:{config_file(tmp / 'junk.st', b'not a safetensors file', binary=True)}"],
         "corrupt checkpoint"),
        # losses, students, devices
        ("unknown-loss", ["train", "--loss", "hinge"], "unknown loss 'hinge'"),
        ("learned-loss-alone", ["train", "--loss", "bilinear"], "needs a teacher"),
        ("seq-student-on-images", ["train", "--loss", "ce", "--student", "transformer"], "sequence-to-sequence student"),
        ("image-student-on-sequences", ["train", "--loss", "ce", "--data", "toy-reverse", "--student", "lenet"],
         "lenet is an image classifier"),
        ("resume-nothing", ["teach", "--resume", tmp / "nothing"], "cannot resume"),
        ("resume-with-set", ["teach", "--resume", tmp / "nothing", "--set", "outer.average=2"], "it takes no --set"),
        ("resume-with-flags", ["teach", "--resume", tmp / "nothing", "--tgt", "en", "--epochs", "2", "--hypergrad",
                               "unrolled", "--seed", "3"], "it takes no --tgt, --epochs, --seed, --hypergrad"),
        ("average-longer-than-run", ["teach", "--set", "outer.average=5"], "averages more steps than the run has"),
        ("average-with-memory", ["teach", "--teacher", "recurrent", "--set", "outer.average=1"],
         "does not apply to teacher recurrent"),
    ]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return {case[0]: case for case in cases(tmp_path_factory.mktemp("bad"))}


NAMES = [
    "seeds-0", "epochs-inf", "lr-inf", "train-into-a-teachers-folder", "teach-into-a-students-folder", "dln-offline",
    "batch-size-0", "checkpoint-every-0", "episodes-0", "outer-steps-negative", "outer-lr-negative", "inner-lr-0",
    "inner-lr-nan", "momentum-1", "weight-decay-negative", "seed-negative", "seed-aliasing", "inner-steps-0",
    "state-every-0", "widths-string", "widths-zero", "unknown-key", "wrong-type", "dtype", "protocol",
    "outer-optimizer", "lr-schedule", "objective", "hypergrad", "lr-grid", "features", "data-options",
    "config-not-utf8", "config-not-a-table", "config-bad-toml", "config-section-is-a-value", "train-out-under-a-file",
    "teach-out-is-a-file", "check-grad-every-0", "check-grad-momentum-1", "check-grad-momentum-adam", "check-grad-momentum-adam-config",
    "train-betas-under-sgd", "check-grad-steps-0",
    "check-grad-directions-0", "npz-nan-label", "npz-1d-x", "npz-gap-in-labels", "npz-string-array", "idx-label-200",
    "idx-one-based-train", "cifar-float-pixels", "cifar-negative-pixels", "cifar-string-labels", "cifar-label-2-70",
    "cifar-object-array", "teacher-keys-0", "teacher-keys-huge", "teacher-no-name", "teacher-config-is-a-list",
    "teacher-state-every-0", "teacher-state-every-text", "teacher-meta-is-a-list", "teacher-other-classes",
    "teacher-not-a-file", "teacher-garbage", "unknown-loss", "learned-loss-alone", "seq-student-on-images",
    "image-student-on-sequences", "resume-nothing", "resume-with-set", "resume-with-flags", "average-longer-than-run", "average-with-memory",
]


def test_the_table_names_every_case(table):
    assert sorted(table) == sorted(NAMES) and len(NAMES) >= 60


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_one_error_line(name, table, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default run folders land here
    _, argv, message = table[name]
    # the case's own values come last, so they win over the short defaults
    # (--resume takes its run's config, no --config or --set)
    full = [*argv, "--no-progress"] if argv[0] == "check-grad" or "--resume" in argv else [argv[0], *SHORT, *argv[1:]]
    code, out, err = run(capsys, full)
    lines = [line for line in err.splitlines() if line.startswith("l2t: error:")]
    assert code == 2, (code, err)
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists(), "a failed command left a run folder behind"


def test_a_finished_run_is_not_overwritten_without_asking(tmp_path, capsys):
    argv = ["train", "--loss", "ce", "--out", tmp_path / "r", *SHORT]
    assert run(capsys, argv)[0] == 0
    before = (tmp_path / "r" / "summary.json").read_text()
    code, _, err = run(capsys, [*argv, "--set", "inner.lr=0.01"])
    assert code == 2 and "already holds a finished run; use --overwrite" in err
    assert (tmp_path / "r" / "summary.json").read_text() == before
    assert json.loads((tmp_path / "r" / "config.json").read_text())["inner"]["lr"] == 0.1  # config and summary agree
    assert run(capsys, [*argv, "--set", "inner.lr=0.01", "--overwrite"])[0] == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["inner"]["lr"] == 0.01


def test_resume_refuses_a_checkpoint_of_another_shape(tmp_path, capsys):
    """A state checkpoint whose W does not match the config (10 keys) is refused before any
    training, never trained on."""
    from l2t.io import load_tensors, save_tensors

    assert run(capsys, ["teach", "--out", tmp_path / "t", *SHORT, "--set", "outer.steps=2", "--set",
                        "outer.checkpoint_every=1"])[0] == 0
    state = tmp_path / "t" / "checkpoints" / "state.safetensors"
    tensors, meta = load_tensors(state)
    tensors["state.teacher.W"] = torch.zeros(10, 10, 1)
    save_tensors(state, tensors, meta)
    (tmp_path / "t" / "teacher.safetensors").unlink()
    code, _, err = run(capsys, ["teach", "--resume", tmp_path / "t", "--no-progress"])
    assert code == 2 and "tensor 'state.teacher.W' is torch.float32 (10, 10, 1), this config needs" in err
    assert not (tmp_path / "t" / "teacher.safetensors").exists()


def test_checkpoints_linked_out_of_the_run_folder_are_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run" / "checkpoints").symlink_to(tmp_path / "elsewhere")
    code, _, err = run(capsys, ["teach", "--out", tmp_path / "run", *SHORT])
    assert code == 2 and "is a link out of the run folder" in err
    assert not list((tmp_path / "elsewhere").iterdir())


def test_resume_removes_the_temporary_files_of_a_kill(tmp_path, capsys):
    assert run(capsys, ["teach", "--out", tmp_path / "t", *SHORT, "--set", "outer.steps=2",
                        "--set", "outer.checkpoint_every=1"])[0] == 0
    (tmp_path / "t" / "teacher.safetensors").unlink()
    stale = tmp_path / "t" / "checkpoints" / ".state.safetensors.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert run(capsys, ["teach", "--resume", tmp_path / "t", "--no-progress"])[0] == 0
    assert not stale.exists()


def test_files_follow_the_users_umask(tmp_path, capsys):
    import os

    old = os.umask(0o022)
    try:
        assert run(capsys, ["train", "--loss", "ce", "--out", tmp_path / "r", *SHORT])[0] == 0
    finally:
        os.umask(old)
    for name in ("config.json", "summary.json", "provenance.json"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o644, name


def test_a_failed_report_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, ["report", tmp_path / "empty", "--out", tmp_path / "rep"])
    assert code == 2 and "no student runs" in err and not (tmp_path / "rep").exists()


def test_report_into_a_closed_pipe_says_nothing(tmp_path, capsys):
    import subprocess
    import sys

    from conftest import ROOT

    assert run(capsys, ["train", "--loss", "ce", "--out", tmp_path / "runs" / "a", *SHORT])[0] == 0
    cmd = f"{sys.executable} -m l2t report {tmp_path / 'runs'} --out {tmp_path / 'rep'} | head -c 10"
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_a_diverged_student_is_noticed_and_its_episode_skipped(tmp_path, capsys, caplog):
    """At an absurd inner learning rate the students diverge (dev cross entropy far above a
    uniform guess, dev error at chance): every episode is skipped with a warning and counted,
    never clipped and applied."""
    code, out, _ = run(capsys, ["teach", "--out", tmp_path / "t", *SHORT, "--set", "inner.lr=1e9", "--set",
                                "inner.steps=20", "--set", "outer.steps=2"])
    assert code == 0 and "2 skipped" in out
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["skipped_steps"] == 2 and summary["diverged_episodes"] == 4
    assert "the student diverged" in caplog.text or "learned nothing" in caplog.text or "non-finite" in caplog.text


def test_reversible_out_of_range_skips_the_episode(tmp_path, capsys, caplog):
    """The fixed-point walk checks every integer it holds: weights beyond 2^14 (48 fraction bits)
    skip the episode with a warning instead of following a different run in silence."""
    code, out, _ = run(capsys, ["teach", "--out", tmp_path / "t", *SHORT, "--hypergrad", "reversible", "--set",
                                "inner.lr=1000", "--set", "inner.steps=30", "--set", "dtype=float64"])
    assert code == 0 and "1 skipped" in out
    assert "left the fixed-point range" in caplog.text or "diverged" in caplog.text


# --- property-based ---------------------------------------------------------------------------------

NUMBERS = st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([0, 1, 2**40, -(2**70), 1e-300]))
KEYS = ["inner.steps", "inner.batch_size", "inner.lr", "inner.momentum", "inner.weight_decay", "teacher.state_every",
        "outer.steps", "outer.episodes", "outer.lr", "outer.clip", "data.train_size", "data.dev_size", "seed"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.sampled_from(KEYS), NUMBERS, max_size=4),
       shape=st.tuples(st.integers(1, 12), st.integers(0, 3)), classes=st.integers(1, 4))
def test_any_config_and_data_shape_gives_a_result_or_one_error_line(values, shape, classes, tmp_path_factory, capsys):
    tmp = tmp_path_factory.mktemp("prop")
    n, extra_axes = shape
    rng = np.random.default_rng(0)
    x_shape = (n,) + (3,) * extra_axes
    np.savez(tmp / "d.npz", x_train=rng.random(x_shape), y_train=np.arange(n) % classes,
             x_test=rng.random(x_shape), y_test=np.arange(n) % classes)
    sets = [f"{k}={json.dumps(v)}" if not (isinstance(v, float) and not np.isfinite(v)) else f"{k}={v}"
            for k, v in values.items()]
    argv = ["teach", "--data", tmp / "d.npz", "--out", tmp / "t", "--config", TINY, "--no-progress",
            "--set", "inner.steps=2", "--set", "outer.steps=1", "--set", "data.train_size=null"]
    for s in sets:
        argv += ["--set", s]
    code, _, err = run(capsys, argv)
    errors = [line for line in err.splitlines() if line.startswith("l2t: error:")]
    assert (code == 0 and not errors) or (code == 2 and len(errors) == 1), (argv, err)
