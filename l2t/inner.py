"""The student's training run (SPEC §1, eq. 1), written once and shared by plain training and
by every hypergradient method.

    outputs = f(ω_t, x_t);  coeffs_t = coeffs_fn(t, outputs, ...);  g_t = ∇_ω mean l(outputs, y_t; coeffs_t)
    (ω_{t+1}, v_{t+1}) = MomentumSGD.update(g_t, v_t, ω_t, t)

``coeffs_fn`` is where a teacher plugs in (a :class:`~l2t.teachers.TeachingSession`); fixed
losses pass :func:`no_coeffs`. The forward pass is computed before the coefficients, so the
teacher's state can include the current batch's accuracy without a second forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from l2t.data.batches import Batch, BatchSchedule
from l2t.losses import LossFn, reduce_loss
from l2t.objectives import Objective
from l2t.optim.sgd import MomentumSGD
from l2t.students.base import Params, Student

CoeffsFn = Callable[[int, torch.Tensor, torch.Tensor, Params, Params], Optional[torch.Tensor]]


def no_coeffs(step, outputs, targets, params, buffers) -> None:
    return None


@dataclass(frozen=True)
class InnerProblem:
    """Everything that defines a student's training run and its dev objective, except the
    teacher, the initial weights and the batch order (those change with every episode)."""

    student: Student
    loss: LossFn
    optimizer: MomentumSGD
    steps: int
    objective: Objective
    x_dev: torch.Tensor
    y_dev: torch.Tensor
    bn_mode: str = "batch"

    def __post_init__(self) -> None:
        if self.bn_mode not in ("batch", "running"):
            raise ValueError(f"Invalid BatchNorm mode for the dev objective: {self.bn_mode!r} (batch | running)")

    def outer_loss(self, params: Params, buffers: Params) -> torch.Tensor:
        """The relaxed dev measure as a loss to minimise, differentiable in ``params``.

        BatchNorm in the dev objective (``bn_mode``):

        * ``batch`` (default): normalise the dev set by its own batch statistics. The objective
          is then a function of the weights alone and every exact method is exact.
        * ``running``: use the running statistics accumulated during training, as at test time.
          They depend on the whole trajectory, but every method holds them constant, so the
          hypergradient ignores that path (approximate; the methods still agree with each other).
        """
        outputs, _ = self.student.apply(params, buffers, self.x_dev, train=self.bn_mode == "batch")
        return self.objective(outputs, self.y_dev)


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
    """``(grads, new_buffers, outputs)`` of the training loss at ``params`` on ``batch``.

    With ``create_graph`` the gradients keep their graph (for differentiating through them);
    ``params`` must then require grad.
    """
    features = getattr(problem.loss, "needs_features", False)  # large-margin softmax
    with torch.enable_grad():
        if not create_graph:
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
        outputs, buffers = problem.student.apply(params, buffers, batch.inputs, train=True, features=features)
        logits = outputs.logits if features else outputs
        coeffs = coeffs_fn(step, logits.detach(), batch.targets, params, buffers)
        loss = reduce_loss(problem.loss(outputs, batch.targets, coeffs), batch.mask)
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
