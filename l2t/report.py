"""``l2t report RUN_DIRS...``: run folders -> one markdown table and the figures.

It reads only run folders (``summary.json`` and ``config.json`` of every student run found
below the given folders, ``metrics.jsonl`` of teach runs, ``phases.safetensors`` of teacher-
trained students), never training code. Rows are (data set, student), columns the losses (a
teacher's column names the teacher, e.g. ``l2t-dlf (attention)``), cells mean ± std of the test
error over seeds, next to the paper's numbers where the paper has the row.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from l2t.errors import L2TError
from l2t.figures import plot_class_coeffs, plot_dev_measure
from l2t.io import read_json

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


def seed_summaries(folder: str | Path, seeds: int) -> list[dict]:
    """The ``summary.json`` of ``folder/seed0 .. seed{seeds-1}``: one loss's students over seeds, as
    ``l2t experiment`` and ``experiments/ablate.py`` write them."""
    return [read_json(Path(folder) / f"seed{s}" / "summary.json") for s in range(seeds)]


def column(summary: dict) -> str:
    """A student's column: its loss, with the teacher's name for a teacher's student (summaries
    written before students recorded it have the bare loss name)."""
    return f"{summary['loss']} ({summary['teacher']})" if "teacher" in summary else summary["loss"]


def collect(run_dirs: list[Path]) -> dict:
    """(data, student) -> loss -> list of (seed, test error %, dev error %)."""
    table: dict = defaultdict(lambda: defaultdict(list))
    found = 0
    for root in run_dirs:
        if not Path(root).exists():
            raise L2TError(f"no such run folder: {root}")
        for summary in sorted(Path(root).rglob("summary.json")):
            s = read_json(summary)
            if "test_error" not in s:
                continue  # a teach run's summary
            cfg_path = summary.parent / "config.json"
            if not cfg_path.exists():
                raise L2TError(f"{summary.parent} has a summary.json but no config.json")
            cfg = read_json(cfg_path)
            key = (Path(cfg["data"]["name"]).stem, cfg["student"]["name"])
            table[key][column(s)].append((s["seed"], 100 * s["test_error"], 100 * s["dev_error"]))
            found += 1
    if not found:
        raise L2TError(f"no student runs (summary.json with a test error) under {', '.join(map(str, run_dirs))}")
    return table


def _cell(runs: list) -> str:
    m, sd = mean_std([e for _, e, _ in runs])
    return f"{m:.2f} ± {sd:.2f} (n={len(runs)})"


def markdown(table: dict) -> str:
    losses = [l for l in ORDER if any(l in row for row in table.values())]
    losses += sorted({l for row in table.values() for l in row} - set(losses))
    head = "| data / student | " + " | ".join(losses) + " | paper (" + ", ".join(l for l in ORDER if l != "label_smoothing") + ") |"
    lines = [head, "|" + "---|" * (len(losses) + 2)]
    for (data, student), row in sorted(table.items()):
        paper = PAPER.get((data, _FAMILY.get(student, student)))
        ref = " / ".join(f"{paper[l]:.2f}" for l in ORDER if l in paper) if paper else "—"
        cells = [(_cell(row[l]) if l in row else "") for l in losses]
        lines.append(f"| {data} / {student} | " + " | ".join(cells) + f" | {ref} |")
    lines.append("")
    lines.append("Test error (%), mean ± std over seeds (n runs); paper: L2T-DLF Tables 1–2 (MNIST, CIFAR), "
                 "cross entropy / smooth 0-1 / large-margin softmax / L2T-DLF.")
    return "\n".join(lines)


def report(run_dirs: list[Path], out: Path, classes: list[str] | None = None, against: list[str] | None = None) -> str:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(collect(run_dirs))
    figures = []
    for root in run_dirs:
        for i, metrics in enumerate(sorted(Path(root).rglob("metrics.jsonl"))):
            if (metrics.parent / "teacher.safetensors").exists():
                figures.append(plot_dev_measure(metrics.parent, out / f"fig3_{metrics.parent.parent.name}_{i}.png"))
        for i, phases in enumerate(sorted(Path(root).rglob("phases.safetensors"))[:1]):
            figures.append(plot_class_coeffs(phases, out / f"fig4_{Path(root).name}.png", classes=classes, against=against))
    if figures:
        text += "\n\nFigures: " + ", ".join(str(f) for f in figures)
    (out / "report.md").write_text(text + "\n")
    return text
