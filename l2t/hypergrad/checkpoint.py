"""``checkpoint[:k]``: exact, with memory O(T/k + k) weight vectors instead of O(T).

The forward run keeps the full state ``(ω_t, v_t, buffers_t)`` only at every k-th step
(k = ⌈√T⌉ by default, which minimises T/k + k). The backward walk takes the segments in reverse
order: it re-runs each segment forward from its checkpoint, with the coefficients recorded on
the first pass, keeps that segment's weights, and walks back through it. The re-run repeats the
first pass bit for bit (same weights, same batches from the pure batch schedule, same
coefficients), so the result equals ``reverse``'s at the cost of one more forward pass.
"""

from __future__ import annotations

import math

from l2t.hypergrad.base import METHODS, BackwardWalk, Episode, HypergradResult, chain_to_teacher, outer_grad
from l2t.inner import InnerProblem, rollout
from l2t.teachers.session import TeachingSession
from l2t.teachers.state import StateSpec


def default_interval(steps: int) -> int:
    return max(1, math.ceil(math.sqrt(steps)))


def checkpointed(
    problem: InnerProblem, episode: Episode, teacher, teacher_params, spec: StateSpec, *, memory=None, every: int | None = None
) -> HypergradResult:
    T = problem.steps
    k = every or default_interval(T)
    session = TeachingSession(teacher, teacher_params, spec, problem.student, memory=memory)
    saved: dict[int, tuple] = {}

    def keep(t, params, velocity, buffers):
        if t % k == 0:
            saved[t] = (params, velocity, buffers)

    params, _, buffers = rollout(problem, episode.params, episode.buffers, episode.batches, session, on_step=keep)
    outer, d_params = outer_grad(problem, params, buffers)
    walk = BackwardWalk(problem, session, d_params)
    recorded = lambda t, *_: walk.coeffs(t)  # noqa: E731  (the first pass's coefficients)
    for start in sorted(saved, reverse=True):
        p0, v0, b0 = saved.pop(start)
        segment: list = []
        rollout(problem, p0, b0, episode.batches, recorded, start=start, stop=min(start + k, T), velocity=v0,
                on_step=lambda t, p, v, b: segment.append((t, p, b)))
        while segment:
            t, p_t, b_t = segment.pop()
            walk.step(t, p_t, b_t, episode.batches(t))
    grads = chain_to_teacher(teacher, teacher_params, session, walk.d_coeffs)
    return HypergradResult(outer, grads, params, buffers, session.phases, {"interval": k, "checkpoints": math.ceil(T / k)})


def _factory(every: str | None = None):
    if every is None:
        return checkpointed
    k = int(every)
    if k < 1:
        raise ValueError(f"checkpoint interval must be at least 1, got {k}")
    return lambda *a, **kw: checkpointed(*a, every=k, **kw)


METHODS.register("checkpoint")(_factory)
