"""Train the students of an ``l2t experiment`` folder again on further seeds (the same losses,
learning rates and teacher) and print the paired table over those seeds only.

A check on seeds that no choice was made on: the experiment's evaluation seeds may have guided
the choice of a setting; these did not.

    python experiments/more_seeds.py runs/demo --seeds 20:40 [--losses l2t-dlf ce] [--out FOLDER]

Each loss folder of RUN_DIR (``RUN_DIR/<loss>/seed0``) is one loss; its ``seed0`` run gives the
config (learning rate included) and, for a teacher's student, the teacher file. Students go to
``OUT/<loss>/seed<k>`` (default OUT: ``RUN_DIR-seedsFIRST-LAST`` beside RUN_DIR, so that ``l2t
report RUN_DIR`` does not pool them with the experiment's students). The first loss (default: the
teacher's, ``l2t-dlf``, when there is one) is compared with each of the others.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from l2t.build import load_splits
from l2t.config import TEACHER_LOSS, load_config
from l2t.errors import L2TError
from l2t.io import read_json
from l2t.report import metric_name, paired_table, score
from l2t.train import FixedLoss, load_loss, record_student


def seed_range(text: str) -> range:
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST:END (e.g. 20:40), got {text!r}") from None
    if not 0 <= lo < hi - 1:
        raise argparse.ArgumentTypeError(f"need 0 <= FIRST and at least 2 seeds, got {text!r}")
    return range(lo, hi)


def losses_in(run_dir: Path) -> list[str]:
    found = sorted(p.parent.parent.name for p in run_dir.glob("*/seed0/summary.json"))
    return sorted(found, key=lambda name: name != TEACHER_LOSS)  # the teacher's first


def run(run_dir: Path, losses: list[str], seeds: range, out: Path) -> str:
    for name in losses:  # every loss is there before anything trains
        if not (run_dir / name / "seed0" / "summary.json").is_file():
            raise L2TError(f"{run_dir} has no loss {name!r} (no {run_dir / name / 'seed0' / 'summary.json'})")
    own = sorted(int(f.name[4:]) for name in losses for f in (run_dir / name).glob("seed*") if f.name[4:].isdigit())
    overlap = sorted(set(own) & set(seeds))
    if overlap:
        print(f"warning: the experiment's own seeds include {', '.join(map(str, overlap))} of these", file=sys.stderr)
    cfg = load_config(run_dir / losses[0] / "seed0" / "config.json")
    data = load_splits(cfg)
    scores = {}
    for name in losses:
        first = run_dir / name / "seed0"
        c, summary = load_config(first / "config.json"), read_json(first / "summary.json")
        loss = load_loss(c, f"teacher:{summary['teacher_path']}") if "teacher_path" in summary else FixedLoss(summary["loss"])
        for s in seeds:
            record_student(replace(c, seed=s), data, loss, s, out / name / f"seed{s}", overwrite=True)
        scores[name] = [read_json(out / name / f"seed{s}" / "summary.json") for s in seeds]
    name = metric_name([r for runs in scores.values() for r in runs])
    return paired_table("loss", f"{name}, mean ± std over seeds {seeds.start}..{seeds.stop - 1}",
                        [(loss, [score(r) for r in runs]) for loss, runs in scores.items()])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="an l2t experiment (or l2t demo) folder")
    p.add_argument("--seeds", type=seed_range, required=True, help="FIRST:END, the seeds FIRST..END-1")
    p.add_argument("--losses", nargs="+", help="the loss folders to run, the first compared with the others "
                                               "(default: all, the teacher's first)")
    p.add_argument("--out", type=Path, help="default RUN_DIR-seedsFIRST-LAST, beside RUN_DIR (inside it, l2t report "
                                            "would pool these students with the experiment's)")
    args = p.parse_args()
    losses = args.losses or losses_in(args.run_dir)
    if len(losses) < 2:
        raise SystemExit(f"error: {args.run_dir} needs at least two loss folders with a seed0 run")
    try:
        out = args.out or args.run_dir.with_name(f"{args.run_dir.name}-seeds{args.seeds.start}-{args.seeds.stop - 1}")
        print(run(args.run_dir, losses, args.seeds, out))
    except L2TError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
