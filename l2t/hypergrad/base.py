"""One signature for every hypergradient method, and the pieces their backward walks share.

A method takes an inner problem, an episode (initial student weights and batch order) and a
teacher, trains the student for ``problem.steps`` steps with the teacher in the loop, and returns
the gradient of the outer loss (the negated relaxed dev measure) with respect to
``teacher_params``.

Notation (docs/method.md §3, momentum form of Maclaurin et al. 2015, Alg. 2). Forward step t:

    v_{t+1} = γ v_t + G_t(ω_t, c_t),   G_t = ∇_ω L(ω_t; c_t, D_t) + λ ω_t
    ω_{t+1} = ω_t − η_t v_{t+1}

Backward step t, from the adjoints ``dω_{t+1}, dv_{t+1}``:

    u      = dv_{t+1} − η_t dω_{t+1}            (adjoint of v_{t+1})
    dω_t   = dω_{t+1} + (∂G_t/∂ω)ᵀ u            (eq. 4: a Hessian-vector product)
    dc_t  += (∂G_t/∂c)ᵀ u                       (eq. 5, with respect to the coefficients)
    dv_t   = γ u

The products come from one double-backward pass (never a Hessian). The coefficients ``c`` of a
phase are a pytree (one ``Φ``, or several tensors); their adjoints are chained into
``d teacher_params`` at the end by replaying the teacher on the recorded state features
(:func:`chain_to_teacher`), through its memory for a teacher that has one.

A method is registered with ``replays=True`` when its backward walk recomputes training steps
(everything but ``unrolled``): :func:`hypergradient` then checks once that the student's
randomness replays exactly (:meth:`~l2t.students.Student.check_replay`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import torch

from l2t.errors import L2TError
from l2t.hypergrad.compiled import CompiledProducts, products_for
from l2t.inner import CoeffsFn, Episode, InnerProblem, loss_and_grads
from l2t.pytree import add, as_leaves, tensors, tree_flatten, tree_unflatten, zeros_like
from l2t.registry import Registry
from l2t.teachers.session import Phase, TeachingSession, replay
from l2t.teachers.state import StateSpec
from l2t.types import Batch, Params


@dataclass
class HypergradResult:
    outer_loss: float  # the outer loss at the end of the run (negated dev measure)
    grads: dict[str, torch.Tensor]  # d outer_loss / d teacher_params
    params: Params  # the student's final weights ω_T
    buffers: Params
    phases: list[Phase]  # state features and coefficients of each phase
    memory: Any = None  # the teacher's memory at the end of the episode (detached)
    info: dict[str, Any] = field(default_factory=dict)  # method-specific facts (bytes stored, interval, ...)
    velocity: Optional[Params] = None  # the student's momentum at the end (to continue the run: protocol online)


Method = Callable[..., HypergradResult]

METHODS: Registry[Method] = Registry("hypergradient method")


COMPILE = "+compile"


def parse_method(spec: str) -> tuple[str, str, bool]:
    """``"name[:arg][+compile]"`` -> ``(name, arg, compile)``."""
    compiled = spec.endswith(COMPILE)
    name, _, arg = spec[:-len(COMPILE)].partition(":") if compiled else spec.partition(":")
    return name, arg, compiled


def get_method(spec: str) -> Method:
    """``"reverse"``, ``"name:arg"`` (e.g. ``"truncated:50"``), either with ``+compile`` (the
    backward products compiled, :mod:`l2t.hypergrad.compiled`) where the method supports it."""
    name, arg, compiled = parse_method(spec)
    factory = METHODS.get(name)
    if compiled and not METHODS.meta(name).get("compiles", False):
        able = ", ".join(n for n in METHODS.list() if METHODS.meta(n).get("compiles", False))
        raise L2TError(f"bad hypergradient method {spec!r}: {name} has no compiled form (+compile: {able})")
    try:
        return factory(arg) if arg else factory()
    except (TypeError, ValueError) as e:
        raise L2TError(f"bad hypergradient method {spec!r}: {e}") from None


def check_optimizer(method: str, optimizer: str) -> None:
    """A one-line error if ``method`` cannot differentiate through the student's ``optimizer``
    (``inner.optimizer``): ``reversible`` and the ``+compile`` products take momentum SGD only.
    Called before anything runs (``teach``, ``experiment``, ``check-grad``) and by :func:`hypergradient`."""
    name, _, compiled = parse_method(method)
    if optimizer != "sgd" and (compiled or not METHODS.meta(name).get("any_optimizer", True)):
        raise L2TError(f"hypergradient method {method!r} needs inner.optimizer = sgd (momentum SGD); with "
                       f"{optimizer} use reverse, checkpoint, truncated:K or unrolled")


def hypergradient(
    problem: InnerProblem,
    episode: Episode,
    teacher: torch.nn.Module,
    teacher_params: dict[str, torch.Tensor],
    spec: StateSpec,
    *,
    method: str = "reverse",
    memory: Any = None,
) -> HypergradResult:
    """Train a student under ``teacher`` (starting from its ``memory``; ``None``: its initial
    memory) and differentiate its dev objective w.r.t. the teacher's weights.

    On CUDA the work runs with deterministic cuDNN kernels (:func:`deterministic_kernels`)."""
    run = get_method(method)
    name, _, compiled = parse_method(method)
    check_optimizer(method, "adam" if problem.optimizer.walk_needs_state else "sgd")
    extra = {"products": products_for(problem)} if compiled else {}
    device = next(iter(episode.params.values())).device
    with deterministic_kernels(device):
        if METHODS.meta(name).get("replays", True):
            problem.student.check_replay(episode.params, episode.buffers, episode.batches(episode.start))
        return run(problem, episode, teacher, teacher_params, spec, memory=memory, **extra)


@contextlib.contextmanager
def deterministic_kernels(device: torch.device) -> Iterator[None]:
    """Deterministic cuDNN algorithms while inside, on a CUDA device (a no-op elsewhere).

    The methods that recompute the training steps (``checkpoint``, ``reversible``) are exact only
    if a recomputed gradient equals the one of the forward pass bit for bit. cuDNN's default
    convolution backward accumulates in a nondeterministic order: measured on an H100 with the
    LeNet student, ``checkpoint`` then differed from ``reverse`` by 4% and ``reversible`` could
    not reconstruct its starting weights. The flags are restored on the way out."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


def outer_grad(problem: InnerProblem, params: Params, buffers: Params) -> tuple[float, Params]:
    """``(J(ω_T), dJ/dω_T)``: eq. 3, one dev batch at a time (memory of one batch's graph)."""
    value, grads = 0.0, {k: torch.zeros_like(v) for k, v in params.items()}
    with torch.enable_grad():
        leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
        for term, _ in problem.outer_terms(leaf, buffers):
            parts = torch.autograd.grad(term, tuple(leaf.values()), allow_unused=True)
            grads = {k: grads[k] if g is None else grads[k] + g for k, g in zip(leaf, parts)}
            value += term.item()
    return value, grads


def _zero_if_none(g: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if g is None else g


@dataclass
class Linearization:
    """One training step's gradient at ``params``, with its graph kept for a vector-Jacobian
    product: ``grads`` (detached values are the step's gradient), the leaves they hang from
    (the weights, and the coefficients' tensors)."""

    leaf: Params
    coeffs: Any
    grads: tuple[torch.Tensor, ...]
    buffers: Params  # the buffers after this step's training-mode forward pass

    def vjp(self, u: Params) -> tuple[Params, Any]:
        """``((∂∇L/∂ω)ᵀ u, (∂∇L/∂c)ᵀ u)`` by one double-backward pass (frees the graph); the
        second is a pytree like the coefficients (``None`` where they have no tensor)."""
        pairs = [(g, u[k]) for k, g in zip(self.leaf, self.grads) if g.requires_grad]
        c_leaves, c_spec = tree_flatten(self.coeffs)
        diff = [i for i, c in enumerate(c_leaves) if isinstance(c, torch.Tensor) and c.requires_grad]
        inputs = tuple(self.leaf.values()) + tuple(c_leaves[i] for i in diff)
        with torch.enable_grad():
            out = torch.autograd.grad([g for g, _ in pairs], inputs, grad_outputs=[v for _, v in pairs], allow_unused=True)
        d_params = {k: _zero_if_none(g, self.leaf[k]) for k, g in zip(self.leaf, out)}
        if self.coeffs is None:
            return d_params, None
        d_leaves = [torch.zeros_like(c) if isinstance(c, torch.Tensor) else None for c in c_leaves]
        for i, g in zip(diff, out[len(self.leaf):]):
            if g is not None:
                d_leaves[i] = g
        return d_params, tree_unflatten(d_leaves, c_spec)


def linearize(
    problem: InnerProblem,
    params: Params,
    buffers: Params,
    batch: Batch,
    step: int,
    coeffs: Any | CoeffsFn,
) -> Linearization:
    """The training gradient at ``params`` with the coefficients held as leaves, graph kept.

    ``coeffs`` is a pytree of tensors, ``None``, or a coefficient function called with the step's
    outputs (a teacher session on a forward pass).
    """
    leaf_c: list = [None]

    def as_leaf(*args):
        c = coeffs(*args) if callable(coeffs) else coeffs
        leaf_c[0] = as_leaves(c)
        return leaf_c[0]

    with torch.enable_grad():
        leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
        grads, buffers, _ = loss_and_grads(problem, leaf, buffers, batch, step, as_leaf, create_graph=True)
    return Linearization(leaf, leaf_c[0], grads, buffers)


class BackwardWalk:
    """Adjoint state of the reverse pass; ``step`` applies one backward step (see module doc).

    The optimizer's part of a step is its ``vjp`` (momentum SGD: the formulas above, needing
    nothing stored; Adam: elementwise, from the step's state and gradient, which the caller then
    passes as ``state``)."""

    def __init__(self, problem: InnerProblem, session: TeachingSession, d_params: Params,
                 products: CompiledProducts | None = None) -> None:
        self.problem, self.session, self.products = problem, session, products
        self.needs_state = problem.optimizer.walk_needs_state
        if self.needs_state and products is not None:
            raise ValueError("compiled products with an optimizer whose backward step needs the step's gradient")
        self.d_params = d_params
        self.d_velocity = problem.optimizer.init(d_params)  # zero adjoints of the optimizer's state
        self.d_coeffs = [zeros_like(p.coeffs) for p in session.phases]

    def coeffs(self, t: int) -> Any:
        """The coefficients in force at step ``t`` (as recorded on the forward pass)."""
        return self.session.phases[self.session.phase_of_step[t]].coeffs

    def step(self, t: int, params: Params, buffers: Params, batch: Batch, lin: Linearization | None = None,
             state: Params | None = None) -> None:
        """Walk back over step ``t`` from ``params`` (and, for an optimizer that needs it, its
        ``state``) before it; ``lin`` is the step's linearization if the caller has it (else the
        compiled products are used if the walk has them, else the step is linearised)."""
        opt = self.problem.optimizer
        phase = self.session.phase_of_step[t]
        grads = None
        if self.needs_state:
            if state is None:
                raise ValueError("this optimizer's backward step needs the optimizer state before the step")
            if lin is None:
                lin = linearize(self.problem, params, buffers, batch, t, self.coeffs(t))
            grads = {k: g.detach() for k, g in zip(lin.leaf, lin.grads)}
        u, self.d_velocity, direct = opt.vjp(grads, state, params, t, self.d_params, self.d_velocity)
        products = None
        if lin is None and self.products is not None:
            products = self.products(params, buffers, batch, self.coeffs(t), u)
        if products is None:
            if lin is None:
                lin = linearize(self.problem, params, buffers, batch, t, self.coeffs(t))
            products = lin.vjp(u)
        h_params, h_coeffs = products
        self.d_params = {k: direct[k] + h_params[k] for k in u}
        if h_coeffs is not None:
            self.d_coeffs[phase] = add(self.d_coeffs[phase], h_coeffs)


def chain_to_teacher(
    teacher: torch.nn.Module,
    teacher_params: dict[str, torch.Tensor],
    session: TeachingSession,
    d_coeffs: list[Any],
) -> dict[str, torch.Tensor]:
    """``Σ_phases (∂c_k/∂θ)ᵀ dc_k`` by replaying the teacher on the recorded features, from the
    memory the episode started with."""
    with torch.enable_grad():
        leaf = {k: v.detach().requires_grad_() for k, v in teacher_params.items()}
        coeffs = replay(teacher, leaf, [p.features for p in session.phases], session.memory0)
        outs, grads_out = [], []
        for c, d in zip(coeffs, d_coeffs):
            for ci, di in zip(tensors(c), tensors(d)):
                if ci.requires_grad:
                    outs.append(ci)
                    grads_out.append(di)
        grads = torch.autograd.grad(outs, tuple(leaf.values()), grad_outputs=grads_out, allow_unused=True) if outs else [None] * len(leaf)
    return {k: _zero_if_none(g, leaf[k]) for k, g in zip(leaf, grads)}


def result(session: TeachingSession, outer: float, grads: dict, params: Params, buffers: Params, velocity: Params,
           **info) -> HypergradResult:
    """A method's result, with the session's phases and its memory after the last phase."""
    return HypergradResult(outer, grads, params, buffers, session.phases, session.memory, info, velocity)
