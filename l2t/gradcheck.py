"""Checking a hypergradient method against central finite differences, in float64; and the small
problems the check, the tests and the benchmark are built on (fixtures, not engines).

:func:`check_config` describes a small real problem as an ordinary :class:`~l2t.config.Config`
(by default digits, an MLP, momentum SGD with weight decay and a step schedule, the attention
teacher reading real state features over several phases; any registered student and teacher, on
digits for a classifier and on the generated ``toy-reverse`` sequences for a seq2seq student),
so :func:`check_problem` builds it with the same code as ``l2t teach``. :func:`check` computes the
hypergradient with a method and compares its projections ``g·d`` on random unit directions ``d``
with the fourth-order central difference

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
from typing import Any

import torch

from l2t.build import build_problem, build_student, build_teacher, load_splits, make_episode, resolve_dtype, state_spec
from l2t.config import Config, load_config, parse_override
from l2t.data import BatchSchedule, TensorExamples
from l2t.hypergrad import hypergradient
from l2t.inner import Episode, InnerProblem, rollout
from l2t.losses import create_loss
from l2t.objectives import create_objective
from l2t.optim import MomentumSGD, make_schedule
from l2t.students import STUDENTS, create_student
from l2t.teachers import STATE_FEATURES, AttentionTeacher, StateSpec, TeachingSession, teacher_params
from l2t.types import ClassificationTask

#: student options that keep a check problem small (a few seconds per run of 12 steps)
SMALL_STUDENTS = {
    "mlp": {"widths": [16], "activation": "tanh"},
    "resnet": {"depth": 8},
    "wrn": {"depth": 10, "widen": 1, "activation": "tanh"},
    "densenet_bc": {"depth": 10, "growth": 2},
    "transformer": {"d_model": 16, "heads": 2, "ffn": 32, "enc_layers": 1, "dec_layers": 1, "activation": "gelu"},
    "lstm1": {"d_emb": 8, "d_hidden": 12},
    "lstm2": {"d_emb": 8, "d_hidden": 12},
    "unet": {"widths": [4, 8], "activation": "tanh", "pool": "avg"},
    "detector": {"widths": [4, 6, 8], "activation": "tanh"},
}
#: the data a check problem of each kind of task trains on (dense: 16x16 digit composites)
CHECK_DATA = {
    "seq2seq": {"data.name": "toy-reverse", "data.train_size": 64, "data.dev_size": 16, "data.test_size": 16, "inner.batch_size": 8},
    "segmentation": {"data.name": "digits-seg", "data.train_size": 32, "data.dev_size": 12, "data.test_size": 8,
                     "data.options": {"canvas": 16}, "inner.batch_size": 8},
    "detection": {"data.name": "digits-det", "data.train_size": 32, "data.dev_size": 12, "data.test_size": 8,
                  "data.options": {"canvas": 16}, "inner.batch_size": 8},
    "classification": {"data.name": "digits", "data.train_size": 200, "data.dev_size": 100, "data.test_size": 97,
                       "inner.batch_size": 25},
}
#: image students that need 28x28 inputs: digits are upsampled for them
NEEDS_28 = {"lenet"}


def _teacher_options(name: str, seed: int) -> dict:
    """A teacher away from its cross-entropy start (a hypergradient there is a special case)."""
    g = torch.Generator().manual_seed(seed)
    if name == "attention":
        return {"keys": 4, "w_init_std": 0.1}
    if name == "schedule":  # three knots near cross entropy's point
        return {"knots": 3, "init_gain": (1 + 0.3 * torch.randn(3, generator=g, dtype=torch.float64)).tolist(),
                "init_smoothing": (0.1 + 0.05 * torch.randn(3, generator=g, dtype=torch.float64)).tolist()}
    if name == "recurrent":
        return {"hidden": 6, "keys": 3, "w_init_std": 0.1}
    if name == "dln":  # a small loss network and LSTM, and a large step so that θ moves the loss
        return {"hidden": 8, "layers": 2, "step": 0.1, "sizes": [4, 8, 8, 1], "activation": "tanh"}
    return {}


def check_config(
    *,
    student: str = "mlp",
    teacher: str = "attention",
    steps: int = 8,
    every: int = 3,
    seed: int = 0,
    momentum: float = 0.9,
    weight_decay: float = 1e-3,
    lr: float = 0.1,
    lr_schedule: str = "step",
    objective: str = "expected_accuracy",
    device: str = "cpu",
    bn_mode: str = "batch",
    overrides: dict | list | None = None,
) -> Config:
    """A float64 problem small enough for finite differences and for the ``unrolled`` method.

    The default MLP uses tanh: ReLU kinks crossed by a perturbed run would spoil the differences.
    ``overrides`` (dotted keys, as ``--set``) apply last.
    """
    kind = STUDENTS.meta(student).get("task", "classification")
    values: dict[str, Any] = {
        "seed": seed, "dtype": "float64", "device": device, **CHECK_DATA[kind],
        "student.name": student, "student.options": dict(SMALL_STUDENTS.get(student, {})),
        "inner.steps": steps, "inner.lr": lr, "inner.lr_schedule": lr_schedule,
        "inner.momentum": momentum, "inner.weight_decay": weight_decay,
        "teacher.name": teacher, "teacher.state_every": every, "teacher.options": _teacher_options(teacher, seed),
        "outer.objective": objective, "outer.bn_mode": bn_mode,
    }
    if student in NEEDS_28:
        values["data.options"] = {"size": 28}
    if isinstance(overrides, list):
        overrides = dict(parse_override(o) for o in overrides)
    return load_config(None, values | (overrides or {}))


@dataclass
class CheckProblem:
    problem: InnerProblem
    episode: Episode
    teacher: torch.nn.Module
    teacher_params: dict[str, torch.Tensor]
    spec: StateSpec
    memory: Any = None


def check_problem(cfg: Config, *, start: int = 0) -> CheckProblem:
    """The problem of ``cfg``, built as ``l2t teach`` builds it. With ``start > 0`` the episode
    starts mid-run: the student is first trained ``start`` steps under the same teacher."""
    data = load_splits(cfg)
    student = build_student(cfg, data)
    teacher = build_teacher(cfg, data).to(device=data.train.device, dtype=resolve_dtype(cfg.dtype))
    tparams = teacher_params(teacher)
    problem = build_problem(cfg, data, student, create_loss(teacher.loss_name, **teacher.loss_kwargs()))
    spec = state_spec(cfg, data)
    spec = StateSpec(spec.num_classes, start + cfg.inner.steps, spec.every, spec.dev, spec.features)
    episode = make_episode(cfg, data, student, cfg.seed)
    memory = teacher.init_memory()
    if start:
        session = TeachingSession(teacher, tparams, spec, student)
        params, velocity, buffers = rollout(problem, episode.params, episode.buffers, episode.batches, session, stop=start)
        episode = Episode(params, buffers, episode.batches, start=start, velocity=velocity)
        memory = session.memory
    return CheckProblem(problem, episode, teacher, tparams, spec, memory)


def tiny_problem(*, start: int = 0, batchnorm: bool = False, dropout: float = 0.0, off_diagonal_eps: float = 0.0,
                 student: str = "mlp", teacher: str = "attention", overrides: dict | None = None, **kw) -> CheckProblem:
    """:func:`check_problem` of :func:`check_config` (``kw``), with the student's BatchNorm and
    dropout (MLP), or the attention teacher's bounded off-diagonal loss, on request."""
    extra = dict(overrides or {})
    if batchnorm or dropout:
        extra["student.options"] = SMALL_STUDENTS.get(student, {}) | {"batchnorm": batchnorm, "dropout": dropout}
    if off_diagonal_eps:
        extra["teacher.options"] = _teacher_options(teacher, kw.get("seed", 0)) | {"off_diagonal_eps": off_diagonal_eps}
    return check_problem(check_config(student=student, teacher=teacher, overrides=extra, **kw), start=start)


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
    dev = TensorExamples(x_dev, y_dev)
    net = create_student(student, ClassificationTask((1, 28, 28), 10), **(student_options or {}))
    teacher = AttentionTeacher(10, STATE_FEATURES.get("classification").dim(10), w_init_std=0.01)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher.reset_parameters()
    teacher.to(device=device, dtype=dtype)
    problem = InnerProblem(
        student=net, loss=create_loss("bilinear", **teacher.loss_kwargs()),
        optimizer=MomentumSGD(make_schedule("constant", 0.05, steps), 0.9), steps=steps,
        objective=create_objective("expected_accuracy"), dev=tuple(dev.chunks(0)),
    )
    params, buffers = net.init(seed, device, dtype)
    episode = Episode(params, buffers, BatchSchedule(TensorExamples(x, y), batch_size, seed))
    spec = StateSpec(10, steps, 10, tuple(dev.chunks(1024)))
    return CheckProblem(problem, episode, teacher, teacher_params(teacher), spec)


def outer_loss_at(cp: CheckProblem, tparams: dict[str, torch.Tensor], features: list[torch.Tensor] | None = None) -> tuple[float, list[torch.Tensor]]:
    """The outer loss of a run under ``tparams`` and the features it read (or was given)."""
    session = TeachingSession(cp.teacher, tparams, cp.spec, cp.problem.student, memory=cp.memory, frozen_features=features)
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
    continuous_features: bool = False  # the features move with every perturbation (generic)

    @property
    def max_rel_error(self) -> float:
        return max(self.rel_errors)


def check(cp: CheckProblem, method: str, *, directions: int = 6, eps: float = 1e-5, seed: int = 0) -> CheckResult:
    """``method``'s hypergradient on ``cp`` against fourth-order central differences."""
    res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method, memory=cp.memory)
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
    return CheckResult(method, errors, res.grads, jumps, 4 * directions, cp.spec.tracker().continuous)


def check_loss_network(cp: CheckProblem, method: str, *, directions: int = 6, eps: float = 1e-5, seed: int = 0,
                       lstm_eps: float = 1e-4) -> tuple[CheckResult, CheckResult]:
    """The two gradients of L2T-DLN's teacher step against finite differences (float64):

    1. ``dJ/dφ``, the hypergradient of the dev loss with respect to the loss network's weights
       (stages 1 and 3), by ``method``, through a :class:`~l2t.teachers.CoefficientsProbe`;
    2. ``dJ(φ'(θ))/dθ``, the LSTM's gradient through stage 3: ``φ' = propose(θ, dJ/dφ, memory)``,
       ``J`` the dev loss of the unroll under ``φ'``, chained as :mod:`l2t.online` does.

    The loss network starts away from cross entropy (its last layer drawn at std 0.3)."""
    from l2t.teachers import CoefficientsProbe

    teacher = cp.teacher
    memory = teacher.init_memory()
    g = torch.Generator().manual_seed(seed)
    last = f"w{len(memory['phi']) - 1}"
    memory["phi"][last] = (0.3 * torch.randn(memory["phi"][last].shape, generator=g, dtype=torch.float64)).to(
        memory["phi"][last])
    phi = memory["phi"]
    probe = CoefficientsProbe(phi).to(next(iter(phi.values())))
    first = check(CheckProblem(cp.problem, cp.episode, probe, phi, cp.spec), method, directions=directions, eps=eps,
                  seed=seed)
    g_phi = hypergradient(cp.problem, cp.episode, probe, phi, cp.spec, method=method).grads

    def stage3(theta: dict) -> tuple[float, dict]:
        new_phi, _ = teacher.propose(theta, g_phi, memory)
        return outer_loss_at(CheckProblem(cp.problem, cp.episode, probe, new_phi, cp.spec), new_phi)[0], new_phi

    with torch.enable_grad():
        leaf = {k: v.detach().requires_grad_() for k, v in cp.teacher_params.items()}
        new_phi, _ = teacher.propose(leaf, g_phi, memory)
    third = hypergradient(cp.problem, cp.episode, probe, {k: v.detach() for k, v in new_phi.items()}, cp.spec,
                          method=method)
    with torch.enable_grad():
        grads = torch.autograd.grad([new_phi[k] for k in new_phi], tuple(leaf.values()),
                                    grad_outputs=[third.grads[k] for k in new_phi], allow_unused=True)
    grads = {k: torch.zeros_like(v) if gr is None else gr for (k, v), gr in zip(leaf.items(), grads)}
    flat = torch.cat([grads[k].flatten() for k in cp.teacher_params])
    gen = torch.Generator().manual_seed(seed + 2)
    errors = []
    for _ in range(directions):
        d = torch.randn(flat.numel(), generator=gen, dtype=flat.dtype).to(flat.device)
        d /= d.norm()
        j = {s: stage3(_shift(cp.teacher_params, s * lstm_eps * d))[0] for s in (2, 1, -1, -2)}
        fd = (8 * (j[1] - j[-1]) - (j[2] - j[-2])) / (12 * lstm_eps)
        analytic = float(flat @ d)
        errors.append(abs(analytic - fd) / max(abs(analytic), abs(fd), 1e-300))
    return first, CheckResult(method, errors, grads, 0, 4 * directions)


def check_method(method: str, *, directions: int = 6, eps: float = 1e-5, seed: int = 0, **problem_kw) -> CheckResult:
    """:func:`check` on :func:`tiny_problem` (``problem_kw``)."""
    return check(tiny_problem(seed=seed, **problem_kw), method, directions=directions, eps=eps, seed=seed)
