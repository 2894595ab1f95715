"""Teacher steps per second: one process with every thread against one process per core
(torchrun, gloo), in one run on this machine.

    python benchmarks/distributed.py                       # MLP and LeNet, 2 and 4 episodes a step
    python benchmarks/distributed.py --steps 300 --teacher-steps 6

Every configuration runs ``l2t teach`` on digits (LeNet on digits upsampled to 28x28) with
``--hypergrad checkpoint``; its time per teacher step is the median of the ``seconds`` that
``metrics.jsonl`` records for the steps after the first (start-up, data loading and the first
step's allocations excluded). Prints a table with the speed-up of N processes x 1 thread over 1
process x N threads, and writes JSON.
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

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = {"mlp": [], "lenet": ["--set", 'data.options={"size": 28}']}


def run(student: str, episodes: int, procs: int, threads: int, steps: int, teacher_steps: int, out: Path) -> float:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
                if procs > 1 else [sys.executable])
    cmd = launcher + ["-m", "l2t", "teach", "--out", str(out), "--no-progress", "--threads", str(threads),
                      "--student", student, "--hypergrad", "checkpoint", "--steps", str(steps),
                      "--set", f"outer.episodes={episodes}", "--set", f"outer.steps={teacher_steps}", *STUDENTS[student]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    seconds = [json.loads(line)["seconds"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(seconds[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", nargs="+", default=list(STUDENTS))
    p.add_argument("--episodes", nargs="+", type=int, default=[2, 4])
    p.add_argument("--procs", type=int, default=os.cpu_count() or 2, help="processes (and threads) to compare")
    p.add_argument("--steps", type=int, default=100, help="student steps per episode")
    p.add_argument("--teacher-steps", type=int, default=5)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "distributed.json")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="l2t-dist-"))
    rows = []
    n = args.procs
    print(f"| student | episodes | 1 process x {n} threads (s/step) | {n} processes x 1 thread (s/step) | speed-up |")
    print("|---|---|---|---|---|")
    for student in args.students:
        for episodes in args.episodes:
            one = run(student, episodes, 1, n, args.steps, args.teacher_steps, tmp / f"{student}-{episodes}-one")
            many = run(student, episodes, n, 1, args.steps, args.teacher_steps, tmp / f"{student}-{episodes}-many")
            rows.append({"student": student, "episodes": episodes, "student_steps": args.steps, "procs": n,
                         "one_process_s_per_step": one, "many_processes_s_per_step": many, "speedup": one / many})
            print(f"| {student} | {episodes} | {one:.2f} | {many:.2f} | {one / many:.2f}x |", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
