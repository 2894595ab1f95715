"""The research scripts of experiments/ that the README's numbers come from, run end to end on the
tiny config (their grids and variants cut to seconds)."""

import json
import runpy
import sys

import pytest

from l2t.io import read_json

from conftest import ROOT, TINY


def _run(monkeypatch, script, *argv):
    monkeypatch.setattr(sys, "argv", [script, *map(str, argv)])
    runpy.run_path(str(ROOT / "experiments" / script), run_name="__main__")


def test_schedule_probe_ranks_a_grid_then_evaluates_the_best_and_cross_entropy(tmp_path, monkeypatch, capsys):
    out = tmp_path / "probe"
    _run(monkeypatch, "schedule_probe.py", TINY, "--out", out, "--gains", 1, 2, "--smoothing", 0,
         "--tune-seeds", 1, "--seeds", 2, "--top", 1)
    grid = [json.loads(line) for line in (out / "grid.jsonl").read_text().splitlines()]
    assert sorted(tuple(r["schedule"]) for r in grid) == [(1, 1, 0, 0), (1, 2, 0, 0), (2, 1, 0, 0), (2, 2, 0, 0)]
    best = min(grid, key=lambda r: r["dev_error"])["schedule"]
    evaluated = [e["schedule"] for e in read_json(out / "eval.json")]
    assert evaluated[0] == best and [1, 1, 0, 0] in evaluated
    assert all(len(e["seeds"]) == 2 and e["seeds"][0]["teacher"] == "schedule" for e in read_json(out / "eval.json"))
    assert "paired Δ vs CE point" in (out / "results.md").read_text()


def test_ablate_runs_a_baseline_and_a_teacher_variant_into_one_table(tmp_path, monkeypatch, capsys):
    variants = tmp_path / "v.toml"
    variants.write_text('seeds = 2\n[variants.ce]\nbaseline = "ce"\n'
                        '[variants.schedule]\noverrides = { "teacher.name" = "schedule", "outer.optimizer" = "adam", '
                        '"outer.lr" = 0.01, "outer.steps" = 2 }\n')
    _run(monkeypatch, "ablate.py", variants, "--config", TINY, "--out", tmp_path / "abl")
    table = capsys.readouterr().out
    assert "| ce |" in table and "| schedule |" in table and "not run" not in table
    assert read_json(tmp_path / "abl" / "schedule" / "seed1" / "summary.json")["teacher"] == "schedule"


def test_paired_compares_the_first_folder_with_each_other_seed_by_seed(tmp_path, monkeypatch, capsys):
    for name, errors in {"a": [0.10, 0.12, 0.11], "b": [0.12, 0.13, 0.14]}.items():
        for s, e in enumerate(errors):
            (tmp_path / name / f"seed{s}").mkdir(parents=True)
            (tmp_path / name / f"seed{s}" / "summary.json").write_text(json.dumps({"test_error": e}))
    _run(monkeypatch, "paired.py", tmp_path / "a", tmp_path / "b", "--seeds", 3)
    a_row, b_row = capsys.readouterr().out.splitlines()[2:4]
    assert a_row.endswith("| 11.00 ± 1.00 |  |")
    # differences −2, −1, −3: mean −2, standard error 1/√3
    assert b_row.endswith("| 13.00 ± 1.00 | -2.00 ± 0.58 |")
    with pytest.raises(SystemExit, match="no such file"):
        _run(monkeypatch, "paired.py", tmp_path / "a", tmp_path / "missing", "--seeds", 3)
    # without --seeds: the seeds both folders hold (b lacks seed2 here)
    (tmp_path / "b" / "seed2" / "summary.json").unlink()
    _run(monkeypatch, "paired.py", tmp_path / "a", tmp_path / "b")
    assert "mean ± std over 2 seeds" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="seed0/ and seed1/"):
        _run(monkeypatch, "paired.py", tmp_path / "a", tmp_path / "missing")


def test_more_seeds_reruns_an_experiments_losses_on_new_seeds_with_its_rates_and_teacher(tmp_path, monkeypatch, capsys):
    from l2t.config import load_config
    from l2t.experiment import run_experiment

    cfg = load_config(TINY, {"losses": ["ce", "l2t-dlf"], "lr_grid": [0.5, 0.1], "tune_seeds": 1, "inner.lr": 0.2})
    run_experiment(cfg, tmp_path / "exp", seeds=2, progress=False)
    _run(monkeypatch, "more_seeds.py", tmp_path / "exp", "--seeds", "5:8")
    table = capsys.readouterr().out
    assert "over seeds 5..7" in table and "| l2t-dlf |" in table.splitlines()[2] and "| ce |" in table
    tuned = read_json(tmp_path / "exp" / "results.json")["lr"]
    assert tuned["ce"] != cfg.inner.lr  # so that the rate below is the tuned one, not the config's
    for loss in ("ce", "l2t-dlf"):
        runs = [read_json(tmp_path / "exp-seeds5-7" / loss / f"seed{s}" / "summary.json") for s in (5, 6, 7)]
        assert [r["seed"] for r in runs] == [5, 6, 7] and {r["lr"] for r in runs} == {tuned[loss]}
    assert runs[0]["teacher_path"] == str(tmp_path / "exp" / "teach" / "teacher.safetensors")
    with pytest.raises(SystemExit) as exit_:
        _run(monkeypatch, "more_seeds.py", tmp_path / "exp", "--seeds", "5:6")
    assert exit_.value.code == 2 and "at least 2 seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no loss 'lsoftmax'"):
        _run(monkeypatch, "more_seeds.py", tmp_path / "exp", "--seeds", "5:7", "--losses", "ce", "lsoftmax")
    assert not (tmp_path / "exp-seeds5-6").exists()  # refused before any student trained
    _run(monkeypatch, "more_seeds.py", tmp_path / "exp", "--seeds", "1:3", "--losses", "ce", "l2t-dlf")
    assert "the experiment's own seeds include 1 of these" in capsys.readouterr().err


def test_experiment_refuses_a_bad_outer_average_before_tuning(tmp_path, monkeypatch):
    import l2t.experiment as experiment
    from l2t.config import load_config
    from l2t.errors import L2TError

    monkeypatch.setattr(experiment, "tune_lr", lambda *a, **k: pytest.fail("tuned before the check"))
    cfg = load_config(TINY, {"losses": ["ce", "l2t-dlf"], "outer.steps": 2, "outer.average": 3})
    with pytest.raises(L2TError, match="averages more steps"):
        experiment.run_experiment(cfg, tmp_path / "exp", seeds=2, progress=False)
