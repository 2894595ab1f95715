"""``reversible[:R]``: exact reversal of momentum SGD in fixed point (Maclaurin, Duvenaud &
Adams, ICML 2015, *Gradient-based Hyperparameter Optimization through Reversible Learning*).

Memory does not grow with the weight trajectory: the backward walk *recomputes* ``ω_t`` and
``v_t`` from ``ω_{t+1}`` and ``v_{t+1}``. Weights and velocity are kept as int64 fixed-point
numbers with R fractional bits (``Ω = ω·2^R``, ``V = v·2^R``; R = 48 by default). The momentum
γ must be a fraction n/d with a small denominator (0.9 = 9/10). Forward step t:

    G       = round((∇L(ω_t) + λω_t)·2^R)              a deterministic function of Ω_t
    V_{t+1} = ⌊(n·V_t + i_t) / d⌋ + G,   the remainder r_t = (n·V_t + i_t) mod d is pushed onto the
              information buffer, and i_t ∈ [0, n) is first popped from it
    Ω_{t+1} = Ω_t − round(η_t V_{t+1})

Backward step t: ``Ω_t = Ω_{t+1} + round(η_t V_{t+1})``; G again from Ω_t;
``n·V_t + i_t = d·(V_{t+1} − G) + r_t`` gives ``V_t`` and ``i_t``. Multiplying by γ destroys
log2(1/γ) bits per coordinate; popping ``i_t`` back into the low digits makes the buffer grow by
exactly log2(d/n) bits per coordinate per step (0.152 for γ = 0.9). The buffer is a
per-coordinate mixed-radix integer held as int64 chunks; a full chunk is set aside at a step
recorded on the way forward and restored at the same step on the way back.

**Exact replay.** The backward walk recomputes the gradient at every step, so step t must see
the very same batch, augmentation, dropout masks and loss coefficients as on the forward pass:
batches come from the pure schedule (:mod:`l2t.data.batches`), stochastic layers draw from
generators seeded with the batch's seed (:mod:`l2t.students.base`), coefficients are the ones
recorded by the teacher session, and the gradient is computed by the same code path both ways. After the walk
the reconstructed ``Ω_0`` is compared with the initial weights bit for bit; a mismatch
(a nondeterministic GPU kernel, say) is an error, never a silently wrong hypergradient.

**Zero momentum cannot be reversed**: with γ = 0 each step forgets the whole velocity and ω_t
cannot be recovered from a bounded buffer. The method refuses it; use ``checkpoint``.

**BatchNorm**: running statistics are not reversed. Training-mode forward passes do not read
them, so the walk is exact; only a dev objective in ``running`` BatchNorm mode reads the final
running statistics, which come from the forward pass.
"""

from __future__ import annotations

from fractions import Fraction

import torch

from l2t.errors import Diverged, L2TError
from l2t.hypergrad._flat import FlatLayout
from l2t.hypergrad.base import METHODS, BackwardWalk, HypergradResult, chain_to_teacher, linearize, outer_grad, result
from l2t.inner import Episode, InnerProblem
from l2t.teachers.session import TeachingSession
from l2t.teachers.state import StateSpec

INT_LIMIT = 2**62


def momentum_fraction(gamma: float, max_denominator: int = 2**12) -> tuple[int, int]:
    """``γ = n/d`` exactly, or an error naming γ."""
    if gamma <= 0.0:
        raise L2TError(
            "reversible needs momentum > 0: with momentum 0 every step forgets the velocity and the "
            "run cannot be reversed from a bounded buffer; use --hypergrad checkpoint"
        )
    f = Fraction(gamma).limit_denominator(max_denominator)
    if abs(float(f) - gamma) > 1e-15:
        raise L2TError(f"reversible needs a momentum that is a simple fraction n/d (d ≤ {max_denominator}); got {gamma}")
    return f.numerator, f.denominator


class InfoBuffer:
    """A non-negative integer of unbounded size per coordinate, as int64 chunks.

    ``push(r, m)``: ``x ← x·m + r`` (0 ≤ r < m); ``pop(m)``: ``r = x mod m, x ← ⌊x/m⌋``. Before a
    push could overflow, the active chunk is set aside (``flush``) at a step that is recorded, and
    restored at the same step on the way back. Overflow is judged from an upper bound kept in
    Python (no reduction over the tensor per step); the bound after a forward step ``pop(n),
    push(·, d)`` is ``⌊b/n⌋·d + d − 1``.
    """

    def __init__(self, n: int, device) -> None:
        self.acc = torch.zeros(n, dtype=torch.int64, device=device)
        self.bound = 0
        self.chunks: list[tuple[torch.Tensor, int]] = []
        self.flush_steps: list[int] = []

    def before_step(self, step: int, n: int, d: int) -> None:
        """Flush if the coming ``pop(n), push(·, d)`` could overflow; then account for it."""
        if (self.bound // n) * d + d - 1 >= INT_LIMIT:
            self.chunks.append((self.acc, self.bound))
            self.flush_steps.append(step)
            self.acc, self.bound = torch.zeros_like(self.acc), 0
        self.bound = (self.bound // n) * d + d - 1

    def unflush(self, step: int) -> None:
        if self.flush_steps and self.flush_steps[-1] == step:
            if bool(self.acc.any()):
                raise RuntimeError("reversible: information buffer not empty at a chunk boundary (reversal broke)")
            self.acc, self.bound = self.chunks.pop()
            self.flush_steps.pop()

    def push(self, r: torch.Tensor, m: int) -> None:
        self.acc = torch.add(r, self.acc, alpha=m)

    def pop(self, m: int) -> torch.Tensor:
        q = torch.div(self.acc, m, rounding_mode="floor")  # one int64 division; the remainder by product
        r = torch.sub(self.acc, q, alpha=m)
        self.acc = q
        return r

    def nbytes(self) -> int:
        return (len(self.chunks) + 1) * self.acc.numel() * 8


def _out_of_range(what: str, value: float, R: int) -> Diverged:
    return Diverged(f"reversible: the {what} left the fixed-point range (|x| < 2^{62 - R}, got {value:.3g}); "
                    f"the student diverged, or use reversible:R with a smaller R than {R}")


def _to_fixed(x: torch.Tensor, R: int, what: str) -> torch.Tensor:
    """``round(x·2^R)`` as int64, computed in x's own dtype: scaling by a power of two is exact,
    and rounding an exactly scaled float to the nearest integer is exact in any float format."""
    x = x.detach() * 2.0**R
    biggest = float(x.abs().amax())  # NaN and Inf fail the comparison below
    if not biggest < INT_LIMIT:
        raise _out_of_range(what, biggest / 2.0**R, R)
    return torch.round(x).to(torch.int64)


def _check_range(X: torch.Tensor, what: str, R: int, limit: int = INT_LIMIT) -> None:
    """Every integer the walk holds stays below ``limit`` (2^62: a sum of two fits int64)."""
    biggest = float(X.abs().amax())
    if not biggest < limit:
        raise _out_of_range(what, biggest / 2.0**R, R)


def _to_float(X: torch.Tensor, R: int, dtype: torch.dtype) -> torch.Tensor:
    """``X·2^-R`` in ``dtype``: a deterministic function of the integers (rounded once)."""
    return X.to(dtype) * 2.0**-R


def reversible(
    problem: InnerProblem, episode: Episode, teacher, teacher_params, spec: StateSpec, *, memory=None, R: int = 48
) -> HypergradResult:
    opt = problem.optimizer
    n, d = momentum_fraction(opt.momentum)
    fl = FlatLayout(episode.params)
    session = TeachingSession(teacher, teacher_params, spec, problem.student, memory=memory)

    def direction(t: int, Omega: torch.Tensor, buffers, coeffs):
        """``(G, linearization, params)`` at Ω: the same code on the forward and backward pass."""
        params = fl.unflat(_to_float(Omega, R, fl.dtype))
        lin = linearize(problem, params, buffers, episode.batches(t), t, coeffs)
        d_t = opt.direction(dict(zip(params, (g.detach() for g in lin.grads))), params)
        return _to_fixed(fl.flat(d_t.values()), R, "gradient"), lin, params

    def step_velocity(V: torch.Tensor, G: torch.Tensor, buf: InfoBuffer) -> torch.Tensor:
        Vn = torch.add(buf.pop(n), V, alpha=n)  # n·V + i
        q = torch.div(Vn, d, rounding_mode="floor")
        buf.push(torch.sub(Vn, q, alpha=d), d)
        return q + G

    def unstep_velocity(V1: torch.Tensor, G: torch.Tensor, buf: InfoBuffer) -> torch.Tensor:
        Vn = torch.add(buf.pop(d), V1 - G, alpha=d)  # d·(V1 − G) + r
        V = torch.div(Vn, n, rounding_mode="floor")
        buf.push(torch.sub(Vn, V, alpha=n), n)
        return V

    def weight_step(t: int, V: torch.Tensor) -> torch.Tensor:
        # round(η_t·V): any deterministic function of V_{t+1} keeps the step invertible; it is
        # computed in the student's dtype (V·2^-R·η·2^R with the scalings folded into η), and
        # checked before the conversion (a float beyond int64 converts to garbage).
        step = torch.round(V.to(fl.dtype) * opt.lr(t))
        _check_range(step, "weight step", R)
        return step.to(torch.int64)

    # Forward. The teacher session reads the student's state (eval-mode predictions use the
    # running BatchNorm statistics, which are tracked on the side and never reversed).
    Omega0 = _to_fixed(fl.flat(episode.params.values()), R, "weights")
    V0 = torch.zeros_like(Omega0) if episode.velocity is None else _to_fixed(fl.flat(episode.velocity.values()), R, "velocity")
    Omega, V = Omega0.clone(), V0.clone()
    buf = InfoBuffer(Omega.numel(), Omega.device)
    buffers = episode.buffers
    for t in episode.steps(problem):
        G, lin, _ = direction(t, Omega, buffers, session)
        _check_range(V, "velocity", R, INT_LIMIT // max(n, d))
        buf.before_step(t, n, d)
        V = step_velocity(V, G, buf)
        Omega = Omega - weight_step(t, V)
        _check_range(Omega, "weights", R)  # |Ω| < 2^62 before, |step| < 2^62: no wrap-around
        buffers = lin.buffers
    params_T = fl.unflat(_to_float(Omega, R, fl.dtype))
    velocity_T = fl.unflat(_to_float(V, R, fl.dtype))
    outer, d_params = outer_grad(problem, params_T, buffers)
    info_bytes = buf.nbytes()

    walk = BackwardWalk(problem, session, d_params)
    for t in reversed(episode.steps(problem)):
        Omega = Omega + weight_step(t, V)
        G, lin, params = direction(t, Omega, episode.buffers, walk.coeffs(t))
        V = unstep_velocity(V, G, buf)
        buf.unflush(t)
        walk.step(t, params, episode.buffers, episode.batches(t), lin)
    if not (torch.equal(Omega, Omega0) and torch.equal(V, V0) and not bool(buf.acc.any())):
        raise RuntimeError(
            "reversible: the backward walk did not reconstruct the initial weights exactly; the forward "
            "pass is not deterministic here (on GPU try torch.use_deterministic_algorithms(True))"
        )
    grads = chain_to_teacher(teacher, teacher_params, session, walk.d_coeffs)
    return result(session, outer, grads, params_T, buffers, velocity_T, R=R, momentum=f"{n}/{d}", info_bytes=info_bytes,
                  reconstructed_initial_weights=True)


def _factory(R: str | None = None):
    if R is None:
        return reversible
    r = int(R)
    if not 8 <= r <= 60:
        raise ValueError(f"fixed-point fraction bits R must be in [8, 60], got {r}")
    return lambda *a, **kw: reversible(*a, R=r, **kw)


METHODS.register("reversible", any_optimizer=False, usage="reversible[:R]", doc="exact; momentum SGD reversed in fixed point with R "
                 "fraction bits (memory: a buffer of log2(1/γ) bits per weight per step)")(_factory)
