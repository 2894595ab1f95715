"""A fixed layout of a params dict as one flat vector, and a preallocated weight trajectory."""

from __future__ import annotations

import torch

from l2t.types import Params


class FlatLayout:
    """Where each named tensor of a params dict lives in one flat vector."""

    def __init__(self, params: Params) -> None:
        self.keys = list(params)
        self.shapes = [params[k].shape for k in self.keys]
        self.sizes = [params[k].numel() for k in self.keys]
        self.numel = sum(self.sizes)
        first = next(iter(params.values()))
        self.dtype, self.device = first.dtype, first.device

    def flat(self, tensors) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflat(self, vec: torch.Tensor) -> Params:
        """Views into ``vec`` shaped like the params (no copy)."""
        return {k: v.view(s) for k, v, s in zip(self.keys, vec.split(self.sizes), self.shapes)}


class Trajectory:
    """``ω_0 … ω_{T-1}`` in one preallocated ``(T, |ω|)`` tensor.

    One allocation of exactly ``T·|ω|`` elements: keeping T separate weight dicts alive between
    the training step's temporaries fragments the heap and roughly doubled the resident memory.
    """

    def __init__(self, params: Params, steps: int) -> None:
        self.layout = FlatLayout(params)
        self.data = torch.empty(steps, self.layout.numel, dtype=self.layout.dtype, device=self.layout.device)

    def store(self, t: int, params: Params) -> None:
        row = self.layout.unflat(self.data[t])
        for k, v in params.items():
            row[k].copy_(v)

    def load(self, t: int) -> Params:
        return self.layout.unflat(self.data[t])

    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()
