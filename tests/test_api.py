import copy

import torch

from l2t import TeacherLoss
from l2t.build import build_problem, build_student, build_teacher, load_splits, make_episode, state_spec
from l2t.config import load_config
from l2t.inner import rollout
from l2t.losses import create_loss
from l2t.teachers import TeachingSession, load_teacher, save_teacher, teacher_params

from conftest import TINY


def test_teacher_loss_in_a_plain_torch_loop_matches_the_library(tmp_path):
    """A user's nn.Module + torch.optim.SGD loop driven by TeacherLoss ends at the same weights as
    l2t's functional rollout with the same teacher, init and batches (float64)."""
    cfg = load_config(TINY, {"dtype": "float64", "inner.weight_decay": 1e-3})
    data = load_splits(cfg)
    teacher = build_teacher(cfg, data)
    torch.nn.init.normal_(teacher.W, std=0.05)  # a teacher that is not plain cross entropy
    save_teacher(tmp_path / "t.safetensors", teacher, teacher_params(teacher), name="attention",
                 state_every=cfg.teacher.state_every)
    loaded = load_teacher(tmp_path / "t.safetensors", dtype=torch.float64)
    student = build_student(cfg, data)
    episode = make_episode(cfg, data, student, seed=11)

    problem = build_problem(cfg, data, student, create_loss("bilinear", **loaded.meta["loss_kwargs"]))
    session = TeachingSession(loaded.teacher, loaded.params, state_spec(cfg, data), student)
    expected, _, _ = rollout(problem, episode.params, episode.buffers, episode.batches, session)

    model = copy.deepcopy(student.module).double()
    model.load_state_dict(episode.params)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.inner.lr, momentum=cfg.inner.momentum,
                          weight_decay=cfg.inner.weight_decay)
    criterion = TeacherLoss.load(tmp_path / "t.safetensors", data.dev.x, data.dev.y, total_steps=cfg.inner.steps)
    model.train()
    for step in range(cfg.inner.steps):
        batch = episode.batches(step)
        loss = criterion(model(batch.inputs), batch.targets, step=step, model=model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert model.training  # the dev evaluation restored the mode
    for k, v in model.named_parameters():
        torch.testing.assert_close(v.detach(), expected[k], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(criterion.coeffs, session.phases[-1].coeffs)


def test_train_student_keeps_final_weights_on_request():
    from l2t.train import FixedLoss, error_rate, train_student

    cfg = load_config(TINY)
    data = load_splits(cfg)
    assert train_student(cfg, data, FixedLoss("ce"), 0).weights is None
    res = train_student(cfg, data, FixedLoss("ce"), 0, keep_weights=True)
    params, buffers = res.weights
    assert error_rate(build_student(cfg, data), params, buffers, data.test) == res.test_error
    assert "weights" not in repr(res)


def test_the_examples_script_runs(tmp_path):
    """examples/own_training_loop.py (the README's API snippet): its own model, torch.optim.SGD,
    a DataLoader and a trained teacher."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "own_training_loop.py"), "--epochs", "3"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "test error" in out.stdout and "60 steps" in out.stdout


def test_teacher_loss_refuses_a_class_count_mismatch(tmp_path):
    import pytest

    from l2t.errors import L2TError
    from l2t.teachers import AttentionTeacher

    t = AttentionTeacher(10, 13)
    save_teacher(tmp_path / "t.safetensors", t, teacher_params(t), name="attention", state_every=5)
    criterion = TeacherLoss.load(tmp_path / "t.safetensors", torch.randn(8, 4), torch.arange(8) % 10, total_steps=10)
    model = torch.nn.Linear(4, 7)
    with pytest.raises(L2TError, match="over 10 classes, the logits have 7"):
        criterion(model(torch.randn(3, 4)), torch.tensor([0, 1, 2]), step=0, model=model)
    with pytest.raises(L2TError, match="targets must be integer classes"):
        criterion(torch.randn(3, 10), torch.zeros(3), step=0, model=torch.nn.Linear(4, 10))
