"""The student's training run (docs/method.md §1, eq. 1), written once and shared by plain training and
by every hypergradient method.

    outputs = f(ω_t, inputs_t);  coeffs_t = coeffs_fn(t, outputs, batch_t, ...)
    g_t = ∇_ω [mean over real positions of l(outputs, targets_t; coeffs_t) + fixed term]
    (ω_{t+1}, v_{t+1}) = optimizer.update(g_t, v_t, ω_t, t)     (momentum SGD; or Adam, v = its moments)

``coeffs_fn`` is where a teacher plugs in (a :class:`~l2t.teachers.TeachingSession`); fixed
losses pass :func:`no_coeffs`. The coefficients are any pytree of tensors (one ``Φ``, a factored
``Φ``, a loss network's weights). The forward pass is computed before the coefficients, so the
teacher's state can include the current batch's accuracy without a second forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from l2t.data.batches import BatchSchedule
from l2t.losses import LossFn, masked_sum, reduce_loss
from l2t.objectives import Objective
from l2t.optim.adam import InnerAdam
from l2t.optim.sgd import MomentumSGD
from l2t.students.base import Student
from l2t.types import Batch, Params

CoeffsFn = Callable[[int, torch.Tensor, Batch, Params, Params], Any]
#: a task's fixed loss term: ``(aux_outputs, batch) -> scalar`` (a detector's box regression)
FixedTerm = Callable[[Any, Batch], torch.Tensor]

#: BatchNorm in the dev objective -> the student's mode for it
BN_MODES = {"batch": "batch_stats", "running": "eval"}


def no_coeffs(step, outputs, batch, params, buffers) -> None:
    return None


@dataclass(frozen=True)
class InnerProblem:
    """Everything that defines a student's training run and its dev objective, except the
    teacher, the initial weights and the batch order (those change with every episode).

    ``dev`` is the dev split as a sequence of batches; the objective is the mean over all their
    real positions."""

    student: Student
    loss: LossFn
    optimizer: MomentumSGD | InnerAdam  # pure: init, update, and the backward step's vjp
    steps: int
    objective: Objective
    dev: tuple[Batch, ...]
    bn_mode: str = "batch"
    fixed_term: Optional[FixedTerm] = None  # added to the teacher's loss at every step; never taught

    def __post_init__(self) -> None:
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"Invalid BatchNorm mode for the dev objective: {self.bn_mode!r} (batch | running)")
        if not self.dev:
            raise ValueError("Invalid dev split: no batches")

    def dev_count(self) -> int:
        return sum(b.count() for b in self.dev)

    def outer_terms(self, params: Params, buffers: Params):
        """``(term, batch)`` per dev batch, each term that batch's share of the outer loss (its
        real positions' sum over the total count), differentiable in ``params``.

        The student runs without its stochastic layers (dropout off), and BatchNorm
        (``bn_mode``):

        * ``batch`` (default): normalises each dev batch by its own batch statistics. The
          objective is then a function of the weights alone and every exact method is exact.
        * ``running``: uses the running statistics accumulated during training, as at test time.
          They depend on the whole trajectory, but every method holds them constant, so the
          hypergradient ignores that path (approximate; the methods still agree with each other).
        """
        mode, total = BN_MODES[self.bn_mode], self.dev_count()
        for batch in self.dev:
            outputs, _ = self.student.apply(params, buffers, batch.inputs, mode)
            yield masked_sum(self.objective(outputs, batch.targets, batch.mask), batch.mask) / total, batch

    def outer_loss(self, params: Params, buffers: Params) -> torch.Tensor:
        """The relaxed dev measure as a loss to minimise, differentiable in ``params``."""
        return sum(term for term, _ in self.outer_terms(params, buffers))


def step_loss(
    problem: InnerProblem,
    params: Params,
    buffers: Params,
    batch: Batch,
    coeffs_of: Callable[[torch.Tensor, Params], Any],
    *,
    rng: int | None = None,
) -> tuple[torch.Tensor, Params, torch.Tensor]:
    """``(loss, new_buffers, logits)``: the training loss at ``params`` on ``batch``, with the
    coefficients ``coeffs_of(logits.detach(), buffers)`` (a teacher reads the step's outputs) and
    stochastic layers seeded with ``rng``. Differentiable in ``params``; shared by the training
    step and the compiled backward products (:mod:`l2t.hypergrad.compiled`)."""
    features = getattr(problem.loss, "needs_features", False)  # large-margin softmax
    fixed = problem.fixed_term
    outputs, buffers = problem.student.apply(params, buffers, batch.inputs, "train", rng=rng, features=features,
                                             aux=fixed is not None)
    if fixed is not None:
        outputs, aux_outputs = outputs
    logits = outputs.logits if features else outputs
    loss = reduce_loss(problem.loss(outputs, batch.targets, coeffs_of(logits.detach(), buffers)), batch.mask)
    if fixed is not None:
        loss = loss + fixed(aux_outputs, batch)
    return loss, buffers, logits


def loss_and_grads(
    problem: InnerProblem,
    params: Params,
    buffers: Params,
    batch: Batch,
    step: int,
    coeffs_fn: CoeffsFn,
    *,
    create_graph: bool = False,
) -> tuple[tuple[torch.Tensor, ...], Params, torch.Tensor]:
    """``(grads, new_buffers, logits)`` of the training loss at ``params`` on ``batch``.

    With ``create_graph`` the gradients keep their graph (for differentiating through them);
    ``params`` must then require grad.
    """
    with torch.enable_grad():
        if not create_graph:
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
        loss, buffers, logits = step_loss(problem, params, buffers, batch,
                                          lambda logits, bufs: coeffs_fn(step, logits, batch, params, bufs), rng=batch.seed)
        grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=create_graph)
    return grads, buffers, logits


def inner_step(
    problem: InnerProblem,
    params: Params,
    velocity: Params,
    buffers: Params,
    batch: Batch,
    step: int,
    coeffs_fn: CoeffsFn,
    *,
    create_graph: bool = False,
) -> tuple[Params, Params, Params]:
    grads, buffers, _ = loss_and_grads(problem, params, buffers, batch, step, coeffs_fn, create_graph=create_graph)
    with torch.set_grad_enabled(create_graph):
        params, velocity = problem.optimizer.update(dict(zip(params, grads)), velocity, params, step)
    return params, velocity, buffers


StepHook = Callable[[int, Params, Params, Params], None]


def rollout(
    problem: InnerProblem,
    params: Params,
    buffers: Params,
    batches: BatchSchedule,
    coeffs_fn: CoeffsFn = no_coeffs,
    *,
    create_graph: bool = False,
    on_step: StepHook | None = None,
    start: int = 0,
    stop: int | None = None,
    velocity: Params | None = None,
) -> tuple[Params, Params, Params]:
    """Run steps ``start .. stop-1`` (default: the whole run) and return ``(params, velocity, buffers)``.

    ``on_step(t, params, velocity, buffers)`` sees the state *before* step ``t``: hypergradient
    methods use it to store what their backward walk needs.
    """
    stop = problem.steps if stop is None else stop
    if velocity is None:
        velocity = problem.optimizer.init(params)
    for t in range(start, stop):
        if on_step is not None:
            on_step(t, params, velocity, buffers)
        params, velocity, buffers = inner_step(
            problem, params, velocity, buffers, batches(t), t, coeffs_fn, create_graph=create_graph
        )
    return params, velocity, buffers


@dataclass(frozen=True)
class Episode:
    """What changes between teacher steps: the student to start from and the order of its batches.

    An episode runs ``problem.steps`` steps starting at global step ``start`` (0 for a fresh
    student) from ``params`` and the optimizer state ``velocity`` (momentum or Adam's moments;
    ``None``: zero). Learning-rate schedule, batches, state refreshes and the features' ``t/T``
    all use the global step, so an episode started from a snapshot of a longer run continues its
    training exactly, with one exception: the state features that summarise the steps since the
    previous refresh (the training accuracy of the batches seen; the generic features' changes)
    start afresh in a new episode. Measured on the check problem (attention teacher, 12 steps,
    episode from step 8): final weights differ by 9e-5; the schedule teacher, which reads only
    ``t/T``, continues the run bit for bit.
    """

    params: Params
    buffers: Params
    batches: BatchSchedule
    start: int = 0
    velocity: Optional[Params] = None

    def steps(self, problem: InnerProblem) -> range:
        return range(self.start, self.start + problem.steps)

    def run(self, problem: InnerProblem, coeffs_fn: CoeffsFn, **kw):
        """:func:`rollout` over the episode's steps."""
        return rollout(problem, self.params, self.buffers, self.batches, coeffs_fn, start=self.start,
                       stop=self.start + problem.steps, velocity=self.velocity, **kw)
