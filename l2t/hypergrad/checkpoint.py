"""``checkpoint[:k]``: exact, with memory O(T/k) states plus k step graphs instead of O(T).

The forward run keeps the full state ``(ω_t, v_t, buffers_t)`` only at every k-th step. The
backward walk takes the segments in reverse order. It re-runs each segment forward from its
checkpoint with the coefficients recorded on the first pass, *linearising* every step on the way
(the gradient with its graph kept, whose values drive the re-run's updates), and then walks back
through the segment with one double-backward product per step. Keeping the segment's graphs
means no step is linearised twice: the cost is the forward pass, one more forward pass with
graphs, and the products, the same as ``reverse``.

The re-run repeats the first pass bit for bit (same weights, batches from the pure schedule, the
recorded coefficients, and gradient values that do not depend on whether the graph is kept; a
test checks that ``checkpoint`` equals ``reverse`` exactly).

Memory is ``(T/k)·S + k·G`` for a state of S bytes and a step graph of G bytes, smallest at
``k = √(T·S/G)``; by default k is chosen so, with G measured (by ``saved_tensors_hooks``) on one
linearisation before the run. ``checkpoint:k`` fixes k.

``checkpoint+compile`` (:mod:`l2t.hypergrad.compiled`): the re-run takes plain training steps
(the forward pass's own code, so still bit for bit) and keeps each step's weights and buffers
only; the walk's compiled program computes the products. A segment then costs S/2 bytes a step
instead of G, and the default k is √(2T). Measured, it saves memory but no time: the re-run's
training step costs about what the eager product saves (docs/engines.md "Compiled products").
"""

from __future__ import annotations

import math

import torch

from l2t.hypergrad.base import METHODS, BackwardWalk, HypergradResult, chain_to_teacher, linearize, outer_grad, result
from l2t.inner import Episode, InnerProblem, loss_and_grads
from l2t.pytree import detach
from l2t.teachers.base import call_teacher
from l2t.teachers.session import TeachingSession
from l2t.teachers.state import StateSpec


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def graph_bytes(problem: InnerProblem, episode: Episode, coeffs) -> int:
    """Bytes of the tensors one step's linearisation keeps alive (its autograd graph)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        linearize(problem, episode.params, episode.buffers, episode.batches(episode.start), episode.start, coeffs)
    return total[0]


def default_interval(steps: int, state_bytes: int, step_graph_bytes: int) -> int:
    k = math.sqrt(steps * state_bytes / max(step_graph_bytes, 1))
    return int(min(max(1, round(k)), steps))


def checkpointed(
    problem: InnerProblem, episode: Episode, teacher, teacher_params, spec: StateSpec, *, memory=None, every: int | None = None,
    products=None,
) -> HypergradResult:
    T, opt = problem.steps, problem.optimizer
    if every is None:
        # The graph's size does not depend on the coefficients' values: probe with the teacher's
        # output for all-zero features.
        first = next(iter(episode.params.values()))
        start_memory = teacher.init_memory() if memory is None else memory
        probe, _ = call_teacher(teacher, teacher_params, torch.zeros(spec.dim, dtype=first.dtype, device=first.device),
                                start_memory)
        state = (_nbytes(episode.params.values()) + _nbytes(problem.optimizer.init(episode.params).values())
                 + _nbytes(episode.buffers.values()))
        # with compiled products a segment keeps each step's weights and buffers, not its graph
        step_bytes = state // 2 if products is not None and not products.disabled else graph_bytes(problem, episode,
                                                                                                    detach(probe))
        every = default_interval(T, state, step_bytes)
    k = every
    session = TeachingSession(teacher, teacher_params, spec, problem.student, memory=memory)
    saved: dict[int, tuple] = {}

    end = episode.start + T

    def keep(t, params, velocity, buffers):
        if (t - episode.start) % k == 0:
            saved[t] = (params, velocity, buffers)

    params_T, velocity_T, buffers_T = episode.run(problem, session, on_step=keep)
    outer, d_params = outer_grad(problem, params_T, buffers_T)
    walk = BackwardWalk(problem, session, d_params, products)
    for start in sorted(saved, reverse=True):
        params, velocity, buffers = saved.pop(start)
        segment = []
        compiled = products is not None and not products.disabled  # (it may fall back to eager on first use)
        for t in range(start, min(start + k, end)):
            if not compiled:
                lin = linearize(problem, params, buffers, episode.batches(t), t, walk.coeffs(t))
                grads, new_buffers = lin.grads, lin.buffers
            else:  # the walk computes the products: re-run the forward pass's own training step
                lin = None
                grads, new_buffers, _ = loss_and_grads(problem, params, buffers, episode.batches(t), t,
                                                       lambda *a, c=walk.coeffs(t): c)
            segment.append((t, params, buffers, lin, velocity if walk.needs_state else None))
            with torch.no_grad():
                grads = {name: g.detach() for name, g in zip(params, grads)}
                params, velocity = opt.update(grads, velocity, params, t)
            buffers = new_buffers
        while segment:
            t, p_t, b_t, lin, v_t = segment.pop()
            walk.step(t, p_t, b_t, episode.batches(t), lin, state=v_t)
    grads = chain_to_teacher(teacher, teacher_params, session, walk.d_coeffs)
    return result(session, outer, grads, params_T, buffers_T, velocity_T, interval=k, checkpoints=math.ceil(T / k))


def _factory(every: str | None = None):
    if every is None:
        return checkpointed
    k = int(every)
    if k < 1:
        raise ValueError(f"checkpoint interval must be at least 1, got {k}")
    return lambda *a, **kw: checkpointed(*a, every=k, **kw)


METHODS.register("checkpoint", compiles=True, usage="checkpoint[:k][+compile]",
                 doc="exact; every k-th state stored, segments recomputed "
                 "(memory O(√T))")(_factory)
