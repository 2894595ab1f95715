"""Saving and loading a trained teacher: one safetensors file, config in its header.

The file holds the teacher's weights, its memory at the end of training (``memory.*``, for a
teacher with memory: the memory its test-time students start from) and, in the header, the
registered name and constructor config, the learned loss with its keyword arguments, the state
features it reads and how often. Loading rebuilds the registered architecture from the recorded
config and checks every tensor's name and shape; it never executes code from the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from l2t.errors import L2TError
from l2t.io import flatten_state, load_tensors, save_tensors, unflatten_state
from l2t.teachers.base import TEACHERS, Teacher

FORMAT = "l2t-teacher/1"


@dataclass
class LoadedTeacher:
    teacher: Teacher
    params: dict[str, torch.Tensor]
    meta: dict
    memory: Any = None  # the memory a student's training starts from

    @property
    def name(self) -> str:
        return str(self.meta["teacher"])

    @property
    def state_every(self) -> int:
        return int(self.meta["state_every"])

    @property
    def features(self) -> str:
        """The state features it reads (files written before there was a choice: classification)."""
        return str(self.meta.get("features", "classification"))

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))

    def check_fits(self, num_classes: int) -> None:
        """The teacher sets coefficients for ``num_classes`` classes and reads its features at
        the dimension they have there, or an :class:`~l2t.errors.L2TError` says what differs."""
        from l2t.teachers.state import STATE_FEATURES

        config = self.teacher.config()
        if config.get("num_classes", num_classes) != num_classes:
            raise L2TError(f"teacher {self.name!r} was trained for {config['num_classes']} classes; "
                           f"this data has {num_classes}")
        dim = STATE_FEATURES.get(self.features).dim(num_classes)
        if config.get("state_dim", dim) != dim:
            raise L2TError(f"teacher {self.name!r} reads {config['state_dim']} state features; "
                           f"{self.features!r} features have {dim} here")


def save_teacher(path: str | Path, teacher: Teacher, params: dict[str, torch.Tensor], *, name: str, state_every: int,
                 features: str = "classification", memory: Any = None, **extra) -> None:
    meta = {
        "format": FORMAT,
        "teacher": name,
        "config": teacher.config(),
        "loss": teacher.loss_name,
        "loss_kwargs": teacher.loss_kwargs(),
        "state_every": state_every,
        "features": features,
        **extra,
    }
    clash = [k for k in params if k == "memory" or k.startswith("memory.")]
    if clash:
        raise ValueError(f"teacher parameter names {clash} collide with the memory's (memory.*) in the file")
    tensors, _ = flatten_state(memory, "memory")
    save_tensors(path, {**params, **tensors}, meta)


def resolve_teacher_path(path: str | Path) -> Path:
    """A teacher file, or a run folder holding ``teacher.safetensors``."""
    path = Path(path)
    if path.is_dir():
        path = path / "teacher.safetensors"
    if not path.is_file():
        raise L2TError(f"no teacher checkpoint at {path}")
    return path


def _check_meta(path: Path, meta: Any) -> None:
    """Every field a teacher file's header must have, with its type, before anything is built."""
    from l2t.losses import LOSSES
    from l2t.teachers.state import STATE_FEATURES

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise L2TError(f"{path} is not an l2t teacher checkpoint (format {found!r})")
    fields = {"teacher": str, "config": dict, "loss": str, "loss_kwargs": dict, "state_every": int}
    for key, kind in fields.items():
        if key not in meta:
            raise L2TError(f"{path}: the teacher file's header lacks {key!r}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise L2TError(f"{path}: header field {key!r} must be a {kind.__name__}, got {meta[key]!r}")
    if meta["state_every"] < 1:
        raise L2TError(f"{path}: header field 'state_every' must be at least 1, got {meta['state_every']}")
    LOSSES.get(meta["loss"])
    STATE_FEATURES.get(meta.get("features", "classification"))


def load_teacher(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedTeacher:
    """Rebuild a saved teacher. The header is validated field by field, and the architecture is
    first built on the ``meta`` device (no memory) and its parameter shapes compared with the
    file's tensors, so a header that asks for 10^12 keys is refused, not allocated."""
    path = resolve_teacher_path(path)
    tensors, meta = load_tensors(path)
    _check_meta(path, meta)
    factory = TEACHERS.get(meta["teacher"])
    found = {k: tuple(v.shape) for k, v in tensors.items() if not k.startswith("memory.") and k != "memory"}
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in factory(**meta["config"]).named_parameters()}
    except (TypeError, ValueError, RuntimeError, L2TError) as e:
        raise L2TError(f"{path}: cannot rebuild teacher {meta['teacher']!r} from its config: {e}") from None
    if shapes != found:
        raise L2TError(f"{path}: tensors {found} do not match teacher {meta['teacher']!r} {shapes}")
    teacher = factory(**meta["config"])
    teacher.to(device=device, dtype=dtype)
    expected = shapes
    params = {k: tensors[k].to(device=device, dtype=dtype).clone() for k in expected}  # fresh, aligned memory
    memory = teacher.init_memory()
    if any(k == "memory" or k.startswith("memory.") for k in tensors):
        memory = unflatten_state(memory, tensors, {}, "memory", str(path))
    return LoadedTeacher(teacher, params, meta, memory)
