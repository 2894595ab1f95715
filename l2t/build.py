"""From a :class:`~l2t.config.Config` to the objects that train: data, student, teacher, problem.

Seeds: everything random is derived from integers with :func:`~l2t.data.derive_seed` and a
purpose tag, so a teacher-training episode, an evaluation student and the teacher's own
initialisation never share a random stream, and each is reproducible on its own (which is what
makes ``l2t teach --resume`` end at the same teacher).
"""

from __future__ import annotations

from functools import partial

import torch

from l2t.config import Config
from l2t.data import DEFAULT_AUGMENT, BatchSchedule, DataSplits, derive_seed, get_augment, load_data
from l2t.data.batches import TAG_BATCHES, TAG_INIT, TAG_TEACHER_INIT
from l2t.errors import L2TError
from l2t.inner import BN_MODES, Episode, InnerProblem
from l2t.losses import LossFn, box_regression
from l2t.objectives import create_objective
from l2t.optim import InnerAdam, MomentumSGD, make_schedule
from l2t.students import Student, create_student
from l2t.teachers import DEFAULT_FEATURES, STATE_FEATURES, TEACHERS, StateSpec, Teacher

DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: examples (sentences) per forward pass when a student is only evaluated (state features, errors)
EVAL_BATCH = 1024


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise L2TError(f"unknown device {name!r}; use cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise L2TError("--device cuda asked for, but no CUDA GPU is available")
    if device.type not in ("cpu", "cuda"):
        raise L2TError(f"unsupported device {name!r}; use cpu or cuda[:N]")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise L2TError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}")
    return DTYPES[name]


def load_splits(cfg: Config) -> DataSplits:
    d = cfg.data
    data = load_data(d.name, dev_size=d.dev_size, train_size=d.train_size, test_size=d.test_size,
                     split_seed=d.split_seed, download=d.download, options=d.options)
    if cfg.inner.batch_size > len(data.train):
        raise L2TError(f"batch size {cfg.inner.batch_size} exceeds the {len(data.train)} training examples")
    return data.to(resolve_device(cfg.device), resolve_dtype(cfg.dtype))


def build_student(cfg: Config, data: DataSplits) -> Student:
    return create_student(cfg.student.name, data.task, **cfg.student.options)


def features_name(cfg: Config, data: DataSplits) -> str:
    """The state features the teacher reads: ``teacher.features``, or the task's default."""
    name = cfg.teacher.features or DEFAULT_FEATURES[data.task.kind]
    STATE_FEATURES.get(name)
    return name


def build_teacher(cfg: Config, data: DataSplits) -> Teacher:
    """A fresh teacher for ``data``'s classes and state features, initialised from ``cfg.seed``."""
    factory = TEACHERS.get(cfg.teacher.name)
    state_dim = STATE_FEATURES.get(features_name(cfg, data)).dim(data.num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, TAG_TEACHER_INIT))
        try:
            teacher = factory(num_classes=data.num_classes, state_dim=state_dim, **cfg.teacher.options)
        except (TypeError, ValueError) as e:
            raise L2TError(f"bad options for teacher {cfg.teacher.name!r}: {e}") from None
    return teacher


def build_optimizer(cfg: Config) -> MomentumSGD | InnerAdam:
    c = cfg.inner
    try:
        schedule = make_schedule(c.lr_schedule, c.lr, c.steps, warmup=c.warmup)
        if c.optimizer == "adam":
            return InnerAdam(schedule, (float(c.betas[0]), float(c.betas[1])), c.eps, c.weight_decay)
        return MomentumSGD(schedule, c.momentum, c.weight_decay)
    except (TypeError, ValueError) as e:
        raise L2TError(str(e)) from None


def build_problem(cfg: Config, data: DataSplits, student: Student, loss: LossFn) -> InnerProblem:
    if getattr(loss, "needs_features", False) and (data.task.kind != "classification" or student.head is None):
        raise L2TError(f"large-margin softmax needs an image classifier with a linear head; student "
                       f"{student.name!r} on a {data.task.kind} task has none")
    if cfg.inner.steps < 1:
        raise L2TError(f"inner.steps must be at least 1, got {cfg.inner.steps}")
    if cfg.outer.bn_mode not in BN_MODES:
        raise L2TError(f"unknown outer.bn_mode {cfg.outer.bn_mode!r}; known: {', '.join(BN_MODES)}")
    fixed_term = None
    if data.task.kind == "detection":
        fixed_term = partial(box_regression, weight=cfg.inner.box_weight)
    return InnerProblem(
        student=student,
        loss=loss,
        optimizer=build_optimizer(cfg),
        steps=cfg.inner.steps,
        objective=create_objective(cfg.outer.objective),
        dev=tuple(data.dev.chunks(cfg.outer.dev_batch)),
        bn_mode=cfg.outer.bn_mode,
        fixed_term=fixed_term,
    )


def state_spec(cfg: Config, data: DataSplits, every: int | None = None, features: str | None = None) -> StateSpec:
    """The state the teacher reads (``every`` and ``features`` default to the config's)."""
    every = cfg.teacher.state_every if every is None else every
    if every < 1:
        raise L2TError(f"teacher.state_every must be at least 1, got {every}")
    features = features_name(cfg, data) if features is None else features
    return StateSpec(data.num_classes, cfg.inner.steps, every, tuple(data.dev.chunks(EVAL_BATCH)), features)


def augmentation(cfg: Config):
    name = cfg.data.augment if cfg.data.augment is not None else DEFAULT_AUGMENT.get(cfg.data.name, "none")
    return get_augment(name)


def make_episode(cfg: Config, data: DataSplits, student: Student, seed: int) -> Episode:
    """A fresh student (weights from ``seed``) and its batch order (also from ``seed``)."""
    augment = augmentation(cfg)
    if augment is not None and data.task.kind in ("segmentation", "detection"):
        raise L2TError(f"data.augment = {cfg.data.augment!r} moves images but not their {data.task.kind} labels; "
                       "use none for a dense task")
    params, buffers = student.init(derive_seed(seed, TAG_INIT), data.train.device, resolve_dtype(cfg.dtype))
    batches = BatchSchedule(data.train, cfg.inner.batch_size, derive_seed(seed, TAG_BATCHES), augment=augment)
    return Episode(params, buffers, batches)
