"""Pytrees of tensors: nested dicts, lists and tuples with tensors (or ``None``) at the leaves.

Loss coefficients (one ``Φ``, a factored ``Φ``, a loss network's weights), a teacher's memory
(an LSTM state) and a batch's inputs (an image, or source and target tokens) are all pytrees, so a
new loss, teacher or task is a new registry entry and never a signature change through every
engine. These helpers wrap :mod:`torch.utils._pytree` (the module torch.func uses).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils import _pytree as _pt

tree_flatten = _pt.tree_flatten
tree_unflatten = _pt.tree_unflatten
tree_leaves = _pt.tree_leaves


def tree_map(fn: Callable[[torch.Tensor], Any], tree: Any, *rest: Any) -> Any:
    """``fn`` applied to every tensor leaf (``None`` leaves stay ``None``)."""
    return _pt.tree_map(lambda x, *r: None if x is None else fn(x, *r), tree, *rest)


def detach(tree: Any) -> Any:
    return tree_map(lambda t: t.detach(), tree)


def as_leaves(tree: Any) -> Any:
    """Detached copies that require grad: fresh autograd leaves for a vector-Jacobian product
    (floating-point tensors only; others are passed through)."""
    return tree_map(lambda t: t.detach().requires_grad_() if t.is_floating_point() else t, tree)


def zeros_like(tree: Any) -> Any:
    return tree_map(torch.zeros_like, tree)


def add(a: Any, b: Any) -> Any:
    return tree_map(lambda x, y: x + y, a, b)


def tensors(tree: Any) -> list[torch.Tensor]:
    """The tensor leaves, in flattening order."""
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


def named_leaves(tree: Any, prefix: str) -> dict[str, Any]:
    """``{"prefix.key.0": leaf, ...}``: every leaf by its path, in flattening order (checkpoints)."""
    pairs, _ = _pt.tree_flatten_with_path(tree)
    return {prefix + "".join(f".{_key(k)}" for k in path): leaf for path, leaf in pairs}


def _key(entry: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def all_finite(tree: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors(tree) if t.is_floating_point())
