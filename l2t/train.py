"""Training one student with a fixed loss or a frozen teacher, and measuring it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from tqdm import tqdm

from l2t.build import build_problem, build_student, make_episode, state_spec
from l2t.config import Config
from l2t.data import DataSplits, derive_seed
from l2t.data.batches import TAG_EVAL, TAG_TUNE
from l2t.errors import L2TError
from l2t.inner import no_coeffs, rollout
from l2t.losses import LEARNED, SCHEDULES, create_loss
from l2t.students import Params, Student
from l2t.teachers import LoadedTeacher, Phase, TeachingSession, predict

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    loss: str
    seed: int
    test_error: float
    dev_error: float
    diverged: bool
    teacher: str | None = None  # the registered teacher's name, for a teacher's student
    phases: list[Phase] = field(default_factory=list)  # the teacher's Φ per phase (teacher losses)
    weights: tuple[Params, Params] | None = field(default=None, repr=False)  # (params, buffers), if kept

    def summary(self) -> dict:
        summary = {"loss": self.loss, "seed": self.seed, "test_error": self.test_error,
                   "dev_error": self.dev_error, "diverged": self.diverged}
        return summary if self.teacher is None else summary | {"teacher": self.teacher}


def error_rate(student: Student, params: Params, buffers: Params, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction misclassified; predictions from non-finite outputs count as wrong."""
    pred = predict(student, params, buffers, x)
    return float((pred != y).float().mean())


def train_student(
    cfg: Config,
    data: DataSplits,
    loss: str | LoadedTeacher,
    seed: int,
    *,
    on_step: Callable[[int], None] | None = None,
    keep_weights: bool = False,
) -> TrainResult:
    """Train a fresh student (init and batch order from evaluation ``seed``) for ``cfg.inner.steps``.

    ``loss`` is a registered fixed loss name (``ce``, ``smooth01``) or a loaded teacher. Evaluation
    seeds are derived apart from teacher-training seeds, so a teacher is never tested on the
    students it was trained with; the same seed gives every loss the same initial weights and
    the same batches. ``keep_weights`` keeps the final ``(params, buffers)`` in the result.
    """
    student = build_student(cfg, data)
    if isinstance(loss, LoadedTeacher):
        name = "l2t-dlf"
        loss_fn = create_loss(loss.meta["loss"], **loss.meta["loss_kwargs"])
        coeffs_fn = TeachingSession(loss.teacher, loss.params, state_spec(cfg, data, loss.state_every), student)
    else:
        if loss in LEARNED:
            raise L2TError(f"loss {loss!r} needs a teacher: use --loss teacher:PATH")
        name, loss_fn = loss, create_loss(loss, **cfg.loss_options.get(loss, {}))
        coeffs_fn = SCHEDULES[loss](**cfg.schedule_options.get(loss, {})) if loss in SCHEDULES else no_coeffs
    problem = build_problem(cfg, data, student, loss_fn)
    episode = make_episode(cfg, data, student, derive_seed(seed, TAG_EVAL))
    hook = None if on_step is None else (lambda t, p, v, b: on_step(t))
    params, _, buffers = rollout(problem, episode.params, episode.buffers, episode.batches, coeffs_fn, on_step=hook)
    diverged = not all(torch.isfinite(p).all() for p in params.values())
    if diverged:
        log.warning("student (loss %s, seed %d) diverged: non-finite weights", name, seed)
    phases = coeffs_fn.phases if isinstance(coeffs_fn, TeachingSession) else []
    return TrainResult(
        loss=name,
        seed=seed,
        test_error=error_rate(student, params, buffers, data.x_test, data.y_test),
        dev_error=error_rate(student, params, buffers, data.x_dev, data.y_dev),
        diverged=diverged,
        teacher=loss.meta.get("teacher") if isinstance(loss, LoadedTeacher) else None,
        phases=phases,
        weights=(params, buffers) if keep_weights else None,
    )


def tune_lr(cfg: Config, data: DataSplits, loss: str, grid: list[float], seeds: int,
            progress: bool = False) -> tuple[float, dict[float, float]]:
    """The learning rate in ``grid`` with the lowest mean dev error for ``loss``.

    Tuning students use their own seeds (apart from evaluation and teacher-training seeds) and
    are judged on the dev split only.
    """
    if not grid:
        return cfg.inner.lr, {}
    dev_error = {}
    for lr in tqdm(grid, desc=f"tune {loss}", unit="lr", disable=not progress):
        c = replace(cfg, inner=replace(cfg.inner, lr=float(lr)))
        runs = [train_student(c, data, loss, derive_seed(s, TAG_TUNE)) for s in range(seeds)]
        dev_error[float(lr)] = sum(r.dev_error for r in runs) / len(runs)
    best = min(dev_error, key=lambda lr: (dev_error[lr], -lr))
    return best, dev_error
