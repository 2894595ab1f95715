"""What a trained teacher's off-diagonal coefficients do to its students: the facts behind README
"What the teacher's hypergradient does".

Trains evaluation students (the seeds of ``l2t experiment``) under the teacher of a teach run as
it was saved, with its ``W`` set to zero (the cross-entropy point it started from), and, for each
``--eps``, with the loss's off-diagonal terms bounded (``off_diagonal_eps``). ``--label-smoothing E``
adds a fixed ``Φ = c·((1 - E)·I + E/C)``: label smoothing, as a point of the teacher's family. For each it prints
test and dev error and the students' final dev logits: the mean spread (max - min logit) and the
mean ``-log p_j`` of the wrong classes. ``--hypergrad`` adds the norm of one episode's exact
hypergradient (teacher step 0's first episode) in float32 and float64 for the saved teacher.

    python experiments/off_diagonal_probe.py RUN_DIR/teach [--seeds 5] [--eps 1e-3 ...] [--hypergrad]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
import torch.nn.functional as F

from l2t.build import build_problem, build_student, load_splits, make_episode, resolve_device, resolve_dtype, state_spec
from l2t.config import load_config
from l2t.data import derive_seed
from l2t.data.batches import TAG_TEACH
from l2t.hypergrad import hypergradient
from l2t.losses import create_loss
from l2t.report import mean_std
from l2t.teachers import LoadedTeacher, load_teacher
from l2t.teachers.attention import smoothing_offset
from l2t.train import TaughtLoss, train_student


def evaluate(cfg, data, loaded: LoadedTeacher, seed: int) -> dict:
    """One evaluation student (:func:`l2t.train.train_student`), with its final dev logits."""
    res = train_student(cfg, data, TaughtLoss(loaded), seed, keep_weights=True)
    with torch.no_grad():
        logits, _ = build_student(cfg, data).apply(*res.weights, data.dev.x, "eval")
        logp = F.log_softmax(logits, -1)
        wrong = ~F.one_hot(data.dev.y, logits.shape[-1]).bool()
        spread = (logits.max(-1).values - logits.min(-1).values).mean().item()
        neg_logp_wrong = (-logp[wrong]).mean().item()
    return {
        "test error (%)": 100 * res.test_error,
        "dev error (%)": 100 * res.dev_error,
        "dev logit spread": spread,
        "dev -log p, wrong classes": neg_logp_wrong,
    }


def variant(loaded: LoadedTeacher, *, zero_w: bool = False, eps: float | None = None,
            smoothing: float | None = None) -> LoadedTeacher:
    params = dict(loaded.params)
    if zero_w:
        params["W"] = torch.zeros_like(params["W"])
    if smoothing is not None:
        # Φ = c·I + W·softmax(V s) with every key's W equal to c·(M - I), M the label-smoothing
        # matrix: (4/c)·σ(c·z) linearised is then -(1 - E) log p_y - (E/C) Σ_j log p_j. The same
        # Φ as a teacher started with init_smoothing = E.
        W = params["W"]
        params["W"] = smoothing_offset(W.shape[0], loaded.teacher.base, smoothing, W.dtype).unsqueeze(-1).expand_as(W).clone()
    meta = dict(loaded.meta, loss_kwargs=dict(loaded.meta["loss_kwargs"]))
    if eps is not None:
        meta["loss_kwargs"]["eps"] = eps
    return LoadedTeacher(loaded.teacher, params, meta, loaded.memory)


def hypergrad_norm(cfg, run_dir: str, dtype: str) -> tuple[float, float]:
    cfg = replace(cfg, dtype=dtype)
    data = load_splits(cfg)
    loaded = load_teacher(run_dir, resolve_device(cfg.device), resolve_dtype(cfg.dtype))
    student = build_student(cfg, data)
    problem = build_problem(cfg, data, student, create_loss(loaded.meta["loss"], **loaded.meta["loss_kwargs"]))
    episode = make_episode(cfg, data, student, derive_seed(cfg.seed, TAG_TEACH, 0, 0))
    res = hypergradient(problem, episode, loaded.teacher, loaded.params, state_spec(cfg, data, loaded.state_every, loaded.features),
                        method=cfg.outer.hypergrad, memory=loaded.memory)
    return res.outer_loss, float(torch.cat([g.flatten() for g in res.grads.values()]).double().norm())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a teach run folder (holds config.json and teacher.safetensors)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--eps", type=float, nargs="*", default=[1e-3])
    p.add_argument("--label-smoothing", type=float, nargs="*", default=[])
    p.add_argument("--hypergrad", action="store_true")
    args = p.parse_args()
    cfg = load_config(f"{args.run_dir}/config.json")
    data = load_splits(cfg)
    loaded = load_teacher(args.run_dir, resolve_device(cfg.device), resolve_dtype(cfg.dtype))
    off = loaded.params["W"].clone()
    off[torch.arange(off.shape[0]), torch.arange(off.shape[0])] = 0
    print(f"teacher {args.run_dir}: max |W(y, y)| {loaded.params['W'].diagonal().abs().max():.2e}, "
          f"max |W(y, j≠y)| {off.abs().max():.2e}, mean W(y, j≠y) {off.sum() / (off.numel() - off.shape[0] * off.shape[2]):+.2e}")
    variants = {"saved teacher": variant(loaded), "W = 0 (cross-entropy point)": variant(loaded, zero_w=True)}
    variants |= {f"saved teacher, off_diagonal_eps {e:g}": variant(loaded, eps=e) for e in args.eps}
    variants |= {f"fixed Φ = label smoothing {e:g}": variant(loaded, smoothing=e) for e in args.label_smoothing}
    rows = None
    for name, v in variants.items():
        runs = [evaluate(cfg, data, v, s) for s in range(args.seeds)]
        if rows is None:
            rows = ["| students under | " + " | ".join(runs[0]) + " |", "|---" * (len(runs[0]) + 1) + "|"]
        cells = []
        for key in runs[0]:
            m, sd = mean_std([r[key] for r in runs])
            cells.append(f"{m:.2f} ± {sd:.2f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))
    if args.hypergrad:
        for dtype in ("float32", "float64"):
            loss, norm = hypergrad_norm(cfg, args.run_dir, dtype)
            print(f"hypergradient at the saved teacher, {dtype}: outer loss {loss:.4f}, norm {norm:.3e}")


if __name__ == "__main__":
    main()
