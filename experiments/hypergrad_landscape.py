"""How the dev objective behaves around a teacher: the facts behind README "Teacher optimisation".

For fresh students (episodes) at the teacher's starting point it prints the hypergradient's norm,
the mean pairwise cosine between episodes, the share of the diagonal of Φ, and the change of the
outer loss J for steps of norm a along −g/|g| on the same episode, next to the first-order
prediction −a|g|.

    python experiments/hypergrad_landscape.py [--config FILE.toml] [--episodes 8] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import itertools

import torch

from l2t.build import build_problem, build_student, build_teacher, load_splits, make_episode, resolve_device, resolve_dtype, state_spec
from l2t.config import load_config
from l2t.hypergrad import hypergradient
from l2t.inner import rollout
from l2t.losses import create_loss
from l2t.teachers import TeachingSession, teacher_params


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", help="base config (default: the demo)")
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--steps", type=float, nargs="*", default=[1e-5, 1e-4, 1e-3, 1e-2])
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    data = load_splits(cfg)
    student = build_student(cfg, data)
    teacher = build_teacher(cfg, data).to(device=resolve_device(cfg.device), dtype=resolve_dtype(cfg.dtype))
    problem = build_problem(cfg, data, student, create_loss(teacher.loss_name, **teacher.loss_kwargs()))
    spec = state_spec(cfg, data)
    tp = teacher_params(teacher)

    def outer(params, episode):
        session = TeachingSession(teacher, params, spec, student)
        with torch.no_grad():
            w, _, b = rollout(problem, episode.params, episode.buffers, episode.batches, session)
            return problem.outer_loss(w, b).item()

    grads, rows = [], []
    for e in range(args.episodes):
        episode = make_episode(cfg, data, student, 1000 + e)
        res = hypergradient(problem, episode, teacher, tp, spec, method=cfg.outer.hypergrad)
        g = torch.cat([res.grads[k].flatten() for k in tp]).double()
        grads.append(g)
        if e < 3:
            n = float(g.norm())
            moves = []
            for a in args.steps:
                shifted, i = {}, 0
                for k, v in tp.items():
                    shifted[k] = v - (a / n) * g[i : i + v.numel()].view_as(v).to(v.dtype)
                    i += v.numel()
                moves.append(f"a={a:g}: ΔJ {outer(shifted, episode) - res.outer_loss:+.2e} (first order {-a * n:+.2e})")
            rows.append(f"episode {e}: J = {res.outer_loss:.4f}, |g| = {n:.3e}\n    " + "\n    ".join(moves))
    G = torch.stack(grads)
    norms = G.norm(dim=1)
    cos = [float(G[i] @ G[j] / (norms[i] * norms[j])) for i, j in itertools.combinations(range(len(G)), 2)]
    C = data.num_classes
    w = G[:, : C * C * teacher.keys].view(len(G), C, C, teacher.keys).sum(-1)
    diag = float((w[:, torch.eye(C, dtype=torch.bool)] ** 2).sum() / (w**2).sum())
    print(f"{cfg.data.name}, {cfg.student.name}, T = {cfg.inner.steps}, objective {cfg.outer.objective}, {len(G)} episodes")
    print(f"|g|: median {norms.median():.3e}, min {norms.min():.3e}, max {norms.max():.3e}")
    print(f"mean pairwise cosine between episodes: {sum(cos) / len(cos):+.3f}")
    print(f"share of |dΦ|² on the diagonal of Φ: {diag:.4f}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
