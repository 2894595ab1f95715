"""Does dropout replay exactly? Every step-wise method against ``unrolled`` on a Wide-ResNet with
dropout (depth 10, widen 1, dropout 0.3; 20 momentum steps of batch 32, float64).

    python experiments/dropout_replay.py
    # the same at the commit before the step seed (a6523b4):
    git worktree add /tmp/base a6523b4 && PYTHONPATH=/tmp/base python experiments/dropout_replay.py

``unrolled`` differentiates the one forward pass it ran; the others recompute every step, so they
agree with it only if each recomputed step draws the same dropout masks (docs/architecture.md,
"Exact replay").
"""

import torch

try:
    from l2t.gradcheck import synthetic_problem
except ImportError:  # before the check problems left the engine package
    from l2t.hypergrad.check import synthetic_problem
from l2t.hypergrad import hypergradient

cp = synthetic_problem("wrn", 20, student_options={"depth": 10, "widen": 1, "dropout": 0.3}, dtype=torch.float64,
                       train_size=1280, dev_size=200, batch_size=32)
args = (cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec)


def flat(res):
    return torch.cat([g.flatten() for g in res.grads.values()])


ref = flat(hypergradient(*args, method="unrolled"))
for method in ["reverse", "checkpoint:2", "reversible"]:
    try:
        g = flat(hypergradient(*args, method=method))
        print(f"{method}: relative difference from unrolled {float((g - ref).norm() / ref.norm()):.1e}")
    except Exception as e:  # noqa: BLE001  (the old reversible raises on a broken replay)
        print(f"{method}: {type(e).__name__}: {str(e).splitlines()[0][:90]}")
