"""Hypergradients of the dev objective with respect to the teacher, behind one function.

``hypergradient(..., method=NAME)``; ``METHODS.list()`` names them all:

* ``unrolled``: autograd through the whole unrolled graph (the reference; memory O(T) graphs);
* ``reverse``: Algorithm 1, stored weight trajectory (memory O(T) weight vectors);
* ``checkpoint[:k]``: every k-th state stored, segments recomputed (memory O(T/k + k));
* ``reversible[:R]``: exact reversal of momentum SGD in fixed point (memory: a buffer of
  log2(1/γ) bits per weight per step);
* ``truncated:K``: the last K steps only (approximate, biased; see its module);
* ``METHOD+compile`` (``reverse``, ``checkpoint``, ``truncated``): the backward walk's per-step
  products by one ``torch.compile``-d program (:mod:`l2t.hypergrad.compiled`).

The student may train by momentum SGD or Adam (``inner.optimizer``); ``reversible`` and the
``+compile`` products take momentum SGD only (:func:`check_optimizer`).

Every exact method agrees with every other and with central finite differences on a float64
problem (``l2t check-grad --method NAME``, :mod:`l2t.gradcheck`, and the tests).
"""

from l2t.hypergrad import checkpoint as _checkpoint  # noqa: F401  (registers "checkpoint")
from l2t.hypergrad import reverse as _reverse  # noqa: F401  (registers "reverse")
from l2t.hypergrad import reversible as _reversible  # noqa: F401  (registers "reversible")
from l2t.hypergrad import truncated as _truncated  # noqa: F401  (registers "truncated")
from l2t.hypergrad import unrolled as _unrolled  # noqa: F401  (registers "unrolled")
from l2t.hypergrad.base import METHODS, HypergradResult, check_optimizer, deterministic_kernels, get_method, hypergradient

EXACT_METHODS = ("reverse", "unrolled", "checkpoint", "reversible")

__all__ = ["EXACT_METHODS", "METHODS", "HypergradResult", "check_optimizer", "deterministic_kernels", "get_method",
           "hypergradient"]
