"""``unrolled``: autograd through the whole unrolled training graph (the reference).

Simple and obviously right, but it keeps every step's graph alive (memory grows with ``T``, the
way ``higher`` and ``torchopt`` work). It is the ground truth other methods are tested against.
"""

from __future__ import annotations

import torch

from l2t.hypergrad.base import METHODS, HypergradResult, _zero_if_none
from l2t.inner import Episode, InnerProblem, rollout
from l2t.pytree import detach
from l2t.teachers.session import Phase, TeachingSession
from l2t.teachers.state import StateSpec


def unrolled(problem: InnerProblem, episode: Episode, teacher, teacher_params, spec: StateSpec, *, memory=None) -> HypergradResult:
    with torch.enable_grad():
        leaf = {k: v.detach().requires_grad_() for k, v in teacher_params.items()}
        session = TeachingSession(teacher, leaf, spec, problem.student, memory=memory, differentiable=True)
        params0 = {k: v.detach().requires_grad_() for k, v in episode.params.items()}
        params, velocity, buffers = rollout(problem, params0, episode.buffers, episode.batches, session, create_graph=True,
                                     start=episode.start, stop=episode.start + problem.steps, velocity=episode.velocity)
        outer = problem.outer_loss(params, buffers)
        grads = torch.autograd.grad(outer, tuple(leaf.values()), allow_unused=True)
    phases = [Phase(p.start, p.features, detach(p.coeffs)) for p in session.phases]
    return HypergradResult(
        outer.item(),
        {k: _zero_if_none(g, leaf[k]) for k, g in zip(leaf, grads)},
        {k: v.detach() for k, v in params.items()},
        buffers,
        phases,
        detach(session.memory),
        velocity={k: v.detach() for k, v in velocity.items()},
    )


METHODS.register("unrolled", replays=False, doc="exact; autograd through the whole unrolled graph (the "
                 "reference; memory O(T) graphs)")(lambda: unrolled)
