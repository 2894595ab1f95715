"""Every hypergradient method against the ``unrolled`` reference and central finite differences,
in float64, on a real problem: digits, momentum SGD with weight decay and a step schedule, the
attention teacher reading real state features over several phases."""

import pytest
import torch

from l2t.hypergrad import METHODS, hypergradient
from l2t.hypergrad.check import check_method, tiny_problem

EXACT = ["reverse", "unrolled"]


def _flat(grads):
    return torch.cat([g.flatten() for g in grads.values()])


@pytest.mark.parametrize(
    "kw",
    [
        dict(steps=12, every=4),
        dict(steps=9, every=2, weight_decay=0.0, lr_schedule="cosine"),
        dict(steps=8, every=3, momentum=0.0),
        dict(steps=10, every=5, objective="ce"),
    ],
    ids=["momentum-wd-step", "cosine", "no-momentum", "dev-ce"],
)
def test_exact_methods_agree_with_unrolled(kw):
    cp = tiny_problem(**kw)
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    g_ref = _flat(ref.grads)
    assert g_ref.norm() > 0
    for method in EXACT:
        res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
        err = (_flat(res.grads) - g_ref).norm() / g_ref.norm()
        assert err < 1e-9, f"{method}: relative difference {err:.2e} from unrolled"
        assert res.outer_loss == pytest.approx(ref.outer_loss, rel=1e-12)
        for k in ref.params:
            torch.testing.assert_close(res.params[k], ref.params[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", EXACT)
def test_matches_central_finite_differences(method):
    res = check_method(method, steps=12, every=4, directions=4)
    assert res.max_rel_error < 1e-6, res.rel_errors
    # the check problem is chosen so that no perturbed run crosses a state-feature jump, i.e.
    # these are finite differences of the true objective, features recomputed in every run
    assert res.jumps == 0


def test_finite_differences_catch_a_walk_that_forgets_momentum(monkeypatch):
    """The check is not vacuous: a backward walk that drops the velocity adjoint is caught."""
    from l2t.hypergrad.base import BackwardWalk

    step = BackwardWalk.step

    def forgetful(self, *args):
        step(self, *args)
        self.d_velocity = {k: torch.zeros_like(v) for k, v in self.d_velocity.items()}

    monkeypatch.setattr(BackwardWalk, "step", forgetful)
    assert check_method("reverse", steps=12, every=4, directions=2).max_rel_error > 1e-2


def test_hypergradient_reaches_every_teacher_parameter():
    cp = tiny_problem(steps=12, every=4)
    res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec)
    assert set(res.grads) == {"W", "V"}
    assert all(g.abs().sum() > 0 for g in res.grads.values())
    assert len(res.phases) == 3


def test_unknown_method_is_a_clear_error():
    from l2t.errors import L2TError

    with pytest.raises(L2TError, match="unknown hypergradient method 'magic'"):
        hypergradient(*_args(), method="magic")
    assert set(EXACT) <= set(METHODS.list())


def _args():
    cp = tiny_problem(steps=2, every=1)
    return cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec
