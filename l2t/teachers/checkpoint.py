"""Saving and loading a trained teacher: one safetensors file, config in its header.

Loading rebuilds the registered architecture from the recorded config and checks every tensor's
name and shape; it never executes code from the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from l2t.errors import L2TError
from l2t.io import load_tensors, save_tensors
from l2t.teachers.base import TEACHERS, Teacher

FORMAT = "l2t-teacher/1"


@dataclass
class LoadedTeacher:
    teacher: Teacher
    params: dict[str, torch.Tensor]
    meta: dict

    @property
    def state_every(self) -> int:
        return int(self.meta["state_every"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))


def save_teacher(path: str | Path, teacher: Teacher, params: dict[str, torch.Tensor], *, name: str, state_every: int, **extra) -> None:
    meta = {
        "format": FORMAT,
        "teacher": name,
        "config": teacher.config(),
        "loss": teacher.loss_name,
        "loss_kwargs": teacher.loss_kwargs(),
        "state_every": state_every,
        **extra,
    }
    save_tensors(path, params, meta)


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
    except TypeError as e:
        raise L2TError(f"{path}: cannot rebuild teacher {meta['teacher']!r}: {e}") from None
    expected = {k: tuple(v.shape) for k, v in teacher.named_parameters()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        raise L2TError(f"{path}: tensors {found} do not match teacher {meta['teacher']!r} {expected}")
    teacher.to(device=device, dtype=dtype)
    params = {k: tensors[k].to(device=device, dtype=dtype).clone() for k in expected}  # fresh, aligned memory
    return LoadedTeacher(teacher, params, meta)
