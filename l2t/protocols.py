"""Where a teacher-training episode starts: the two protocols of ``outer.protocol``.

* ``full``: a fresh student trained for the whole schedule (``inner.steps``), Algorithm 1 as in
  the paper. Exact, but each teacher step differentiates through the whole run.
* ``phases``: for schedules too long for that. A *reference run* trains one student through the
  whole schedule under the current teacher, keeping ``outer.snapshots`` states ``(ω, v, buffers)``
  spread over it. Each episode starts from one of them at its global step and runs
  ``outer.episode_steps`` steps, so the teacher learns every phase of training, with exact
  hypergradients within the episode. The reference run is re-made every
  ``outer.reference_every`` teacher steps with the teacher of that moment (on-policy), or never
  (``0``: the states of a cross-entropy run, the teacher's starting point). The price is a
  horizon of ``episode_steps``: the teacher optimises each phase's effect on the dev measure a
  few hundred steps later, not at the end of training (the short-horizon bias of Wu et al.,
  ICLR 2018, which favours greedy losses).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from l2t.build import make_episode
from l2t.config import Config
from l2t.data import DataSplits, derive_seed
from l2t.data.batches import TAG_REFERENCE, TAG_TEACH
from l2t.errors import L2TError
from l2t.inner import Episode, InnerProblem
from l2t.students import Student
from l2t.teachers import StateSpec, TeachingSession


def snapshot_starts(total: int, episode: int, count: int) -> list[int]:
    """``count`` start steps spread evenly over ``[0, total − episode]``."""
    last = total - episode
    return sorted({int(round(x)) for x in np.linspace(0, last, count)})


@dataclass
class Reference:
    made_at: int  # teacher step whose teacher made it
    snapshots: dict  # start step -> (params, velocity, buffers)
    base: Episode  # the reference run's own episode (its batches are reused)
    final: tuple  # (params, buffers) at the end of the run: a whole student trained by that teacher


class PhasesProtocol:
    """Episodes from snapshots of a reference run (see the module documentation)."""

    def __init__(self, cfg: Config, data: DataSplits, student: Student, problem: InnerProblem, spec: StateSpec,
                 teacher_has_memory: bool = False) -> None:
        o = cfg.outer
        if teacher_has_memory:
            raise L2TError("outer.protocol phases does not support a teacher with memory (its episodes would start "
                           "from snapshots of a run under another memory); use protocol full")
        if not 0 < o.episode_steps <= cfg.inner.steps:
            raise L2TError(f"outer.episode_steps must be in [1, inner.steps = {cfg.inner.steps}] for protocol phases")
        if o.snapshots < 1 or o.reference_every < 0:
            raise L2TError("outer.snapshots must be >= 1 and outer.reference_every >= 0")
        self.cfg, self.data, self.student, self.spec = cfg, data, student, spec
        self.full_problem = problem
        self.problem = replace(problem, steps=o.episode_steps)
        self.starts = snapshot_starts(cfg.inner.steps, o.episode_steps, o.snapshots)
        self.reference: Reference | None = None

    def reference_step(self, step: int) -> int:
        """The teacher step whose teacher makes the reference used at ``step``."""
        every = self.cfg.outer.reference_every
        return 0 if every == 0 else step - step % every

    def needs_reference(self, step: int) -> bool:
        return self.reference is None or self.reference.made_at != self.reference_step(step)

    def make_reference(self, step: int, teacher, teacher_params) -> None:
        at = self.reference_step(step)
        base = make_episode(self.cfg, self.data, self.student, derive_seed(self.cfg.seed, TAG_REFERENCE, at))
        snapshots = {}

        def keep(t, params, velocity, buffers):
            if t in self.starts:
                snapshots[t] = (params, velocity, buffers)

        session = TeachingSession(teacher, teacher_params, self.spec, self.student)
        params, _, buffers = base.run(self.full_problem, session, on_step=keep)
        self.reference = Reference(at, snapshots, base, (params, buffers))

    def episode(self, step: int, e: int) -> Episode:
        rng = np.random.default_rng(derive_seed(self.cfg.seed, TAG_TEACH, step, e))
        start = self.starts[int(rng.integers(len(self.starts)))]
        params, velocity, buffers = self.reference.snapshots[start]
        return Episode(params, buffers, self.reference.base.batches, start=start, velocity=velocity)
