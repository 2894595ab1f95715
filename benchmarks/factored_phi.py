"""The token-level learned loss over a vocabulary: a dense ``|V| x |V|`` ``Φ`` against the factored
form l2t uses (``Φ = diag(d) + u·11ᵀ + U Wᵀ``, :func:`l2t.losses.bilinear.factored_logit`).

    python benchmarks/factored_phi.py                         # |V| = 1000, 4000, 8000, 16000; k = 0, 16
    python benchmarks/factored_phi.py --vocab 8000 --positions 2048 --json out.json

For one batch of ``--positions`` target tokens (a batch of 64 sentences of 20 subwords is 1280)
it times the loss's forward and backward, gradients to the logits and to the teacher's output
included (the dense form builds its ``Φ`` from the same factors, as a teacher would), as the
median of ``--repeat`` runs in one process, side by side; and counts the bytes of ``Φ`` (the
dense one is kept, with its gradient, for every refresh of the hypergradient's graph). Both forms
give the same loss (checked here in float64 on the small sizes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from l2t.losses.bilinear import bilinear


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(vocab: int, positions: int, rank: int, repeat: int) -> dict:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(positions, vocab, generator=g, requires_grad=True)
    targets = torch.randint(vocab, (positions,), generator=g)
    # the teacher's output, with gradients to it (the hypergradient flows back through Φ)
    factored = {"diag": torch.full((vocab,), 0.1), "uniform": torch.tensor(1e-4)}
    if rank:
        factored |= {"U": 1e-3 * torch.randn(vocab, rank, generator=g), "W": 1e-3 * torch.randn(vocab, rank, generator=g)}
    for v in factored.values():
        v.requires_grad_(True)

    def dense(f):  # the same Φ as a |V| x |V| matrix
        phi = torch.diag(f["diag"]) + f["uniform"]
        return phi + f["U"] @ f["W"].T if "U" in f else phi

    def step(form):
        for t in (logits, *factored.values()):
            t.grad = None
        bilinear(logits, targets, form(factored), scale=40.0).sum().backward()

    row = {"vocab": vocab, "positions": positions, "rank": rank}
    row["factored_s"] = _time(lambda: step(lambda f: f), repeat)
    row["factored_phi_bytes"] = sum(v.numel() * v.element_size() for v in factored.values())
    row["dense_phi_bytes"] = vocab * vocab * 4
    if vocab * vocab * 4 <= 2 ** 31:  # dense Φ up to 2 GiB
        row["dense_s"] = _time(lambda: step(dense), repeat)
        if vocab <= 4000:
            lg, f64 = logits.detach().double(), {k: v.detach().double() for k, v in factored.items()}
            diff = bilinear(lg, targets, dense(f64), scale=40.0) - bilinear(lg, targets, f64, scale=40.0)
            row["max_abs_diff_f64"] = diff.abs().max().item()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[1000, 4000, 8000, 16000])
    p.add_argument("--rank", type=int, nargs="+", default=[0, 16])
    p.add_argument("--positions", type=int, default=1280)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"| |V| | k | factored (ms) | dense (ms) | dense / factored | Φ bytes, factored | Φ bytes, dense | max |Δ| (f64) |"
          "\n|---|---|---|---|---|---|---|---|")
    for vocab in args.vocab:
        for rank in args.rank:
            r = measure(vocab, args.positions, rank, args.repeat)
            rows.append(r)
            dense = r.get("dense_s")
            cells = [f"{1e3 * r['factored_s']:.1f}", f"{1e3 * dense:.1f}" if dense else "—",
                     f"{dense / r['factored_s']:.1f}x" if dense else "—",
                     f"{r['factored_phi_bytes']:,}", f"{r['dense_phi_bytes']:,}",
                     f"{r['max_abs_diff_f64']:.1e}" if "max_abs_diff_f64" in r else "—"]
            print(f"| {vocab} | {rank} | " + " | ".join(cells) + " |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
