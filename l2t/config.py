"""Experiment configuration: frozen dataclasses, loaded from TOML and overridden from the CLI.

The defaults: scikit-learn digits, an MLP 64-64-10, 300 momentum-SGD steps, the paper's
attention teacher (the demo is the shipped config ``demo``). A config file sets any subset of the fields, by section::

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
from typing import Any, Callable, Optional

from l2t.errors import L2TError

#: The entry of ``losses`` that stands for the teacher an experiment trains (its students record
#: it as their loss, with the teacher's registered name beside it).
TEACHER_LOSS = "l2t-dlf"


def _key(default: Any, doc: str, check: Callable[[Any], str | None] | None = None, *, factory: Any = None):
    """A config field with its meaning (``l2t config --show``) and a value check, which returns
    what is wrong with a value, or ``None``."""
    meta = {"doc": doc, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v is None or v >= low else f"must be at least {low:g}"


def positive(v: Any) -> str | None:
    return None if v is None or 0 < v < float("inf") else "must be positive and finite"


def below_one(v: float) -> str | None:
    return None if 0.0 <= v < 1.0 else "must be in [0, 1)"


def _betas(v: list) -> str | None:
    numbers = len(v) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in v)
    ok = numbers and 0.0 <= v[0] < 1.0 and 0.0 < v[1] < 1.0
    return None if ok else "must be two numbers β₁ in [0, 1) and β₂ in (0, 1)"


def one_of(*names: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in names else f"must be one of {', '.join(names)}"


def _seed(v: int) -> str | None:
    # derive_seed keeps 32 bits of each key: a larger seed would alias a smaller one
    return None if 0 <= v < 2**32 else "must be in [0, 2^32)"


def _rates(v: list) -> str | None:
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v)
    return None if ok else "must be a list of positive learning rates"


def _names(v: list) -> str | None:
    return None if v and all(isinstance(x, str) for x in v) else "must be a non-empty list of loss names"


@dataclass(frozen=True)
class DataConfig:
    name: str = _key("digits", "a registered data set (l2t list), a folder of IDX or CIFAR files or of parallel text "
                               "(train/valid/test.LANG), a .npz file, or a .tsv of sentence pairs")
    dev_size: Optional[int] = _key(None, "examples held out from train as the dev split, when the data has none", at_least(1))
    train_size: Optional[int] = _key(None, "subsample the training split to this many examples (None: all)", at_least(1))
    test_size: Optional[int] = _key(None, "use the first this many test examples (None: all)", at_least(1))
    split_seed: int = _key(0, "seed of the dev hold-out and subsampling: fixed, so every run sees the same split", _seed)
    augment: Optional[str] = _key(None, "none | crop_flip; None: the data set's default (crop_flip for CIFAR)")
    download: bool = _key(False, "fetch a named public data set first (opt-in, never in tests)")
    options: dict = _key(None, "keyword arguments of a named data set's loader (digits: size)", factory=dict)


@dataclass(frozen=True)
class StudentConfig:
    name: str = _key("mlp", "the student architecture (l2t list)")
    options: dict = _key(None, "keyword arguments of the student, e.g. {widths = [64]} for mlp", factory=dict)


@dataclass(frozen=True)
class InnerConfig:
    """The student's training: momentum SGD (or Adam), the same for every loss and every seed."""

    steps: int = _key(300, "student training steps T", at_least(1))
    batch_size: int = _key(50, "examples (sentences) per training batch", at_least(1))
    optimizer: str = _key("sgd", "sgd (heavy-ball momentum) | adam (betas, eps; every method but reversible and +compile)",
                          one_of("sgd", "adam"))
    lr: float = _key(0.1, "learning rate η of the student's optimizer", positive)
    lr_schedule: str = _key("constant", "constant | step (x0.1 at 50% and 75%) | cosine", one_of("constant", "step", "cosine"))
    momentum: float = _key(0.9, "sgd: heavy-ball momentum γ (no dampening)", below_one)
    betas: list = _key(None, "adam: decay rates [β₁, β₂] of the moment estimates", _betas, factory=lambda: [0.9, 0.999])
    eps: float = _key(1e-8, "adam: ε added to the root of the second moment", positive)
    warmup: int = _key(0, "steps of linear learning-rate warm-up in front of the schedule", at_least(0))
    weight_decay: float = _key(0.0, "L2 weight decay λ, folded into the gradient (adam: L2, not AdamW)", at_least(0))
    box_weight: float = _key(1.0, "detection: weight of the fixed box term (smooth L1) added to the taught class loss",
                             at_least(0))

    def __post_init__(self) -> None:
        # A key of the other optimizer would be silently ignored: an error, unless it is the
        # default (a resolved config.json carries every key).
        defaults = {f.name: (f.default_factory() if f.default is dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(self)}
        unused = ["momentum"] if self.optimizer == "adam" else ["betas", "eps"]
        for name in unused:
            if getattr(self, name) != defaults[name]:
                owner = "sgd" if name == "momentum" else "adam"
                raise L2TError(f"config inner.{name} is for inner.optimizer = {owner!r}; the student's optimizer "
                               f"here is {self.optimizer!r}, which would ignore it (drop the key, or "
                               f"--set inner.{name}={json.dumps(defaults[name])})")


@dataclass(frozen=True)
class TeacherConfig:
    name: str = _key("attention", "the teacher (l2t list)")
    options: dict = _key(None, "keyword arguments of the teacher, e.g. {keys = 10, base = 0.1} for attention", factory=dict)
    state_every: int = _key(10, "refresh the state features (and the loss coefficients) every this many student steps", at_least(1))
    features: Optional[str] = _key(None, "the state features it reads (l2t list); None: the task's default "
                                         "(classification: the paper's 3 + C; seq2seq: generic, 8)")


@dataclass(frozen=True)
class OuterConfig:
    """The teacher's training (Algorithm 1)."""

    steps: int = _key(60, "teacher optimisation steps", at_least(1))
    # The paper uses Adam. On unrolled runs of hundreds of momentum steps the dev objective is
    # sharply curved in θ: its first-order model holds only within ~1e-4 of θ (docs, "Teacher
    # optimisation"), and Adam's early sign-like steps move every coordinate by lr. Momentum SGD
    # on the clipped hypergradient takes steps of norm ~lr/(1-0.9) along it instead.
    optimizer: str = _key("sgd", "sgd (momentum 0.9) | adam", one_of("sgd", "adam"))
    lr: float = _key(1e-5, "the teacher's learning rate", positive)
    episodes: int = _key(4, "students per teacher step; their hypergradients are averaged", at_least(1))
    episode_clip: float = _key(1.0, "clip each episode's hypergradient to this norm before averaging (0: off)", at_least(0))
    clip: float = _key(1.0, "clip the averaged hypergradient to this norm (0: off)", at_least(0))
    objective: str = _key("ce", "the dev measure the teacher improves (l2t list): ce (dev cross entropy) | "
                                "expected_accuracy (the paper's relaxed accuracy)")
    hypergrad: str = _key("reverse", "reverse | checkpoint[:k] | reversible[:R] | truncated:K | unrolled; "
                          "+compile (reverse, checkpoint, truncated): the backward products by torch.compile")
    protocol: str = _key("full", "full: every episode a fresh student trained inner.steps steps; phases: "
                                 "episode_steps steps from snapshots of a reference run; online: one student taught "
                                 "episode_steps at a time, never reset (L2T-DLN's)", one_of("full", "phases", "online"))
    episode_steps: int = _key(0, "protocols phases and online: student steps per episode (online: K)", at_least(0))
    snapshots: int = _key(8, "protocol phases: start states kept from each reference run", at_least(1))
    reference_every: int = _key(10, "protocol phases: re-make the reference run every this many teacher steps "
                                     "(0: once, at the cross-entropy start)", at_least(0))
    bn_mode: str = _key("batch", "BatchNorm in the dev objective: batch (exact) | running (test-time statistics, "
                                 "approximate)", one_of("batch", "running"))
    dev_batch: int = _key(0, "dev examples per forward pass of the dev objective (0: the whole dev split at once)", at_least(0))
    divergence_ce: float = _key(3.0, "an episode whose final dev cross entropy exceeds this many times log C "
                                     "(a uniform guess) is diverged and skipped", positive)
    checkpoint_every: int = _key(5, "save a resumable checkpoint every this many teacher steps", at_least(1))
    average: int = _key(0, "save the mean of the teacher's weights over its last N steps (tail averaging: the "
                           "result depends less on where a still-moving teacher stops); 0: the last step's. At most outer.steps; "
                           "not for teachers with memory (recurrent, dln)", at_least(0))


@dataclass(frozen=True)
class Config:
    seed: int = _key(0, "the run's seed: teacher initialisation, episodes; students use their evaluation seeds", _seed)
    device: str = _key("cpu", "cpu | cuda[:N]")
    dtype: str = _key("float32", "float32 | float64", one_of("float32", "float64"))
    eval_seeds: int = _key(3, "students per loss in the final comparison (l2t experiment)", at_least(1))
    lr_grid: list = _key(None, "learning rates tried for each fixed loss, best mean dev error wins (empty: inner.lr); "
                               "the teacher's students use the rate tuned for cross entropy", _rates,
                         factory=lambda: [0.3, 0.1, 0.03, 0.01, 0.003])
    tune_seeds: int = _key(2, "students per learning rate when tuning", at_least(1))
    beam: int = _key(5, "seq2seq: beam width of the search behind the reported BLEU (1: greedy)", at_least(1))
    losses: list = _key(None, f"the losses compared by l2t experiment; {TEACHER_LOSS!r} is the teacher it trains", _names,
                        factory=lambda: ["ce", "smooth01", TEACHER_LOSS])
    loss_options: dict = _key(None, "keyword arguments per fixed loss, e.g. {smooth01 = {K = 50}, lsoftmax = {m = 2}}",
                              factory=dict)
    schedule_options: dict = _key(None, "arguments of a loss's coefficient schedule (lsoftmax: base, gamma, power, minimum)",
                                  factory=dict)
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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k, v in values.items():
        if dataclasses.is_dataclass(hints[k]):
            if not isinstance(v, dict):
                raise L2TError(f"config {where}{k}: expected a section, got {v!r}")
            kwargs[k] = _build(hints[k], v, f"{where}{k}.")
        else:
            kwargs[k] = _check_type(v, hints[k], f"{where}{k}")
            check = fields[k].metadata.get("check")
            problem = check(kwargs[k]) if check is not None else None
            if problem:
                raise L2TError(f"config {where}{k} {problem}, got {v!r}")
    return cls(**kwargs)


def describe(cfg: Config) -> str:
    """The resolved config, one key a line with its meaning (``l2t config --show``)."""
    lines = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                lines.append(f"{prefix}{f.name} = {json.dumps(value)}    # {f.metadata.get('doc', '')}")

    walk(cfg, "")
    return "\n".join(lines)


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


#: The configs that ship with l2t (package data: available after ``pip install``).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def shipped_configs() -> list[str]:
    """The shipped configs, as names relative to :data:`CONFIG_DIR` (``fashion/fashion_lenet.toml``);
    ``ablations/`` holds variant tables for ``experiments/ablate.py``, not configs."""
    return sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.toml") if p.parent.name != "ablations")


def resolve_config_path(path: str | Path) -> Path:
    """A config file: ``path`` itself if it exists, else a shipped one: ``configs/fashion/x.toml``,
    ``fashion/x.toml`` and ``fashion/x`` all name ``CONFIG_DIR/fashion/x.toml``."""
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    shipped = CONFIG_DIR.joinpath(*parts) if parts else CONFIG_DIR
    if shipped.suffix != ".toml":
        shipped = shipped.with_suffix(".toml")
    return shipped if shipped.is_file() else path


def default_config_for(data: str, student: str) -> str | None:
    """The shipped config for a named data set and student (the shortest-named one when several
    match), or ``None``: what ``l2t train --data fashion-mnist --student lenet`` starts from."""
    matches = []
    for name in shipped_configs():
        values = tomllib.loads((CONFIG_DIR / name).read_text(encoding="utf-8"))
        if values.get("data", {}).get("name") == data and values.get("student", {}).get("name") == student:
            matches.append(name)
    return min(matches, key=lambda n: (len(Path(n).stem), n)) if matches else None


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Defaults, then the TOML (or a run's ``config.json``) at ``path`` (a file, or a shipped
    config's name, :func:`resolve_config_path`), then ``overrides``.

    ``overrides`` are ``"section.key=value"`` strings (values parsed as JSON, else taken as
    strings) or a dict of dotted keys.
    """
    values: dict = {}
    if path is not None:
        path = resolve_config_path(path)
        if not path.is_file():
            raise L2TError(f"no such config file: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except UnicodeDecodeError:
            raise L2TError(f"config {path} is not UTF-8 text") from None
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise L2TError(f"cannot parse config {path}: {e}") from None
        except OSError as e:
            raise L2TError(f"cannot read config {path}: {e.strerror}") from None
        if not isinstance(values, dict):
            raise L2TError(f"config {path} is not a table of sections and keys")
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
