"""``METHOD+compile``: the backward walk's per-step products by one ``torch.compile``-d program.

A backward step needs ``((∂G/∂ω)ᵀu, (∂G/∂c)ᵀu)`` at the step's weights (base module doc). The
eager walk gets them by building the step's gradient with its graph (:func:`linearize`) and one
double-backward pass. Here they come from one function, written with :mod:`torch.func`::

    products(ω, c, u) = vjp(lambda ω, c: grad(L)(ω, c), ω, c)[1](u)

compiled once per inner problem by ``torch.compile`` (TorchInductor: the forward pass, its
backward and the double-backward fused into one generated kernel program, with no autograd graph
built at run time). Measured on 2 CPU cores (``benchmarks/step_products.py``, docs/engines.md
"Compiled products"): the MLP's products cost 1.25 training steps compiled against 1.90 eager,
LeNet's 1.84 against 2.84.

Exactness. The products are the same mathematical quantity computed in a different order of
floating-point operations, so they agree with the eager ones to rounding (relative 1e-7 to 1e-6
in float32), not bit for bit. Nothing else in the walk changes: the forward run and the
recomputed training steps stay eager, so ``checkpoint`` still replays its forward pass bit for
bit. Every ``+compile`` method passes the float64 finite-difference check (the tests).

Safety. On first use for a problem the compiled products are compared with the eager ones at the
same point; a student with stochastic layers (dropout: the compiled program would draw other
masks), a compilation error, or a disagreement beyond rounding makes the walk warn once and use
the eager products for that problem. Compilation happens on the first backward step (seconds to
tens of seconds on CPU, paid once per process and problem); batches of a new shape (the last,
shorter batch of an epoch, another sentence length) compile once more. The products run with
deterministic algorithms, so two runs give the same teacher bit for bit.

The ``+compile`` suffix applies to the methods whose walk computes its own products:
``reverse``, ``truncated`` and ``checkpoint``. ``unrolled`` differentiates one whole graph and
``reversible`` needs the gradient of its backward pass to equal the forward pass's bit for bit.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator, Optional

import torch
from torch import nn

from l2t.inner import InnerProblem, step_loss
from l2t.pytree import tree_flatten, tree_unflatten
from l2t.types import Batch, Params

#: largest disagreement with the eager products (relative to their largest entry) accepted
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}

_STOCHASTIC = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def stochastic_layers(module: nn.Module) -> list[str]:
    """Names of the module's dropout layers that are on (p > 0)."""
    return [n for n, m in module.named_modules() if isinstance(m, _STOCHASTIC) and m.p > 0]


class CompiledProducts:
    """The compiled products of one inner problem (one per coefficient structure); ``None`` from
    :meth:`__call__` means "use the eager products"."""

    def __init__(self, problem: InnerProblem) -> None:
        self.problem = problem
        self.programs: dict[Any, Any] = {}
        self.disabled: Optional[str] = None
        self.verified = False
        dropout = stochastic_layers(problem.student.module)
        if dropout:
            self._disable(f"student {problem.student.name!r} has dropout (layers {', '.join(dropout[:3])})")

    def _disable(self, why: str) -> None:
        self.disabled = why
        warnings.warn(f"+compile: {why}; the backward walk uses the eager products", RuntimeWarning, stacklevel=3)

    def _program(self, spec, constants: tuple):
        key = (repr(spec), constants)
        if key not in self.programs:
            problem = self.problem

            def products(params: Params, leaves: list, u: Params, buffers: Params, batch: Batch):
                def gradient(p, c):
                    coeffs = tree_unflatten(_merge(c, constants), spec)
                    return torch.func.grad(lambda q: step_loss(problem, q, buffers, batch, lambda *a: coeffs)[0])(p)

                _, back = torch.func.vjp(gradient, params, leaves)
                return back(u)

            self.programs[key] = torch.compile(products)
        return self.programs[key]

    def __call__(self, params: Params, buffers: Params, batch: Batch, coeffs: Any, u: Params):
        """``(d_params, d_coeffs)`` like :meth:`Linearization.vjp`, or ``None``."""
        if self.disabled:
            return None
        leaves, spec = tree_flatten(coeffs)
        slots = tuple(i for i, c in enumerate(leaves) if isinstance(c, torch.Tensor) and c.is_floating_point())
        constants = tuple((i, c) for i, c in enumerate(leaves) if i not in slots)
        if any(isinstance(c, torch.Tensor) for _, c in constants):
            self._disable("the coefficients hold integer tensors")
            return None
        program = self._program(spec, (len(leaves),) + constants)
        args = ({k: v.detach() for k, v in params.items()}, [leaves[i].detach() for i in slots], u, buffers, batch)
        try:
            with _deterministic():
                d_params, d_leaves = program(*args)
        except Exception as e:  # noqa: BLE001 - any failure of the compiler means: use eager
            self._disable(f"compilation failed ({type(e).__name__}: {_first_error(e)})")
            return None
        d_coeffs = None if coeffs is None else tree_unflatten(_scatter(d_leaves, slots, leaves), spec)
        if not self.verified:
            self.verified = True
            if not self._agrees(params, buffers, batch, coeffs, u, d_params, d_coeffs):
                return None
        return d_params, d_coeffs

    def _agrees(self, params, buffers, batch, coeffs, u, d_params, d_coeffs) -> bool:
        from l2t.hypergrad.base import linearize  # the eager products (base imports this module)

        ref_params, ref_coeffs = linearize(self.problem, params, buffers, batch, 0, coeffs).vjp(u)
        groups = [[(ref_params[k], d_params[k]) for k in ref_params]]
        if coeffs is not None:
            groups.append([(a, b) for a, b in zip(tree_flatten(ref_coeffs)[0], tree_flatten(d_coeffs)[0])
                           if isinstance(a, torch.Tensor) and a.numel()])
        tol = TOLERANCE.get(next(iter(params.values())).dtype, 1e-2)
        for pairs in groups:  # each entry's error against the largest entry of its group
            scale = max((float(a.abs().max()) for a, _ in pairs), default=0.0)
            err = max((float((a - b).abs().max()) for a, b in pairs), default=0.0)
            if not err <= tol * scale:
                self._disable(f"the compiled products differ from the eager ones (max error {err:.3g}, scale {scale:.3g})")
                return False
        return True


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic algorithms while inside (restored on the way out): without them Inductor's
    CPU code scatters the cross entropy's gradient with atomic adds, and two runs of the same
    products differ in the last bits (measured, 2 threads)."""
    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


def _first_error(e: Exception) -> str:
    """The line of a compiler failure that says what failed (a C++ compiler's ``error:`` line,
    without its path), else the message's first line."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines[1:]:
        if "error:" in ln:
            return ln[ln.index("error:"):][:200]
    return (lines[0] if lines else "no message")[:200]


def _merge(tensors: list, constants: tuple) -> list:
    n, fixed = constants[0], dict(constants[1:])
    it = iter(tensors)
    return [fixed[i] if i in fixed else next(it) for i in range(n)]


def _scatter(d_leaves: list, slots: tuple, leaves: list) -> list:
    out: list = [None] * len(leaves)
    for i, g in zip(slots, d_leaves):
        out[i] = g
    return out


def products_for(problem: InnerProblem) -> CompiledProducts:
    """The problem's compiled products, made on first use and kept on the problem object itself,
    so that they live exactly as long as it does (the inner problem is frozen: its fields never
    change, so the products made for it stay valid)."""
    made = problem.__dict__.get("_compiled_products")
    if made is None:
        made = CompiledProducts(problem)
        object.__setattr__(problem, "_compiled_products", made)
    return made
