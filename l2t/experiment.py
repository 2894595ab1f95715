"""One experiment: the losses of a config compared on the same seeds (``l2t experiment``;
``l2t demo`` is this with the shipped config ``demo`` on digits).

1. Tune the learning rate of each fixed loss on the dev split: the same grid (``lr_grid``) and
   the same number of students (``tune_seeds``) for every loss.
2. Train a teacher with Algorithm 1 into ``OUT/teach``, at the learning rate tuned for cross
   entropy (the loss it starts from), when ``l2t-dlf`` is among ``losses``.
3. Train ``eval_seeds`` fresh students per loss with the same seeds (initial weights, batches)
   and schedule, each into ``OUT/<loss>/seed<k>`` (the teacher's students keep their ``Φ_t``).
4. Write ``results.md`` (test error, mean ± std over seeds) and, with a teacher, Fig. 3 (the
   teacher's objective along its optimisation) and Fig. 4 (``Φ_t`` at three phases).

Every name in the config (losses, teacher, hypergradient method) is checked before any student
trains, so a typo costs nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from l2t.build import load_splits
from l2t.config import TEACHER_LOSS, Config
from l2t.distributed import ALONE, World, barrier, broadcast_text
from l2t.errors import L2TError
from l2t.runs import check_run_dir
from l2t.teachers import TEACHERS
from l2t.figures import has_phi, plot_coeffs, plot_dev_measure
from l2t.io import read_json, write_json
from l2t.losses import LOSSES
from l2t.report import higher_is_better, mean_std, metric_name, paired_delta, score, seed_summaries
from l2t.teach import STATE_FILE, check_teaching, teach
from l2t.train import FixedLoss, LossSpec, load_loss, record_student, tune_lr

LABELS = {
    "ce": "cross entropy", "smooth01": "smooth 0-1", "lsoftmax": "large-margin softmax",
    "label_smoothing": "label smoothing", TEACHER_LOSS: "L2T-DLF (teacher)",
}


def results_table(out: Path, losses: list[str], seeds: int) -> str:
    """The markdown table, read back from the students' run folders: test error (%), or test BLEU
    for translation, with the paired difference against cross entropy over the same seeds."""
    summaries = {loss: seed_summaries(out / loss, seeds) for loss in losses}
    name = metric_name([r for runs in summaries.values() for r in runs])
    dev_name = "dev token error (%)" if name == "test BLEU" else "dev error (%)"
    base = "ce" if "ce" in losses else None
    better = "higher" if higher_is_better(name) else "lower"
    lines = [f"| loss | lr | {name}, mean ± std over {seeds} seeds | paired Δ vs cross entropy (± s.e.; {better} is better) | {dev_name} "
             "| per seed (test) |", "|---|---|---|---|---|---|"]
    for loss, runs in summaries.items():
        test, dev = [score(r) for r in runs], [100 * r["dev_error"] for r in runs]
        (m, sd), (dm, dsd) = mean_std(test), mean_std(dev)
        delta = paired_delta(test, [score(r) for r in summaries[base]]) if base and loss != base and seeds > 1 else ""
        diverged = sum(r["diverged"] for r in runs)
        per = ", ".join(f"{e:.2f}" for e in test) + (f" ({diverged} diverged)" if diverged else "")
        label = LABELS.get(loss, loss)
        if "teacher" in runs[0]:
            label = ("L2T-DLN (its loss networks)" if runs[0]["teacher"] == "dln_schedule"
                     else f"L2T-DLF ({runs[0]['teacher']} teacher)")
        lines.append(f"| {label} | {runs[0]['lr']:g} | {m:.2f} ± {sd:.2f} | {delta} | {dm:.2f} ± {dsd:.2f} | {per} |")
    return "\n".join(lines)


def run_experiment(cfg: Config, out: Path, *, seeds: int, progress: bool = True, world: World = ALONE) -> str:
    """With several processes (``world``) the tuning and evaluation students and the teacher's
    episodes are spread over them; each rank writes its own students' run folders (so on several
    machines ``out`` must be a shared folder) and rank 0 the rest."""
    out = Path(out)
    unknown = [loss for loss in cfg.losses if loss != TEACHER_LOSS and loss not in LOSSES]
    if unknown:
        raise L2TError(f"unknown loss(es) {', '.join(unknown)} in losses; known: {', '.join(LOSSES.list() + [TEACHER_LOSS])}")
    if TEACHER_LOSS in cfg.losses:
        TEACHERS.get(cfg.teacher.name)
        check_teaching(cfg)
        check_run_dir(out / "teach")
    data = load_splits(cfg)
    specs: dict[str, LossSpec] = {loss: FixedLoss(loss) for loss in cfg.losses if loss != TEACHER_LOSS}
    lrs, tuning = {}, {}
    for loss, spec in specs.items():
        lrs[loss], tuning[loss] = tune_lr(cfg, data, spec, cfg.lr_grid, cfg.tune_seeds, progress, world)

    if TEACHER_LOSS in cfg.losses:
        lrs[TEACHER_LOSS] = lrs.get("ce", cfg.inner.lr)
        teach_cfg = replace(cfg, inner=replace(cfg.inner, lr=lrs[TEACHER_LOSS]))
        teach_dir = out / "teach"
        # A teacher run already in the folder is continued (or reused, if complete) when it was
        # started with this very config; teach() refuses a different config.
        resume = bool(int(broadcast_text(str(int((teach_dir / STATE_FILE).exists())) if world.main else None, world)))
        teach(teach_cfg, teach_dir, resume=resume, progress=progress, world=world)
        barrier(world)  # the teacher file is written
        specs[TEACHER_LOSS] = load_loss(cfg, f"teacher:{teach_dir}")

    jobs = [(loss, s) for loss in cfg.losses for s in range(seeds)]
    mine = [job for i, job in enumerate(jobs) if world.owner(i) == world.rank]
    for loss, s in tqdm(mine, desc="students", disable=not progress or not world.main, unit="run"):
        c = replace(cfg, seed=s, inner=replace(cfg.inner, lr=lrs[loss]))
        record_student(c, data, specs[loss], s, out / loss / f"seed{s}", overwrite=True)
    barrier(world)
    if not world.main:
        return ""

    table = results_table(out, cfg.losses, seeds)
    figures = ""
    if TEACHER_LOSS in cfg.losses:
        figures = [plot_dev_measure(out / "teach", out / "fig3_dev_measure.png")]
        phases = out / TEACHER_LOSS / "seed0" / "phases.safetensors"
        if phases.exists() and has_phi(phases):
            figures.append(plot_coeffs(phases, out / "fig4_coeffs.png"))
        figures = "; figures: " + ", ".join(map(str, figures))
    write_json(out / "results.json", {"lr": lrs, "lr_tuning_dev_error": {k: {str(lr): e for lr, e in v.items()} for k, v in tuning.items()}})
    if data.tokenizer is not None:
        signature = read_json(out / cfg.losses[0] / "seed0" / "summary.json").get("bleu_signature", "")
        what = f"Test BLEU (beam {cfg.beam}; sacrebleu {signature}) on {cfg.data.name} ({len(data.test)} test pairs)"
    else:
        name = metric_name(seed_summaries(out / cfg.losses[0], seeds))
        what = f"Test {name[5:]} on {cfg.data.name} ({len(data.test)} test examples)"
    if cfg.lr_grid:
        on = {"segmentation": ", on dev mIoU", "detection": ", on dev mAP@0.5"}.get(data.task.kind, "")
        tuned = (f"Learning rates tuned on dev over {cfg.lr_grid} ({cfg.tune_seeds} student{'s' if cfg.tune_seeds > 1 else ''} "
                 f"each{', on teacher-forced token error' if data.tokenizer is not None else on}); the teacher is trained "
                 "at the rate tuned for cross entropy")
    else:
        tuned = f"Learning rate {cfg.inner.lr:g} for every loss and the teacher (not tuned: lr_grid is empty)"
    report = (
        f"{what}, student {cfg.student.name}, "
        f"{cfg.inner.steps} {'Adam' if cfg.inner.optimizer == 'adam' else 'momentum-SGD'} steps ({cfg.inner.lr_schedule} "
        f"schedule), seeds 0..{seeds - 1}:\n\n{table}\n\n"
        f"{tuned}{figures}"
    )
    (out / "results.md").write_text(report + "\n")
    return report
