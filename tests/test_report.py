"""l2t report reads run folders only; l2t experiment writes them."""

import json

import pytest

from l2t.cli import main
from l2t.errors import L2TError
from l2t.report import PAPER, collect, markdown, paired_delta

from conftest import TINY


def _fake_run(root, data, student, loss, seed, test_error, **extra):
    d = root / f"{data}-{student}" / (loss + extra.get("teacher", "")) / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"data": {"name": data}, "student": {"name": student}}))
    (d / "summary.json").write_text(json.dumps({"loss": loss, "seed": seed, "test_error": test_error,
                                                "dev_error": 0.5 * test_error, "diverged": False} | extra))


def test_table_is_mean_and_std_over_seeds_next_to_the_paper(tmp_path):
    for seed, (ce, t) in enumerate([(0.02, 0.015), (0.03, 0.025)]):
        _fake_run(tmp_path, "mnist", "lenet", "ce", seed, ce)
        _fake_run(tmp_path, "mnist", "lenet", "l2t-dlf", seed, t)
    _fake_run(tmp_path, "fashion-mnist", "mlp", "ce", 0, 0.12)
    table = collect([tmp_path, tmp_path / "mnist-lenet"])  # nested folders: each run counts once
    assert sorted(k[:2] for k in table) == [("fashion-mnist", "mlp"), ("mnist", "lenet")]
    text = markdown(table)
    assert "| mnist / lenet | 2.50 ± 0.71 (n=2) | 2.00 ± 0.71 (n=2) | 0.98 / 0.94 / 0.88 / 0.77 |" in text
    assert "| fashion-mnist / mlp | 12.00 ± — (n=1) |  | — |" in text
    assert PAPER[("cifar100", "resnet32")]["l2t-dlf"] == 29.25


def test_teachers_of_different_kinds_get_their_own_columns(tmp_path):
    _fake_run(tmp_path / "a", "fashion-mnist", "mlp", "l2t-dlf", 0, 0.12, teacher="attention")
    _fake_run(tmp_path / "b", "fashion-mnist", "lenet", "l2t-dlf", 0, 0.11, teacher="schedule")
    _fake_run(tmp_path / "b", "fashion-mnist", "lenet", "ce", 0, 0.13)
    head, _, lenet, mlp = markdown(collect([tmp_path])).splitlines()[:4]
    assert head.startswith("| data / student | ce | l2t-dlf (attention) | l2t-dlf (schedule) | paper")
    assert lenet.startswith("| fashion-mnist / lenet | 13.00 ± — (n=1) |  | 11.00 ± — (n=1) |")
    assert mlp.startswith("| fashion-mnist / mlp |  | 12.00 ± — (n=1) |  |")


def test_runs_of_different_configs_are_never_pooled(tmp_path):
    """50- and 300-step runs of one loss are two rows, told apart by the key that differs; runs at
    two learning rates are two columns; a diverged run is flagged."""
    def run(name, steps, lr, seed, err, diverged=False):
        d = tmp_path / name / f"seed{seed}"
        d.mkdir(parents=True)
        cfg = {"data": {"name": "digits"}, "student": {"name": "mlp"}, "inner": {"steps": steps, "lr": lr}, "seed": seed}
        (d / "config.json").write_text(json.dumps(cfg))
        (d / "summary.json").write_text(json.dumps({"loss": "ce", "seed": seed, "test_error": err, "dev_error": err,
                                                    "diverged": diverged}))

    run("short", 50, 0.1, 0, 0.30)
    run("short", 50, 0.1, 1, 0.32, diverged=True)
    run("long", 300, 0.1, 0, 0.05)
    run("long-slow", 300, 0.01, 0, 0.08)
    text = markdown(collect([tmp_path]))
    assert "| digits / mlp (inner.steps=50) | 31.00 ± 1.41 (n=2, 1 diverged) |" in text
    assert "| digits / mlp (inner.steps=300) |  | 8.00 ± — (n=1) | 5.00 ± — (n=1) |" in text
    assert text.splitlines()[0].startswith("| data / student | ce | ce @ lr 0.01 | ce @ lr 0.1 |")


def test_report_errors(tmp_path):
    with pytest.raises(L2TError, match="no such run folder"):
        collect([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(L2TError, match="no student runs"):
        collect([tmp_path / "empty"])


def test_experiment_then_report_with_figures(tmp_path, capsys):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(TINY.read_text().replace("eval_seeds = 2", 'eval_seeds = 2\nlosses = ["ce", "lsoftmax", "label_smoothing", "l2t-dlf"]\nlr_grid = [0.1, 0.03]\ntune_seeds = 1'))
    assert main(["experiment", "--config", str(cfg), "--out", str(tmp_path / "exp"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for label in ["cross entropy", "large-margin softmax", "label smoothing", "L2T-DLF (attention teacher)"]:
        assert label in out
    assert main(["report", str(tmp_path / "exp"), "--out", str(tmp_path / "rep"), "--classes", "3", "--against", "5", "8"]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| digits / mlp |" in text and "(n=2)" in text
    assert "| l2t-dlf (attention) |" in text.splitlines()[0]  # the teacher's column names it
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert any(p.startswith("fig3_") for p in pngs) and any(p.startswith("fig4_") for p in pngs)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "exp"), "--out", str(tmp_path / "rep2"), "--classes", "otter"]) == 2
    assert "unknown class 'otter'" in capsys.readouterr().err


def test_paired_delta_is_mean_difference_and_its_standard_error():
    assert paired_delta([12.0, 13.0, 11.0], [12.5, 12.5, 12.0]) == "-0.33 ± 0.44"
    with pytest.raises(ValueError):
        paired_delta([1.0, 2.0], [1.0])
