"""``outer.protocol = "online"``: one student, never reset, taught as it trains (L2T-DLN's protocol).

The student trains ``inner.steps`` steps in all; every teacher step covers the next
``K = outer.episode_steps`` of them, so a run has ``inner.steps / K`` teacher steps
(``outer.steps`` must say so). Learning-rate schedule, batches and the features' ``t/T`` follow
the whole run. A teacher step:

* a DLF teacher (attention, schedule, recurrent): train the student K steps under the current
  teacher, take the exact hypergradient of the dev objective at the end with respect to the
  teacher's weights, and step the teacher; the student keeps the weights it reached;
* the DLN teacher (:class:`~l2t.teachers.LossNetworkTeacher`), in the release's three stages:
  (1) train K steps under the loss network ``φ`` and take ``g = dJ/dφ`` exactly; (2) the LSTM
  turns ``g`` into ``φ'``; (3) re-run the same K steps (same start, batches and dropout masks)
  under ``φ'``, take ``dJ/dφ'`` exactly and chain it through ``φ'(θ)`` into the LSTM's weights,
  which take an optimizer step. The student keeps the weights of stage 3, and ``φ'`` is the next
  step's loss network. K can be hundreds of momentum steps: every exact engine works here.

Everything is in the checkpoint (the student's weights, momentum and buffers, the teacher and
its memory), so ``teach --resume`` ends bit-identical. The loss networks a DLN run goes through
are kept at ``knots`` evenly spaced teacher steps and written as a
:class:`~l2t.teachers.LossNetworkSchedule`, the teacher file's students train under.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from l2t.config import Config
from l2t.data import BatchSchedule, DataSplits, derive_seed
from l2t.data.batches import TAG_INIT
from l2t.errors import L2TError
from l2t.hypergrad import hypergradient
from l2t.inner import Episode, InnerProblem
from l2t.pytree import all_finite, detach, tensors
from l2t.students import Student
from l2t.teachers import CoefficientsProbe, LossNetworkSchedule, LossNetworkTeacher, StateSpec

TAG_ONLINE = 10  # the online student's initial weights and batch order
KNOTS = 16


def teacher_steps(cfg: Config) -> int:
    return cfg.inner.steps // cfg.outer.episode_steps


class OnlineProtocol:
    """One student taught online (see the module documentation)."""

    def __init__(self, cfg: Config, data: DataSplits, student: Student, problem: InnerProblem, spec: StateSpec,
                 teacher) -> None:
        o = cfg.outer
        if not 0 < o.episode_steps <= cfg.inner.steps:
            raise L2TError(f"outer.episode_steps (K) must be in [1, inner.steps = {cfg.inner.steps}] for protocol online")
        if o.steps != teacher_steps(cfg):
            raise L2TError(f"protocol online: a teacher step covers outer.episode_steps = {o.episode_steps} of the "
                           f"student's inner.steps = {cfg.inner.steps}, so outer.steps must be {teacher_steps(cfg)}, "
                           f"not {o.steps}")
        if o.episodes != 1:
            raise L2TError(f"protocol online teaches one student: outer.episodes must be 1, got {o.episodes}")
        self.cfg, self.data, self.student, self.spec = cfg, data, student, spec
        self.problem = replace(problem, steps=o.episode_steps)
        self.dln = isinstance(teacher, LossNetworkTeacher)
        seed = derive_seed(cfg.seed, TAG_ONLINE)
        self.batches = BatchSchedule(data.train, cfg.inner.batch_size, seed)
        self._init_seed = derive_seed(seed, TAG_INIT)
        self.knot_steps = sorted({int(k * o.steps / KNOTS) for k in range(KNOTS)}) if self.dln else []

    def initial(self, teacher) -> dict:
        """The online student at step 0 (and, for DLN, the table of loss networks it will keep)."""
        dtype = next(iter(teacher.parameters())).dtype
        params, buffers = self.student.init(self._init_seed, self.data.train.device, dtype)
        state = {"params": params, "velocity": self.problem.optimizer.init(params), "buffers": buffers}
        if self.dln:
            phi = teacher.init_memory()["phi"]
            state["knots"] = {k: torch.zeros(len(self.knot_steps), *v.shape, dtype=v.dtype, device=v.device)
                              for k, v in phi.items()}
        return state

    def episode(self, online: dict, step: int) -> Episode:
        return Episode(online["params"], online["buffers"], self.batches, start=step * self.cfg.outer.episode_steps,
                       velocity=online["velocity"])

    def step(self, teacher, params: dict, memory: Any, online: dict, step: int) -> dict:
        """One teacher step. Returns ``grads`` (for the teacher's optimizer), the new ``memory`` and
        ``online`` state, the outer loss, and whether it is usable (``finite``)."""
        method = self.cfg.outer.hypergrad
        episode = self.episode(online, step)
        if not self.dln:
            res = hypergradient(self.problem, episode, teacher, params, self.spec, method=method, memory=memory)
            finite = math.isfinite(res.outer_loss) and all_finite(res.grads) and all_finite(res.params)
            return {"grads": res.grads, "memory": res.memory, "online": self._after(online, res), "outer_loss": res.outer_loss,
                    "finite": finite}
        phi = memory["phi"]
        probe = CoefficientsProbe(phi).to(next(iter(phi.values())))
        first = hypergradient(self.problem, episode, probe, phi, self.spec, method=method)  # stage 1
        if not (math.isfinite(first.outer_loss) and all_finite(first.grads)):
            return {"grads": None, "memory": memory, "online": online, "outer_loss": first.outer_loss, "finite": False}
        with torch.enable_grad():
            leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
            new_phi, new_memory = teacher.propose(leaf, first.grads, memory)  # stage 2, graph to the LSTM
        third = hypergradient(self.problem, episode, probe, detach(new_phi), self.spec, method=method)  # stage 3
        with torch.enable_grad():
            grads = torch.autograd.grad(tensors(new_phi), tuple(leaf.values()), grad_outputs=tensors(third.grads),
                                        allow_unused=True)
        grads = {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaf.items(), grads)}
        finite = math.isfinite(third.outer_loss) and all_finite(grads) and all_finite(third.params)
        new_online = self._after(online, third)
        if step in self.knot_steps:
            i = self.knot_steps.index(step)
            new_online["knots"] = {k: v.clone() for k, v in online["knots"].items()}
            for k, v in new_phi.items():
                new_online["knots"][k][i] = v.detach()
        return {"grads": grads, "memory": detach(new_memory), "online": new_online, "outer_loss": third.outer_loss,
                "first_outer_loss": first.outer_loss, "finite": finite,
                "phi_change": float(torch.cat([(new_phi[k] - phi[k]).detach().reshape(-1) for k in phi]).norm())}

    @staticmethod
    def _after(online: dict, res) -> dict:
        out = {"params": res.params, "velocity": res.velocity, "buffers": res.buffers}
        if "knots" in online:
            out["knots"] = online["knots"]
        return out

    def schedule_teacher(self, teacher: LossNetworkTeacher, online: dict) -> tuple[LossNetworkSchedule, dict]:
        """The loss networks the run kept, as a teacher for fresh students (``l2t train``)."""
        schedule = LossNetworkSchedule(teacher.num_classes, teacher.state_dim, knots=len(self.knot_steps),
                                       sizes=teacher.sizes, inputs=teacher.inputs, residual=teacher.residual,
                                       activation=teacher.activation)
        params = {f"k{k}_{name}": online["knots"][name][k] for k in range(len(self.knot_steps)) for name in online["knots"]}
        return schedule, params
