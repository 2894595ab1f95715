"""Paired differences of the reported number (test error, BLEU, mIoU or mAP@0.5) between students' run folders over the same seeds.

Each FOLDER holds ``seed0 .. seed{N-1}/summary.json`` (one loss of an ``l2t experiment`` folder, an
``experiments/ablate.py`` variant, or ``l2t train --out FOLDER/seed<k>`` runs). The first folder is
compared with every other: mean ± std of each, and ``mean(first − other) ± its standard error``.

    python experiments/paired.py runs/fashion_lenet/l2t-dlf runs/fashion_lenet/ce runs/fashion_lenet/lsoftmax
"""

from __future__ import annotations

import argparse
from pathlib import Path

from l2t.errors import L2TError
from l2t.report import metric_name, paired_table, score, seed_summaries


def table(folders: list[Path], seeds: int) -> str:
    summaries = [(f, seed_summaries(f, seeds)) for f in folders]
    name = metric_name([r for _, runs in summaries for r in runs])
    return paired_table("folder", f"{name}, mean ± std over {seeds} seeds",
                        [(str(f), [score(r) for r in runs]) for f, runs in summaries])


def common_seeds(folders: list[Path]) -> int:
    """The number of leading seeds ``seed0, seed1, ...`` whose summary every folder holds."""
    n = 0
    while all((f / f"seed{n}" / "summary.json").is_file() for f in folders):
        n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+", help="the first is compared with each of the others")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds 0..N-1 (default: every leading seed that all the folders hold)")
    args = p.parse_args()
    if len(args.folders) >= 2 and args.seeds is None:
        args.seeds = common_seeds(args.folders)
    if len(args.folders) < 2 or args.seeds < 2:
        raise SystemExit("error: give at least two folders holding seed0/ and seed1/ (or --seeds 2 or more)")
    try:
        print(table(args.folders, args.seeds))
    except L2TError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
