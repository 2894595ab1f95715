"""Crash-safe file writes and safe checkpoint reads.

Every file l2t writes goes to a temporary file in the same folder and is then renamed over the
target (``os.replace`` is atomic on POSIX), so a crash or a kill leaves either the old file or the
new one, never half of one. Checkpoints are safetensors: loading them never executes code.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from l2t.errors import L2TError


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise L2TError(f"no such file: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise L2TError(f"corrupt JSON file {path}: {e}") from None


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in records))


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one line. A kill can at worst truncate the last line; :func:`read_jsonl` skips it."""
    with open(path, "a") as f:
        f.write(json.dumps(record, allow_nan=False) + "\n")
        f.flush()


def read_jsonl(path: str | Path) -> list[dict]:
    """Complete records of a JSON-lines file; a torn last line (killed writer) is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if not line.endswith("\n") and i == len(lines) - 1:
            break
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise L2TError(f"corrupt line {i + 1} in {path}") from None
    return out


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Atomically write ``tensors`` (and JSON ``meta`` in the safetensors header)."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        # copies: safetensors refuses tensors that share memory (a teacher saved twice, say)
        tensors = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in tensors.items()}
        save_file(tensors, tmp, metadata={"l2t": json.dumps(meta or {})})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors checkpoint written by :func:`save_tensors`; refuses NaN or Inf."""
    path = Path(path)
    if not path.is_file():
        raise L2TError(f"no such checkpoint: {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("l2t", "{}")
        meta = json.loads(raw)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise L2TError(f"corrupt checkpoint {path}: {e}") from None
    for k, v in tensors.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise L2TError(f"checkpoint {path} holds NaN or Inf in tensor {k!r}")
    return tensors, meta


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN: store non-finite metrics as null."""
    return x if math.isfinite(x) else None
