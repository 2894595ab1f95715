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


def load_teacher(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedTeacher:
    path = resolve_teacher_path(path)
    tensors, meta = load_tensors(path)
    if meta.get("format") != FORMAT:
        raise L2TError(f"{path} is not an l2t teacher checkpoint (format {meta.get('format')!r})")
    factory = TEACHERS.get(meta["teacher"])
    try:
        teacher = factory(**meta["config"])
    except (TypeError, ValueError) as e:
        raise L2TError(f"{path}: cannot rebuild teacher {meta['teacher']!r}: {e}") from None
    teacher.to(device=device, dtype=dtype)
    expected = {k: tuple(v.shape) for k, v in teacher.named_parameters()}
    found = {k: tuple(v.shape) for k, v in tensors.items() if not k.startswith("memory.") and k != "memory"}
    if expected != found:
        raise L2TError(f"{path}: tensors {found} do not match teacher {meta['teacher']!r} {expected}")
    params = {k: tensors[k].to(device=device, dtype=dtype).clone() for k in expected}  # fresh, aligned memory
    memory = teacher.init_memory()
    if any(k == "memory" or k.startswith("memory.") for k in tensors):
        memory = unflatten_state(memory, tensors, {}, "memory", str(path))
    return LoadedTeacher(teacher, params, meta, memory)
