"""The hypergradient benchmark's R (time over T plain steps) of two checkouts, side by side.

    git worktree add /tmp/base <REV>
    python benchmarks/compare_revisions.py --base /tmp/base --students mlp lenet --steps 200

For every (student, T, method) it runs each checkout's own ``benchmarks/hypergrad.py`` worker
(a fresh process, that checkout's ``l2t`` first on the path) ``--repeats`` times, alternating
base and head so that both see the same machine state, and prints the median R of each and their
ratio (head / base: above 1 is slower), and the same for the plain training step (ms) and the
hypergradient's seconds. JSON goes to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HEAD = Path(__file__).resolve().parents[1]


def run_worker(checkout: Path, student: str, T: int, method: str, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    cmd = [sys.executable, str(checkout / "benchmarks" / "hypergrad.py"), "--worker", student, str(T), method, str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="a checkout of the revision to compare with")
    p.add_argument("--students", nargs="+", default=["mlp", "lenet"])
    p.add_argument("--steps", nargs="+", type=int, default=[200])
    p.add_argument("--methods", nargs="+", default=["reverse", "checkpoint", "reversible", "unrolled"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/compare_revisions.json"))
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="l2t-ab-"))
    rows = []
    print("| student | T | method | R base | R head | R head / base | plain step head / base | seconds head / base |")
    print("|---|---|---|---|---|---|---|---|")
    for student in args.students:
        for T in args.steps:
            for method in args.methods:
                runs = {"base": [], "head": []}
                for _ in range(args.repeats):
                    for name, checkout in (("base", args.base), ("head", HEAD)):
                        runs[name].append(run_worker(checkout, student, T, method, tmp / f"{name}.pt"))

                def median(name, key):
                    return statistics.median(r[key] for r in runs[name])

                row = {"student": student, "T": T, "method": method, "runs": runs}
                for key in ("R", "plain_step_ms", "seconds"):
                    row[f"{key}_ratio"] = median("head", key) / median("base", key)
                rows.append(row)
                print(f"| {student} | {T} | {method} | {median('base', 'R'):.2f} | {median('head', 'R'):.2f} | "
                      f"{row['R_ratio']:.3f} | {row['plain_step_ms_ratio']:.3f} | {row['seconds_ratio']:.3f} |", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"base": str(args.base), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
