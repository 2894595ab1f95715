"""Hypergradient methods timed side by side: one process, one problem, the methods interleaved.

    python benchmarks/hypergrad_interleaved.py                     # mlp and lenet, T = 200 and 1000
    python benchmarks/hypergrad_interleaved.py --students mlp --steps 200 --repeats 5

``benchmarks/hypergrad.py`` runs every configuration in a fresh process, which is what its memory
column needs; but the reference machine's speed drifts (within one such run the MLP's plain step
measured 4.5 to 6.0 ms), so times taken minutes apart compare badly. Here, for each (student, T),
the problem of ``hypergrad.py`` is built once and every method runs once to warm up (reported as
"first run": for the first ``+compile`` method of a problem it includes compilation, which the
other ``+compile`` methods then reuse), then ``--repeats`` rounds run each method in turn. A
method's time is its median over the rounds, and the ratios (to ``unrolled``, the floor of the
graph-keeping methods, and to ``torchopt``) are medians of the per-round ratios, so a slow minute
slows every method of that round alike. Memory is not measured here (one process holds every
method's allocations): see ``hypergrad.py``. Results: a markdown table on stdout and JSON in --json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hypergrad import EXTERNAL, _external, build, rel_diff  # noqa: E402  (the same problems and external unrolls)

DEFAULT = ["reverse", "checkpoint", "reversible", "reverse+compile", "checkpoint+compile", "unrolled", "torchopt"]


def run(method: str, problem, episode, teacher, tparams, spec) -> dict:
    from l2t.hypergrad import hypergradient

    if method in EXTERNAL:
        return _external(method, problem, episode, teacher, tparams, spec)[1]
    return hypergradient(problem, episode, teacher, tparams, spec, method=method).grads


def measure(student: str, T: int, methods: list[str], repeats: int) -> list[dict]:
    problem, episode, teacher, tparams, spec = build(student, T)
    warm, grads = {}, {}
    for m in methods:
        t0 = time.perf_counter()
        grads[m] = run(m, problem, episode, teacher, tparams, spec)
        warm[m] = time.perf_counter() - t0
        print(f"# {student} T={T} {m}: warm-up {warm[m]:.1f} s", flush=True)
    rounds: list[dict[str, float]] = []
    for r in range(repeats):
        times = {}
        for m in methods:
            t0 = time.perf_counter()
            run(m, problem, episode, teacher, tparams, spec)
            times[m] = time.perf_counter() - t0
        rounds.append(times)
        print(f"# round {r + 1}: " + ", ".join(f"{m} {s:.2f} s" for m, s in times.items()), flush=True)

    def ratio(m: str, ref: str):
        return statistics.median(t[m] / t[ref] for t in rounds) if ref in methods else None

    from l2t.hypergrad.compiled import products_for

    fallback = products_for(problem).disabled  # why the +compile methods ran eager (None: they did not)
    ref = grads.get("reverse")
    rows = []
    for m in methods:
        seconds = statistics.median(t[m] for t in rounds)
        diff = rel_diff(grads[m], ref) if ref is not None and m != "reverse" else None
        rows.append({"student": student, "T": T, "method": m, "seconds": seconds, "rounds": [t[m] for t in rounds],
                     "per_step_ms": 1e3 * seconds / T, "vs_unrolled": ratio(m, "unrolled"),
                     "vs_torchopt": ratio(m, "torchopt"),
                     "first_run_s": warm[m],
                     "compile_fallback": fallback if m.endswith("+compile") else None,
                     "rel_diff_vs_reverse": diff, "threads": torch.get_num_threads()})
    return rows


def table(rows: list[dict]) -> str:
    out = ["| student | T | method | hypergradient (s, median) | time / unrolled | time / torchopt | first run (s) | rel. diff vs reverse |",
           "|---|---|---|---|---|---|---|---|"]
    f = lambda x, fmt: "—" if x is None else format(x, fmt)  # noqa: E731
    for r in rows:
        if r.get("compile_fallback"):
            r = r | {"method": r["method"] + " (fell back to eager)"}
        out.append(f"| {r['student']} | {r['T']} | {r['method']} | {r['seconds']:.2f} | {f(r['vs_unrolled'], '.2f')} | "
                   f"{f(r['vs_torchopt'], '.2f')} | {r['first_run_s']:.1f} | {f(r['rel_diff_vs_reverse'], '.1e')} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", nargs="+", default=["mlp", "lenet"], choices=["mlp", "lenet", "transformer"])
    p.add_argument("--steps", nargs="+", type=int, default=[200, 1000])
    p.add_argument("--methods", nargs="+", default=DEFAULT)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/hypergrad_interleaved.json"))
    args = p.parse_args()
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    rows = []
    for student in args.students:
        for T in args.steps:
            rows += measure(student, T, args.methods, args.repeats)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(args.json)
    print(table(rows))


if __name__ == "__main__":
    main()
