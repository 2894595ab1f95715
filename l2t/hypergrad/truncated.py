"""``truncated:K``: the hypergradient through the last K steps only (approximate).

It walks back over steps ``T−K … T−1`` and stops, treating ``ω_{T−K}`` and ``v_{T−K}`` as
constants. Memory holds K weight vectors (and, for Adam, K pairs of moments).

**Bias.** The result is the exact gradient of the dev objective with respect to the
coefficients used in the last K steps, holding the state reached at ``T−K`` fixed. It drops
every effect of the earlier phases' coefficients, and the effect of the last phases'
coefficients on the trajectory before ``T−K``. It favours losses that help at the end of
training and is blind to what a loss does early. With ``K ≥ T`` it is ``reverse`` exactly.
Its advantage is lower variance and no long chains of Jacobian products, whose norms grow
with the horizon on chaotic training runs.
"""

from __future__ import annotations

from collections import deque

from l2t.hypergrad.base import METHODS, BackwardWalk, HypergradResult, chain_to_teacher, outer_grad, result
from l2t.inner import Episode, InnerProblem
from l2t.teachers.session import TeachingSession
from l2t.teachers.state import StateSpec


def truncated(problem: InnerProblem, episode: Episode, teacher, teacher_params, spec: StateSpec, *, memory=None, K: int,
              products=None) -> HypergradResult:
    session = TeachingSession(teacher, teacher_params, spec, problem.student, memory=memory)
    window: deque = deque(maxlen=K)
    keep_state = problem.optimizer.walk_needs_state  # Adam's moments; momentum SGD's walk needs no velocity
    params, velocity, buffers = episode.run(problem, session,
                                            on_step=lambda t, p, v, b: window.append((t, p, b, v if keep_state else None)))
    outer, d_params = outer_grad(problem, params, buffers)
    walk = BackwardWalk(problem, session, d_params, products)
    while window:
        t, p_t, b_t, v_t = window.pop()
        walk.step(t, p_t, b_t, episode.batches(t), state=v_t)
    grads = chain_to_teacher(teacher, teacher_params, session, walk.d_coeffs)
    return result(session, outer, grads, params, buffers, velocity, K=K, exact=K >= problem.steps, d_coeffs=walk.d_coeffs)


def _factory(K: str | None = None):
    if K is None:
        raise ValueError("truncated needs a horizon: truncated:K")
    k = int(K)
    if k < 1:
        raise ValueError(f"truncation horizon must be at least 1, got {k}")
    return lambda *a, **kw: truncated(*a, K=k, **kw)


METHODS.register("truncated", compiles=True, usage="truncated:K[+compile]",
                 doc="approximate; walks back the last K steps only (biased)")(
    _factory)
