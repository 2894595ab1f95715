"""Figures, drawn from run folders only (never from training code).

* :func:`plot_dev_measure` -- the paper's Fig. 3: the dev measure of the students trained along
  the teacher's optimisation, per teacher step, from a teach run's ``metrics.jsonl``.
* :func:`plot_coeffs` -- the idea of Fig. 4: the teacher's ``Φ_t`` as heatmaps at an early, a
  middle and a late phase of one student's training, from ``phases.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from l2t.errors import L2TError  # noqa: E402
from l2t.io import load_tensors, read_json, read_jsonl, save_tensors  # noqa: E402
from l2t.pytree import named_leaves  # noqa: E402


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(x)))
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = np.empty_like(x)
    for i in range(len(x)):
        lo = max(0, i - window + 1)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


#: the teacher's objective, as plotted: (metric key suffix, label, sign that makes higher better)
_OBJECTIVES = {
    "ce": ("dev cross entropy (the teacher minimises it)", 1.0),
    "expected_accuracy": ("dev measure E[p(y|x)] (the teacher maximises it)", -1.0),
}


def plot_dev_measure(teach_run: str | Path, out: str | Path, title: str | None = None) -> Path:
    """Fig. 3: the objective the teacher optimises (``outer.objective``: dev cross entropy, or the
    paper's expected accuracy) and the dev error, per teacher step, of the episodes' students
    or, for the ``phases`` protocol (whose episodes end mid-training), of the whole students of
    its reference runs when it made at least 3 (else its episodes', which start at different
    phases). Dots are single steps; lines are moving averages over a stated window."""
    teach_run, out = Path(teach_run), Path(out)
    all_records = read_jsonl(teach_run / "metrics.jsonl")
    cfg = read_json(teach_run / "config.json") if (teach_run / "config.json").exists() else {}
    objective = cfg.get("outer", {}).get("objective", "ce")  # the config's default
    label, sign = _OBJECTIVES.get(objective, (f"dev objective {objective}", 1.0))
    # phases: the whole students of its reference runs, when there are enough of them to draw a curve
    prefix = "reference_" if sum("reference_outer_loss" in r for r in all_records) >= 3 else ""
    records = [r for r in all_records if r.get(f"{prefix}outer_loss") is not None]
    if not records:
        raise L2TError(f"{teach_run} has no teacher-step metrics to plot")
    steps = np.array([r["step"] for r in records])
    value = sign * np.array([r[f"{prefix}outer_loss"] for r in records])
    with_err = [r for r in records if f"{prefix}dev_error" in r]  # protocol online: at checkpoints only
    err_steps = np.array([r["step"] for r in with_err])
    err = 100 * np.array([r[f"{prefix}dev_error"] for r in with_err])
    window = max(1, len(steps) // 10)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 4.8), sharex=True, layout="constrained")
    ax.plot(steps, value, ".", color="tab:blue", alpha=0.35, label="per teacher step")
    ax.plot(steps, _moving_average(value, window), color="tab:blue", label=f"moving average, {window} steps")
    ax.set_ylabel(label.split(" (")[0], fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax2.plot(err_steps, err, ".", color="tab:red", alpha=0.35)
    ax2.plot(err_steps, _moving_average(err, max(1, len(err_steps) // 10)), color="tab:red")
    ax2.set_ylabel("dev error (%)", fontsize=9)
    ax2.set_xlabel("teacher optimisation step")
    online = cfg.get("outer", {}).get("protocol") == "online"
    phases = cfg.get("outer", {}).get("protocol") == "phases"
    whose = ("whole students of the reference runs" if prefix else "the online student" if online
             else "the episodes (each from a snapshot of another phase)" if phases else "the episodes' students")
    fig.suptitle(title or f"Along teacher optimisation (cf. L2T-DLF Fig. 3): {label}, {whose}", fontsize=9)
    _save(fig, out)
    return out


def save_phases(path: str | Path, phases, *, base: float, class_names: list[str]) -> None:
    """Store a student's per-phase state features and coefficients in its run folder: each tensor
    of the coefficients' pytree stacked over phases (``coeffs`` for a single ``Φ``,
    ``coeffs.<path>`` for several tensors)."""
    per_phase = [named_leaves(p.coeffs, "coeffs") for p in phases]
    coeffs = {k: torch.stack([leaves[k] for leaves in per_phase]) for k, v in per_phase[0].items()
              if isinstance(v, torch.Tensor)}
    save_tensors(
        path,
        coeffs | {
            "features": torch.stack([p.features for p in phases]),
            "starts": torch.tensor([p.start for p in phases]),
        },
        {"base": base, "class_names": list(class_names)},
    )


def has_phi(phases_file: str | Path) -> bool:
    """Whether a student's phases hold one ``(C, C)`` matrix ``Φ`` per phase (what Fig. 4 draws);
    a teacher whose coefficients are several tensors, or none, has no such figure."""
    tensors, _ = load_tensors(phases_file)  # a corrupt file is one error line
    return "coeffs" in tensors and tensors["coeffs"].dim() == 3


def _relative(coeffs: np.ndarray, base: float) -> tuple[np.ndarray, str]:
    """``(Φ − c·I) / c``: what the teacher learned on top of its cross-entropy start, relative to
    the scale ``c`` of that start (a change of 1e-4 on a diagonal of 0.1 is 0.1%, not structure)."""
    if base > 0:
        return (coeffs - base * np.eye(coeffs.shape[-1])) / base, "(Φ_t(i, j) − c·δ_ij) / c"
    return coeffs, "Φ_t(i, j)"


def plot_coeffs(phases_file: str | Path, out: str | Path, *, title: str | None = None) -> Path:
    """``(Φ_t − c·I) / c`` at the first, middle and last phase of a student's training, on one
    colour scale."""
    tensors, meta = load_tensors(phases_file)
    coeffs, what = _relative(tensors["coeffs"].double().numpy(), float(meta.get("base", 0.0)))
    starts = tensors["starts"].tolist()
    names = meta.get("class_names") or [str(i) for i in range(coeffs.shape[1])]
    picks = sorted({0, len(coeffs) // 2, len(coeffs) - 1})
    learned = [coeffs[i] for i in picks]
    vmax = max(float(np.abs(m).max()) for m in learned) or 1.0
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 4.4), squeeze=False, layout="constrained")
    for ax, i, m in zip(axes[0], picks, learned):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"step {starts[i]} ({'early' if i == picks[0] else 'late' if i == picks[-1] else 'middle'})", fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("j (log p_j)", fontsize=8)
    axes[0][0].set_ylabel("i (true class y)", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=what)
    fig.suptitle(title or "Teacher's loss coefficients across student training (cf. L2T-DLF Fig. 4)", fontsize=10)
    _save(fig, out)
    return out


def plot_class_coeffs(
    phases_file: str | Path, out: str | Path, *, classes: list[str] | None = None, against: list[str] | None = None
) -> Path:
    """The paper's Fig. 4: ``Φ_t(i, j)`` for a class i (by name) against classes j, at an early,
    middle and late phase (rows). Without ``against``, the j with the largest change of
    ``Φ_t(i, j)`` across phases are shown."""
    tensors, meta = load_tensors(phases_file)
    base = float(meta.get("base", 0.0))
    coeffs, _ = _relative(tensors["coeffs"].double().numpy(), base)  # (P, C, C), relative to c
    names = list(meta.get("class_names") or [str(i) for i in range(coeffs.shape[1])])
    index = {n: i for i, n in enumerate(names)}
    for n in (classes or []) + (against or []):
        if n not in index:
            raise L2TError(f"unknown class {n!r}; classes: {', '.join(names)}")
    rows_i = [index[n] for n in classes] if classes else [0]
    picks = sorted({0, len(coeffs) // 2, len(coeffs) - 1})
    starts = tensors["starts"].tolist()
    fig, axes = plt.subplots(1, len(rows_i), figsize=(5.5 * len(rows_i), 3.0), squeeze=False, layout="constrained")
    for ax, i in zip(axes[0], rows_i):
        if against:
            cols = [index[n] for n in against]
        else:
            change = np.abs(coeffs[picks[-1], i] - coeffs[picks[0], i])
            change[i] = -1
            cols = [int(j) for j in np.argsort(-change)[:5]]
        m = np.stack([coeffs[p, i, cols] for p in picks])  # (phases, |cols|)
        v = float(np.abs(m).max()) or 1.0
        im = ax.imshow(m, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
        ax.set_xticks(range(len(cols)), [names[j] for j in cols], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(picks)), [f"step {starts[p]}" for p in picks], fontsize=8)
        ax.set_title(f"(Φ_t({names[i]}, j) − c·δ) / c" if base > 0 else f"Φ_t({names[i]}, j)", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("Loss coefficients for chosen classes across student training (cf. L2T-DLF Fig. 4)", fontsize=10)
    _save(fig, Path(out))
    return Path(out)
