"""Teacher steps spread over processes (torchrun, gloo, localhost): the teacher is bit-identical
to one process's, for any world size, and runs resume across world sizes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from l2t.io import load_tensors

from conftest import ROOT, TINY

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def teach(out, procs, *extra, timeout=240):
    base = TORCHRUN + [f"--nproc-per-node={procs}"] if procs > 1 else [sys.executable]
    cmd = base + ["-m", "l2t", "teach", "--config", str(TINY), "--out", str(out), "--no-progress", "--threads", "1",
                  "--set", "teacher.name=recurrent", "--set", "student.options={\"widths\": [16], \"dropout\": 0.2}",
                  *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def tensors(run):
    return load_tensors(run / "teacher.safetensors")[0]


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_train_the_same_teacher_and_memory_as_one(tmp_path):
    teach(tmp_path / "one", 1)
    teach(tmp_path / "two", 2)
    one, two = tensors(tmp_path / "one"), tensors(tmp_path / "two")
    assert "memory" in one and same(one, two)
    metrics = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["episode_ranks"] == [0, 1] for m in metrics)  # episode e on rank e mod 2
    ref = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [m["outer_loss"] for m in metrics] == [m["outer_loss"] for m in ref]
    assert json.loads((tmp_path / "two" / "provenance.json").read_text())["world_size"] == 2
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2


def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path):
    teach(tmp_path / "whole", 1, "--set", "outer.steps=4")
    teach(tmp_path / "split", 2, "--set", "outer.steps=2")
    cfg = json.loads((tmp_path / "split" / "config.json").read_text())
    cfg["outer"]["steps"] = 4
    (tmp_path / "split" / "config.json").write_text(json.dumps(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "l2t", "teach", "--resume", str(tmp_path / "split"), "--no-progress",
                    "--threads", "1"], check=True, env=env, capture_output=True, timeout=240)
    assert same(tensors(tmp_path / "whole"), tensors(tmp_path / "split"))


def test_more_processes_than_episodes_leave_ranks_idle(tmp_path):
    teach(tmp_path / "one", 1, "--set", "outer.steps=2")
    proc = teach(tmp_path / "three", 3, "--set", "outer.steps=2")
    assert "3 processes for 2 episodes a teacher step: ranks 2..2 stay idle" in proc.stderr
    assert same(tensors(tmp_path / "one"), tensors(tmp_path / "three"))


@pytest.mark.parametrize("procs", [2])
def test_experiment_spreads_its_students_over_processes(tmp_path, procs):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = {}
    for n in (1, procs):
        base = TORCHRUN + [f"--nproc-per-node={n}"] if n > 1 else [sys.executable]
        proc = subprocess.run(base + ["-m", "l2t", "experiment", "--config", str(TINY), "--out", str(tmp_path / f"e{n}"),
                                      "--no-progress", "--threads", "1", "--set", "outer.steps=2", "--set", "lr_grid=[0.3, 0.1]"],
                              capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[n] = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert out[1] == out[procs] and len(out[1]) == 5
