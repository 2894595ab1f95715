"""Per-example loss functions ``loss(outputs, targets, coeffs) -> (B,)`` (or ``(B, T)``).

The caller reduces (:func:`reduce_loss`, over real positions). Fixed losses ignore ``coeffs``;
learned ones (``bilinear``) take the teacher's coefficients as an argument (a tensor, or any
pytree of tensors), never as hidden state.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from l2t.losses.bilinear import bilinear
from l2t.losses.box import box_regression
from l2t.losses.cross_entropy import cross_entropy
from l2t.losses.focal import focal
from l2t.losses.label_smoothing import label_smoothing
from l2t.losses.large_margin import LambdaSchedule, large_margin
from l2t.losses.loss_network import init_loss_network, loss_network
from l2t.losses.smooth01 import smooth01
from l2t.registry import Registry

LossFn = Callable[..., torch.Tensor]

LOSSES: Registry[LossFn] = Registry("loss")
LOSSES.register("ce", doc="cross entropy −log p(y|x)")(lambda: cross_entropy)
LOSSES.register("smooth01", doc="smooth 0-1 loss −log σ(K·margin), K = 50 (loss_options: K)")(
    lambda K=50.0: partial(smooth01, K=K))
LOSSES.register("bilinear", doc="L2T-DLF's learned loss −σ(yᵀ Φ log p); its Φ comes from a teacher (teacher:PATH)")(
    lambda scale=1.0, eps=0.0: partial(bilinear, scale=scale, eps=eps))
LOSSES.register("focal", doc="focal loss −(1 − p_y)^γ log p_y, γ = 2 (loss_options: gamma): detectors' classification loss")(
    lambda gamma=2.0: partial(focal, gamma=gamma))
LOSSES.register("label_smoothing", doc="cross entropy against (1 − ε)·y + ε/C, ε = 0.1 (loss_options: eps)")(
    lambda eps=0.1: partial(label_smoothing, eps=eps))


LOSSES.register("dln", doc="L2T-DLN's loss network: an MLP over (a(z)_y, a(z)_j) rows; its weights come from a teacher")(
    lambda inputs="sigmoid", residual=True, activation="leaky_relu": partial(loss_network, inputs=inputs, residual=residual,
                                                                             activation=activation))


@LOSSES.register("lsoftmax", doc="large-margin softmax (Liu et al. 2016), margin m = 2, annealed (schedule_options)")
def _lsoftmax(m: int = 2) -> LossFn:
    fn = partial(large_margin, m=m)
    fn.needs_features = True
    return fn


#: Losses whose coefficients come from a teacher.
LEARNED = frozenset({"bilinear", "dln"})

#: Fixed losses whose coefficients follow a schedule: name -> coeffs_fn factory.
SCHEDULES = {"lsoftmax": LambdaSchedule}


def create_loss(name: str, **kwargs) -> LossFn:
    return LOSSES.create(name, **kwargs)


def masked_sum(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over the real positions. Padding is selected away (``where``), never multiplied by
    zero, so a NaN or Inf behind the mask cannot reach the value. (Its gradient can still be NaN
    if the computation at a padded position has a non-finite derivative: padded inputs must be
    ordinary tokens, as the batches make them.)"""
    if mask is None:
        return values.sum()
    return torch.where(mask.bool(), values, torch.zeros_like(values)).sum()


def reduce_loss(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over examples, or over the real positions (tokens, pixels) where ``mask`` is given."""
    if mask is None:
        return values.mean()
    return masked_sum(values, mask) / mask.bool().sum().clamp_min(1)


__all__ = [
    "LEARNED", "LOSSES", "LambdaSchedule", "LossFn", "SCHEDULES", "bilinear", "box_regression", "create_loss",
    "cross_entropy", "focal",
    "init_loss_network", "label_smoothing", "large_margin", "loss_network", "masked_sum", "reduce_loss", "smooth01",
]
