"""One backward step's products, ``(∂G/∂ω)ᵀu`` and ``(∂G/∂c)ᵀu``, computed four ways, timed
against one training step in the same process.

    python benchmarks/step_products.py                 # mlp and lenet
    python benchmarks/step_products.py --students lenet --repeats 50

On the problem of ``hypergrad.py`` (batch 128, the attention teacher's bilinear loss, float32),
at the first step's weights and coefficients, with a random adjoint ``u``:

* ``eager`` (what ``reverse`` and ``checkpoint`` do): the gradient with its graph kept
  (``linearize``), then one double-backward pass: reverse-over-reverse;
* ``compiled`` (``+compile``): ``vjp(grad(L))`` in torch.func, compiled by torch.compile;
* ``forward-over-reverse``: ``torch.func.jvp`` of ``grad(L)`` (the mixed mode of MixFlow-MG). It
  gives ``(∂G/∂ω)u``, which equals ``(∂G/∂ω)ᵀu`` (a Hessian is symmetric), but not ``(∂G/∂c)ᵀu``:
  a walk would need one more reverse pass per step for the coefficients;
* ``reverse-over-forward``: the directional derivative of the loss along ``u`` by forward-mode AD
  (``torch.autograd.forward_ad``), then its gradient with respect to weights and coefficients.
  PyTorch's forward-mode formula for ``log_softmax`` breaks the backward pass over it ("one of
  the variables needed for gradient computation has been modified by an inplace operation"), so
  this mode runs with ``log_softmax`` written out (``x - max - log Σ exp``) for its duration.

A ``compiled`` program that fails to build (the walk then warns and uses the eager products) is
reported as such and not timed. Each mode's products are compared with ``eager``'s (max error
over max entry). Times are medians of ``--repeats`` calls after three warm-up calls (after
compilation for ``compiled``), modes interleaved round by round; the ratio is to the training
step measured in the same rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hypergrad import build  # noqa: E402


@contextlib.contextmanager
def written_out_log_softmax():
    saved = F.log_softmax

    def log_softmax(x, dim=-1, **kw):
        s = x - x.detach().amax(dim, keepdim=True)
        return s - s.exp().sum(dim, keepdim=True).log()

    F.log_softmax = log_softmax
    try:
        yield
    finally:
        F.log_softmax = saved


def modes(problem, params, buffers, batch, coeffs, u):
    from l2t.hypergrad.base import linearize
    from l2t.hypergrad.compiled import CompiledProducts
    from l2t.inner import loss_and_grads, step_loss

    def loss_at(p, c=coeffs):
        return step_loss(problem, p, buffers, batch, lambda *a: c, rng=batch.seed)[0]

    def train_step():
        return loss_and_grads(problem, params, buffers, batch, 0, lambda *a: coeffs)[0]

    def eager():
        return linearize(problem, params, buffers, batch, 0, coeffs).vjp(u)

    compiled_products = CompiledProducts(problem)

    def compiled():
        return compiled_products(params, buffers, batch, coeffs, u)

    def forward_over_reverse():
        return torch.func.jvp(torch.func.grad(loss_at), (dict(params),), (u,))[1], None

    def reverse_over_forward():
        c = coeffs.detach().requires_grad_()
        leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
        with written_out_log_softmax(), torch.enable_grad(), fwAD.dual_level():
            dual = {k: fwAD.make_dual(leaf[k], u[k]) for k in leaf}
            tangent = fwAD.unpack_dual(loss_at(dual, c)).tangent
            *d_params, d_c = torch.autograd.grad(tangent, tuple(leaf.values()) + (c,))
        return dict(zip(leaf, d_params)), d_c

    return {"train step": train_step, "eager": eager, "compiled": compiled,
            "forward-over-reverse": forward_over_reverse, "reverse-over-forward": reverse_over_forward}


def error(ref, got) -> float:
    (rp, rc), (gp, gc) = ref, got
    err = max(float((rp[k] - gp[k]).abs().max() / rp[k].abs().max()) for k in rp)
    if gc is not None:
        err = max(err, float((rc - gc).abs().max() / rc.abs().max()))
    return err


def measure(student: str, repeats: int) -> list[dict]:
    from l2t.inner import loss_and_grads
    from l2t.teachers.session import TeachingSession

    problem, episode, teacher, tparams, spec = build(student, 200)
    session = TeachingSession(teacher, tparams, spec, problem.student)
    params, buffers, batch = episode.params, episode.buffers, episode.batches(0)
    loss_and_grads(problem, params, buffers, batch, 0, session)  # the teacher sets the coefficients
    coeffs = session.phases[0].coeffs
    g = torch.Generator().manual_seed(1)
    u = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()}
    fns = modes(problem, params, buffers, batch, coeffs, u)
    t0 = time.perf_counter()
    first = {m: f() for m, f in fns.items()}
    print(f"# {student}: first calls (compilation included) {time.perf_counter() - t0:.1f} s", flush=True)
    failed = [m for m, out in first.items() if out is None]  # compiled: warned, fell back to eager
    for m in failed:
        del fns[m]
    for f in fns.values():
        for _ in range(3):
            f()
    times: dict[str, list[float]] = {m: [] for m in fns}
    for _ in range(repeats):
        for m, f in fns.items():
            t = time.perf_counter()
            f()
            times[m].append(time.perf_counter() - t)
    rows = []
    for m in fns:
        ratio = statistics.median(a / b for a, b in zip(times[m], times["train step"]))
        rows.append({"student": student, "mode": m, "ms": 1e3 * statistics.median(times[m]), "vs_train_step": ratio,
                     "rel_error_vs_eager": None if m == "train step" else error(first["eager"], first[m]),
                     "coefficient_adjoint": m in ("eager", "compiled", "reverse-over-forward")})
    rows += [{"student": student, "mode": m, "failed": "did not compile (see the warning); not timed"} for m in failed]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", nargs="+", default=["mlp", "lenet"], choices=["mlp", "lenet"])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/step_products.json"))
    args = p.parse_args()
    rows = [r for s in args.students for r in measure(s, args.repeats)]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(args.json)
    print("| student | mode | ms (median) | time / training step | gives (∂G/∂c)ᵀu | rel. error vs eager |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['student']} | {r['mode']} | | | | {r['failed']} |")
            continue
        err = "—" if r["rel_error_vs_eager"] is None else f"{r['rel_error_vs_eager']:.1e}"
        gives = "" if r["mode"] == "train step" else ("yes" if r["coefficient_adjoint"] else "no")
        print(f"| {r['student']} | {r['mode']} | {r['ms']:.2f} | {r['vs_train_step']:.2f} | {gives} | {err} |")


if __name__ == "__main__":
    main()
