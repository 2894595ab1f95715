import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from l2t.config import load_config
from l2t.io import load_tensors, read_json, read_jsonl
from l2t.teach import teach

from conftest import ROOT, TINY


def _teach_cmd(out, *extra):
    return [sys.executable, "-m", "l2t", "teach", "--config", str(TINY), "--out", str(out), "--no-progress",
            "--set", "outer.steps=40", *extra]


def _final_teacher(run_dir):
    tensors, _ = load_tensors(run_dir / "teacher.safetensors")
    return tensors


def test_teach_writes_a_complete_run_folder(tmp_path, tiny_config):
    res = teach(tiny_config, tmp_path / "run", progress=False)
    for name in ["config.json", "provenance.json", "metrics.jsonl", "summary.json", "teacher.safetensors",
                 "checkpoints/state.safetensors"]:
        assert (tmp_path / "run" / name).is_file(), name
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(tiny_config.outer.steps))
    assert all(m["episodes_ok"] == tiny_config.outer.episodes for m in metrics)
    assert res.skipped == 0
    # the teacher moved away from its cross-entropy start
    assert _final_teacher(tmp_path / "run")["W"].abs().sum() > 0


def test_teach_trains_the_schedule_teacher_and_logs_its_weights(tmp_path):
    from l2t.teachers import ScheduleTeacher, load_teacher

    cfg = load_config(TINY, {"teacher.name": "schedule", "outer.optimizer": "adam", "outer.lr": 0.01})
    teach(cfg, tmp_path / "run", progress=False)
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    # a teacher this small has its weights after every step in the log; Adam moves each by ~lr
    assert metrics[0]["teacher"]["gain"] != [1.0, 1.0] and metrics[0]["teacher"]["smoothing"] != [0.0, 0.0]
    # Adam's steps would take ε_0 below zero here (0.0029 minus ~0.01 at step 2); teach projects
    # it back onto ε ≥ 0, and it leaves the boundary again when its hypergradient says so
    eps0 = [m["teacher"]["smoothing"][0] for m in metrics]
    assert min(eps0) == 0.0 and eps0[-1] > 0
    loaded = load_teacher(tmp_path / "run")
    assert isinstance(loaded.teacher, ScheduleTeacher)
    assert loaded.params["gain"].tolist() == pytest.approx(metrics[-1]["teacher"]["gain"])


def test_tail_averaging_saves_the_mean_of_the_last_iterates_and_resumes_exactly(tmp_path, monkeypatch):
    """outer.average = 3 of 5 steps: the saved teacher is the mean of the weights after steps 2, 3
    and 4 (logged in metrics); a run that crashes inside the window (after step 3's checkpoint)
    and is resumed saves the same mean bit for bit."""
    import l2t.teach as teach_module
    from l2t.teachers import load_teacher

    ov = {"teacher.name": "schedule", "outer.optimizer": "adam", "outer.lr": 0.01, "outer.steps": 5, "outer.average": 3}
    cfg = load_config(TINY, ov)
    teach(cfg, tmp_path / "full", progress=False)
    metrics = read_jsonl(tmp_path / "full" / "metrics.jsonl")
    saved = load_teacher(tmp_path / "full").params
    for k in ("gain", "smoothing"):
        mean = torch.tensor([m["teacher"][k] for m in metrics[2:]]).mean(0)
        assert saved[k].tolist() == pytest.approx(mean.tolist(), abs=1e-6)
        assert saved[k].tolist() != pytest.approx(metrics[-1]["teacher"][k], abs=1e-6)  # not the last iterate
    assert read_json(tmp_path / "full" / "summary.json")["averaged_steps"] == 3
    assert load_teacher(tmp_path / "full").meta["averaged_steps"] == 3

    step = teach_module.teacher_step

    def crash_at_4(t, state, i, **kw):
        if i == 4:
            raise RuntimeError("killed")
        return step(t, state, i, **kw)

    monkeypatch.setattr(teach_module, "teacher_step", crash_at_4)
    with pytest.raises(RuntimeError, match="killed"):
        teach(cfg, tmp_path / "crashed", progress=False)
    monkeypatch.setattr(teach_module, "teacher_step", step)
    teach(cfg, tmp_path / "crashed", resume=True, progress=False)
    a, b = _final_teacher(tmp_path / "full"), _final_teacher(tmp_path / "crashed")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("ov, match", [({"outer.average": 5}, "averages more steps"),
                                       ({"teacher.name": "dln", "outer.protocol": "online", "outer.episode_steps": 5,
                                         "outer.episodes": 1, "outer.average": 2}, "does not apply to teacher dln"),
                                       ({"teacher.name": "recurrent", "outer.average": 2}, "does not apply to teacher recurrent")])
def test_tail_averaging_refuses_what_it_cannot_average(tmp_path, ov, match):
    from l2t.errors import L2TError

    with pytest.raises(L2TError, match=match):
        teach(load_config(TINY, ov), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_teach_refuses_to_overwrite_a_run(tmp_path, tiny_config):
    from l2t.errors import L2TError

    teach(tiny_config, tmp_path / "run", progress=False)
    with pytest.raises(L2TError, match="already holds a teacher run; use --resume"):
        teach(tiny_config, tmp_path / "run", progress=False)


def test_resume_reuses_a_teacher_only_under_the_same_teaching_config(tmp_path, tiny_config):
    """A finished teacher is reused when only the comparison around it changed (lr grid, seeds);
    a change to anything that trains the teacher is refused."""
    from dataclasses import replace

    from l2t.errors import L2TError

    teach(tiny_config, tmp_path / "run", progress=False)
    before = _final_teacher(tmp_path / "run")
    wider = replace(tiny_config, lr_grid=[1.0, 0.5], eval_seeds=7, tune_seeds=1, losses=["ce", "l2t-dlf"])
    teach(wider, tmp_path / "run", resume=True, progress=False)
    after = _final_teacher(tmp_path / "run")
    assert all(torch.equal(before[k], after[k]) for k in before)
    for other in [replace(tiny_config, outer=replace(tiny_config.outer, lr=2 * tiny_config.outer.lr)),
                  replace(tiny_config, inner=replace(tiny_config.inner, lr=0.5 * tiny_config.inner.lr))]:
        with pytest.raises(L2TError, match="different config"):
            teach(other, tmp_path / "run", resume=True, progress=False)


@pytest.mark.parametrize("teacher", ["attention", "recurrent"])
def test_resume_after_kill_ends_at_the_same_teacher(tmp_path, teacher):
    """Kill a teach run (SIGKILL) after its first checkpoints; resuming must end bit-identical to
    an uninterrupted run with the same seed: the teacher's weights and, for the recurrent teacher,
    its memory (saved in the teacher file beside the weights)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    extra = ["--set", f"teacher.name={teacher}"]
    subprocess.run(_teach_cmd(tmp_path / "full", *extra), check=True, env=env, cwd=tmp_path, capture_output=True)

    proc = subprocess.Popen(_teach_cmd(tmp_path / "killed", *extra), env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "checkpoints" / "state.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and len(read_jsonl(tmp_path / "killed" / "metrics.jsonl")) >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "teacher.safetensors").exists(), "the run finished before it was killed"
    done_before = len(read_jsonl(tmp_path / "killed" / "metrics.jsonl"))
    assert 0 < done_before < 40

    out = subprocess.run([sys.executable, "-m", "l2t", "teach", "--resume", str(tmp_path / "killed"), "--no-progress"],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    full, resumed = _final_teacher(tmp_path / "full"), _final_teacher(tmp_path / "killed")
    assert full.keys() == resumed.keys()
    assert ("memory" in full) == (teacher == "recurrent")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    assert [m["step"] for m in read_jsonl(tmp_path / "killed" / "metrics.jsonl")] == list(range(40))
    a = [m["outer_loss"] for m in read_jsonl(tmp_path / "full" / "metrics.jsonl")]
    b = [m["outer_loss"] for m in read_jsonl(tmp_path / "killed" / "metrics.jsonl")]
    assert a == b


def test_non_finite_hypergradients_are_skipped_not_applied(tmp_path, tiny_config, monkeypatch, caplog):
    import l2t.teach as teach_module

    real = teach_module.hypergradient
    calls = {"n": 0}

    def sometimes_nan(*args, **kw):
        res = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] % 2 == 1:  # every other episode
            res.grads = {k: torch.full_like(g, float("nan")) for k, g in res.grads.items()}
        return res

    monkeypatch.setattr(teach_module, "hypergradient", sometimes_nan)
    res = teach(tiny_config, tmp_path / "run", progress=False)
    assert "non-finite hypergradient; episode skipped" in caplog.text
    assert all(m["episodes_ok"] == 1 for m in res.metrics)
    assert all(torch.isfinite(t).all() for t in _final_teacher(tmp_path / "run").values())


def test_teacher_steps_with_no_finite_episode_leave_the_teacher_unchanged(tmp_path, tiny_config, monkeypatch):
    import l2t.teach as teach_module

    real = teach_module.hypergradient

    def always_nan(*args, **kw):
        res = real(*args, **kw)
        res.outer_loss = float("nan")
        return res

    monkeypatch.setattr(teach_module, "hypergradient", always_nan)
    res = teach(tiny_config, tmp_path / "run", progress=False)
    assert res.skipped == tiny_config.outer.steps
    assert _final_teacher(tmp_path / "run")["W"].abs().sum() == 0  # still the cross-entropy start


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_both_outer_optimizers_resume(tmp_path, optimizer):
    cfg = load_config(TINY, {"outer.optimizer": optimizer, "outer.lr": 1e-3})
    full = teach(cfg, tmp_path / "full", progress=False)
    part = teach(load_config(TINY, {"outer.optimizer": optimizer, "outer.lr": 1e-3, "outer.steps": 2}), tmp_path / "part", progress=False)
    assert part.metrics[-1]["step"] == 1
    # continue the 2-step run to the full length by editing its saved config, as a user would
    import json

    c = json.loads((tmp_path / "part" / "config.json").read_text())
    c["outer"]["steps"] = cfg.outer.steps
    (tmp_path / "part" / "config.json").write_text(json.dumps(c))
    teach(cfg, tmp_path / "part", resume=True, progress=False)
    a, b = _final_teacher(tmp_path / "full"), _final_teacher(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.metrics[-1]["step"] == cfg.outer.steps - 1


@pytest.mark.parametrize("inner", [{}, {"inner.optimizer": "adam", "inner.lr": 0.003}], ids=["sgd", "adam"])
def test_phases_protocol_trains_from_snapshots_and_resumes_exactly(tmp_path, inner):
    """Episodes start from snapshots of reference runs (with the optimizer's state: momentum, or
    Adam's moments); a resumed run rebuilds the reference of the saved reference teacher and ends
    bit-identical."""
    import json

    ov = {"outer.protocol": "phases", "outer.episode_steps": 8, "outer.snapshots": 3, "outer.reference_every": 2,
          "outer.steps": 5, **inner}
    full = teach(load_config(TINY, ov), tmp_path / "full", progress=False)
    refs = [m for m in full.metrics if "reference_dev_measure" in m]
    assert [m["step"] for m in refs] == [0, 2, 4]
    teach(load_config(TINY, {**ov, "outer.steps": 3}), tmp_path / "part", progress=False)
    c = json.loads((tmp_path / "part" / "config.json").read_text())
    c["outer"]["steps"] = 5
    (tmp_path / "part" / "config.json").write_text(json.dumps(c))
    teach(None, tmp_path / "part", resume=True, progress=False)
    a, b = _final_teacher(tmp_path / "full"), _final_teacher(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_phases_snapshots_keep_adams_moments():
    """With Adam, an episode from a snapshot starts from the reference run's moments (a resumed
    run would be bit-identical even if they were dropped: this checks them directly)."""
    from l2t.teach import setup
    from l2t.teachers import teacher_params

    t = setup(load_config(TINY, {"outer.protocol": "phases", "outer.episode_steps": 8, "outer.snapshots": 3,
                                 "inner.optimizer": "adam", "inner.lr": 0.003}))
    t.protocol.make_reference(0, t.teacher, teacher_params(t.teacher))
    later = [s for s in t.protocol.reference.snapshots if s > 0]
    assert later
    for start in later:
        moments = t.protocol.reference.snapshots[start][1]
        assert {k.split(":")[0] for k in moments} == {"m", "s"} and all(v.abs().sum() > 0 for v in moments.values())


def test_protocol_errors(tmp_path):
    from l2t.errors import L2TError

    with pytest.raises(L2TError, match="episode_steps must be in"):
        teach(load_config(TINY, {"outer.protocol": "phases"}), tmp_path / "a", progress=False)
    with pytest.raises(L2TError, match="outer.protocol must be one of full, phases"):
        teach(load_config(TINY, {"outer.protocol": "greedy"}), tmp_path / "b", progress=False)


def test_teacher_memory_carries_across_teacher_steps(tmp_path):
    """The recurrent teacher's memory after step s is the memory at the end of step s's first
    episode, which started from the memory after step s − 1; it is checkpointed and written
    to the teacher file, and the teacher's students start from it."""
    from l2t.teach import _load_state, initial_state, run_episode, setup, teacher_step
    from l2t.teachers import load_teacher

    cfg = load_config(TINY, {"teacher.name": "recurrent", "outer.steps": 3})
    teach(cfg, tmp_path / "run", progress=False)
    t = setup(cfg)
    state = initial_state(t)
    assert state.memory.abs().sum() == 0
    memories = []
    for step in range(3):
        first = run_episode(cfg, state.params, state.memory, step, 0)
        state, _ = teacher_step(t, state, step)
        assert torch.equal(state.memory, first.memory)
        memories.append(state.memory)
    assert not torch.equal(memories[0], memories[1]) and not torch.equal(memories[1], memories[2])
    _, saved = _load_state(tmp_path / "run", initial_state(t))
    assert torch.equal(saved.memory, memories[-1])
    loaded = load_teacher(tmp_path / "run")
    assert torch.equal(loaded.memory, memories[-1])


def test_run_episode_alone_in_a_fresh_process_equals_the_episode_inside_teach(tmp_path):
    """run_episode is a function of the config, the teacher's weights and memory and (step, e):
    called in a new interpreter it returns bit for bit what the same episode gave inside a
    teacher step (a recurrent teacher with memory, a student with dropout)."""
    import json

    from l2t.config import to_dict
    from l2t.io import save_tensors
    from l2t.teach import initial_state, run_episode, setup, teacher_step

    cfg = load_config(TINY, {"teacher.name": "recurrent", "student.options": {"widths": [16], "dropout": 0.2}})
    t = setup(cfg)
    before, _ = teacher_step(t, initial_state(t), 0)  # a trained teacher, with memory
    seen = []

    def spy(*args, **kw):
        seen.append(run_episode(*args, **kw))
        return seen[-1]

    teacher_step(t, before, 1, run=spy)
    inside = seen[1]  # episode 1 of step 1
    (tmp_path / "cfg.json").write_text(json.dumps(to_dict(cfg)))
    save_tensors(tmp_path / "in.safetensors", {**{f"p.{k}": v for k, v in before.params.items()}, "memory": before.memory})
    script = f"""
import json
from l2t.config import config_from_dict
from l2t.io import load_tensors, save_tensors
from l2t.teach import run_episode
cfg = config_from_dict(json.load(open({str(tmp_path / "cfg.json")!r})))
tensors, _ = load_tensors({str(tmp_path / "in.safetensors")!r})
params = {{k[2:]: v for k, v in tensors.items() if k.startswith("p.")}}
r = run_episode(cfg, params, tensors["memory"], 1, 1)
save_tensors({str(tmp_path / "out.safetensors")!r}, {{**r.grads, "memory": r.memory}}, {{"outer_loss": r.outer_loss}})
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True)
    out, meta = load_tensors(tmp_path / "out.safetensors")
    assert meta["outer_loss"] == inside.outer_loss
    assert torch.equal(out["memory"], inside.memory)
    assert all(torch.equal(out[k], inside.grads[k]) for k in inside.grads)


def test_a_method_that_cannot_take_adam_is_refused_before_a_run_folder_exists(tmp_path, capsys):
    from l2t.cli import main

    for command in ("teach", "experiment"):
        out = tmp_path / command
        assert main([command, "--config", str(TINY), "--out", str(out), "--no-progress", "--set", "inner.optimizer=adam",
                     "--set", "outer.hypergrad=reversible"]) == 2
        assert "'reversible' needs inner.optimizer = sgd" in capsys.readouterr().err and not out.exists()
    assert main(["train", "--config", str(TINY), "--loss", "ce", "--out", str(tmp_path / "t"), "--set", 'inner.betas=[0.9, 0]']) == 2
    assert "inner.betas must be two numbers" in capsys.readouterr().err
