"""End-to-end runs of the command line on the tiny config, and its handling of bad input."""

import numpy as np
import pytest

from l2t.cli import main

from conftest import TINY


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_teach_then_train_with_the_teacher(tmp_path, capsys):
    code, out, _ = run(capsys, "teach", "--config", TINY, "--out", tmp_path / "t", "--no-progress")
    assert code == 0 and "teacher written to" in out
    code, out, _ = run(capsys, "train", "--config", TINY, "--loss", f"teacher:{tmp_path / 't'}",
                       "--out", tmp_path / "s", "--no-progress", "--seed", "3")
    assert code == 0 and "test error" in out and "loss l2t-dlf, seed 3" in out
    assert (tmp_path / "s" / "summary.json").is_file()


@pytest.mark.parametrize("loss", ["ce", "smooth01"])
def test_train_fixed_losses(tmp_path, capsys, loss):
    code, out, _ = run(capsys, "train", "--config", TINY, "--loss", loss, "--out", tmp_path / loss, "--no-progress")
    assert code == 0 and f"loss {loss}" in out


def test_train_on_a_users_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x_train=rng.random((80, 6)), y_train=rng.integers(0, 3, 80),
             x_test=rng.random((20, 6)), y_test=rng.integers(0, 3, 20))
    code, out, _ = run(capsys, "train", "--config", TINY, "--data", tmp_path / "mine.npz", "--loss", "ce",
                       "--set", "data.train_size=null", "--out", tmp_path / "r", "--no-progress")
    assert code == 0 and "test error" in out
    # asking for more training examples than the file has is a clear error
    code, _, err = run(capsys, "train", "--config", TINY, "--data", tmp_path / "mine.npz", "--loss", "ce",
                       "--out", tmp_path / "r2", "--no-progress")
    assert code == 2 and "train_size 200 must be in [1, 72]" in err


def test_demo_prints_the_table_and_writes_figures(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--config", TINY, "--out", tmp_path / "d", "--no-progress")
    assert code == 0
    for label in ["cross entropy", "smooth 0-1", "L2T-DLF (attention teacher)", "mean ± std over 2 seeds"]:
        assert label in out
    for png in ["fig3_dev_measure.png", "fig4_coeffs.png"]:
        assert (tmp_path / "d" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # re-running the same demo reuses the finished teacher; another config is refused
    assert run(capsys, "demo", "--config", TINY, "--out", tmp_path / "d", "--no-progress")[0] == 0
    code, _, err = run(capsys, "demo", "--config", TINY, "--out", tmp_path / "d", "--no-progress", "--set", "teacher.state_every=4")
    assert code == 2 and "different config" in err


def test_check_grad_passes_and_fails(capsys):
    code, out, _ = run(capsys, "check-grad", "--steps", "6", "--every", "2", "--directions", "2")
    assert code == 0 and "PASS" in out
    code, out, _ = run(capsys, "check-grad", "--steps", "6", "--directions", "2", "--tol", "1e-30")
    assert code == 1 and "FAIL" in out
    code, out, _ = run(capsys, "check-grad", "--steps", "6", "--every", "2", "--directions", "2", "--teacher", "schedule")
    assert code == 0 and "PASS" in out and "schedule teacher" in out


def test_check_grad_takes_any_registered_student_teacher_and_overrides(capsys):
    code, out, _ = run(capsys, "check-grad", "--student", "transformer", "--teacher", "recurrent", "--steps", "4",
                       "--every", "2", "--directions", "1", "--method", "checkpoint")
    assert code == 0 and "PASS" in out and "student transformer on toy-reverse, recurrent teacher" in out
    code, out, _ = run(capsys, "check-grad", "--student", "mlp", "--steps", "4", "--directions", "1", "--method", "reversible",
                       "--set", 'student.options={"widths": [8], "activation": "tanh", "dropout": 0.5}')
    assert code == 0 and "PASS" in out
    code, _, err = run(capsys, "check-grad", "--student", "vgg")
    assert code == 2 and "unknown student 'vgg'" in err


def test_list(capsys):
    """Every family, every entry as it is typed, with one line from the registry."""
    from l2t.data import DATASETS
    from l2t.hypergrad import METHODS
    from l2t.losses import LOSSES
    from l2t.students import STUDENTS
    from l2t.teachers import STATE_FEATURES, TEACHERS

    code, out, _ = run(capsys, "list")
    assert code == 0
    for reg in (STUDENTS, LOSSES, TEACHERS, STATE_FEATURES, METHODS, DATASETS):
        for name in reg.list():
            assert f"  {reg.usage(name)} " in out and reg.describe(name), name
    assert "  truncated:K[+compile] " in out and "  checkpoint[:k][+compile] " in out and "  reversible[:R] " in out
    assert "hypergradient methods (teach --hypergrad NAME):" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--loss", "ce", "--data", "/no/such/folder"], "unknown data set '/no/such/folder'"),
        (["train", "--loss", "ce", "--student", "vgg"], "unknown student 'vgg'"),
        (["train", "--loss", "ce", "--student", "transformer"], "transformer is a sequence-to-sequence student; the data set poses a classification task"),
        (["train", "--loss", "hinge"], "unknown loss 'hinge'"),
        (["train", "--loss", "bilinear"], "needs a teacher"),
        (["train", "--loss", "teacher:/no/such/teacher.safetensors"], "no teacher checkpoint"),
        (["train", "--loss", "ce", "--set", "inner.lr=fast"], "expected float"),
        (["train", "--loss", "ce", "--set", "inner.momentum=1.5"], "inner.momentum must be in [0, 1)"),
        (["train", "--loss", "ce", "--device", "cuda:7"], "cuda"),
        (["teach", "--resume", "/no/such/run"], "cannot resume"),
        (["teach", "--hypergrad", "magic", "--set", "outer.steps=1"], "unknown hypergradient method 'magic'"),
        (["train", "--loss", "ce", "--config", "/no/such.toml"], "no such config file"),
        (["teach", "--set", "teacher.options.off_diagonal_eps=2", "--set", "outer.steps=1"], "Invalid off_diagonal_eps"),
    ],
)
def test_bad_input_gets_one_clear_line(tmp_path, capsys, argv, message, monkeypatch):
    import torch

    if "cuda:7" in argv and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv, "--no-progress")
    assert code == 2
    lines = [l for l in err.splitlines() if l.startswith("l2t: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_corrupt_npz_and_bad_labels_from_the_cli(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run(capsys, "train", "--loss", "ce", "--data", tmp_path / "bad.npz", "--no-progress")
    assert code == 2 and "corrupt .npz file" in err
    np.savez(tmp_path / "labels.npz", x_train=np.zeros((20, 4)), y_train=np.arange(20) - 1,
             x_test=np.zeros((5, 4)), y_test=np.arange(5))
    code, _, err = run(capsys, "train", "--loss", "ce", "--data", tmp_path / "labels.npz", "--no-progress")
    assert code == 2 and "got a negative label" in err


def test_version_config_show_and_shipped_configs(capsys):
    from l2t import __version__
    from l2t.config import default_config_for, shipped_configs

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"l2t {__version__}"
    code, out, _ = run(capsys, "config", "--show", "--config", "fashion/fashion_lenet", "--set", "inner.steps=7")
    assert code == 0 and "inner.steps = 7    # student training steps T" in out and 'student.name = "lenet"' in out
    code, out, _ = run(capsys, "config", "--list")
    assert code == 0 and "  fashion/fashion_lenet" in out and "ablations" not in out
    assert "demo.toml" in shipped_configs()
    assert default_config_for("fashion-mnist", "lenet") == "fashion/fashion_lenet.toml"  # not ..._attention
    assert default_config_for("digits", "resnet8") is None


def test_an_unknown_option_gets_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--loss", "ce", "--stepz", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: l2t train" in err and "unrecognized arguments: --stepz 3" in err


def test_train_records_metrics_weights_and_advice(tmp_path, capsys):
    import json

    code, out, _ = run(capsys, "train", "--config", TINY, "--loss", "smooth01", "--lr", "1.0", "--steps", "30",
                       "--out", tmp_path / "r", "--no-progress")
    assert code == 0 and "note: the student" in out and "smooth 0-1's gradient at a zero margin is K/2" in out
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 30 and set(json.loads(lines[0])) == {"step", "lr", "train_ce", "train_accuracy"}
    assert (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0] == "step,lr,train_ce,train_accuracy"
    assert (tmp_path / "r" / "student.safetensors").is_file()
    code, _, _ = run(capsys, "train", "--config", TINY, "--loss", "ce", "--out", tmp_path / "ok", "--no-progress")
    from l2t.io import load_tensors

    weights, meta = load_tensors(tmp_path / "ok" / "student.safetensors")
    assert code == 0 and meta["student"] == "mlp" and "params.1.weight" in weights


def test_tensorboard_without_its_package_is_one_line(tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed here")
    code, _, err = run(capsys, "train", "--config", TINY, "--loss", "ce", "--tensorboard", "--out", tmp_path / "r",
                       "--no-progress")
    assert code == 2 and "pip install 'l2t[tensorboard]'" in err and not (tmp_path / "r").exists()
