"""A low-dimensional teacher: a gradient scale and a label smoothing, scheduled along ``t/T``.

    Φ_t = c · g(t/T) · ((1 − ε(t/T))·I + ε(t/T)/C),   loss scale 4/c (the attention teacher's form)

``g`` and ``ε`` are piecewise linear between ``knots`` evenly spaced values over the run (one
knot: constant). They are the two directions of the bilinear family found to matter on
Fashion-MNIST (README, "What a dynamic loss of this family can reach"): near ``c·I``, ``g``
multiplies cross entropy's gradient (a learning-rate multiplier that the sigmoid bends for large
``g``), and ``ε`` is label smoothing. ``g = 1, ε = 0`` is cross entropy.

The teacher reads only the first state feature, ``t/T``. It has ``2·knots`` weights against the
attention teacher's ``C²·N + N·|s|`` (1,130 for 10 classes and 10 keys): a whole run's
hypergradient is summed into a few weights, each shared by many phases, and one optimiser step
moves the schedule as a whole. Trained through whole runs (``outer.protocol = "full"``), it sees
the long-horizon effect that short episodes miss (README, "A teacher with four weights").

``class_offset = True`` adds one weight per class, constant over the run: row ``y`` of ``Φ_t``
(the loss of an example of class ``y``) is scaled by ``exp(o_y − ō)``, ``ō`` the offsets' mean,

    Φ_t = c · g(t/T) · diag(exp(o − ō)) · ((1 − ε(t/T))·I + ε(t/T)/C),

a per-class offset on the log gain, started at ``o = 0`` (cross entropy's point unchanged). Near
``c·I`` it weights each class's gradient by ``exp(o_y − ō)``: the teacher can spend more of the run
on a hard class (Fashion-MNIST's shirts) and less on an easy one. The offsets are centred so that
they only move weight between classes: a common shift would duplicate the gain ``g``.
"""

from __future__ import annotations

import torch
from torch import nn

from l2t.teachers.base import TEACHERS, Teacher

FACTORED_ABOVE = 1000  # classes beyond which Φ is set in factored form (a vocabulary, not a label set)


def interpolate(knots: torch.Tensor, t: float) -> torch.Tensor:
    """The piecewise-linear function through ``knots`` evenly spaced over [0, 1], at ``t``.

    ``t`` is data (a state feature), never differentiated: the segment is picked in Python, and the
    result is differentiable in ``knots``. With two knots it is ``k0 + (k1 − k0)·t``."""
    n = knots.numel()
    if n == 1:
        return knots[0]
    pos = t * (n - 1)
    i = min(max(int(pos), 0), n - 2)
    return knots[i] + (knots[i + 1] - knots[i]) * (pos - i)


def _vector(value: float | list[float], n: int, name: str, unit: str) -> torch.Tensor:
    """An option given as one value (repeated ``n`` times) or ``n`` values, as a tensor."""
    values = [float(value)] * n if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values for {n} {unit}")
    return torch.tensor(values)


@TEACHERS.register("schedule", doc="a gradient scale and a label smoothing, piecewise linear in t/T (2·knots weights, + one per class with class_offset)")
class ScheduleTeacher(Teacher):
    """``gain (knots,)`` and ``smoothing (knots,)``, started at ``init_gain`` and ``init_smoothing``
    (scalars, or one value per knot)."""

    loss_name = "bilinear"

    def __init__(
        self,
        num_classes: int,
        state_dim: int,
        knots: int = 2,
        base: float = 0.1,
        init_gain: float | list[float] = 1.0,
        init_smoothing: float | list[float] = 0.0,
        factored: bool | None = None,
        class_offset: bool = False,
        init_offset: float | list[float] = 0.0,
    ) -> None:
        super().__init__()
        if knots < 1:
            raise ValueError(f"Invalid number of knots: {knots}")
        if base <= 0:
            raise ValueError(f"Invalid base: {base} (> 0)")
        self.num_classes, self.state_dim, self.knots, self.base = num_classes, state_dim, knots, base
        self.init_gain, self.init_smoothing = init_gain, init_smoothing
        # a C x C matrix for a label set; for a vocabulary, Φ as {diag, uniform}: O(C), never C²
        self.factored = num_classes > FACTORED_ABOVE if factored is None else factored
        self.gain = nn.Parameter(self._knots(init_gain, "init_gain"))
        self.smoothing = nn.Parameter(self._knots(init_smoothing, "init_smoothing"))
        self.class_offset, self.init_offset = class_offset, init_offset
        if class_offset:
            self.offset = nn.Parameter(self._per_class(init_offset))
        if not self.factored:
            self.register_buffer("eye", torch.eye(num_classes), persistent=False)

    def _knots(self, value: float | list[float], name: str) -> torch.Tensor:
        return _vector(value, self.knots, name, "knots")

    def _per_class(self, value: float | list[float]) -> torch.Tensor:
        return _vector(value, self.num_classes, "init_offset", "classes")

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.gain.copy_(self._knots(self.init_gain, "init_gain"))
            self.smoothing.copy_(self._knots(self.init_smoothing, "init_smoothing"))
            if self.class_offset:
                self.offset.copy_(self._per_class(self.init_offset))

    def forward(self, features: torch.Tensor, memory: None = None) -> tuple[torch.Tensor, None]:
        """``features (|s|,)`` -> ``Φ (C, C)``; only ``features[0] = t/T`` is read."""
        t = features[0].item()
        g, e = interpolate(self.gain, t), interpolate(self.smoothing, t)
        if self.class_offset:
            g = g * (self.offset - self.offset.mean()).exp()  # (C,): one gain per row y of Φ
        if self.factored:
            return {"diag": self.base * g * (1 - e), "uniform": self.base * g * e / self.num_classes}, memory
        eye = self.eye.to(self.gain.dtype)
        rows = g.unsqueeze(-1) if g.dim() else g
        return self.base * rows * ((1 - e) * eye + e / self.num_classes), memory

    def loss_kwargs(self) -> dict:
        return {"scale": 4.0 / self.base}

    def project(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``g ≥ 0`` and ``0 ≤ ε ≤ 1``. A negative ``ε`` makes the off-diagonal ``Φ(y, j)`` negative:
        a force on every wrong logit that does not fade as ``p_j → 0`` (README, "What the teacher's
        hypergradient does"). On LeNet, ``ε = −0.009`` at the start of the run made every student
        diverge and every hypergradient non-finite, which froze the teacher for good."""
        return {**params, "gain": params["gain"].clamp(min=0), "smoothing": params["smoothing"].clamp(0, 1)}

    def config(self) -> dict:
        return dict(
            num_classes=self.num_classes, state_dim=self.state_dim, knots=self.knots, base=self.base,
            init_gain=self.init_gain, init_smoothing=self.init_smoothing, factored=self.factored,
            class_offset=self.class_offset, init_offset=self.init_offset,
        )
