"""Checking a hypergradient method against central finite differences, in float64.

``check_method`` builds a small real problem (digits, an MLP, momentum SGD with weight decay and
a step schedule, the attention teacher reading real state features over several phases),
computes the hypergradient with the method, and compares its projections ``g·d`` on random unit
directions ``d`` with the fourth-order central difference

    (8 (J(θ + εd) − J(θ − εd)) − (J(θ + 2εd) − J(θ − 2εd))) / 12ε ,

whose error is ``O(ε⁴)`` from truncation plus ``O(u/ε)`` from rounding (``u ≈ 1e-16``). The
second-order formula leaves an ``O(ε²)`` truncation error that stays above 1e-6 on unrolled
training runs for any ε large enough to beat rounding: their third derivatives are large.

The state features are piecewise constant in θ (an accuracy jumps when a dev prediction flips),
and every method differentiates with the features held constant. A perturbed run that crosses
such a jump would compare the gradient with a step, not a slope; so each perturbed run uses the
nominal run's features, and the check reports how many perturbed runs would have seen different
features (``jumps``). Where ``jumps`` is 0 the differences are those of the true objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from l2t.data import BatchSchedule, load_digits
from l2t.hypergrad.base import Episode, hypergradient
from l2t.inner import InnerProblem, rollout
from l2t.losses import create_loss
from l2t.objectives import create_objective
from l2t.optim import MomentumSGD, make_schedule
from l2t.students import create_student
from l2t.teachers import AttentionTeacher, ScheduleTeacher, StateSpec, TeachingSession, teacher_params


@dataclass
class CheckProblem:
    problem: InnerProblem
    episode: Episode
    teacher: torch.nn.Module
    teacher_params: dict[str, torch.Tensor]
    spec: StateSpec


def tiny_problem(
    *,
    steps: int = 8,
    every: int = 3,
    seed: int = 0,
    momentum: float = 0.9,
    weight_decay: float = 1e-3,
    lr: float = 0.1,
    lr_schedule: str = "step",
    objective: str = "expected_accuracy",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    batchnorm: bool = False,
    bn_mode: str = "batch",
    start: int = 0,
    off_diagonal_eps: float = 0.0,
    teacher: str = "attention",
) -> CheckProblem:
    """A float64 problem small enough for finite differences and for the ``unrolled`` method.

    The MLP uses tanh: ReLU kinks crossed by a perturbed run would spoil the differences.
    ``teacher="schedule"`` swaps the attention teacher for a three-knot schedule teacher at a
    random point near cross entropy's (gain ~1 ± 0.3, smoothing ~0.1 ± 0.05).
    """
    data = load_digits(train_size=200, dev_size=100, test_size=97).to(device, dtype)
    student = create_student("mlp", data.input_shape, data.num_classes, widths=(16,), activation="tanh", batchnorm=batchnorm)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _check_teacher(teacher, data.num_classes, off_diagonal_eps)
    teacher = net.to(device=device, dtype=dtype)
    problem = InnerProblem(
        student=student,
        loss=create_loss("bilinear", **teacher.loss_kwargs()),
        optimizer=MomentumSGD(make_schedule(lr_schedule, lr, steps), momentum, weight_decay),
        steps=steps,
        objective=create_objective(objective),
        x_dev=data.x_dev,
        y_dev=data.y_dev,
        bn_mode=bn_mode,
    )
    params, buffers = student.init(seed, device, dtype)
    batches = BatchSchedule(data.x_train, data.y_train, 25, seed)
    velocity = None
    if start:  # an episode that starts mid-run: first train `start` steps at the cross-entropy point
        phi = teacher.base * torch.eye(data.num_classes, dtype=dtype, device=device)
        params, velocity, buffers = rollout(problem, params, buffers, batches, lambda *_: phi, stop=start)
    episode = Episode(params, buffers, batches, start=start, velocity=velocity)
    spec = StateSpec(data.num_classes, start + steps, every, data.x_dev, data.y_dev)
    return CheckProblem(problem, episode, teacher, teacher_params(teacher), spec)


def _check_teacher(name: str, num_classes: int, off_diagonal_eps: float) -> torch.nn.Module:
    """The check problem's teacher, its weights drawn from the current random state."""
    if name == "attention":
        return AttentionTeacher(num_classes, 3 + num_classes, keys=4, base=0.1, w_init_std=0.1,
                                off_diagonal_eps=off_diagonal_eps)
    if name == "schedule":
        return ScheduleTeacher(num_classes, 3 + num_classes, knots=3, base=0.1,
                               init_gain=(1 + 0.3 * torch.randn(3)).tolist(),
                               init_smoothing=(0.1 + 0.05 * torch.randn(3)).tolist())
    raise ValueError(f"Unknown check teacher: {name!r} (attention | schedule)")


def synthetic_problem(
    student: str,
    steps: int,
    *,
    student_options: dict | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    train_size: int = 12800,
    dev_size: int = 1000,
    batch_size: int = 128,
) -> CheckProblem:
    """A timing-sized problem on random 28x28 inputs with 10 classes (the pixels do not change the
    cost): momentum SGD (lr 0.05, γ 0.9), the bilinear loss set by the attention teacher (W drawn
    at std 0.01), state refreshed every 10 steps, the relaxed dev accuracy. Used by
    ``benchmarks/hypergrad.py`` and the GPU tests; everything is drawn on the CPU, then moved."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(train_size, 1, 28, 28, generator=g).to(device, dtype)
    y = torch.randint(0, 10, (train_size,), generator=g).to(device)
    x_dev = torch.randn(dev_size, 1, 28, 28, generator=g).to(device, dtype)
    y_dev = torch.randint(0, 10, (dev_size,), generator=g).to(device)
    net = create_student(student, (1, 28, 28), 10, **(student_options or {}))
    teacher = AttentionTeacher(10, 13, w_init_std=0.01)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher.reset_parameters()
    teacher.to(device=device, dtype=dtype)
    problem = InnerProblem(
        student=net, loss=create_loss("bilinear", **teacher.loss_kwargs()),
        optimizer=MomentumSGD(make_schedule("constant", 0.05, steps), 0.9), steps=steps,
        objective=create_objective("expected_accuracy"), x_dev=x_dev, y_dev=y_dev,
    )
    params, buffers = net.init(seed, device, dtype)
    episode = Episode(params, buffers, BatchSchedule(x, y, batch_size, seed))
    return CheckProblem(problem, episode, teacher, teacher_params(teacher), StateSpec(10, steps, 10, x_dev, y_dev))


def outer_loss_at(cp: CheckProblem, tparams: dict[str, torch.Tensor], features: list[torch.Tensor] | None = None) -> tuple[float, list[torch.Tensor]]:
    """The outer loss of a run under ``tparams`` and the features it read (or was given)."""
    session = TeachingSession(cp.teacher, tparams, cp.spec, cp.problem.student, frozen_features=features)
    with torch.no_grad():
        params, _, buffers = cp.episode.run(cp.problem, session)
        return cp.problem.outer_loss(params, buffers).item(), [p.features for p in session.phases]


def _shift(params: dict[str, torch.Tensor], flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for k, v in params.items():
        out[k] = v + flat[i : i + v.numel()].view_as(v)
        i += v.numel()
    return out


@dataclass
class CheckResult:
    method: str
    rel_errors: list[float]  # per direction: |g·d − fd| / max(|g·d|, |fd|)
    grads: dict[str, torch.Tensor]
    jumps: int  # perturbed runs whose real state features differed from the nominal run's
    evaluations: int

    @property
    def max_rel_error(self) -> float:
        return max(self.rel_errors)


def check_method(method: str, *, directions: int = 6, eps: float = 1e-5, seed: int = 0, **problem_kw) -> CheckResult:
    cp = tiny_problem(seed=seed, **problem_kw)
    res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
    g = torch.cat([res.grads[k].flatten() for k in cp.teacher_params])
    gen = torch.Generator().manual_seed(seed + 1)
    nominal = [p.features for p in res.phases]
    errors, jumps = [], 0
    for _ in range(directions):
        d = torch.randn(g.numel(), generator=gen, dtype=g.dtype).to(g.device)
        d /= d.norm()
        j = {}
        for s in (2, 1, -1, -2):
            shifted = _shift(cp.teacher_params, s * eps * d)
            j[s], seen = outer_loss_at(cp, shifted)
            if len(seen) != len(nominal) or any(not torch.equal(a, b) for a, b in zip(seen, nominal)):
                jumps += 1
                j[s], _ = outer_loss_at(cp, shifted, nominal)
        fd = (8 * (j[1] - j[-1]) - (j[2] - j[-2])) / (12 * eps)
        analytic = float(g @ d)
        errors.append(abs(analytic - fd) / max(abs(analytic), abs(fd), 1e-300))
    return CheckResult(method, errors, res.grads, jumps, 4 * directions)
