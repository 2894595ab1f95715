"""L2T-DLN's teacher (Hai et al., NeurIPS 2023): a coordinate-wise LSTM that rewrites the loss
network, and the schedule of loss networks it leaves for fresh students.

* :class:`LossNetworkTeacher` (``teacher.name = "dln"``): its memory holds the current loss
  network ``φ`` (a dict of weight matrices, the loss's coefficients: ``forward`` returns it
  whatever the state) and the LSTM's state. :meth:`LossNetworkTeacher.propose` reads the
  hypergradient ``g = dJ/dφ`` of the dev loss and proposes ``φ' = φ − step · tanh(head(h))``, a
  bounded update per coordinate (at most ``step``, 1e-3 as in the release); the LSTM
  (Andrychowicz et al. 2016; ``layers`` cells of ``hidden`` units shared by every coordinate)
  reads each coordinate's gradient preprocessed to ``(log|g| / p, sign g)`` (``p = 10``; small
  gradients ``(−1, e^p g)``). Its weights are trained through the third stage of the online
  protocol (``l2t.teach``): the dev loss after re-running the unroll under ``φ'``.
* :class:`LossNetworkSchedule` (``teacher.name = "dln_schedule"``): the loss networks a DLN run
  went through, at ``knots`` evenly spaced teacher steps; a student of any length uses the knot
  of its ``t/T``. ``l2t teach`` writes it as the run's ``teacher.safetensors``, so ``l2t train
  --loss teacher:RUN`` trains a fresh student under the dynamic loss the teacher learned.
* :class:`CoefficientsProbe`: a module whose parameters *are* the coefficients, so that every
  hypergradient engine computes ``dJ/dφ`` as the gradient of its "teacher's" weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from l2t.losses.loss_network import ACTIVATIONS, SIZES, init_loss_network
from l2t.teachers.base import TEACHERS, Teacher

PREPROCESS = 10.0  # p of Andrychowicz et al.'s gradient preprocessing


def preprocess(g: torch.Tensor, p: float = PREPROCESS) -> torch.Tensor:
    """``(P,)`` gradients -> ``(P, 2)`` LSTM inputs: ``(log|g| / p, sign g)`` where
    ``|g| ≥ e^{−p}``, ``(−1, e^p g)`` below."""
    big = g.abs() >= math.exp(-p)
    first = torch.where(big, g.abs().clamp_min(1e-300).log() / p, torch.full_like(g, -1.0))
    second = torch.where(big, g.sign(), g * math.exp(p))
    return torch.stack([first, second], dim=-1)


def _flat(phi: dict) -> torch.Tensor:
    return torch.cat([phi[k].reshape(-1) for k in sorted(phi, key=lambda k: int(k[1:]))])


def _unflat(vec: torch.Tensor, like: dict) -> dict:
    out, i = {}, 0
    for k in sorted(like, key=lambda k: int(k[1:])):
        n = like[k].numel()
        out[k] = vec[i : i + n].view_as(like[k])
        i += n
    return out


@TEACHERS.register("dln", doc="L2T-DLN: a coordinate-wise LSTM rewriting a loss network (online protocol)")
class LossNetworkTeacher(Teacher):
    """``hidden`` units in each of ``layers`` LSTM cells over the coordinates of a loss network of
    ``sizes``; ``inputs`` sigmoid (the release) or softmax; ``residual``: cross entropy plus the
    network, started at cross entropy."""

    loss_name = "dln"
    reads_state = False  # the LSTM reads the loss's hypergradient, not the student's state

    def __init__(self, num_classes: int, state_dim: int, hidden: int = 64, layers: int = 3, step: float = 1e-3,
                 sizes: list[int] | tuple[int, ...] = SIZES, inputs: str = "sigmoid", residual: bool = True,
                 activation: str = "leaky_relu") -> None:
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if hidden < 1 or layers < 1 or not step > 0:
            raise ValueError(f"Invalid dln teacher: hidden {hidden}, layers {layers}, step {step}")
        if len(sizes) < 2 or sizes[0] != 4 or sizes[-1] != 1:
            raise ValueError(f"Invalid loss network sizes {sizes}: 4 inputs, ..., 1 output")
        if inputs not in ("sigmoid", "softmax"):
            raise ValueError(f"Invalid loss network inputs {inputs!r}: sigmoid | softmax")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Invalid loss network activation {activation!r}: {' | '.join(ACTIVATIONS)}")
        self.num_classes, self.state_dim, self.hidden, self.layers = num_classes, state_dim, hidden, layers
        self.step, self.sizes, self.inputs, self.residual, self.activation = step, sizes, inputs, residual, activation
        self.cells = nn.ModuleList(nn.LSTMCell(2 if i == 0 else hidden, hidden) for i in range(layers))
        self.head = nn.Linear(hidden, 1)
        self.register_buffer("seed", torch.randint(0, 2**31 - 1, ()), persistent=False)

    def reset_parameters(self) -> None:
        for cell in self.cells:
            cell.reset_parameters()
        self.head.reset_parameters()

    def init_memory(self) -> dict:
        """The loss network (cross entropy's, with ``residual``) and a zero LSTM state per
        coordinate."""
        dtype = self.head.weight.dtype
        phi = init_loss_network(int(self.seed), self.sizes, residual=self.residual, dtype=dtype)
        phi = {k: v.to(self.head.weight.device) for k, v in phi.items()}
        P = sum(v.numel() for v in phi.values())
        zeros = [self.head.weight.new_zeros(P, self.hidden) for _ in range(self.layers)]
        return {"phi": phi, "h": zeros, "c": [z.clone() for z in zeros]}

    def forward(self, features: torch.Tensor, memory: dict) -> tuple[dict, dict]:
        """The loss's coefficients are the loss network in memory, whatever the state."""
        return memory["phi"], memory

    def propose(self, params: dict[str, torch.Tensor], grads: dict, memory: dict) -> tuple[dict, dict]:
        """``(φ', memory')``: one LSTM step over every coordinate of ``φ``, from the hypergradient
        ``grads = dJ/dφ``; differentiable in ``params`` (the LSTM's weights)."""
        x = preprocess(_flat(grads).detach())  # (P, 2)
        hs, cs = [], []
        for i in range(self.layers):
            gates = (F.linear(x, params[f"cells.{i}.weight_ih"], params[f"cells.{i}.bias_ih"])
                     + F.linear(memory["h"][i], params[f"cells.{i}.weight_hh"], params[f"cells.{i}.bias_hh"]))
            ig, fg, gg, og = gates.chunk(4, dim=-1)
            c = torch.sigmoid(fg) * memory["c"][i] + torch.sigmoid(ig) * torch.tanh(gg)
            h = torch.sigmoid(og) * torch.tanh(c)
            hs.append(h)
            cs.append(c)
            x = h
        delta = self.step * torch.tanh(F.linear(x, params["head.weight"], params["head.bias"])).squeeze(-1)  # (P,)
        phi = memory["phi"]
        new_phi = _unflat(_flat(phi).detach() - delta, phi)
        return new_phi, {"phi": new_phi, "h": hs, "c": cs}

    def loss_kwargs(self) -> dict:
        return {"inputs": self.inputs, "residual": self.residual, "activation": self.activation}

    def config(self) -> dict:
        return dict(num_classes=self.num_classes, state_dim=self.state_dim, hidden=self.hidden, layers=self.layers,
                    step=self.step, sizes=list(self.sizes), inputs=self.inputs, residual=self.residual,
                    activation=self.activation)


@TEACHERS.register("dln_schedule", doc="the loss networks a DLN run learned, one per stretch of t/T (its students' loss)")
class LossNetworkSchedule(Teacher):
    """``knots`` loss networks; at ``t/T`` the student trains under knot ``⌊t/T · knots⌋``."""

    loss_name = "dln"
    reads_state = False

    def __init__(self, num_classes: int, state_dim: int, knots: int = 16, sizes: list[int] | tuple[int, ...] = SIZES,
                 inputs: str = "sigmoid", residual: bool = True, activation: str = "leaky_relu") -> None:
        super().__init__()
        if knots < 1:
            raise ValueError(f"Invalid number of knots: {knots}")
        self.num_classes, self.state_dim, self.knots = num_classes, state_dim, knots
        self.sizes, self.inputs, self.residual, self.activation = tuple(int(s) for s in sizes), inputs, residual, activation
        for k in range(knots):
            for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
                self.register_parameter(f"k{k}_w{i}", nn.Parameter(torch.zeros(b, a)))

    def forward(self, features: torch.Tensor, memory: Any = None) -> tuple[dict, Any]:
        k = min(max(int(features[0].item() * self.knots), 0), self.knots - 1)
        return {f"w{i}": getattr(self, f"k{k}_w{i}") for i in range(len(self.sizes) - 1)}, memory

    def loss_kwargs(self) -> dict:
        return {"inputs": self.inputs, "residual": self.residual, "activation": self.activation}

    def config(self) -> dict:
        return dict(num_classes=self.num_classes, state_dim=self.state_dim, knots=self.knots, sizes=list(self.sizes),
                    inputs=self.inputs, residual=self.residual, activation=self.activation)


class CoefficientsProbe(nn.Module):
    """A module whose parameters are a loss network's weights: ``forward`` returns them. Passed as
    the teacher to :func:`~l2t.hypergrad.hypergradient` with ``φ`` as its weights, it makes the
    engine's result ``dJ/dφ``."""

    reads_state = False

    def __init__(self, like: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for k, v in like.items():
            self.register_parameter(k, nn.Parameter(torch.zeros_like(v)))

    def init_memory(self) -> None:
        return None

    def forward(self, features: torch.Tensor, memory: Any = None) -> tuple[dict, Any]:
        return {k: getattr(self, k) for k, _ in self.named_parameters()}, memory
