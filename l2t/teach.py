"""Training a teacher: Algorithm 1 of L2T-DLF, resumable.

Three layers, so that each can run on its own:

* :func:`setup` builds everything a teacher step needs from a config (:class:`Teaching`: data,
  student, teacher, inner problem, state features, protocol);
* :func:`run_episode` runs one episode ``e`` of teacher step ``step``: a function of the config,
  the teacher's weights and memory (and, for ``outer.protocol = phases``, the weights of the
  teacher that makes the reference run) and ``(step, e)`` alone, so another process can run it
  and return the same :class:`EpisodeResult`;
* :func:`teacher_step` combines a step's episodes: it clips each episode's hypergradient to norm
  ``outer.episode_clip`` (hypergradients through long runs are heavy-tailed: one exploding episode
  must not dominate the average), averages them, clips the average to norm ``outer.clip`` and
  takes a step of the outer optimizer (Adam, as in the paper, or momentum SGD), then projects the
  teacher onto its feasible set.

**Teacher memory.** A teacher with memory (``teacher.init_memory()`` is not ``None``) carries it
from one teacher step to the next, detached: every episode of step ``s`` starts from the memory
``m_s``, and ``m_{s+1}`` is the memory at the end of the step's first usable episode (a finite
hypergradient, a student that did not diverge; ``m_s`` again if none). The memory is saved in every checkpoint and in the
teacher file, whose students start from it.

Everything random in step ``s`` is derived from ``(seed, s)``, so the run is a pure function of
its config: ``teach(..., resume=True)`` continues from the last checkpoint and, on the same
device, ends at the very same teacher (and memory) as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from l2t.build import build_problem, build_student, build_teacher, load_splits, make_episode, resolve_dtype, state_spec
from l2t.config import Config, config_from_dict, load_config, to_dict
from l2t.data import DataSplits, derive_seed
from l2t.data.batches import TAG_TEACH
from l2t.distributed import ALONE, World, agree, broadcast_text, broadcast_tree, gather_episodes
from l2t.errors import Diverged, L2TError
from l2t.evaluate import Evaluation, evaluate
from l2t.hypergrad import check_optimizer, get_method, hypergradient
from l2t.inner import Episode, InnerProblem
from l2t.io import (
    append_jsonl, finite_or_none, flatten_state, load_tensors, read_json, read_jsonl, remove_stale_temporaries, require_tensorboard,
    save_tensors, unflatten_state, write_csv, write_json, write_jsonl, write_tensorboard,
)
from l2t.losses import create_loss
from l2t.optim import Adam, Constant, MomentumSGD
from l2t.online import OnlineProtocol
from l2t.protocols import PhasesProtocol
from l2t.pytree import all_finite
from l2t.runs import check_run_dir, check_tokenizer, init_run, save_tokenizer
from l2t.students import Student
from l2t.teachers import TEACHERS, LossNetworkTeacher, StateSpec, Teacher, save_teacher, teacher_params

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


@dataclass
class Teaching:
    """What every teacher step of a config uses (built once by :func:`setup`)."""

    cfg: Config
    data: DataSplits
    student: Student
    teacher: Teacher
    problem: InnerProblem  # the episodes' problem (``outer.episode_steps`` long for phases)
    spec: StateSpec
    protocol: PhasesProtocol | None
    online: OnlineProtocol | None = None

    def episode(self, step: int, e: int, reference_params: dict | None) -> Episode:
        if self.protocol is None:
            return make_episode(self.cfg, self.data, self.student, derive_seed(self.cfg.seed, TAG_TEACH, step, e))
        self.ensure_reference(step, reference_params)
        return self.protocol.episode(step, e)

    def ensure_reference(self, step: int, reference_params: dict | None) -> bool:
        """Make the reference run used at ``step`` if it is not made yet (protocol phases);
        returns whether it was made now."""
        if self.protocol is None or not self.protocol.needs_reference(step):
            return False
        if reference_params is None:
            raise ValueError("protocol phases: the reference teacher's weights are needed")
        self.protocol.make_reference(step, self.teacher, reference_params)
        return True


def check_average(cfg: Config) -> None:
    """Tail averaging (``outer.average``) needs at least that many steps and a teacher without
    memory: a memory (a GRU state, L2T-DLN's loss networks) was made by the last weights, not by
    their mean."""
    if cfg.outer.average > cfg.outer.steps:
        raise L2TError(f"outer.average = {cfg.outer.average} averages more steps than the run has "
                       f"(outer.steps = {cfg.outer.steps})")
    if cfg.outer.average and TEACHERS.get(cfg.teacher.name).init_memory is not Teacher.init_memory:
        raise L2TError(f"outer.average does not apply to teacher {cfg.teacher.name}: its memory was made by the "
                       "last weights, not by their mean; set outer.average = 0")


def check_teaching(cfg: Config) -> None:
    """The checks of a teacher run that need only the config (``setup`` and ``l2t experiment``
    make them before any data is loaded or any student trained)."""
    get_method(cfg.outer.hypergrad)
    check_optimizer(cfg.outer.hypergrad, cfg.inner.optimizer)
    check_average(cfg)


def setup(cfg: Config) -> Teaching:
    """Everything a teacher step of ``cfg`` needs; every name in the config is checked here,
    before a run folder is written."""
    check_teaching(cfg)
    make_outer_optimizer(cfg)
    data = load_splits(cfg)
    student = build_student(cfg, data)
    teacher = build_teacher(cfg, data).to(device=data.train.device, dtype=resolve_dtype(cfg.dtype))
    problem = build_problem(cfg, data, student, create_loss(teacher.loss_name, **teacher.loss_kwargs()))
    spec = state_spec(cfg, data)
    protocol = online = None
    if cfg.outer.protocol == "phases":
        protocol = PhasesProtocol(cfg, data, student, problem, spec, teacher.init_memory() is not None)
        problem = protocol.problem
    elif cfg.outer.protocol == "online":
        online = OnlineProtocol(cfg, data, student, problem, spec, teacher)
        problem = online.problem
    elif isinstance(teacher, LossNetworkTeacher):
        raise L2TError("teacher dln (L2T-DLN) is taught online: set outer.protocol = \"online\" (and "
                       "outer.episode_steps, outer.steps = inner.steps / episode_steps, outer.episodes = 1)")
    return Teaching(cfg, data, student, teacher, problem, spec, protocol, online)


@dataclass
class EpisodeResult:
    """One episode's contribution to a teacher step. ``status`` is ``ok``, ``non-finite`` (the
    outer loss, the hypergradient or the final weights) or ``diverged`` (see :func:`diverged`);
    only ``ok`` episodes are used."""

    step: int
    episode: int
    status: str
    outer_loss: float
    grads: dict[str, torch.Tensor]
    memory: Any  # the teacher's memory at the end of the episode
    dev_measure: float  # E[p(y|x)] of the episode's final student on dev
    dev_error: float
    seconds: float
    reason: str = ""  # why it is not ok (known to the rank that ran it)
    rank: int = 0  # the process that ran it

    @property
    def finite(self) -> bool:
        return self.status == "ok"


_SETUPS: dict[str, Teaching] = {}


def _setup_for(cfg: Config) -> Teaching:
    """:func:`setup` of ``cfg``, built once per process (configs are plain data: the key is their JSON)."""
    key = json.dumps(to_dict(cfg), sort_keys=True)
    if key not in _SETUPS:
        _SETUPS.clear()  # one config at a time
        _SETUPS[key] = setup(cfg)
    return _SETUPS[key]


def run_episode(cfg: Config | dict, teacher_params: dict, memory: Any, step: int, e: int, *,
                reference_params: dict | None = None, teaching: Teaching | None = None) -> EpisodeResult:
    """Episode ``e`` of teacher step ``step`` under the teacher ``teacher_params`` with ``memory``:
    a fresh student (or, for protocol phases, a snapshot of the reference run of
    ``reference_params``), its exact hypergradient (``outer.hypergrad``) and its dev metrics."""
    cfg = config_from_dict(cfg) if isinstance(cfg, dict) else cfg
    t = teaching or _setup_for(cfg)
    t0 = time.perf_counter()
    episode = t.episode(step, e, reference_params)
    try:
        res = hypergradient(t.problem, episode, t.teacher, teacher_params, t.spec, method=cfg.outer.hypergrad,
                            memory=memory)
    except Diverged as err:
        return EpisodeResult(step, e, "diverged", math.nan, {}, memory, math.nan, math.nan, time.perf_counter() - t0,
                             str(err))
    m = evaluate(t.student, res.params, res.buffers, t.spec.dev)
    status, reason = "ok", ""
    if not (math.isfinite(res.outer_loss) and all_finite(res.grads) and all_finite(res.params)):
        status, reason = "non-finite", "non-finite hypergradient"
    else:
        reason = diverged(m, t.data.num_classes, cfg)
        status = "diverged" if reason else "ok"
    return EpisodeResult(step, e, status, res.outer_loss, res.grads, res.memory, m.expected_accuracy, m.error,
                         time.perf_counter() - t0, reason)


def diverged(m: Evaluation, num_classes: int, cfg: Config) -> str:
    """Why an episode's final student counts as diverged, or ``""``: its dev cross entropy is
    above ``outer.divergence_ce`` times that of a uniform guess (``log C``), or, for a student
    trained through the whole schedule (protocol full), its dev error is at chance or worse."""
    limit = cfg.outer.divergence_ce * math.log(num_classes)
    if not m.ce <= limit:
        return f"the student diverged: dev cross entropy {m.ce:.3g} > {cfg.outer.divergence_ce:g} × log {num_classes}"
    if cfg.outer.protocol == "full" and m.error >= 1 - 1 / num_classes:
        return f"the student learned nothing: dev error {100 * m.error:.1f}% is at chance ({100 * (1 - 1 / num_classes):.1f}%)"
    return ""


def _global_norm(grads: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads.values()))  # float64: no overflow


def _clip(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    """Scale ``grads`` down to global norm ``max_norm`` (no-op when ``max_norm`` is 0)."""
    norm = _global_norm(grads)
    if max_norm > 0 and norm > max_norm:
        return {k: g * (max_norm / norm) for k, g in grads.items()}
    return grads


@dataclass
class TeachState:
    """What a teacher run carries from step to step (and saves in its checkpoints)."""

    params: dict[str, torch.Tensor]  # the teacher's weights θ
    opt: Any  # the outer optimizer's state
    reference: dict[str, torch.Tensor]  # the teacher that made the current reference run (protocol phases)
    memory: Any  # the teacher's memory
    skipped: int = 0  # teacher steps without a usable episode (every one non-finite or diverged)
    online: Any = None  # protocol online: the student's weights, momentum and buffers (and DLN's loss networks)
    average: Any = None  # outer.average > 0: the sum of the weights after each of the last outer.average steps

    def tree(self) -> dict:
        return {"teacher": self.params, "opt": self.opt, "reference": self.reference, "memory": self.memory,
                "online": self.online, "average": self.average}


def initial_state(t: Teaching) -> TeachState:
    params = teacher_params(t.teacher)
    online = t.online.initial(t.teacher) if t.online is not None else None
    average = {k: torch.zeros_like(v) for k, v in params.items()} if t.cfg.outer.average else None
    return TeachState(params, make_outer_optimizer(t.cfg).init(params), params, t.teacher.init_memory(), online=online,
                      average=average)


def _accumulate(cfg: Config, average: Any, params: dict, step: int) -> Any:
    """The running sum of tail averaging (``outer.average``) after teacher step ``step``."""
    if not cfg.outer.average or step < cfg.outer.steps - cfg.outer.average:
        return average
    return {k: average[k] + params[k] for k in average}


def final_params(t: Teaching, state: TeachState) -> dict[str, torch.Tensor]:
    """The weights a finished run saves: the last step's, or the mean over the last
    ``outer.average`` (projected onto the teacher's feasible set, in case it is not convex)."""
    if not t.cfg.outer.average:
        return state.params
    return t.teacher.project({k: v / t.cfg.outer.average for k, v in state.average.items()})


def teacher_step(t: Teaching, state: TeachState, step: int, run=run_episode, world: World = ALONE) -> tuple[TeachState, dict]:
    """One step of Algorithm 1 from ``state``: ``(new state, metrics record)``. ``run`` runs an
    episode (:func:`run_episode`, or a stand-in); with several processes (``world``) each runs
    its share of the episodes and all of them apply the same update (:mod:`l2t.distributed`)."""
    cfg = t.cfg
    if t.online is not None:
        return _online_step(t, state, step)
    t0 = time.perf_counter()
    record: dict = {"step": step}
    reference = state.reference
    if t.protocol is not None:
        if t.protocol.needs_reference(step) and t.protocol.reference_step(step) == step:
            reference = state.params
        if t.ensure_reference(step, reference) and t.protocol.reference.made_at == step:
            final = t.protocol.reference.final  # a whole student under this teacher: Fig. 3's point
            m = evaluate(t.student, *final, t.spec.dev)
            with torch.no_grad():
                objective = float(t.problem.outer_loss(*final))
            record |= {"reference_outer_loss": finite_or_none(objective), "reference_dev_measure": m.expected_accuracy,
                       "reference_dev_error": m.error}
    mine = {e: run(cfg, state.params, state.memory, step, e, reference_params=reference, teaching=t)
            for e in range(cfg.outer.episodes) if world.owner(e) == world.rank}
    results = gather_episodes(mine, step, cfg.outer.episodes, state.params, state.memory, world)
    ok = [r for r in results if r.finite]
    for r in results:
        if not r.finite and r.episode in mine:
            log.warning("teacher step %d, episode %d: %s; episode skipped", step, r.episode, r.reason)
    record["episodes_ok"] = len(ok)
    record["episodes_diverged"] = sum(r.status == "diverged" for r in results)
    if world.size > 1:
        record["episode_ranks"] = [r.rank for r in results]
    params, opt_state, memory, skipped = state.params, state.opt, state.memory, state.skipped
    if not ok:
        skipped += 1
        log.warning("teacher step %d: no usable episode (non-finite or diverged); teacher unchanged", step)
    else:
        total = None
        for r in ok:  # in episode order, so the sum is the same wherever the episodes ran
            g = _clip(r.grads, cfg.outer.episode_clip)
            total = g if total is None else {k: total[k] + g[k] for k in total}
        grads = {k: g / len(ok) for k, g in total.items()}
        norm = _global_norm(grads)
        params, opt_state, logged = _update_teacher(t, params, opt_state, grads)
        memory = ok[0].memory
        n = len(ok)
        record |= {
            "outer_loss": sum(r.outer_loss for r in ok) / n, "dev_measure": sum(r.dev_measure for r in ok) / n,
            "dev_error": sum(r.dev_error for r in ok) / n, "grad_norm": finite_or_none(norm),
        } | logged
    record["seconds"] = time.perf_counter() - t0
    return TeachState(params, opt_state, reference, memory, skipped, average=state.average), record


def _update_teacher(t: Teaching, params: dict, opt_state: Any, grads: dict) -> tuple[dict, Any, dict]:
    """The teacher's update from a hypergradient: clipped to ``outer.clip``, one step of the outer
    optimizer, projected onto the teacher's feasible set; with the new weights for the metrics
    record when there are few of them (e.g. the schedule teacher)."""
    grads = _clip(grads, t.cfg.outer.clip)
    params, opt_state = make_outer_optimizer(t.cfg).update(grads, opt_state, params)
    params = t.teacher.project(params)
    small = sum(v.numel() for v in params.values()) <= LOGGED_WEIGHTS
    return params, opt_state, {"teacher": {k: v.tolist() for k, v in params.items()}} if small else {}


def _online_step(t: Teaching, state: TeachState, step: int) -> tuple[TeachState, dict]:
    """A teacher step of protocol online (:mod:`l2t.online`): the same clipping and optimizer."""
    cfg, t0 = t.cfg, time.perf_counter()
    out = t.online.step(t.teacher, state.params, state.memory, state.online, step)
    record: dict = {"step": step, "episodes_ok": int(out["finite"]), "outer_loss": finite_or_none(out["outer_loss"])}
    params, opt_state, skipped = state.params, state.opt, state.skipped
    if not out["finite"]:
        skipped += 1
        log.warning("teacher step %d: non-finite online hypergradient; teacher and student unchanged", step)
        return TeachState(params, opt_state, state.reference, state.memory, skipped, state.online,
                          state.average), record | {
            "seconds": time.perf_counter() - t0}
    grads = out["grads"]
    record["grad_norm"] = finite_or_none(_global_norm(grads))
    params, opt_state, logged = _update_teacher(t, params, opt_state, _clip(grads, cfg.outer.episode_clip))
    record |= logged
    for key in ("first_outer_loss", "phi_change"):
        if key in out:
            record[key] = finite_or_none(out[key])
    done = step + 1
    if done % cfg.outer.checkpoint_every == 0 or done == cfg.outer.steps:  # the online student on dev
        m = evaluate(t.student, out["online"]["params"], out["online"]["buffers"], t.spec.dev)
        record |= {"dev_measure": m.expected_accuracy, "dev_error": m.error}
    record["seconds"] = time.perf_counter() - t0
    return TeachState(params, opt_state, state.reference, out["memory"], skipped, out["online"], state.average), record


def _save_state(run_dir: Path, step: int, state: TeachState) -> None:
    tensors, scalars = flatten_state(state.tree(), "state")
    save_tensors(run_dir / STATE_FILE, tensors, {"step": step, "skipped": state.skipped, "scalars": scalars})


def _load_state(run_dir: Path, template: TeachState) -> tuple[int, TeachState]:
    path = run_dir / STATE_FILE
    tensors, meta = load_tensors(path)
    try:
        step, skipped, scalars = int(meta["step"]), int(meta["skipped"]), dict(meta["scalars"])
    except (KeyError, TypeError, ValueError) as e:
        raise L2TError(f"checkpoint {path} lacks {e}; it does not belong to this run") from None
    tree = unflatten_state(template.tree(), tensors, scalars, "state", str(path))
    return step, TeachState(tree["teacher"], tree["opt"], tree["reference"], tree["memory"], skipped, tree["online"],
                            tree["average"])


#: Config fields that only the comparison around a teacher uses (``l2t experiment``: the learning-rate
#: search of the fixed losses, the evaluation students), never the teacher's training.
NOT_TEACHING = ("eval_seeds", "lr_grid", "tune_seeds", "losses")


def teaching_part(cfg: Config) -> Config:
    """``cfg`` with the fields of :data:`NOT_TEACHING` at their defaults: two configs that agree
    here train the same teacher."""
    default = Config()
    return replace(cfg, **{name: getattr(default, name) for name in NOT_TEACHING})


def teach(cfg: Config | None, run_dir: str | Path, *, resume: bool = False, restart: bool = False,
          progress: bool = True, tensorboard: bool = False, world: World = ALONE) -> TeachResult:
    """Train a teacher with ``cfg`` into ``run_dir``.

    With ``resume`` the run continues from its last checkpoint with its own saved config;
    ``cfg`` may then be ``None``, and if given must agree with the saved one in every field that
    affects the teacher (:func:`teaching_part`): an experiment whose learning-rate grid or number
    of evaluation seeds changed reuses its finished teacher. ``restart``: torchrun restarted this
    job; it resumes the folder's checkpoint if this very job (its ``TORCHELASTIC_RUN_ID``) wrote it.
    With several processes (``world``) rank 0 reads and writes the run folder, decides, and the
    others follow it (:mod:`l2t.distributed`).
    """
    run_dir = Path(run_dir)
    error = None
    if world.main:
        try:
            resume = resume or (restart and _written_by_this_job(run_dir))
            cfg = _check_start(cfg, run_dir, resume)
            check_run_dir(run_dir)
            if tensorboard:
                require_tensorboard()
        except L2TError as e:
            error = str(e)
    agree(error, world)
    if world.size > 1:  # rank 0's decision and config (only rank 0 may see the run folder)
        resume = broadcast_text(str(int(resume)) if world.main else None, world) == "1"
        cfg = config_from_dict(json.loads(broadcast_text(json.dumps(to_dict(cfg)) if world.main else None, world)))
    if cfg is None:
        raise ValueError("teach() needs a config unless it resumes")
    t = setup(cfg)
    if world.size > cfg.outer.episodes and world.main:
        log.warning("%d processes for %d episodes a teacher step: ranks %d..%d stay idle", world.size,
                    cfg.outer.episodes, cfg.outer.episodes, world.size - 1)
    state, start, metrics = initial_state(t), 0, []
    if world.main:
        try:
            if not resume:
                init_run(run_dir, cfg)
                save_tokenizer(run_dir, t.data.tokenizer)
            else:
                check_tokenizer(run_dir, t.data.tokenizer)
            if resume and (removed := remove_stale_temporaries(run_dir)):
                log.info("removed %d temporary file(s) a killed run left in %s", removed, run_dir)
            if resume and (run_dir / STATE_FILE).exists():
                start, state = _load_state(run_dir, state)
                log.info("resuming %s at teacher step %d", run_dir, start)
            # Drop records past the checkpoint (written after it, before a kill); rewrite atomically.
            metrics = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["step"] < start]
            write_jsonl(run_dir / "metrics.jsonl", metrics)
        except L2TError as e:
            error = str(e)
    agree(error, world)
    if world.size > 1:
        start = int(broadcast_tree({"start": start}, world)["start"])
        state = TeachState(**broadcast_tree(vars(state), world))

    bar = tqdm(range(start, cfg.outer.steps), initial=start, total=cfg.outer.steps, desc="teacher",
               disable=not progress or not world.main, unit="step")
    for step in bar:
        state, record = teacher_step(t, state, step, world=world)
        state = replace(state, average=_accumulate(cfg, state.average, state.params, step))
        if world.main:
            if "dev_measure" in record:
                bar.set_postfix(dev_measure=f"{record['dev_measure']:.4f}", dev_err=f"{record['dev_error']:.4f}")
            append_jsonl(run_dir / "metrics.jsonl", record)
            metrics.append(record)
            done = step + 1
            if done % cfg.outer.checkpoint_every == 0 or done == cfg.outer.steps:
                _save_state(run_dir, done, state)
    bar.close()

    teacher_path = run_dir / "teacher.safetensors"
    if world.main:
        meta = dict(state_every=cfg.teacher.state_every, features=t.spec.features, total_steps=cfg.inner.steps,
                    class_names=list(t.data.class_names), data=cfg.data.name)
        if isinstance(t.teacher, LossNetworkTeacher):  # its students train under the loss networks it went through
            schedule, knots = t.online.schedule_teacher(t.teacher, state.online)
            save_teacher(teacher_path, schedule, knots, name="dln_schedule", **meta)
            save_teacher(run_dir / "dln_teacher.safetensors", t.teacher, state.params, name=cfg.teacher.name,
                         memory=state.memory, **meta)
        else:
            save_teacher(teacher_path, t.teacher, final_params(t, state), name=cfg.teacher.name, memory=state.memory,
                         averaged_steps=cfg.outer.average, **meta)
        write_csv(run_dir / "metrics.csv", metrics)
        if tensorboard:
            write_tensorboard(run_dir, metrics)
        tail = [r for r in metrics[-5:] if "dev_measure" in r]
        online = {}
        if t.online is not None:  # the online student is a result of its own
            final = state.online
            online = {"online_test_error": evaluate(t.student, final["params"], final["buffers"], t.data.test.chunks(1024)).error,
                      "online_dev_error": evaluate(t.student, final["params"], final["buffers"], t.spec.dev).error}
        write_json(run_dir / "summary.json", online | {
            "teacher_steps": cfg.outer.steps,
            "averaged_steps": cfg.outer.average,
            "skipped_steps": state.skipped,
            "diverged_episodes": sum(r.get("episodes_diverged", 0) for r in metrics),
            "final_dev_measure_last5": sum(r["dev_measure"] for r in tail) / len(tail) if tail else None,
            "seconds": sum(r["seconds"] for r in metrics),
            "teacher": str(teacher_path),
            "world_size": world.size,
        })
    return TeachResult(run_dir, teacher_path, metrics, state.skipped)


def _written_by_this_job(run_dir: Path) -> bool:
    """A checkpoint torchrun's current job (``TORCHELASTIC_RUN_ID``) wrote before it restarted."""
    import os

    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    prov = run_dir / "provenance.json"
    if not (run_id and (run_dir / STATE_FILE).exists() and prov.exists()):
        return False
    return read_json(prov).get("torchelastic_run_id") == run_id


def _check_start(cfg: Config | None, run_dir: Path, resume: bool) -> Config | None:
    """The config to train with: the saved one when resuming (``cfg``, if given, must agree with
    it where it matters), else ``cfg``, refused over a run that is already there."""
    if resume:
        if not (run_dir / "config.json").is_file():
            raise L2TError(f"cannot resume: {run_dir} holds no config.json (not an l2t teach run)")
        saved = load_config(run_dir / "config.json")
        if cfg is not None and teaching_part(cfg) != teaching_part(saved):
            raise L2TError(f"{run_dir} holds a teacher run with a different config; remove it or use another folder")
        return saved
    if cfg is not None and (run_dir / STATE_FILE).exists():
        raise L2TError(f"{run_dir} already holds a teacher run; use --resume {run_dir} or another --out")
    if (run_dir / "summary.json").exists() and "test_error" in read_json(run_dir / "summary.json"):
        raise L2TError(f"{run_dir} holds a student's run, not a teacher's; use another --out")
    return cfg
