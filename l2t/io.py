"""Crash-safe file writes and safe checkpoint reads.

Every file l2t writes goes to a temporary file in the same folder and is then renamed over the
target (``os.replace`` is atomic on POSIX), so a crash or a kill leaves either the old file or the
new one, never half of one. Checkpoints are safetensors: loading them never executes code.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from l2t.errors import L2TError
from l2t.pytree import named_leaves, tree_flatten, tree_unflatten


TMP_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: setting it, even for an instant, races with other threads


def _plain_mode(path: str | Path, folder: bool = False) -> None:
    """Give a temporary file (or folder) the mode a plain ``open`` (or ``mkdir``) would have given
    it under this process's umask, before it is renamed into place."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_UMASK)


def _atomic_target(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path``, with the mode a plain ``open`` would give it (mkstemp
    makes it 0600)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as e:
        raise L2TError(f"cannot write {path}: {e.strerror or e}") from None
    _plain_mode(tmp)
    return fd, tmp


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files a killed writer left in ``folder`` (and one level down);
    returns how many."""
    stale = [f for pattern in (f".*{TMP_SUFFIX}", f"*/.*{TMP_SUFFIX}") for f in folder.glob(pattern)
             if f.is_file() or f.is_symlink()]
    # and the folders write_tensorboard works in (its own names, at the top level only)
    folders = [f for f in folder.glob(f"{_TB_PREFIX}*{TMP_SUFFIX}") if f.is_dir() and not f.is_symlink()]
    for f in stale:
        f.unlink(missing_ok=True)
    for f in folders:
        shutil.rmtree(f, ignore_errors=True)
    return len(stale) + len(folders)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise L2TError(f"corrupt JSON file {path}: {e}") from None


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in records))


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one line. A kill can at worst truncate the last line; :func:`read_jsonl` skips it."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, allow_nan=False) + "\n")
        f.flush()


def read_jsonl(path: str | Path) -> list[dict]:
    """Complete records of a JSON-lines file; a torn last line (killed writer) is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise L2TError(f"corrupt file {path}: not UTF-8 text") from None
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
        _plain_mode(tmp)  # safetensors writes a new file of mode 0600
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


def flatten_state(state: Any, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A pytree (nested dicts, lists, tuples) of tensors and JSON scalars -> named tensors and
    named scalars, for :func:`save_tensors` (tensors) and its metadata (scalars)."""
    tensors, scalars = {}, {}
    for name, leaf in named_leaves(state, prefix).items():
        (tensors if isinstance(leaf, torch.Tensor) else scalars)[name] = leaf
    return tensors, scalars


def unflatten_state(template: Any, tensors: dict[str, torch.Tensor], scalars: dict[str, Any], prefix: str, where: str) -> Any:
    """The pytree of :func:`flatten_state`, rebuilt on ``template``'s structure. Every tensor's
    name, shape and dtype kind and every scalar's type are checked against the template, and a
    tensor the template does not have is refused: a checkpoint of another config is an error,
    never a run that trains on with wrong shapes."""
    leaves, spec = tree_flatten(template)
    names = list(named_leaves(template, prefix))
    expected = {n for n, leaf in zip(names, leaves) if isinstance(leaf, torch.Tensor)}
    extra = sorted(k for k in tensors if k.startswith(prefix + ".") and k not in expected)
    if extra:
        raise L2TError(f"{where} holds tensors this config does not have: {', '.join(extra[:5])}; it belongs to another run")
    out = []
    for name, leaf in zip(names, leaves):
        if isinstance(leaf, torch.Tensor):
            if name not in tensors:
                raise L2TError(f"{where} lacks tensor {name!r}; it belongs to another run")
            t = tensors[name]
            if tuple(t.shape) != tuple(leaf.shape) or t.is_floating_point() != leaf.is_floating_point():
                raise L2TError(f"{where}: tensor {name!r} is {t.dtype} {tuple(t.shape)}, this config needs "
                               f"{leaf.dtype} {tuple(leaf.shape)}; it belongs to another run")
            # clone: a fresh, aligned allocation like the uninterrupted run's tensors (SIMD and BLAS
            # kernels round differently on differently aligned data, which would break bit-identity)
            out.append(t.to(leaf).clone())
        elif leaf is None:
            out.append(None)
        else:
            if name not in scalars or type(scalars[name]) is not type(leaf):
                raise L2TError(f"{where}: value {name!r} is {scalars.get(name)!r}, this config needs a {type(leaf).__name__}")
            out.append(scalars[name])
    return tree_unflatten(out, spec)


def write_csv(path: str | Path, records: list[dict]) -> None:
    """The records as CSV (a column per key of any record; nested values as JSON), atomically."""
    import csv
    import io

    keys = list(dict.fromkeys(k for r in records for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


_TB_PREFIX = ".tensorboard-"  # write_tensorboard's temporary folders: .tensorboard-{new,old}-XXXX.tmp


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise L2TError("--tensorboard needs the tensorboard package: pip install 'l2t[tensorboard]'") from None
    return SummaryWriter


def write_tensorboard(run_dir: str | Path, records: list[dict], keys: list[str] | None = None) -> None:
    """Scalars of per-step ``records`` as TensorBoard event files in ``run_dir/tensorboard`` (the
    optional ``tensorboard`` extra: ``pip install 'l2t[tensorboard]'``); ``keys`` default to
    every numeric field. ``records`` is the whole history: the folder is replaced, not appended to,
    so that a resumed run's folder holds each step once."""
    cls = _summary_writer_class()
    final = Path(run_dir) / "tensorboard"

    def write(log_dir: Path) -> None:
        with cls(log_dir=str(log_dir)) as writer:
            for r in records:
                for key, value in r.items():
                    if key != "step" and (keys is None or key in keys) and isinstance(value, (int, float)) \
                            and not isinstance(value, bool):
                        writer.add_scalar(key, value, r["step"])

    try:
        if final.is_symlink():  # a link into a shared log folder: replace its event files in place
            for old in final.glob("events.out.tfevents.*"):
                old.unlink()
            write(final)
            return
        # written aside, then swapped in by two renames: a kill leaves the old folder or the new
        # one, or (between the renames) both as temporaries, which the next run into this folder
        # deletes before it writes the events again from the whole history
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TB_PREFIX}new-", suffix=TMP_SUFFIX, dir=run_dir))
        _plain_mode(tmp, folder=True)  # mkdtemp makes it 0700
        old = tmp.with_name(tmp.name.replace(f"{_TB_PREFIX}new-", f"{_TB_PREFIX}old-"))
        try:
            write(tmp)
            if final.exists():
                final.rename(old)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise L2TError(f"cannot write the TensorBoard events in {final}: {e}") from None


def require_tensorboard() -> None:
    """Fail early (before any training) when ``--tensorboard`` cannot be honoured."""
    _summary_writer_class()


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN: store non-finite metrics as null."""
    return x if math.isfinite(x) else None
