"""Training one student with a fixed loss or a frozen teacher, measuring it, and recording it in a
run folder.

A loss is given as a typed spec (:data:`LossSpec`): :class:`FixedLoss` (a registered loss such as
``ce``) or :class:`TaughtLoss` (a trained teacher sets the loss's coefficients as the student
trains). :func:`parse_loss` reads the command line's form (``ce``, ``teacher:PATH``).
:func:`record_student` is the one function that trains a student into a run folder; ``l2t train``,
``l2t experiment`` and ``experiments/ablate.py`` all call it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from l2t.build import EVAL_BATCH, build_problem, build_student, make_episode, resolve_device, resolve_dtype, state_spec
from l2t.config import TEACHER_LOSS, Config
from l2t.data import DataSplits, derive_seed
from l2t.data.batches import TAG_EVAL, TAG_TUNE
from l2t.errors import L2TError
from l2t.distributed import ALONE, World, allreduce_sum
from l2t.evaluate import evaluate
from l2t.inner import no_coeffs, rollout
from l2t.io import (finite_or_none, remove_stale_temporaries, require_tensorboard, save_tensors, write_csv, write_json,
                    write_jsonl, write_tensorboard)
from l2t.losses import LEARNED, LOSSES, SCHEDULES, create_loss, cross_entropy, masked_sum
from l2t.pytree import all_finite
from l2t.runs import check_run_dir, check_tokenizer, init_run, save_tokenizer
from l2t.teachers import LoadedTeacher, Phase, TeachingSession, load_teacher
from l2t.teachers.checkpoint import resolve_teacher_path
from l2t.types import Params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FixedLoss:
    """A registered loss (``l2t list``), with ``cfg.loss_options[name]`` as its arguments."""

    name: str

    def __post_init__(self) -> None:
        LOSSES.get(self.name)  # an unknown name lists the known ones
        if self.name in LEARNED:
            raise L2TError(f"loss {self.name!r} needs a teacher: use --loss teacher:PATH")

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class TaughtLoss:
    """The learned loss whose coefficients a trained teacher sets (``teacher:PATH``)."""

    teacher: LoadedTeacher
    path: str | None = None

    @property
    def label(self) -> str:
        """``l2t-dln`` for the loss networks of an L2T-DLN teacher, else ``l2t-dlf``."""
        return "l2t-dln" if self.teacher.meta.get("loss") == "dln" else TEACHER_LOSS


LossSpec = FixedLoss | TaughtLoss


def parse_loss(text: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LossSpec:
    """``"ce"`` -> :class:`FixedLoss`; ``"teacher:PATH"`` (a teacher file or a teach run folder)
    -> :class:`TaughtLoss`, loaded onto ``device`` in ``dtype``."""
    if text.startswith("teacher:"):
        path = resolve_teacher_path(text.partition(":")[2])
        return TaughtLoss(load_teacher(path, device, dtype), str(path.resolve()))
    return FixedLoss(text)


@dataclass
class TrainResult:
    loss: str
    seed: int
    test_error: float
    dev_error: float
    diverged: bool
    teacher: str | None = None  # the registered teacher's name, for a teacher's student
    teacher_path: str | None = None
    phases: list[Phase] = field(default_factory=list)  # the teacher's coefficients per phase (teacher losses)
    weights: tuple[Params, Params] | None = field(default=None, repr=False)  # (params, buffers), if kept
    steps: list[dict] = field(default_factory=list, repr=False)  # per-step scalars, if recorded
    dev_ce: float = math.nan
    scores: dict = field(default_factory=dict)  # the task's own test scores (record_student: BLEU, mIoU, mAP)

    def summary(self) -> dict:
        summary = {"loss": self.loss, "seed": self.seed, "test_error": self.test_error,
                   "dev_error": self.dev_error, "diverged": self.diverged, "dev_ce": finite_or_none(self.dev_ce)}
        if self.teacher is not None:
            summary["teacher"] = self.teacher
        if self.teacher_path is not None:
            summary["teacher_path"] = self.teacher_path
        return summary


def error_rate(student, params: Params, buffers: Params, examples) -> float:
    """Fraction of real positions misclassified (a non-finite output counts as wrong)."""
    return evaluate(student, params, buffers, examples.chunks(EVAL_BATCH)).error


class StepRecorder:
    """A coefficient function that also records, at every step, the learning rate and the
    training batch's cross entropy and accuracy over its real positions (whatever loss trains)."""

    def __init__(self, inner, lr: Callable[[int], float]) -> None:
        self.inner, self.lr, self.records = inner, lr, []

    @torch.no_grad()
    def __call__(self, step, outputs, batch, params, buffers):
        n = max(batch.count(), 1)
        ce = float(masked_sum(cross_entropy(outputs, batch.targets), batch.mask)) / n
        acc = float(batch.real(outputs.argmax(-1) == batch.targets).sum()) / n
        self.records.append({"step": step, "lr": self.lr(step), "train_ce": finite_or_none(ce), "train_accuracy": acc})
        return self.inner(step, outputs, batch, params, buffers)


def train_student(
    cfg: Config,
    data: DataSplits,
    loss: LossSpec,
    seed: int,
    *,
    on_step: Callable[[int], None] | None = None,
    keep_weights: bool = False,
    record_steps: bool = False,
) -> TrainResult:
    """Train a fresh student (init and batch order from evaluation ``seed``) for ``cfg.inner.steps``.

    Evaluation seeds are derived apart from teacher-training seeds, so a teacher is never tested on
    the students it was trained with; the same seed gives every loss the same initial weights and
    the same batches. ``keep_weights`` keeps the final ``(params, buffers)`` in the result;
    ``record_steps`` its per-step scalars (:class:`StepRecorder`). A student whose weights or dev
    cross entropy are not finite is marked diverged (a large but finite cross entropy is not:
    smooth 0-1, for one, makes confident students whose wrong answers cost a lot).
    """
    student = build_student(cfg, data)
    if isinstance(loss, TaughtLoss):
        t = loss.teacher
        t.check_fits(data.num_classes)
        loss_fn = create_loss(t.meta["loss"], **t.meta["loss_kwargs"])
        coeffs_fn = TeachingSession(t.teacher, t.params, state_spec(cfg, data, t.state_every, t.features), student,
                                    memory=t.memory)
    else:
        loss_fn = create_loss(loss.name, **cfg.loss_options.get(loss.name, {}))
        coeffs_fn = SCHEDULES[loss.name](**cfg.schedule_options.get(loss.name, {})) if loss.name in SCHEDULES else no_coeffs
    problem = build_problem(cfg, data, student, loss_fn)
    episode = make_episode(cfg, data, student, derive_seed(seed, TAG_EVAL))
    hook = None if on_step is None else (lambda t, p, v, b: on_step(t))
    session = coeffs_fn
    if record_steps:
        coeffs_fn = StepRecorder(coeffs_fn, problem.optimizer.lr)
    params, _, buffers = rollout(problem, episode.params, episode.buffers, episode.batches, coeffs_fn, on_step=hook)
    dev = evaluate(student, params, buffers, data.dev.chunks(EVAL_BATCH))
    diverged = not all_finite(params) or not math.isfinite(dev.ce)
    if diverged:
        log.warning("student (loss %s, seed %d) diverged: %s", loss.label, seed,
                    "non-finite weights" if not all_finite(params) else f"dev cross entropy {dev.ce:.3g}")
    return TrainResult(
        loss=loss.label,
        seed=seed,
        test_error=error_rate(student, params, buffers, data.test),
        dev_error=dev.error,
        diverged=diverged,
        teacher=loss.teacher.name if isinstance(loss, TaughtLoss) else None,
        teacher_path=loss.path if isinstance(loss, TaughtLoss) else None,
        phases=session.phases if isinstance(session, TeachingSession) else [],
        weights=(params, buffers) if keep_weights else None,
        steps=coeffs_fn.records if record_steps else [],
        dev_ce=dev.ce,
    )


def record_student(cfg: Config, data: DataSplits, loss: LossSpec, seed: int, run_dir: str | Path, *,
                   on_step: Callable[[int], None] | None = None, extra: dict | None = None,
                   overwrite: bool = False, tensorboard: bool = False) -> TrainResult:
    """:func:`train_student`, recorded in ``run_dir``:

    * ``config.json``, ``provenance.json``;
    * ``metrics.jsonl`` and ``metrics.csv``: per step, the learning rate and the training batch's
      cross entropy and accuracy (and TensorBoard event files under ``tensorboard/`` on request);
    * ``student.safetensors``: the final weights and buffers;
    * for a teacher's student, ``phases.safetensors`` (the coefficients of every phase, Fig. 4);
    * ``summary.json`` (with ``extra``), written last.

    A folder that holds a finished run is refused unless ``overwrite``; nothing is written before
    the student is trained."""
    from l2t.figures import save_phases

    run_dir = Path(run_dir)
    if (run_dir / "checkpoints").exists() or (run_dir / "teacher.safetensors").exists():
        raise L2TError(f"{run_dir} holds a teacher's run, not a student's; use another --out")
    if (run_dir / "summary.json").exists() and not overwrite:
        raise L2TError(f"{run_dir} already holds a finished run; use --overwrite or another --out")
    check_run_dir(run_dir)
    if tensorboard:
        require_tensorboard()
    if isinstance(loss, TaughtLoss) and loss.path:  # a teacher of translation reads the token ids of its own run
        check_tokenizer(Path(loss.path).parent, data.tokenizer)
    res = train_student(cfg, data, loss, seed, on_step=on_step, keep_weights=True, record_steps=True)
    scores = task_scores(cfg, data, res.weights)
    run = init_run(run_dir, cfg)
    remove_stale_temporaries(run)  # of an earlier, killed write into this folder
    save_tokenizer(run, data.tokenizer)
    write_jsonl(run / "metrics.jsonl", res.steps)
    write_csv(run / "metrics.csv", res.steps)
    if tensorboard:
        write_tensorboard(run, res.steps)
    params, buffers = res.weights
    save_tensors(run / "student.safetensors", {**{f"params.{k}": v for k, v in params.items()},
                                               **{f"buffers.{k}": v for k, v in buffers.items()}},
                 {"student": cfg.student.name, "options": cfg.student.options})
    if res.phases:
        base = float(loss.teacher.teacher.config().get("base", 0.0))
        save_phases(run / "phases.safetensors", res.phases, base=base, class_names=list(data.class_names))
    res.scores = scores
    write_json(run / "summary.json", res.summary() | scores | {"lr": cfg.inner.lr} | (extra or {}))
    res.weights = None
    return res


def dense_scores(student, data: DataSplits, weights: tuple[Params, Params], split: str) -> dict:
    """mIoU (segmentation) or mAP (detection) of ``split`` (:mod:`l2t.metrics`), keyed
    ``{split}_miou`` and ``{split}_iou``, or ``{split}_map50`` and ``{split}_map``."""
    from l2t.metrics import detection_scores, segmentation_scores

    batches = getattr(data, split).chunks(EVAL_BATCH)
    if data.task.kind == "segmentation":
        scores = segmentation_scores(student, *weights, batches)
    else:
        scores = detection_scores(student, *weights, batches, data.objects[split])
    return {f"{split}_{k}": v for k, v in scores.items()}


def tuning_error(cfg: Config, data: DataSplits, loss: LossSpec, seed: int) -> float:
    """A tuning student's score (lower is better): 1 − dev mIoU for segmentation, 1 − dev mAP@0.5
    for detection (its cell error is mostly the background's), else the dev error; 1 if it
    diverged."""
    if data.task.kind not in ("segmentation", "detection"):
        return train_student(cfg, data, loss, seed).dev_error
    res = train_student(cfg, data, loss, seed, keep_weights=True)
    if res.diverged:
        return 1.0
    key = "dev_miou" if data.task.kind == "segmentation" else "dev_map50"
    return 1 - dense_scores(build_student(cfg, data), data, res.weights, "dev")[key]


def task_scores(cfg: Config, data: DataSplits, weights: tuple[Params, Params]) -> dict:
    """The task's own scores besides the error: test BLEU for translation (:func:`test_bleu`); mIoU
    (segmentation) or mAP (detection) of the dev split and of the test split, so that a user who
    tunes by hand reads the dev score that :func:`tuning_error` ranks by."""
    if data.tokenizer is not None:
        return test_bleu(cfg, data, weights)
    if data.task.kind not in ("segmentation", "detection"):
        return {}
    student = build_student(cfg, data)
    return dense_scores(student, data, weights, "dev") | dense_scores(student, data, weights, "test")


def test_bleu(cfg: Config, data: DataSplits, weights: tuple[Params, Params]) -> dict:
    """A seq2seq student's corpus BLEU (sacrebleu) on the test split, by beam search of width
    ``cfg.beam``, against the raw reference sentences; with its signature."""
    from l2t.decode import corpus_bleu, translate

    student = build_student(cfg, data)
    sources, references = zip(*data.texts["test"])
    hyps = translate(student, *weights, data.tokenizer, list(sources), beam=cfg.beam)
    score, signature = corpus_bleu(hyps, list(references))
    return {"test_bleu": score, "bleu_signature": signature, "beam": cfg.beam}


def load_loss(cfg: Config, text: str) -> LossSpec:
    """:func:`parse_loss` on the config's device and dtype."""
    return parse_loss(text, resolve_device(cfg.device), resolve_dtype(cfg.dtype))


def tune_lr(cfg: Config, data: DataSplits, loss: LossSpec, grid: list[float], seeds: int,
            progress: bool = False, world: World = ALONE) -> tuple[float, dict[float, float]]:
    """The learning rate in ``grid`` with the lowest mean dev error for ``loss`` (dense tasks: 1 −
    dev mIoU or mAP@0.5, :func:`tuning_error`).

    Tuning students use their own seeds (apart from evaluation and teacher-training seeds) and
    are judged on the dev split only. With several processes (``world``) the students are spread
    over them and every rank gets every dev error, so every rank picks the same rate.
    """
    if not grid:
        return cfg.inner.lr, {}
    jobs = [(float(lr), s) for lr in grid for s in range(seeds)]
    errors = torch.zeros(len(jobs), dtype=torch.float64)
    mine = [i for i in range(len(jobs)) if world.owner(i) == world.rank]
    for i in tqdm(mine, desc=f"tune {loss.label}", unit="student", disable=not progress or not world.main):
        lr, s = jobs[i]
        errors[i] = tuning_error(replace(cfg, inner=replace(cfg.inner, lr=lr)), data, loss, derive_seed(s, TAG_TUNE))
    errors = allreduce_sum(errors, world).tolist()
    dev_error = {}
    for lr in grid:
        runs = [e for (l, _), e in zip(jobs, errors) if l == float(lr)]
        dev_error[float(lr)] = sum(runs) / len(runs)
    best = min(dev_error, key=lambda lr: (dev_error[lr], -lr))
    return best, dev_error
