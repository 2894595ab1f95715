"""Hypergradient engines at scale: time and memory against plain training, higher and torchopt.

    python benchmarks/hypergrad.py                       # the full grid (about an hour on 2 cores)
    python benchmarks/hypergrad.py --students lenet --steps 10000 --methods checkpoint reversible
    python benchmarks/hypergrad.py --device cuda --methods reverse checkpoint reversible unrolled
    python benchmarks/hypergrad.py --students transformer --steps 200 --no-precision-floor \
        --methods reverse checkpoint reversible torchopt --json benchmarks/results/hypergrad_transformer.json

Every configuration (student, T, method) runs in a fresh subprocess that

1. builds the problem (``l2t.gradcheck.synthetic_problem``): 28x28 inputs (synthetic,
   fixed seed: timing does not depend on the pixels), 10 classes, batch 128, momentum SGD (lr 0.05, γ 0.9), the bilinear loss set by the
   attention teacher (N = 10 keys, W initialised at std 0.01), state refreshed every 10 steps,
   dev objective on 1000 examples, float32, the default number of torch threads;
2. times plain training (the same loop, the teacher in it, no hypergradient): after 20 warm-up
   steps, five runs of min(T, 100) steps, before and again after the hypergradient; t_step is
   the mean of the two medians (single runs vary by ±15% on the 2-core reference machine, and
   its speed drifts);
3. runs the hypergradient over T steps and times it; R = time / (T·t_step); extra memory = the
   peak resident memory during the hypergradient minus the resident memory before it (Linux:
   VmHWM reset just before through /proc/self/clear_refs; elsewhere ru_maxrss, the process's
   peak, above its value before);
4. saves the gradient; the parent reports its relative difference from ``reverse``'s.

``checkpoint@float64`` computes the exact hypergradient in float64 (``checkpoint`` equals
``reverse`` bit for bit, with bounded memory). Every method's relative difference from it is
reported too: over hundreds or thousands of momentum steps float32 rounding is amplified, so two
exact float32 methods that follow slightly different trajectories (``reversible`` trains in
fixed point) can differ by far more than 1e-7. What matters is that each is as close to the
float64 value as ``reverse`` is (in float64 the exact methods agree to 1e-9; see the tests).

With ``--device cuda`` everything lives on the GPU, each timer is read after
``torch.cuda.synchronize()``, and extra memory is the GPU's: the peak of
``torch.cuda.max_memory_allocated`` during the hypergradient minus what was allocated before it.

``METHOD+compile`` (``reverse+compile``, ``checkpoint+compile``) computes the backward walk's
products with ``torch.compile`` (:mod:`l2t.hypergrad.compiled`). Compilation is paid once per
process: a one-step walk on the same problem compiles first, its time is reported apart
(``compile_s``), and the timed hypergradient runs compiled code only.

``higher`` and ``torchopt`` (``pip install -e '.[bench]'``) run the same unroll: the same data,
batches, teacher session and loss, with their differentiable momentum SGD and one backward
pass at the end. Graph-based methods whose memory, extrapolated linearly from a shorter run,
would exceed --mem-limit-gb are skipped and reported so. Results: a markdown table on stdout
and JSON in --json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

STUDENTS = {"mlp": ("mlp", {"widths": [500]}), "lenet": ("lenet", {}), "transformer": ("transformer", {})}
#: the sequence problem (``--students transformer``): generated sequences of 2-20 tokens over a
#: vocabulary of 255 (l2t's toy-reverse task), 12,800 training / 500 dev pairs, batch 64, a
#: Transformer of 2+2 layers (d 128, 4 heads, FFN 256, dropout 0 so that higher's unroll, which
#: draws dropout from the global generator, differentiates the same run), the schedule teacher
#: (3 knots, away from cross entropy), dev cross entropy over 2 masked dev batches
SEQ2SEQ = {
    "data.name": "toy-reverse", "data.options": {"symbols": 252, "max_len": 20}, "data.train_size": 12800,
    "data.dev_size": 500, "data.test_size": 16, "student.name": "transformer",
    "student.options": {"d_model": 128, "heads": 4, "ffn": 256, "enc_layers": 2, "dec_layers": 2, "dropout": 0.0},
    "inner.batch_size": 64, "inner.lr": 0.05, "inner.momentum": 0.9, "teacher.name": "schedule",
    "teacher.options": {"knots": 3, "init_gain": [1.2, 0.9, 1.1], "init_smoothing": [0.1, 0.05, 0.1]},
    "teacher.state_every": 10, "outer.objective": "ce", "outer.dev_batch": 250,
}
L2T_METHODS = ["reverse", "checkpoint", "reversible", "unrolled"]
COMPILED = ["reverse+compile", "checkpoint+compile"]  # the backward products by torch.compile
EXTERNAL = ["higher", "torchopt"]
GRAPH_METHODS = {"unrolled", "higher", "torchopt"}  # memory grows with T


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def _start_peak() -> tuple[float, str]:
    """Resident memory now, with the peak reset (Linux VmHWM) so the next peak is ours alone;
    elsewhere the process's ru_maxrss so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        rss = _status_mb("VmRSS")
        if rss is not None:
            return rss, "VmHWM"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "ru_maxrss"


def _peak_mb(probe: str) -> float:
    if probe == "VmHWM":
        return _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(student_name: str, T: int, seed: int = 0, dtype: torch.dtype = torch.float32,
          device: torch.device | str = "cpu"):
    from l2t.gradcheck import synthetic_problem

    if student_name == "transformer":
        from l2t.config import load_config
        from l2t.gradcheck import check_problem

        dtype_name = {torch.float32: "float32", torch.float64: "float64"}[dtype]
        cp = check_problem(load_config(None, SEQ2SEQ | {"inner.steps": T, "seed": seed, "dtype": dtype_name,
                                                        "device": str(device)}))
        return cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec
    name, options = STUDENTS[student_name]
    cp = synthetic_problem(name, T, student_options=options, seed=seed, dtype=dtype, device=device)
    return cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec


def _external(kind: str, problem, episode, teacher, tparams, spec):
    """The same unroll differentiated by ``higher`` or ``torchopt``: full graph, one backward."""
    import copy

    from l2t.losses import masked_sum, reduce_loss
    from l2t.teachers import TeachingSession

    lr, gamma = problem.optimizer.lr(0), problem.optimizer.momentum
    leaf = {k: v.detach().requires_grad_() for k, v in tparams.items()}
    session = TeachingSession(teacher, leaf, spec, problem.student, differentiable=True)
    batches, buffers = episode.batches, episode.buffers
    if kind == "higher":
        import higher

        model = copy.deepcopy(problem.student.module).to(next(iter(episode.params.values())).device)
        model.load_state_dict(episode.params)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=gamma)
        names = [k for k, _ in model.named_parameters()]
        with higher.innerloop_ctx(model, opt, copy_initial_weights=True) as (fmodel, diffopt):
            for t in range(problem.steps):
                b = batches(t)
                out = fmodel(b.inputs)
                params = dict(zip(names, fmodel.parameters()))
                coeffs = session(t, out.detach(), b, params, buffers)
                diffopt.step(reduce_loss(problem.loss(out, b.targets, coeffs), b.mask))
            outer = sum(masked_sum(problem.objective(fmodel(d.inputs), d.targets, d.mask), d.mask)
                        for d in problem.dev) / problem.dev_count()
    else:
        import torchopt

        params = {k: v.detach().requires_grad_() for k, v in episode.params.items()}
        opt = torchopt.sgd(lr=lr, momentum=gamma, moment_requires_grad=True)
        state = opt.init(params)
        for t in range(problem.steps):
            b = batches(t)
            out, _ = problem.student.apply(params, buffers, b.inputs, rng=b.seed)
            coeffs = session(t, out.detach(), b, params, buffers)
            loss = reduce_loss(problem.loss(out, b.targets, coeffs), b.mask)
            grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=True)
            updates, state = opt.update(dict(zip(params, grads)), state, inplace=False)
            params = torchopt.apply_updates(params, updates, inplace=False)
        outer = problem.outer_loss(params, buffers)
    grads = torch.autograd.grad(outer, tuple(leaf.values()))
    return float(outer), dict(zip(leaf, grads))


def worker(student: str, T: int, method: str, grad_out: str, device: str = "cpu") -> dict:
    from l2t.hypergrad import hypergradient
    from l2t.inner import rollout
    from l2t.teachers import TeachingSession

    dtype = torch.float64 if method.endswith("@float64") else torch.float32
    method = method.partition("@")[0]
    device = torch.device(device)
    problem, episode, teacher, tparams, spec = build(student, T, dtype=dtype, device=device)
    plain_T = min(T, 100)

    def plain_step(warmup: int) -> float:
        """Median per-step time of five plain runs of plain_T steps (after a warm-up run)."""
        times = []
        for stop in ([warmup] if warmup else []) + [plain_T] * 5:
            session = TeachingSession(teacher, tparams, spec, problem.student)
            _sync(device)
            t0 = time.perf_counter()
            rollout(problem, episode.params, episode.buffers, episode.batches, session, stop=stop)
            _sync(device)
            times.append((time.perf_counter() - t0) / stop)
        return sorted(times[-5:])[2]

    step_before = plain_step(min(20, T))
    compile_s = None
    if method.endswith("+compile"):
        # compilation is paid once per process and problem, not per hypergradient: a walk of one
        # step (same problem object, same coefficients' structure) compiles it, timed on its own
        t0 = time.perf_counter()
        hypergradient(problem, episode, teacher, tparams, spec, method="truncated:1+compile")
        compile_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before, probe = torch.cuda.memory_allocated(device) / 2**20, "cuda"
    else:
        before, probe = _start_peak()
    t0 = time.perf_counter()
    if method in EXTERNAL:
        outer, grads = _external(method, problem, episode, teacher, tparams, spec)
    else:
        res = hypergradient(problem, episode, teacher, tparams, spec, method=method)
        outer, grads = res.outer_loss, res.grads
    _sync(device)
    seconds = time.perf_counter() - t0
    extra = (torch.cuda.max_memory_allocated(device) / 2**20 if probe == "cuda" else _peak_mb(probe)) - before
    step = (step_before + plain_step(0)) / 2  # the machine's speed drifts: bracket the hypergradient
    torch.save({k: v.detach().cpu() for k, v in grads.items()}, grad_out)
    name = method + ("@float64" if dtype == torch.float64 else "")
    return {"student": student, "T": T, "method": name, "plain_step_ms": 1e3 * step, "seconds": seconds,
            "R": seconds / (T * step), "extra_mb": extra, "memory_probe": probe, "outer_loss": outer,
            "threads": torch.get_num_threads(), "device": str(device), "compile_s": compile_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", nargs="+", default=["mlp", "lenet"], choices=list(STUDENTS),
                   help="default mlp lenet; transformer: the sequence problem of SEQ2SEQ (docs/engines.md)")
    p.add_argument("--steps", nargs="+", type=int, default=[50, 200, 1000, 5000])
    p.add_argument("--methods", nargs="+", default=L2T_METHODS + COMPILED + EXTERNAL)
    p.add_argument("--mem-limit-gb", type=float, default=16.0)
    p.add_argument("--no-precision-floor", dest="precision_floor", action="store_false",
                   help="skip the float64 reference (checkpoint@float64) that shows float32's precision floor")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per configuration")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/hypergrad.json"))
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--worker", nargs=4, metavar=("STUDENT", "T", "METHOD", "GRAD_OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        s, T, m, out = args.worker
        print(json.dumps(worker(s, int(T), m, out, args.device)), flush=True)
        return

    from l2t.build import resolve_device
    from l2t.errors import L2TError

    try:
        resolve_device(args.device)
    except L2TError as e:
        p.error(str(e))
    rows, tmp = [], Path(tempfile.mkdtemp(prefix="l2t-bench-"))
    largest: dict[tuple[str, str], tuple[int, float]] = {}
    for student in args.students:
        for T in sorted(args.steps):
            ref = tmp / f"{student}-{T}-reverse.pt"
            ref64 = tmp / f"{student}-{T}-checkpoint@float64.pt"
            methods = ["reverse"] + [m for m in args.methods if m != "reverse"]
            if args.precision_floor:
                methods = ["checkpoint@float64"] + methods
            for method in methods:
                row = {"student": student, "T": T, "method": method}
                seen = largest.get((student, method))
                if method in GRAPH_METHODS and seen and seen[1] * T / seen[0] > 1024 * args.mem_limit_gb:
                    row["skipped"] = f"projected {seen[1] * T / seen[0] / 1024:.0f} GB > {args.mem_limit_gb:g} GB"
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                out = tmp / f"{student}-{T}-{method}.pt"
                cmd = [sys.executable, __file__, "--device", args.device, "--worker", student, str(T), method, str(out)]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=os.environ)
                except subprocess.TimeoutExpired:
                    row["skipped"] = f"timeout after {args.timeout} s"
                    rows.append(row)
                    continue
                if proc.returncode != 0:
                    row["skipped"] = "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
                else:
                    row = json.loads(proc.stdout.strip().splitlines()[-1])
                    largest[(student, method)] = (T, max(row["extra_mb"], 1.0))
                    if ref.exists() and method != "reverse":
                        row["rel_diff_vs_reverse"] = _rel_diff(out, ref)
                    if ref64.exists() and out != ref64:
                        row["rel_diff_vs_float64"] = _rel_diff(out, ref64)
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = args.json.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(rows, indent=1) + "\n")
    tmp_json.replace(args.json)
    print(f"device: {args.device}")
    print(table(rows))


def rel_diff(a: dict, b: dict) -> float:
    """``‖a − b‖ / ‖b‖`` over all the tensors of two gradient dicts, in float64."""
    num = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in b) ** 0.5
    den = sum(float(b[k].double().pow(2).sum()) for k in b) ** 0.5
    return num / den


def _rel_diff(path: Path, ref: Path) -> float:
    return rel_diff(torch.load(path, weights_only=True), torch.load(ref, weights_only=True))


def table(rows: list[dict]) -> str:
    out = ["| student | T | method | plain step (ms) | hypergradient (s) | R | extra memory (MB) | rel. diff vs reverse | rel. diff vs float64 | time / fastest exact l2t method | time / unrolled |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    best: dict[tuple, float] = {}
    unrolled = {(r["student"], r["T"]): r["seconds"] for r in rows if r.get("method") == "unrolled" and "seconds" in r}
    for r in rows:
        if "seconds" in r and r["method"] in L2T_METHODS + COMPILED:  # float32 runs only
            key = (r["student"], r["T"])
            best[key] = min(best.get(key, float("inf")), r["seconds"])
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['student']} | {r['T']} | {r['method']} | | | | | | | {r['skipped']} | |")
            continue
        diff = f"{r['rel_diff_vs_reverse']:.1e}" if "rel_diff_vs_reverse" in r else "—"
        diff64 = f"{r['rel_diff_vs_float64']:.1e}" if "rel_diff_vs_float64" in r else "—"
        key = (r["student"], r["T"])
        speed = f"{r['seconds'] / best[key]:.2f}×" if r["method"] in EXTERNAL and key in best else ""
        vs_unrolled = f"{r['seconds'] / unrolled[key]:.2f}×" if key in unrolled else ""
        method = r["method"] + (f" (compiled in {r['compile_s']:.0f} s)" if r.get("compile_s") is not None else "")
        out.append(f"| {r['student']} | {r['T']} | {method} | {r['plain_step_ms']:.2f} | {r['seconds']:.2f} | "
                   f"{r['R']:.2f} | {r['extra_mb']:.0f} | {diff} | {diff64} | {speed} | {vs_unrolled} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
