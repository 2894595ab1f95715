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
from l2t.io import load_tensors, read_jsonl, save_tensors  # noqa: E402
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


def plot_dev_measure(teach_run: str | Path, out: str | Path, title: str | None = None) -> Path:
    """Dev measure (expected accuracy) and dev error per teacher step: of the episodes' students,
    or, for the ``phases`` protocol (whose episodes end mid-training), of the whole students of
    its reference runs."""
    teach_run, out = Path(teach_run), Path(out)
    all_records = read_jsonl(teach_run / "metrics.jsonl")
    prefix = "reference_" if any("reference_dev_measure" in r for r in all_records) else ""
    records = [r for r in all_records if f"{prefix}dev_measure" in r]
    if not records:
        raise L2TError(f"{teach_run} has no teacher-step metrics to plot")
    steps = np.array([r["step"] for r in records])
    measure = np.array([r[f"{prefix}dev_measure"] for r in records])
    err = 100 * np.array([r[f"{prefix}dev_error"] for r in records])
    window = max(1, len(steps) // 10)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, measure, ".", color="tab:blue", alpha=0.35, label="dev measure, per step")
    ax.plot(steps, _moving_average(measure, window), color="tab:blue", label=f"moving average ({window} steps)")
    ax.set_xlabel("teacher optimisation step")
    ax.set_ylabel("dev measure  E[p(y|x)]", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(steps, _moving_average(err, window), color="tab:red", alpha=0.8, label="dev error (moving avg)")
    ax2.set_ylabel("dev error (%)", color="tab:red")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [l.get_label() for l in lines], loc="lower right", fontsize=8)
    ax.set_title(title or "Dev measure along teacher optimisation (cf. L2T-DLF Fig. 3)", fontsize=10)
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


def plot_coeffs(phases_file: str | Path, out: str | Path, *, title: str | None = None) -> Path:
    """``Φ_t − c·I`` (what the teacher has learned on top of its cross-entropy start) at the
    first, middle and last phase of a student's training, on one colour scale."""
    tensors, meta = load_tensors(phases_file)
    coeffs = tensors["coeffs"].double().numpy()
    starts = tensors["starts"].tolist()
    names = meta.get("class_names") or [str(i) for i in range(coeffs.shape[1])]
    picks = sorted({0, len(coeffs) // 2, len(coeffs) - 1})
    learned = [coeffs[i] - meta.get("base", 0.0) * np.eye(coeffs.shape[1]) for i in picks]
    vmax = max(float(np.abs(m).max()) for m in learned) or 1.0
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 4.0), squeeze=False)
    for ax, i, m in zip(axes[0], picks, learned):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"step {starts[i]} ({'early' if i == picks[0] else 'late' if i == picks[-1] else 'middle'})", fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("j (log p_j)", fontsize=8)
    axes[0][0].set_ylabel("i (true class y)", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="Φ_t(i, j) − c·δ_ij")
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
    coeffs = tensors["coeffs"].double().numpy()  # (P, C, C)
    names = list(meta.get("class_names") or [str(i) for i in range(coeffs.shape[1])])
    index = {n: i for i, n in enumerate(names)}
    for n in (classes or []) + (against or []):
        if n not in index:
            raise L2TError(f"unknown class {n!r}; classes: {', '.join(names)}")
    rows_i = [index[n] for n in classes] if classes else [0]
    picks = sorted({0, len(coeffs) // 2, len(coeffs) - 1})
    starts = tensors["starts"].tolist()
    fig, axes = plt.subplots(1, len(rows_i), figsize=(5.5 * len(rows_i), 2.8), squeeze=False)
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
        ax.set_title(f"Φ_t({names[i]}, j)", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("Loss coefficients for chosen classes across student training (cf. L2T-DLF Fig. 4)", fontsize=10)
    _save(fig, Path(out))
    return Path(out)
