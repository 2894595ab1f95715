"""L2T-DLN: the loss network, its LSTM teacher, the online protocol (also for DLF teachers)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from l2t.config import load_config
from l2t.errors import L2TError
from l2t.io import load_tensors, read_jsonl
from l2t.losses import cross_entropy, init_loss_network, loss_network
from l2t.teach import teach

from conftest import ROOT, TINY

ONLINE = {"outer.protocol": "online", "outer.episode_steps": 5, "outer.steps": 4, "outer.episodes": 1,
          "outer.optimizer": "adam", "outer.lr": 1e-3, "outer.checkpoint_every": 1}
DLN = ONLINE | {"teacher.name": "dln", "teacher.options": {"hidden": 16, "layers": 2}}


@pytest.mark.parametrize("inputs", ["sigmoid", "softmax"])
def test_the_residual_loss_network_starts_at_cross_entropy_value_and_gradient(inputs):
    phi = init_loss_network(3, dtype=torch.float64)
    assert phi["w4"].abs().sum() == 0 and all(phi[f"w{i}"].abs().sum() > 0 for i in range(4))
    z = torch.randn(6, 2, 10, dtype=torch.float64, requires_grad=True)  # per position, as for tokens
    y = torch.randint(0, 10, (6, 2))
    a, b = loss_network(z, y, phi, inputs=inputs), cross_entropy(z, y)
    (ga,), (gb,) = torch.autograd.grad(a.sum(), z), torch.autograd.grad(b.sum(), z)
    assert torch.equal(a, b) and torch.equal(ga, gb)
    # ... while the hypergradient can move its last layer: the loss depends on it
    leaf = {k: v.clone().requires_grad_() for k, v in phi.items()}
    (g_last,) = torch.autograd.grad(loss_network(z, y, leaf, inputs=inputs).sum(), [leaf["w4"]])
    assert g_last.abs().sum() > 0


def test_the_release_form_is_the_mean_over_wrong_classes_of_an_mlp():
    phi = init_loss_network(0, (4, 3, 1), residual=False, dtype=torch.float64)
    z, y = torch.randn(2, 4, dtype=torch.float64), torch.tensor([1, 3])
    s = torch.sigmoid(z)
    expected = []
    for i in range(2):
        rows = [torch.stack([s[i, y[i]], s[i, j], torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)])
                for j in range(4) if j != y[i]]
        out = [phi["w1"] @ torch.nn.functional.leaky_relu(phi["w0"] @ r, 0.01) for r in rows]
        expected.append(torch.cat(out).mean())
    torch.testing.assert_close(loss_network(z, y, phi, residual=False), torch.stack(expected))


@pytest.mark.parametrize("method", ["reverse", "checkpoint", "reversible", "unrolled"])
def test_check_grad_of_the_loss_network_and_of_the_lstm_through_stage_3(method):
    from l2t.gradcheck import check_config, check_loss_network, check_problem

    first, third = check_loss_network(check_problem(check_config(teacher="dln", steps=10, every=4)), method, directions=3)
    assert first.max_rel_error < 1e-6 and third.max_rel_error < 1e-6
    assert all(g.abs().sum() > 0 for k, g in third.grads.items() if "weight_hh" not in k)


def test_dln_online_teaches_and_its_students_train_under_its_loss_networks(tmp_path, capsys):
    from l2t.cli import main
    from l2t.teachers import LossNetworkSchedule, load_teacher

    res = teach(load_config(TINY, DLN), tmp_path / "t", progress=False)
    metrics = read_jsonl(tmp_path / "t" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1, 2, 3] and all(m["phi_change"] > 0 for m in metrics)
    assert res.skipped == 0
    loaded = load_teacher(tmp_path / "t")
    assert isinstance(loaded.teacher, LossNetworkSchedule) and loaded.teacher.knots == 4  # every step a knot here
    knots = [loaded.params[f"k{k}_w4"] for k in range(4)]
    assert all(not torch.equal(a, b) for a, b in zip(knots, knots[1:]))  # the loss network moved every step
    assert main(["train", "--config", str(TINY), "--loss", f"teacher:{tmp_path / 't'}", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    assert "loss l2t-dln" in capsys.readouterr().out
    # the LSTM and its memory (the loss network, the cells' states) are kept beside it
    lstm, _ = load_tensors(tmp_path / "t" / "dln_teacher.safetensors")
    assert "memory.phi.w4" in lstm and "memory.h.0" in lstm and lstm["memory.h.0"].abs().sum() > 0
    from l2t.figures import plot_dev_measure  # Fig. 3 of an online run (dev error at checkpoints only)

    assert plot_dev_measure(tmp_path / "t", tmp_path / "fig3.png").stat().st_size > 0


def test_the_lstm_memory_carries_across_teacher_steps():
    from l2t.teach import initial_state, setup, teacher_step

    t = setup(load_config(TINY, DLN))
    state = initial_state(t)
    seen = []
    for step in range(3):
        before = state.memory
        state, _ = teacher_step(t, state, step)
        seen.append(state.memory["h"][0].clone())
        assert not torch.equal(state.memory["phi"]["w4"], before["phi"]["w4"])
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])
    assert not state.memory["h"][0].requires_grad  # detached between teacher steps


@pytest.mark.parametrize("teacher", ["dln", "attention", "attention-adam"])
def test_online_resume_after_sigkill_is_bit_identical(tmp_path, teacher):
    """Teacher, memory (loss network, LSTM state), and the online student (its momentum, or its
    Adam moments) all resume exactly."""
    sets = {**(DLN if teacher == "dln" else ONLINE), "inner.steps": 60, "outer.steps": 12}
    if teacher == "attention-adam":
        sets |= {"inner.optimizer": "adam", "inner.lr": 0.003}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}" if not isinstance(v, dict) else f"{k}={__import__('json').dumps(v)}")]
    cmd = lambda out: [sys.executable, "-m", "l2t", "teach", "--config", str(TINY), "--out", str(out), "--no-progress", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(cmd(tmp_path / "full"), check=True, env=env, capture_output=True, timeout=240)
    proc = subprocess.Popen(cmd(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(read_jsonl(tmp_path / "killed" / "metrics.jsonl")) >= 4:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "the run finished before it was killed"
    subprocess.run([sys.executable, "-m", "l2t", "teach", "--resume", str(tmp_path / "killed"), "--no-progress"],
                   check=True, env=env, capture_output=True, timeout=240)
    for name in ["teacher.safetensors"] + (["dln_teacher.safetensors"] if teacher == "dln" else []):
        a, b = load_tensors(tmp_path / "full" / name)[0], load_tensors(tmp_path / "killed" / name)[0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    sa, sb = (load_tensors(tmp_path / d / "checkpoints" / "state.safetensors")[0] for d in ("full", "killed"))
    online = [k for k in sa if k.startswith(("state.online.params", "state.online.velocity"))]
    assert online and all(torch.equal(sa[k], sb[k]) for k in online)  # the online student itself
    assert (teacher == "attention-adam") == any(k.startswith("state.online.velocity.s:") for k in sa)


def test_online_protocol_errors(tmp_path):
    with pytest.raises(L2TError, match="taught online: set outer.protocol"):
        teach(load_config(TINY, {"teacher.name": "dln"}), tmp_path / "a", progress=False)
    with pytest.raises(L2TError, match="outer.steps must be 4, not 3"):
        teach(load_config(TINY, DLN | {"outer.steps": 3}), tmp_path / "b", progress=False)
    with pytest.raises(L2TError, match="outer.episodes must be 1"):
        teach(load_config(TINY, DLN | {"outer.episodes": 2}), tmp_path / "c", progress=False)
    assert not any((tmp_path / d).exists() for d in "abc")
