"""From a :class:`~l2t.config.Config` to the objects that train: data, student, teacher, problem.

Seeds: everything random is derived from integers with :func:`~l2t.data.derive_seed` and a
purpose tag, so a teacher-training episode, an evaluation student and the teacher's own
initialisation never share a random stream, and each is reproducible on its own (which is what
makes ``l2t teach --resume`` end at the same teacher).
"""

from __future__ import annotations

import torch

from l2t.config import Config
from l2t.data import DEFAULT_AUGMENT, BatchSchedule, DataSplits, derive_seed, get_augment, load_data
from l2t.data.batches import TAG_BATCHES, TAG_INIT, TAG_TEACHER_INIT
from l2t.errors import L2TError
from l2t.hypergrad.base import Episode
from l2t.inner import InnerProblem
from l2t.losses import LossFn
from l2t.objectives import create_objective
from l2t.optim import MomentumSGD, make_schedule
from l2t.students import Student, create_student
from l2t.teachers import TEACHERS, StateSpec, Teacher

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
                     split_seed=d.split_seed, download=d.download)
    if cfg.inner.batch_size > len(data.y_train):
        raise L2TError(f"batch size {cfg.inner.batch_size} exceeds the {len(data.y_train)} training examples")
    return data.to(resolve_device(cfg.device), resolve_dtype(cfg.dtype))


def build_student(cfg: Config, data: DataSplits) -> Student:
    return create_student(cfg.student.name, data.input_shape, data.num_classes, **cfg.student.options)


def build_teacher(cfg: Config, data: DataSplits) -> Teacher:
    """A fresh teacher for ``data``'s classes, initialised from ``cfg.seed``."""
    factory = TEACHERS.get(cfg.teacher.name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, TAG_TEACHER_INIT))
        try:
            teacher = factory(num_classes=data.num_classes, state_dim=3 + data.num_classes, **cfg.teacher.options)
        except (TypeError, ValueError) as e:
            raise L2TError(f"bad options for teacher {cfg.teacher.name!r}: {e}") from None
    return teacher


def build_optimizer(cfg: Config) -> MomentumSGD:
    c = cfg.inner
    try:
        return MomentumSGD(make_schedule(c.lr_schedule, c.lr, c.steps), c.momentum, c.weight_decay)
    except ValueError as e:
        raise L2TError(str(e)) from None


def build_problem(cfg: Config, data: DataSplits, student: Student, loss: LossFn) -> InnerProblem:
    if cfg.inner.steps < 1:
        raise L2TError(f"inner.steps must be at least 1, got {cfg.inner.steps}")
    if cfg.outer.bn_mode not in ("batch", "running"):
        raise L2TError(f"unknown outer.bn_mode {cfg.outer.bn_mode!r}; known: batch, running")
    return InnerProblem(
        student=student,
        loss=loss,
        optimizer=build_optimizer(cfg),
        steps=cfg.inner.steps,
        objective=create_objective(cfg.outer.objective),
        x_dev=data.x_dev,
        y_dev=data.y_dev,
        bn_mode=cfg.outer.bn_mode,
    )


def state_spec(cfg: Config, data: DataSplits, every: int | None = None) -> StateSpec:
    every = cfg.teacher.state_every if every is None else every
    if every < 1:
        raise L2TError(f"teacher.state_every must be at least 1, got {every}")
    return StateSpec(data.num_classes, cfg.inner.steps, every, data.x_dev, data.y_dev)


def augmentation(cfg: Config):
    name = cfg.data.augment if cfg.data.augment is not None else DEFAULT_AUGMENT.get(cfg.data.name, "none")
    return get_augment(name)


def make_episode(cfg: Config, data: DataSplits, student: Student, seed: int) -> Episode:
    """A fresh student (weights from ``seed``) and its batch order (also from ``seed``)."""
    params, buffers = student.init(derive_seed(seed, TAG_INIT), data.x_train.device, data.x_train.dtype)
    batches = BatchSchedule(data.x_train, data.y_train, cfg.inner.batch_size, derive_seed(seed, TAG_BATCHES),
                            augment=augmentation(cfg))
    return Episode(params, buffers, batches)
