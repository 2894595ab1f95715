"""How far a *dynamic* loss of the teacher's family can go on a config, searched directly: the
facts behind README "What the family can reach".

A teacher's output is one ``Φ`` per phase. This probe replaces the trained teacher by hand-made
schedules over the run, linear in ``t/T`` (the state's first feature): the schedule teacher
(:class:`l2t.teachers.ScheduleTeacher`, two knots) with its weights fixed at the points of a grid,
in the two directions of the bilinear family that are known to matter:

    Φ_t = c · g_t · ((1 − ε_t)·I + ε_t/C),   loss scale 4/c (the attention teacher's form)

``g`` scales the loss's gradient (near ``c·I``, ``g`` times cross entropy's: a learning-rate
multiplier on top of the config's schedule, which the sigmoid bends for large ``g``); ``ε`` is
label smoothing. ``g = 1, ε = 0`` is cross entropy; ``g = 1, ε = 0.1`` is the Fashion MLP
teacher's starting point. Every ``(g_0, g_1, ε_0, ε_1)`` of the grid trains ``--tune-seeds``
students on the tuning seeds of ``l2t experiment`` and is judged on dev error; the ``--top`` best,
with cross entropy's point, are then trained on the evaluation seeds and reported on test error
with the paired difference to cross entropy's point, and with ``--against RUN_DIR`` to every loss
of an ``l2t experiment`` folder (the same evaluation seeds).

    python experiments/schedule_probe.py configs/fashion/fashion_mlp.toml --gains 0.5 1 1.5 2.5 \
        --out runs/probes/schedule_mlp --against runs/fashion_mlp
    python experiments/schedule_probe.py configs/fashion/fashion_lenet.toml --set inner.lr=0.03 \
        --gains 0.5 1 2 3.5 --smoothing 0 0.1 --out runs/probes/schedule_lenet --against runs/fashion_lenet

Results go to ``OUT/grid.jsonl`` (one line per schedule) and ``OUT/eval.json`` (each evaluated
schedule's students, per seed), so an interrupted or repeated run resumes without retraining,
and to ``OUT/results.md``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

from l2t.build import load_splits
from l2t.config import load_config
from l2t.data import derive_seed
from l2t.data.batches import TAG_TUNE
from l2t.io import append_jsonl, atomic_write_text, read_json, read_jsonl, write_json
from l2t.report import ORDER, mean_std, paired_delta, seed_summaries
from l2t.teachers import STATE_FEATURES, LoadedTeacher, ScheduleTeacher, teacher_params
from l2t.train import TaughtLoss, train_student

GAINS = [0.5, 1.0, 2.0]
SMOOTHING = [0.0, 0.1, 0.3]
CE = (1.0, 1.0, 0.0, 0.0)  # (g_0, g_1, ε_0, ε_1): cross entropy's point


def schedule(num_classes: int, every: int, g0: float, g1: float, e0: float, e1: float) -> TaughtLoss:
    """The schedule teacher (:class:`l2t.teachers.ScheduleTeacher`, two knots) fixed at a point."""
    dim = STATE_FEATURES.get("classification").dim(num_classes)
    teacher = ScheduleTeacher(num_classes, dim, knots=2, init_gain=[g0, g1], init_smoothing=[e0, e1])
    meta = {"teacher": "schedule", "loss": "bilinear", "loss_kwargs": teacher.loss_kwargs(), "state_every": every,
            "features": "classification"}
    return TaughtLoss(LoadedTeacher(teacher, teacher_params(teacher), meta))


def label(g0: float, g1: float, e0: float, e1: float) -> str:
    return f"g {g0:g}→{g1:g}, ε {e0:g}→{e1:g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="a TOML config (data, student, inner schedule, teacher.state_every)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, as in the l2t command line (e.g. inner.lr=0.03)")
    p.add_argument("--out", type=Path, required=True, help="folder for grid.jsonl, eval.json and results.md")
    p.add_argument("--tune-seeds", type=int, default=2)
    p.add_argument("--seeds", type=int, default=5, help="evaluation seeds of the final comparison")
    p.add_argument("--top", type=int, default=3, help="schedules (best on dev) evaluated on test")
    p.add_argument("--gains", type=float, nargs="+", default=GAINS)
    p.add_argument("--smoothing", type=float, nargs="+", default=SMOOTHING)
    p.add_argument("--against", type=Path, metavar="RUN_DIR",
                   help="an l2t experiment folder of the same config: add the paired Δ against each of its losses")
    args = p.parse_args()
    grid = list(itertools.product(args.gains, args.gains, args.smoothing, args.smoothing))
    if CE not in grid:
        p.error("cross entropy's point is the reference: --gains must include 1 and --smoothing 0")
    against = experiment_errors(args.against, args.seeds) if args.against is not None else {}
    cfg = load_config(args.config, args.overrides)
    data = load_splits(cfg)
    every = cfg.teacher.state_every
    args.out.mkdir(parents=True, exist_ok=True)
    grid_file = args.out / "grid.jsonl"
    done = {tuple(r["schedule"]): r for r in read_jsonl(grid_file)} if grid_file.exists() else {}

    for point in grid:
        if point in done:
            continue
        loaded = schedule(data.num_classes, every, *point)
        runs = [train_student(cfg, data, loaded, derive_seed(s, TAG_TUNE)) for s in range(args.tune_seeds)]
        record = {"schedule": list(point), "dev_error": statistics.mean(r.dev_error for r in runs)}
        append_jsonl(grid_file, record)
        done[point] = record
        print(f"{label(*point)}: dev error {100 * record['dev_error']:.2f}", flush=True)

    ranked = sorted(grid, key=lambda pt: done[pt]["dev_error"])
    chosen = list(dict.fromkeys([*ranked[: args.top], CE]))
    eval_file = args.out / "eval.json"
    evals = {tuple(e["schedule"]): e["seeds"] for e in read_json(eval_file)} if eval_file.exists() else {}
    for point in chosen:
        if len(evals.get(point, [])) != args.seeds:
            loaded = schedule(data.num_classes, every, *point)
            evals[point] = [train_student(cfg, data, loaded, s).summary() for s in range(args.seeds)]
            write_json(eval_file, [{"schedule": list(pt), "seeds": runs} for pt, runs in evals.items()])

    def errors(point, key="test_error"):
        return [100 * r[key] for r in evals[point]]

    rows = [f"Config {args.config} {' '.join(args.overrides)}: {len(grid)} schedules × {args.tune_seeds} tuning seeds (dev error), "
            f"the best {args.top} and cross entropy's point on {args.seeds} evaluation seeds.", "",
            "| schedule | rank on dev | tuning dev error (%) | test error (%) | paired Δ vs CE point (± s.e.) | dev error (%) |",
            "|---|---|---|---|---|---|"]
    for point in chosen:
        delta = "" if point == CE else paired_delta(errors(point), errors(CE))
        m, sd = mean_std(errors(point))
        dm, dsd = mean_std(errors(point, "dev_error"))
        rows.append(f"| {label(*point)} | {ranked.index(point) + 1} | {100 * done[point]['dev_error']:.2f} | "
                    f"{m:.2f} ± {sd:.2f} | {delta} | {dm:.2f} ± {dsd:.2f} |")
    if args.against is not None:
        rows += ["", f"Paired Δ (± s.e.) against the rows of {args.against} (the same evaluation seeds):", "",
                 "| schedule | " + " | ".join(against) + " |", "|---" * (len(against) + 1) + "|"]
        rows += [f"| {label(*point)} | " + " | ".join(paired_delta(errors(point), e) for e in against.values()) + " |"
                 for point in chosen]
    text = "\n".join(rows) + "\n"
    atomic_write_text(args.out / "results.md", text)
    print("\n" + text)


def experiment_errors(run_dir: Path, seeds: int) -> dict[str, list[float]]:
    """Test error (%) per seed of every loss of an ``l2t experiment`` folder that has ``seeds`` students."""
    out = {}
    for loss in ORDER:
        if all((run_dir / loss / f"seed{s}" / "summary.json").is_file() for s in range(seeds)):
            out[loss] = [100 * r["test_error"] for r in seed_summaries(run_dir / loss, seeds)]
    if not out:
        raise SystemExit(f"error: {run_dir} holds no loss with {seeds} evaluation students (LOSS/seedK/summary.json)")
    return out


if __name__ == "__main__":
    main()
