"""Hypergradients of the dev objective with respect to the teacher, behind one function.

``hypergradient(..., method=NAME)``; ``METHODS.list()`` names them all. Every exact method agrees
with every other and with central finite differences on a float64 problem (``l2t check-grad``).
"""

from l2t.hypergrad import reverse as _reverse  # noqa: F401  (registers "reverse")
from l2t.hypergrad import unrolled as _unrolled  # noqa: F401  (registers "unrolled")
from l2t.hypergrad.base import (
    METHODS, BackwardWalk, Episode, HypergradResult, chain_to_teacher, get_method, hypergradient, outer_grad, step_vjp,
)

__all__ = [
    "METHODS", "BackwardWalk", "Episode", "HypergradResult", "chain_to_teacher", "get_method",
    "hypergradient", "outer_grad", "step_vjp",
]
