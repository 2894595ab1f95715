"""``l2t report RUN_DIRS...``: run folders -> one markdown table and the figures.

It reads only run folders (``summary.json`` and ``config.json`` of every student run found
below the given folders, ``metrics.jsonl`` of teach runs, ``phases.safetensors`` of teacher-
trained students), never training code. Rows are (data set, student), columns the losses (a
teacher's column names the teacher, e.g. ``l2t-dlf (attention)``), cells mean ± std of the test
error over seeds, next to the paper's numbers where the paper has the row.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from l2t.errors import L2TError
from l2t.figures import has_phi, plot_class_coeffs, plot_dev_measure
from l2t.io import atomic_write_text, read_json

#: Test error (%) reported by L2T-DLF (Tables 1-2): (data, student) -> loss -> error.
PAPER = {
    ("mnist", "mlp"): {"ce": 1.94, "smooth01": 1.89, "lsoftmax": 1.83, "l2t-dlf": 1.69},
    ("mnist", "lenet"): {"ce": 0.98, "smooth01": 0.94, "lsoftmax": 0.88, "l2t-dlf": 0.77},
    ("cifar10", "resnet8"): {"ce": 12.45, "smooth01": 12.08, "lsoftmax": 11.34, "l2t-dlf": 10.82},
    ("cifar10", "resnet20"): {"ce": 8.75, "smooth01": 8.53, "lsoftmax": 8.02, "l2t-dlf": 7.63},
    ("cifar10", "resnet32"): {"ce": 7.51, "smooth01": 7.42, "lsoftmax": 7.01, "l2t-dlf": 6.95},
    ("cifar10", "wrn"): {"ce": 3.80, "smooth01": 3.81, "lsoftmax": 3.69, "l2t-dlf": 3.42},
    ("cifar10", "densenet_bc"): {"ce": 3.54, "smooth01": 3.48, "lsoftmax": 3.37, "l2t-dlf": 3.08},
    ("cifar100", "resnet8"): {"ce": 39.79, "smooth01": 39.52, "lsoftmax": 38.93, "l2t-dlf": 38.27},
    ("cifar100", "resnet20"): {"ce": 32.33, "smooth01": 32.01, "lsoftmax": 31.65, "l2t-dlf": 30.97},
    ("cifar100", "resnet32"): {"ce": 30.38, "smooth01": 30.12, "lsoftmax": 29.56, "l2t-dlf": 29.25},
}
ORDER = ["ce", "smooth01", "lsoftmax", "label_smoothing", "l2t-dlf"]
_FAMILY = {"wrn16_4": "wrn", "wrn28_10": "wrn", "densenet_bc_100_12": "densenet_bc", "densenet_bc_190_40": "densenet_bc"}


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def paired_delta(xs: list[float], ys: list[float]) -> str:
    """``mean(x - y) ± its standard error`` over paired runs (the same seeds), as ``+0.12 ± 0.03``."""
    d = [x - y for x, y in zip(xs, ys, strict=True)]
    return f"{statistics.mean(d):+.2f} ± {statistics.stdev(d) / len(d) ** 0.5:.2f}"


def paired_table(column: str, over: str, scores: list[tuple[str, list[float]]]) -> str:
    """A markdown table of ``(name, per-seed numbers)`` pairs: each one's mean ± std (header
    ``over``) and, for every other name, the paired difference of the first from it."""
    first_name, first = scores[0]
    rows = [f"| {column} | {over} | paired Δ of {first_name} (± s.e.) |", "|---|---|---|"]
    for name, values in scores:
        delta = "" if name == first_name else paired_delta(first, values)
        rows.append(f"| {name} | {'%.2f ± %.2f' % mean_std(values)} | {delta} |")
    return "\n".join(rows)


#: a student run's reported number by task: summary key -> (name, scale to the table's unit);
#: every one but the test error is higher-is-better. The first key a summary holds is its number.
HEADLINES = {"test_bleu": ("test BLEU", 1.0), "test_miou": ("test mIoU (%)", 100.0),
             "test_map50": ("test mAP@0.5 (%)", 100.0), "test_error": ("test error (%)", 100.0)}


def headline(summary: dict) -> str:
    return next(k for k in HEADLINES if summary.get(k) is not None)


def score(summary: dict) -> float:
    """A student run's reported number: test BLEU for translation, mIoU for segmentation, mAP@0.5
    for detection (higher is better), else its test error in percent (lower is better)."""
    key = headline(summary)
    return HEADLINES[key][1] * summary[key]


def higher_is_better(name: str) -> bool:
    return name != HEADLINES["test_error"][0]


def metric_name(summaries: list[dict]) -> str:
    """``test BLEU``, ``test mIoU (%)``, ``test mAP@0.5 (%)`` or ``test error (%)``; runs of two
    kinds in one table are an error."""
    return _metric(headline(s) for s in summaries)


def _metric(keys) -> str:
    kinds = set(keys)
    if len(kinds) > 1:
        raise L2TError(f"runs measured by different numbers ({', '.join(sorted(HEADLINES[k][0] for k in kinds))}) "
                       "cannot share a table; report them apart")
    return HEADLINES[kinds.pop() if kinds else "test_error"][0]


def seed_summaries(folder: str | Path, seeds: int) -> list[dict]:
    """The ``summary.json`` of ``folder/seed0 .. seed{seeds-1}``: one loss's students over seeds, as
    ``l2t experiment`` and ``experiments/ablate.py`` write them."""
    return [read_json(Path(folder) / f"seed{s}" / "summary.json") for s in range(seeds)]


def column(summary: dict) -> str:
    """A student's column: its loss, with the teacher's name for a teacher's student (summaries
    written before students recorded it have the bare loss name)."""
    return f"{summary['loss']} ({summary['teacher']})" if "teacher" in summary else summary["loss"]


#: config fields that may differ between the runs of one row: the seed, what an experiment tunes or
#: compares per loss (each fixed loss runs at its own tuned rate), and what only shapes a teacher
#: (a teacher's students are told apart by the teacher they were trained with instead)
PER_RUN = ("seed", "inner.lr", "eval_seeds", "lr_grid", "tune_seeds", "losses", "data.download")
TEACHER_ONLY = ("teacher.", "outer.")


def _flat(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict) and k in ("data", "student", "inner", "teacher", "outer"):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v
    return out


def collect(run_dirs: list[Path]) -> dict:
    """(data, student, setting) -> column -> list of run records (seed, test and dev error %, lr,
    diverged). A *setting* is the config apart from :data:`PER_RUN`; runs of different settings
    are never pooled, and a folder found twice (nested arguments) counts once."""
    seen: set[Path] = set()
    runs = []
    for root in run_dirs:
        if not Path(root).exists():
            raise L2TError(f"no such run folder: {root}")
        for summary in sorted(Path(root).rglob("summary.json")):
            if summary.resolve() in seen:
                continue
            seen.add(summary.resolve())
            s = read_json(summary)
            if "test_error" not in s:
                continue  # a teach run's summary
            cfg_path = summary.parent / "config.json"
            if not cfg_path.exists():
                raise L2TError(f"{summary.parent} has a summary.json but no config.json")
            flat = _flat(read_json(cfg_path))
            setting = json.dumps({k: v for k, v in flat.items() if k not in PER_RUN and not k.startswith(TEACHER_ONLY)},
                                 sort_keys=True)
            runs.append((flat, setting, s))
    if not runs:
        raise L2TError(f"no student runs (summary.json with a test error) under {', '.join(map(str, run_dirs))}")
    table: dict = defaultdict(lambda: defaultdict(list))
    for flat, setting, s in runs:
        key = (Path(str(flat.get("data.name", "?"))).stem, flat.get("student.name", "?"), setting)
        teacher = s.get("teacher_path")
        table[key][column(s)].append({"seed": s["seed"], "test": score(s), "kind": headline(s),
                                      "dev": 100 * s["dev_error"],
                                      "lr": flat.get("inner.lr"), "diverged": bool(s.get("diverged")),
                                      "teacher": teacher})
    # a column whose runs used several teachers or learning rates is split, never averaged across them
    for row in table.values():
        for col in [c for c in row if len({r["teacher"] for r in row[c]}) > 1]:
            for r in row.pop(col):
                row[f"{col} [{r['teacher']}]"].append(r)
        for col in [c for c in row if len({r["lr"] for r in row[c]}) > 1]:
            for r in row.pop(col):
                row[f"{col} @ lr {r['lr']:g}"].append(r)
    return table


def _row_labels(table: dict) -> dict:
    """``data / student``, with the config keys that tell its settings apart when one pair has
    several rows (e.g. ``(inner.steps=50)``)."""
    labels = {}
    for key in table:
        data, student, setting = key
        siblings = [json.loads(k[2]) for k in table if k[:2] == (data, student)]
        label = f"{data} / {student}"
        if len(siblings) > 1:
            mine = json.loads(setting)
            differ = sorted(k for k in set().union(*siblings) if len({json.dumps(s.get(k)) for s in siblings}) > 1)
            shown = ", ".join(f"{k}={json.dumps(mine.get(k))}" for k in differ[:3]) + (", ..." if len(differ) > 3 else "")
            label += f" ({shown})"
        labels[key] = label
    return labels


def _cell(runs: list) -> str:
    m, sd = mean_std([r["test"] for r in runs])
    spread = f"{sd:.2f}" if len(runs) > 1 else "—"
    diverged = sum(r["diverged"] for r in runs)
    return f"{m:.2f} ± {spread} (n={len(runs)}" + (f", {diverged} diverged)" if diverged else ")")


def markdown(table: dict) -> str:
    cols = {c for row in table.values() for c in row}
    name = _metric(r["kind"] for row in table.values() for runs in row.values() for r in runs)
    no_paper = higher_is_better(name)  # the paper's tables are test errors
    losses = [l for l in ORDER if l in cols] + sorted(cols - set(ORDER))
    paper_head = "" if no_paper else " paper (" + ", ".join(l for l in ORDER if l != "label_smoothing") + ") |"
    lines = ["| data / student | " + " | ".join(losses) + " |" + paper_head,
             "|" + "---|" * (len(losses) + 1 + (not no_paper))]
    labels = _row_labels(table)
    for key in sorted(table, key=lambda k: labels[k]):
        data, student, _ = key
        row = table[key]
        cells = [(_cell(row[l]) if l in row else "") for l in losses]
        line = f"| {labels[key]} | " + " | ".join(cells) + " |"
        if not no_paper:
            paper = PAPER.get((data, _FAMILY.get(student, student)))
            line += " " + (" / ".join(f"{paper[l]:.2f}" for l in ORDER if l in paper) if paper else "—") + " |"
        lines.append(line)
    lines.append("")
    if name == "test BLEU":
        lines.append("Test BLEU (sacrebleu, corpus level, on the test split; higher is better), mean ± std over seeds "
                     "(n runs; — : a single run); runs of different configs are separate rows, never pooled.")
    elif no_paper:
        lines.append(f"{name[0].upper() + name[1:]} (on the test split; higher is better), mean ± std over seeds "
                     "(n runs; — : a single run); runs of different configs are separate rows, never pooled.")
    else:
        lines.append("Test error (%), mean ± std over seeds (n runs; — : a single run); runs of different configs are "
                     "separate rows, never pooled. Paper: L2T-DLF Tables 1–2 (MNIST, CIFAR), cross entropy / smooth "
                     "0-1 / large-margin softmax / L2T-DLF.")
    return "\n".join(lines)


def report(run_dirs: list[Path], out: Path, classes: list[str] | None = None, against: list[str] | None = None) -> str:
    out = Path(out)
    text = markdown(collect(run_dirs))  # before anything is written: a failed report leaves no folder
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for root in run_dirs:
        for i, metrics in enumerate(sorted(Path(root).rglob("metrics.jsonl"))):
            if (metrics.parent / "teacher.safetensors").exists():
                figures.append(plot_dev_measure(metrics.parent, out / f"fig3_{metrics.parent.parent.name}_{i}.png"))
        for i, phases in enumerate([p for p in sorted(Path(root).rglob("phases.safetensors")) if has_phi(p)][:1]):
            figures.append(plot_class_coeffs(phases, out / f"fig4_{Path(root).name}.png", classes=classes, against=against))
    if figures:
        text += "\n\nFigures: " + ", ".join(str(f) for f in figures)
    atomic_write_text(out / "report.md", text + "\n")
    return text
