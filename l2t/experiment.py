"""The demo (``l2t demo``, ``make demo``): the whole method on the embedded digits data.

1. Train a teacher with Algorithm 1 (``runs/demo/teach``).
2. Tune the learning rate of each fixed baseline loss on the dev split (same grid, same budget).
3. Train fresh students, the same seeds for every loss: cross entropy, smooth 0-1 (K = 50) and
   L2T-DLF (the frozen teacher), each into ``runs/demo/<loss>/seed<k>``.
4. Write the table of test error (mean ± std over seeds) and two figures: the dev measure along
   teacher optimisation (Fig. 3) and the teacher's ``Φ_t`` at three phases (Fig. 4).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from l2t.build import load_splits, resolve_device, resolve_dtype
from l2t.config import Config
from l2t.figures import plot_coeffs, plot_dev_measure, save_phases
from l2t.io import read_json, write_json
from l2t.runs import init_run
from l2t.teach import STATE_FILE, teach
from l2t.teachers import load_teacher
from l2t.train import train_student, tune_lr

LABELS = {"ce": "cross entropy", "smooth01": "smooth 0-1 (K=50)", "l2t-dlf": "L2T-DLF (teacher)"}


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def results_table(out: Path, losses: list[str], seeds: int) -> str:
    """The markdown table, read back from the students' run folders."""
    lines = [f"| loss | lr | test error (%), mean ± std over {seeds} seeds | per seed |", "|---|---|---|---|"]
    for loss in losses:
        runs = [read_json(out / loss / f"seed{s}" / "summary.json") for s in range(seeds)]
        errs = [100 * r["test_error"] for r in runs]
        m, sd = _mean_std(errs)
        diverged = sum(r["diverged"] for r in runs)
        per = ", ".join(f"{e:.2f}" for e in errs) + (f" ({diverged} diverged)" if diverged else "")
        lines.append(f"| {LABELS.get(loss, loss)} | {runs[0]['lr']:g} | {m:.2f} ± {sd:.2f} | {per} |")
    return "\n".join(lines)


def run_demo(cfg: Config, out: Path, *, seeds: int, progress: bool = True) -> str:
    out = Path(out)
    teach_dir = out / "teach"
    # A teacher run already in the folder is continued (or reused, if complete) when it was
    # started with this very config; teach() refuses a different config.
    teach(cfg, teach_dir, resume=(teach_dir / STATE_FILE).exists(), progress=progress)
    data = load_splits(cfg)
    teacher = load_teacher(teach_dir, resolve_device(cfg.device), resolve_dtype(cfg.dtype))

    fixed = ["ce", "smooth01"]
    lrs = {"l2t-dlf": cfg.inner.lr}
    tuning = {}
    for loss in fixed:
        lrs[loss], tuning[loss] = tune_lr(cfg, data, loss, cfg.lr_grid, cfg.tune_seeds)

    losses = fixed + ["l2t-dlf"]
    jobs = [(loss, s) for loss in losses for s in range(seeds)]
    for loss, s in tqdm(jobs, desc="students", disable=not progress, unit="run"):
        c = replace(cfg, seed=s, inner=replace(cfg.inner, lr=lrs[loss]))
        res = train_student(c, data, teacher if loss == "l2t-dlf" else loss, s)
        run = init_run(out / loss / f"seed{s}", c)
        write_json(run / "summary.json", res.summary() | {"lr": lrs[loss]})
        if res.phases:
            save_phases(run / "phases.safetensors", res.phases, base=float(teacher.teacher.config().get("base", 0.0)),
                        class_names=list(data.class_names))

    table = results_table(out, losses, seeds)
    fig3 = plot_dev_measure(teach_dir, out / "fig3_dev_measure.png")
    fig4 = plot_coeffs(out / "l2t-dlf" / "seed0" / "phases.safetensors", out / "fig4_coeffs.png")
    write_json(out / "results.json", {"lr": lrs, "lr_tuning_dev_error": {k: {str(lr): e for lr, e in v.items()} for k, v in tuning.items()}})
    report = (
        f"Test error on {cfg.data.name} ({len(data.y_test)} test examples), student {cfg.student.name}, "
        f"{cfg.inner.steps} momentum-SGD steps, seeds 0..{seeds - 1}:\n\n{table}\n\n"
        f"Baseline learning rates tuned on dev over {cfg.lr_grid}; figures: {fig3}, {fig4}"
    )
    (out / "results.md").write_text(report + "\n")
    return report
