"""Experiment configuration: frozen dataclasses, loaded from TOML and overridden from the CLI.

The defaults are the demo: scikit-learn digits, an MLP 64-64-10, 300 momentum-SGD steps, the
attention teacher. A config file sets any subset of the fields, by section::

    seed = 0
    [inner]
    steps = 300
    [student]
    name = "mlp"
    options = { widths = [64] }   # keyword arguments of the registered student

An unknown section or key is an error, and so is a value of the wrong type. The resolved config
is written to every run folder (``config.json``) and can be loaded back with :func:`load_config`.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from l2t.errors import L2TError

#: The entry of ``losses`` that stands for the teacher an experiment trains (its students record
#: it as their loss, with the teacher's registered name beside it).
TEACHER_LOSS = "l2t-dlf"


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"  # a registered name, a folder of IDX files or a .npz file
    dev_size: Optional[int] = None  # held out from train when the data has no dev split
    train_size: Optional[int] = None  # subsample the training split (None: all of it)
    test_size: Optional[int] = None
    split_seed: int = 0  # fixed, so every run sees the same split
    augment: Optional[str] = None  # none | crop_flip; None: the data set's default (crop_flip for CIFAR)
    download: bool = False  # fetch a named public data set first (never in tests)
    options: dict = field(default_factory=dict)  # keyword arguments of a named data set's loader (digits: size)


@dataclass(frozen=True)
class StudentConfig:
    name: str = "mlp"
    options: dict = field(default_factory=dict)  # keyword arguments of the student factory


@dataclass(frozen=True)
class InnerConfig:
    """The student's training: momentum SGD, the same for every loss and every seed."""

    steps: int = 300
    batch_size: int = 50
    lr: float = 0.1
    lr_schedule: str = "constant"  # constant | step | cosine
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TeacherConfig:
    name: str = "attention"
    options: dict = field(default_factory=dict)  # e.g. {keys = 10, base = 0.1} for attention
    state_every: int = 10  # refresh the state features (and Φ) every this many student steps
    # the state features it reads (l2t list): None = the task's default (classification: the
    # paper's 3 + C features; seq2seq: "generic", 8 features whatever the vocabulary)
    features: Optional[str] = None


@dataclass(frozen=True)
class OuterConfig:
    """The teacher's training (Algorithm 1)."""

    steps: int = 60  # teacher optimisation steps
    # The paper uses Adam. On unrolled runs of hundreds of momentum steps the dev objective is
    # sharply curved in θ: its first-order model holds only within ~1e-4 of θ (README, "Teacher
    # optimisation"), and Adam's early sign-like steps move every coordinate by lr. Momentum SGD
    # on the clipped hypergradient takes steps of norm ~lr/(1-0.9) along it instead.
    optimizer: str = "sgd"  # sgd (momentum 0.9) | adam
    lr: float = 1e-5
    episodes: int = 4  # fresh students per teacher step; their hypergradients are averaged
    episode_clip: float = 1.0  # clip each episode's hypergradient to this norm before averaging (0: off)
    clip: float = 1.0  # clip the averaged hypergradient to this norm (0: off)
    objective: str = "ce"  # expected_accuracy (the paper's relaxed accuracy) | ce (dev cross entropy)
    hypergrad: str = "reverse"  # reverse | checkpoint[:k] | reversible[:R] | truncated:K | unrolled
    # full: every episode is a fresh student trained inner.steps steps. phases: an episode runs
    # episode_steps steps from one of `snapshots` states of a reference run of the whole schedule
    # under the current teacher, re-made every reference_every teacher steps (0: once, at the
    # cross-entropy start); for schedules too long to differentiate through whole.
    protocol: str = "full"
    episode_steps: int = 0
    snapshots: int = 8
    reference_every: int = 10
    bn_mode: str = "batch"  # BatchNorm in the dev objective: batch (exact) | running (see InnerProblem)
    dev_batch: int = 0  # dev examples per forward pass of the dev objective (0: the whole dev split at once)
    checkpoint_every: int = 5


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"  # float32 | float64
    eval_seeds: int = 3  # students per loss in the final comparison
    # Learning rates tried for each fixed baseline loss (best mean dev error over tune_seeds
    # students wins); empty: every loss uses inner.lr. The teacher's students use inner.lr,
    # the rate the teacher was trained for.
    lr_grid: list = field(default_factory=lambda: [0.3, 0.1, 0.03, 0.01, 0.003])
    tune_seeds: int = 2
    # The losses compared by `l2t demo` / `l2t experiment` (TEACHER_LOSS, "l2t-dlf", is the trained teacher).
    losses: list = field(default_factory=lambda: ["ce", "smooth01", TEACHER_LOSS])
    # Keyword arguments per fixed loss, e.g. {smooth01 = {K = 50}, lsoftmax = {m = 2}}, and of
    # the coefficient schedule of losses that have one (lsoftmax: base, gamma, power, minimum).
    loss_options: dict = field(default_factory=dict)
    schedule_options: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (hint,) = [h for h in typing.get_args(hint) if h is not type(None)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is dict and isinstance(value, dict):
        return value
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise L2TError(f"config {where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _build(cls: type, values: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise L2TError(f"unknown config key(s) {', '.join(sorted(f'{where}{k}' for k in unknown))}")
    kwargs = {}
    for k, v in values.items():
        if dataclasses.is_dataclass(hints[k]):
            if not isinstance(v, dict):
                raise L2TError(f"config {where}{k}: expected a section, got {v!r}")
            kwargs[k] = _build(hints[k], v, f"{where}{k}.")
        else:
            kwargs[k] = _check_type(v, hints[k], f"{where}{k}")
    return cls(**kwargs)


def config_from_dict(values: dict) -> Config:
    return _build(Config, values, "")


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def parse_override(item: str) -> tuple[str, Any]:
    """``"section.key=value"`` -> ``("section.key", value)``; the value is parsed as JSON, else
    taken as a bare string."""
    key, eq, text = item.partition("=")
    if not eq or not key.strip():
        raise L2TError(f"bad override {item!r}: expected section.key=value")
    try:
        return key.strip(), json.loads(text.strip())
    except json.JSONDecodeError:
        return key.strip(), text.strip()


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Defaults, then the TOML (or a run's ``config.json``) at ``path``, then ``overrides``.

    ``overrides`` are ``"section.key=value"`` strings (values parsed as JSON, else taken as
    strings) or a dict of dotted keys.
    """
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise L2TError(f"no such config file: {path}")
        try:
            values = json.loads(path.read_text()) if path.suffix == ".json" else tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise L2TError(f"cannot parse config {path}: {e}") from None
    if isinstance(overrides, list):
        overrides = dict(parse_override(item) for item in overrides)
    for dotted, v in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise L2TError(f"bad override {dotted!r}: {p} is not a section")
        node[leaf] = v
    return config_from_dict(values)
