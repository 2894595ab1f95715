"""``reverse``: Algorithm 1 of L2T-DLF, exact.

Stores the student's weights ``ω_0 … ω_{T-1}`` during the forward run, in one preallocated
``(T, |ω|)`` tensor (``T × |ω|`` memory; no autograd graph is kept; for Adam its two moments
too, in a second such tensor of twice the width), then walks the run
backwards with one double-backward Hessian-vector product per step
(:class:`~l2t.hypergrad.base.BackwardWalk`).
"""

from __future__ import annotations

from l2t.hypergrad._flat import Trajectory
from l2t.hypergrad.base import METHODS, BackwardWalk, HypergradResult, chain_to_teacher, outer_grad, result
from l2t.inner import Episode, InnerProblem
from l2t.teachers.session import TeachingSession
from l2t.teachers.state import StateSpec


def reverse(problem: InnerProblem, episode: Episode, teacher, teacher_params, spec: StateSpec, *, memory=None,
            products=None) -> HypergradResult:
    session = TeachingSession(teacher, teacher_params, spec, problem.student, memory=memory)
    trajectory = Trajectory(episode.params, problem.steps)
    # an optimizer whose backward step needs its state (Adam's moments): stored beside the weights
    states = Trajectory(problem.optimizer.init(episode.params), problem.steps) if problem.optimizer.walk_needs_state else None
    buffers_at: list = []  # BatchNorm running statistics per step (empty for students without)

    def store(t, params, velocity, buffers):
        trajectory.store(t - episode.start, params)
        if states is not None:
            states.store(t - episode.start, velocity)
        if buffers:
            buffers_at.append(buffers)

    params, velocity, buffers = episode.run(problem, session, on_step=store)
    outer, d_params = outer_grad(problem, params, buffers)
    walk = BackwardWalk(problem, session, d_params, products)
    for t in reversed(episode.steps(problem)):
        walk.step(t, trajectory.load(t - episode.start), buffers_at.pop() if buffers_at else buffers, episode.batches(t),
                  state=None if states is None else states.load(t - episode.start))
    grads = chain_to_teacher(teacher, teacher_params, session, walk.d_coeffs)
    stored = trajectory.nbytes() + (0 if states is None else states.nbytes())
    return result(session, outer, grads, params, buffers, velocity, d_coeffs=walk.d_coeffs, trajectory_bytes=stored)


METHODS.register("reverse", compiles=True, usage="reverse[+compile]",
                 doc="exact; Algorithm 1 over the stored weight trajectory (memory O(T) weight "
                 "vectors)")(lambda: reverse)
