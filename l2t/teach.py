"""Training a teacher: Algorithm 1 of L2T-DLF, resumable.

Each teacher step trains ``outer.episodes`` fresh students with the current teacher in the loop,
computes the exact hypergradient of each one's relaxed dev measure (``outer.hypergrad``), clips
each to norm ``outer.episode_clip`` (hypergradients through long runs are heavy-tailed: one
exploding episode must not dominate the average), averages them, clips the average to norm
``outer.clip`` and takes a step of the outer optimizer (Adam, as in the paper, or momentum SGD).

Everything random in step ``s`` is derived from ``(seed, s)``, so the run is a pure function of
its config: ``teach(..., resume=True)`` continues from the last checkpoint and, on the same
device, ends at the very same teacher as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from l2t.build import build_problem, build_student, build_teacher, load_splits, make_episode, state_spec
from l2t.config import Config, load_config
from l2t.data import derive_seed
from l2t.data.batches import TAG_TEACH
from l2t.errors import L2TError
from l2t.hypergrad import hypergradient
from l2t.io import append_jsonl, finite_or_none, load_tensors, read_jsonl, save_tensors, write_json, write_jsonl
from l2t.losses import create_loss
from l2t.objectives import expected_accuracy
from l2t.optim import Adam, Constant, MomentumSGD
from l2t.protocols import PhasesProtocol
from l2t.runs import init_run
from l2t.teachers import save_teacher, teacher_params
from l2t.train import error_rate

log = logging.getLogger(__name__)

STATE_FILE = "checkpoints/state.safetensors"
LOGGED_WEIGHTS = 32  # a teacher this small has its weights after each step in metrics.jsonl


@dataclass
class TeachResult:
    run_dir: Path
    teacher_path: Path
    metrics: list[dict]
    skipped: int


def make_outer_optimizer(cfg: Config):
    """The teacher's optimizer: ``init(params) -> state``, ``update(grads, state, params)``."""
    o = cfg.outer
    try:
        if o.optimizer == "adam":
            return Adam(lr=o.lr)
        if o.optimizer == "sgd":
            return MomentumSGD(Constant(o.lr), momentum=0.9)
    except ValueError as e:
        raise L2TError(f"outer optimizer: {e}") from None
    raise L2TError(f"unknown outer optimizer {o.optimizer!r}; known: adam, sgd")


def _flatten(state, prefix: str, tensors: dict, scalars: dict) -> None:
    """Nested dicts of tensors and ints -> flat ``tensors`` and ``scalars`` keyed by dotted path."""
    if isinstance(state, dict):
        for k, v in state.items():
            _flatten(v, f"{prefix}.{k}", tensors, scalars)
    elif isinstance(state, torch.Tensor):
        tensors[prefix] = state
    else:
        scalars[prefix] = state


def _unflatten(template, prefix: str, tensors: dict, scalars: dict):
    if isinstance(template, dict):
        return {k: _unflatten(v, f"{prefix}.{k}", tensors, scalars) for k, v in template.items()}
    if isinstance(template, torch.Tensor):
        # clone: a fresh, aligned allocation like the uninterrupted run's tensors (SIMD and BLAS
        # kernels round differently on differently aligned data, which would break bit-identity)
        return tensors[prefix].to(template).clone()
    return type(template)(scalars[prefix])


def _save_state(run_dir: Path, step: int, state: dict, skipped: int) -> None:
    """``state``: nested dicts of tensors and ints (teacher, optimizer, reference teacher)."""
    tensors, scalars = {}, {}
    _flatten(state, "state", tensors, scalars)
    save_tensors(run_dir / STATE_FILE, tensors, {"step": step, "skipped": skipped, "scalars": scalars})


def _load_state(run_dir: Path, template: dict) -> tuple[int, dict, int]:
    tensors, meta = load_tensors(run_dir / STATE_FILE)
    try:
        return int(meta["step"]), _unflatten(template, "state", tensors, meta["scalars"]), int(meta["skipped"])
    except KeyError as e:
        raise L2TError(f"checkpoint {run_dir / STATE_FILE} lacks {e}; it does not belong to this run") from None


def _global_norm(grads: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads.values()))  # float64: no overflow


def _clip(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    """Scale ``grads`` down to global norm ``max_norm`` (no-op when ``max_norm`` is 0)."""
    norm = _global_norm(grads)
    if max_norm > 0 and norm > max_norm:
        return {k: g * (max_norm / norm) for k, g in grads.items()}
    return grads


def _dev_metrics(student, params, buffers, data, prefix: str = "") -> dict:
    """Expected accuracy E[p(y|x)] and error of a student on the dev split."""
    with torch.no_grad():
        out, _ = student.apply(params, buffers, data.x_dev, train=False)
        measure = float(expected_accuracy(out, data.y_dev))
    return {f"{prefix}dev_measure": measure, f"{prefix}dev_error": error_rate(student, params, buffers, data.x_dev, data.y_dev)}


#: Config fields that only the comparison around a teacher uses (``l2t experiment``: the learning-rate
#: search of the fixed losses, the evaluation students), never the teacher's training.
NOT_TEACHING = ("eval_seeds", "lr_grid", "tune_seeds", "losses")


def teaching_part(cfg: Config) -> Config:
    """``cfg`` with the fields of :data:`NOT_TEACHING` at their defaults: two configs that agree
    here train the same teacher."""
    default = Config()
    return replace(cfg, **{name: getattr(default, name) for name in NOT_TEACHING})


def teach(cfg: Config | None, run_dir: str | Path, *, resume: bool = False, progress: bool = True) -> TeachResult:
    """Train a teacher with ``cfg`` into ``run_dir``.

    With ``resume`` the run continues from its last checkpoint with its own saved config;
    ``cfg`` may then be ``None``, and if given must agree with the saved one in every field that
    affects the teacher (:func:`teaching_part`): an experiment whose learning-rate grid or number
    of evaluation seeds changed reuses its finished teacher.
    """
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / "config.json").is_file():
            raise L2TError(f"cannot resume: {run_dir} holds no config.json (not an l2t teach run)")
        saved = load_config(run_dir / "config.json")
        if cfg is not None and teaching_part(cfg) != teaching_part(saved):
            raise L2TError(f"{run_dir} holds a teacher run with a different config; remove it or use another folder")
        cfg = saved
    elif cfg is None:
        raise ValueError("teach() needs a config unless it resumes")
    elif (run_dir / STATE_FILE).exists():
        raise L2TError(f"{run_dir} already holds a teacher run; use --resume {run_dir} or another --out")
    else:
        init_run(run_dir, cfg)

    data = load_splits(cfg)
    student = build_student(cfg, data)
    teacher = build_teacher(cfg, data).to(device=data.x_train.device, dtype=data.x_train.dtype)
    problem = build_problem(cfg, data, student, create_loss(teacher.loss_name, **teacher.loss_kwargs()))
    spec = state_spec(cfg, data)
    optimizer = make_outer_optimizer(cfg)
    params = teacher_params(teacher)
    opt_state = optimizer.init(params)
    protocol = None
    if cfg.outer.protocol == "phases":
        protocol = PhasesProtocol(cfg, data, student, problem, spec)
        problem = protocol.problem
    elif cfg.outer.protocol != "full":
        raise L2TError(f"unknown outer.protocol {cfg.outer.protocol!r}; known: full, phases")
    ref_params = params  # the teacher that made the current reference run (protocol phases)
    start, skipped = 0, 0
    if resume and (run_dir / STATE_FILE).exists():
        start, state, skipped = _load_state(run_dir, {"teacher": params, "opt": opt_state, "reference": params})
        params, opt_state, ref_params = state["teacher"], state["opt"], state["reference"]
        log.info("resuming %s at teacher step %d", run_dir, start)
    # Drop records past the checkpoint (written after it, before a kill); rewrite atomically.
    metrics = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["step"] < start]
    write_jsonl(run_dir / "metrics.jsonl", metrics)

    bar = tqdm(range(start, cfg.outer.steps), initial=start, total=cfg.outer.steps, desc="teacher", disable=not progress, unit="step")
    for step in bar:
        t0 = time.perf_counter()
        total, ok, outer, measure, dev_err = None, 0, 0.0, 0.0, 0.0
        record = {"step": step}
        if protocol is not None and protocol.needs_reference(step):
            if protocol.reference_step(step) == step:
                ref_params = params
            protocol.make_reference(step, teacher, ref_params)
            if protocol.reference.made_at == step:  # a whole student under this teacher: Fig. 3's point
                record |= _dev_metrics(student, *protocol.reference.final, data, prefix="reference_")
        for e in range(cfg.outer.episodes):
            if protocol is None:
                episode = make_episode(cfg, data, student, derive_seed(cfg.seed, TAG_TEACH, step, e))
            else:
                episode = protocol.episode(step, e)
            res = hypergradient(problem, episode, teacher, params, spec, method=cfg.outer.hypergrad)
            if not (math.isfinite(res.outer_loss) and all(torch.isfinite(g).all() for g in res.grads.values())):
                log.warning("teacher step %d, episode %d: non-finite hypergradient; episode skipped", step, e)
                continue
            ok += 1
            grads = _clip(res.grads, cfg.outer.episode_clip)
            total = grads if total is None else {k: total[k] + grads[k] for k in total}
            outer += res.outer_loss
            m = _dev_metrics(student, res.params, res.buffers, data)
            measure, dev_err = measure + m["dev_measure"], dev_err + m["dev_error"]
        record["episodes_ok"] = ok
        if ok == 0:
            skipped += 1
            log.warning("teacher step %d: no finite hypergradient; teacher unchanged", step)
        else:
            grads = {k: g / ok for k, g in total.items()}
            norm = _global_norm(grads)
            grads = _clip(grads, cfg.outer.clip)
            params, opt_state = optimizer.update(grads, opt_state, params)
            params = teacher.project(params)
            record |= {
                "outer_loss": outer / ok, "dev_measure": measure / ok, "dev_error": dev_err / ok,
                "grad_norm": finite_or_none(norm),
            }
            if sum(v.numel() for v in params.values()) <= LOGGED_WEIGHTS:  # e.g. the schedule teacher
                record["teacher"] = {k: v.tolist() for k, v in params.items()}
            bar.set_postfix(dev_measure=f"{measure / ok:.4f}", dev_err=f"{dev_err / ok:.4f}")
        record["seconds"] = time.perf_counter() - t0
        append_jsonl(run_dir / "metrics.jsonl", record)
        metrics.append(record)
        done = step + 1
        if done % cfg.outer.checkpoint_every == 0 or done == cfg.outer.steps:
            _save_state(run_dir, done, {"teacher": params, "opt": opt_state, "reference": ref_params}, skipped)
    bar.close()

    teacher_path = run_dir / "teacher.safetensors"
    save_teacher(
        teacher_path, teacher, params, name=cfg.teacher.name, state_every=cfg.teacher.state_every,
        total_steps=cfg.inner.steps, class_names=list(data.class_names), data=cfg.data.name,
    )
    tail = [r for r in metrics[-5:] if "dev_measure" in r]
    write_json(run_dir / "summary.json", {
        "teacher_steps": cfg.outer.steps,
        "skipped_steps": skipped,
        "final_dev_measure_last5": sum(r["dev_measure"] for r in tail) / len(tail) if tail else None,
        "seconds": sum(r["seconds"] for r in metrics),
        "teacher": str(teacher_path),
    })
    return TeachResult(run_dir, teacher_path, metrics, skipped)
