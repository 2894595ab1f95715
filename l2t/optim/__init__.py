"""Pure optimizers ``update(grads, state, params) -> (params, state)`` and lr schedules."""

from l2t.optim.adam import Adam, InnerAdam
from l2t.optim.schedules import Constant, Cosine, StepDecay, make_schedule
from l2t.optim.sgd import MomentumSGD

__all__ = ["Adam", "InnerAdam", "Constant", "Cosine", "MomentumSGD", "StepDecay", "make_schedule"]
