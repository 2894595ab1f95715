"""Every hypergradient method against the ``unrolled`` reference and central finite differences,
in float64, on a real problem: digits, momentum SGD with weight decay and a step schedule, the
attention teacher reading real state features over several phases."""

import pytest
import torch

from l2t.hypergrad import METHODS, hypergradient
from l2t.errors import L2TError
from l2t.gradcheck import check_method, tiny_problem

EXACT = ["reverse", "unrolled", "checkpoint", "checkpoint:1", "checkpoint:5", "reversible"]


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
        if method == "reversible" and not cp.problem.optimizer.momentum:
            continue  # cannot reverse without momentum; tested to refuse below
        res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
        err = (_flat(res.grads) - g_ref).norm() / g_ref.norm()
        assert err < 1e-9, f"{method}: relative difference {err:.2e} from unrolled"
        # reversible trains in 48-bit fixed point: its trajectory differs from float64 by rounding
        tol = 1e-11 if method == "reversible" else 1e-12
        assert res.outer_loss == pytest.approx(ref.outer_loss, rel=tol)
        for k in ref.params:
            torch.testing.assert_close(res.params[k], ref.params[k], rtol=tol, atol=tol)


@pytest.mark.parametrize("method", ["reverse", "unrolled", "checkpoint", "reversible"])
def test_matches_central_finite_differences(method):
    res = check_method(method, steps=12, every=4, directions=4)
    assert res.max_rel_error < 1e-6, res.rel_errors
    # the check problem is chosen so that no perturbed run crosses a state-feature jump, i.e.
    # these are finite differences of the true objective, features recomputed in every run
    assert res.jumps == 0


@pytest.mark.parametrize("method", ["reverse", "checkpoint", "reversible"])
@pytest.mark.parametrize("objective", ["expected_accuracy", "ce"])
def test_schedule_teacher_matches_central_finite_differences(method, objective):
    """The same check for the schedule teacher: a knot's gradient sums the phases it touches."""
    res = check_method(method, steps=12, every=4, directions=4, teacher="schedule", objective=objective)
    assert res.max_rel_error < 1e-6, res.rel_errors
    assert res.jumps == 0
    assert set(res.grads) == {"gain", "smoothing"} and all(g.abs().min() > 0 for g in res.grads.values())


@pytest.mark.parametrize("method", ["reverse", "unrolled", "checkpoint", "reversible"])
def test_schedule_teacher_with_class_offsets_matches_central_finite_differences(method):
    """The per-class offsets (one weight per class, shared by every phase) under every exact method."""
    from l2t.gradcheck import _teacher_options

    options = _teacher_options("schedule", 0) | {"class_offset": True, "init_offset": [0.1 * (i % 3) for i in range(10)]}
    res = check_method(method, steps=12, every=4, directions=4, teacher="schedule", overrides={"teacher.options": options})
    assert res.max_rel_error < 1e-6, res.rel_errors
    assert res.jumps == 0
    assert set(res.grads) == {"gain", "smoothing", "offset"} and res.grads["offset"].abs().min() > 0


def test_finite_differences_catch_a_walk_that_forgets_momentum(monkeypatch):
    """The check is not vacuous: a backward walk that drops the velocity adjoint is caught."""
    from l2t.hypergrad.base import BackwardWalk

    step = BackwardWalk.step

    def forgetful(self, *args, **kwargs):
        step(self, *args, **kwargs)
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
    assert {m.partition(":")[0] for m in EXACT} <= set(METHODS.list())


def _args():
    cp = tiny_problem(steps=2, every=1)
    return cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec


def _run(method, **kw):
    cp = tiny_problem(**kw)
    return cp, hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)


def test_checkpoint_is_bit_identical_to_reverse_for_any_interval():
    _, ref = _run("reverse", steps=17, every=4)
    for k in (1, 2, 4, 5, 16, 17, 50):
        _, res = _run(f"checkpoint:{k}", steps=17, every=4)
        assert all(torch.equal(res.grads[n], ref.grads[n]) for n in ref.grads), k
    cp, res = _run("checkpoint", steps=17, every=4)
    assert all(torch.equal(res.grads[n], ref.grads[n]) for n in ref.grads)
    # default interval: k = sqrt(T·S/G) for state bytes S and measured step-graph bytes G
    from l2t.hypergrad.checkpoint import default_interval, graph_bytes

    S = 2 * sum(v.numel() * 8 for v in cp.episode.params.values())
    G = graph_bytes(cp.problem, cp.episode, torch.eye(10, dtype=torch.float64))
    assert G > S  # a step's graph (activations) outweighs a weight vector here
    assert res.info["interval"] == default_interval(17, S, G) == max(1, round((17 * S / G) ** 0.5))


def test_reversible_reconstructs_the_initial_weights_bit_exactly():
    """The backward walk ends at Ω_0 exactly (the method raises otherwise), over enough steps
    that the information buffer spills into several int64 chunks."""
    from l2t.hypergrad import reversible as rev

    flushes = []
    real = rev.InfoBuffer.before_step

    def spy(self, step, n, d):
        real(self, step, n, d)
        flushes.append(len(self.chunks))

    import unittest.mock as mock

    with mock.patch.object(rev.InfoBuffer, "before_step", spy):
        cp, res = _run("reversible", steps=420, every=40, lr=0.02)
    assert res.info["reconstructed_initial_weights"] is True
    assert max(flushes) >= 1  # a chunk was set aside and restored
    assert res.info["info_bytes"] == (max(flushes) + 1) * sum(v.numel() for v in cp.episode.params.values()) * 8


def test_reversible_detects_a_broken_replay(monkeypatch):
    """If the backward walk does not see the forward pass's gradients (a nondeterministic kernel,
    a different batch), the reconstruction fails loudly instead of returning a wrong answer."""
    from l2t.hypergrad import reversible as rev

    real, calls = rev.linearize, {"n": 0}

    def drifting(problem, params, buffers, batch, step, coeffs):
        calls["n"] += 1
        lin = real(problem, params, buffers, batch, step, coeffs)
        if calls["n"] > problem.steps:  # backward walk
            lin.grads = tuple(g * (1 + 1e-9) for g in lin.grads)
        return lin

    monkeypatch.setattr(rev, "linearize", drifting)
    with pytest.raises(RuntimeError, match="did not reconstruct the initial weights exactly"):
        _run("reversible", steps=10, every=3)


def test_reversible_refuses_zero_or_irrational_momentum():
    from l2t.errors import L2TError

    with pytest.raises(L2TError, match="reversible needs momentum > 0.*use --hypergrad checkpoint"):
        _run("reversible", steps=4, every=2, momentum=0.0)
    with pytest.raises(L2TError, match="simple fraction"):
        _run("reversible", steps=4, every=2, momentum=0.912345678901)
    for gamma in (0.5, 0.95, 0.99):
        _, res = _run("reversible", steps=6, every=2, momentum=gamma)
        assert res.info["reconstructed_initial_weights"]


def test_truncated_with_full_horizon_is_reverse():
    _, ref = _run("reverse", steps=12, every=4)
    for K in (12, 40):
        _, res = _run(f"truncated:{K}", steps=12, every=4)
        assert all(torch.equal(res.grads[n], ref.grads[n]) for n in ref.grads)


def test_truncated_is_biased_and_blind_to_early_phases():
    """Walking back K < T steps ignores the phases before step T - K: their coefficients get no
    gradient, and the hypergradient is far from the exact one on this problem (documented bias)."""
    _, exact = _run("reverse", steps=24, every=4)
    _, trunc = _run("truncated:8", steps=24, every=4)
    g_exact, g_trunc = _flat(exact.grads), _flat(trunc.grads)
    assert (g_exact - g_trunc).norm() > 0.1 * g_exact.norm()
    assert float(g_exact @ g_trunc) / float(g_exact.norm() * g_trunc.norm()) < 0.99
    # six phases of 4 steps; the walk covers steps 16..23, i.e. the last two phases only
    assert [bool(d.abs().sum() > 0) for d in trunc.info["d_coeffs"]] == [False] * 4 + [True] * 2
    assert all(bool(d.abs().sum() > 0) for d in exact.info["d_coeffs"])


@pytest.mark.parametrize("method", ["reverse", "checkpoint", "checkpoint:3", "reversible", "unrolled"])
def test_episodes_that_start_mid_run_are_exact(method):
    """An episode from a snapshot at step 7 (non-zero momentum, mid-phase, learning rate of the
    global step) matches finite differences and the unrolled reference."""
    cp = tiny_problem(steps=9, every=4, start=7)
    assert cp.episode.velocity is not None and cp.episode.start == 7
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
    assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm()
    assert [p.start for p in res.phases] == [7, 8, 12]  # joined mid-phase, then refreshed at 8 and 12
    assert check_method(method, steps=9, every=4, start=7, directions=2).max_rel_error < 1e-6


@pytest.mark.parametrize("method", ["checkpoint", "reversible"])
def test_bounded_off_diagonal_loss_is_exact(method):
    """The bilinear loss with off_diagonal_eps: every engine still matches finite differences."""
    cp = tiny_problem(steps=10, every=4, off_diagonal_eps=0.05)
    assert cp.problem.loss.keywords["eps"] == 0.05
    assert check_method(method, steps=10, every=4, directions=2, off_diagonal_eps=0.05).max_rel_error < 1e-6


@pytest.mark.parametrize("method", ["reverse", "checkpoint", "reversible"])
def test_batchnorm_student_batch_mode_is_exact(method):
    """BatchNorm in training mode inside the unroll, batch statistics in the dev objective:
    every exact method equals unrolled and matches finite differences."""
    cp = tiny_problem(steps=10, every=3, batchnorm=True, bn_mode="batch")
    assert cp.episode.buffers, "the student has BatchNorm buffers"
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
    assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm()
    assert check_method(method, steps=10, every=3, directions=2, batchnorm=True).max_rel_error < 1e-6


def test_batchnorm_running_mode_is_consistent_but_approximate():
    """With running statistics in the dev objective, all methods hold them constant and agree
    with each other, but not with finite differences (the documented approximation)."""
    cp = tiny_problem(steps=10, every=3, batchnorm=True, bn_mode="running")
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    for method in ("reverse", "checkpoint", "reversible"):
        res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
        assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm()
    assert check_method("reverse", steps=10, every=3, directions=2, batchnorm=True, bn_mode="running").max_rel_error > 1e-3


@pytest.mark.parametrize("spec,message", [
    ("truncated", "needs a horizon"), ("truncated:0", "at least 1"), ("checkpoint:0", "at least 1"),
    ("checkpoint:x", "invalid literal"), ("reversible:2", "must be in"),
])
def test_bad_method_arguments(spec, message):
    from l2t.errors import L2TError
    from l2t.hypergrad import get_method

    with pytest.raises(L2TError, match=message):
        get_method(spec)


def test_deterministic_kernels_sets_and_restores_cudnn_flags():
    from l2t.hypergrad import deterministic_kernels

    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    try:
        cudnn.deterministic, cudnn.benchmark = False, True
        with deterministic_kernels(torch.device("cpu")):
            assert (cudnn.deterministic, cudnn.benchmark) == (False, True)  # CPU: untouched
        with pytest.raises(RuntimeError), deterministic_kernels(torch.device("cuda")):
            assert (cudnn.deterministic, cudnn.benchmark) == (True, False)
            raise RuntimeError("restored even when the work fails")
        assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


# --- stochastic students: dropout replays exactly under the step's seed ---------------------------

STOCHASTIC = [
    ("mlp", {"widths": [16], "activation": "tanh", "dropout": 0.3}),
    ("wrn", {"depth": 10, "widen": 1, "activation": "tanh", "dropout": 0.3}),
]


@pytest.mark.parametrize("student,options", STOCHASTIC, ids=["mlp-dropout", "wrn-dropout"])
def test_students_with_dropout_are_exact(student, options):
    """Dropout draws from generators seeded by (episode seed, step): every exact method equals
    unrolled (which differentiates the one forward pass) and matches finite differences."""
    from l2t.gradcheck import check

    cp = tiny_problem(student=student, overrides={"student.options": options}, steps=10, every=4)
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    for method in ("reverse", "checkpoint:2", "checkpoint", "reversible", "truncated:10"):
        res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
        assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm(), method
    for method in ("reverse", "checkpoint:2", "reversible"):
        assert check(cp, method, directions=2).max_rel_error < 1e-6, method


def test_a_student_whose_randomness_is_not_replayed_is_refused_by_name():
    """Without the step's seed, dropout draws from the global generator: the step-wise methods
    refuse the student with one line naming the layer, and unrolled (no replay) still runs."""
    from dataclasses import replace

    from l2t.errors import L2TError
    from l2t.inner import Episode

    cp = tiny_problem(student="mlp", overrides={"student.options": STOCHASTIC[0][1]}, steps=4, every=2)
    schedule = cp.episode.batches
    unseeded = Episode(cp.episode.params, cp.episode.buffers, lambda t: replace(schedule(t), seed=None))
    for method in ("reverse", "checkpoint", "reversible", "truncated:2"):
        with pytest.raises(L2TError, match=r"layer '3' \(Dropout\) draws randomness that cannot be replayed"):
            hypergradient(cp.problem, unseeded, cp.teacher, cp.teacher_params, cp.spec, method=method)
    hypergradient(cp.problem, unseeded, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")


# --- sequences: a seq2seq student under a token-level bilinear loss, with padding ------------------

SEQ = ["lstm2", "transformer"]


@pytest.mark.parametrize("student", SEQ)
def test_seq2seq_hypergradients_are_exact(student):
    """toy-reverse (padded, masked batches), a tiny seq2seq student (the transformer with dropout),
    the attention teacher setting Φ over the target vocabulary from the generic state features."""
    from l2t.gradcheck import check

    cp = tiny_problem(student=student, steps=8, every=3)
    assert cp.spec.features == "generic" and cp.spec.dim == 8
    assert any(b.mask is not None and not b.mask.all() for b in cp.problem.dev)  # real padding
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    assert _flat(ref.grads).norm() > 0
    for method in ("reverse", "checkpoint:3", "reversible"):
        res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
        assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm(), method
        assert check(cp, method, directions=2).max_rel_error < 1e-6, method


def _junk_behind_the_mask(batch, seed):
    """The batch with random tokens at every padded target position and at the decoder inputs
    there (the source keeps its padding id: that is how the student knows it is padding)."""
    from dataclasses import replace

    g = torch.Generator().manual_seed(seed)
    junk = torch.randint(3, 9, batch.targets.shape, generator=g)
    targets = torch.where(batch.mask, batch.targets, junk)
    tgt_in = batch.inputs["tgt_in"]
    later = torch.cat([torch.ones_like(batch.mask[:, :1]), batch.mask[:, :-1]], 1)  # input j feeds target j
    tgt_in = torch.where(later, tgt_in, torch.randint(3, 9, tgt_in.shape, generator=g))
    return replace(batch, inputs={**batch.inputs, "tgt_in": tgt_in}, targets=targets)


def test_tokens_behind_the_mask_change_nothing():
    """Junk tokens at padded positions of every training and dev batch leave the outer loss, the
    state features and the hypergradient unchanged, bit for bit."""
    from dataclasses import replace

    from l2t.inner import Episode

    cp = tiny_problem(student="transformer", steps=8, every=3)
    a = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="reverse")
    schedule = cp.episode.batches
    episode = Episode(cp.episode.params, cp.episode.buffers, lambda t: _junk_behind_the_mask(schedule(t), t))
    problem = replace(cp.problem, dev=tuple(_junk_behind_the_mask(b, 100 + i) for i, b in enumerate(cp.problem.dev)))
    spec = replace(cp.spec, dev=tuple(_junk_behind_the_mask(b, 200 + i) for i, b in enumerate(cp.spec.dev)))
    assert not torch.equal(episode.batches(0).targets, schedule(0).targets)
    b = hypergradient(problem, episode, cp.teacher, cp.teacher_params, spec, method="reverse")
    assert a.outer_loss == b.outer_loss
    assert all(torch.equal(p.features, q.features) for p, q in zip(a.phases, b.phases))
    assert all(torch.equal(a.grads[k], b.grads[k]) for k in a.grads)


# --- a teacher with memory -------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["reverse", "checkpoint", "reversible", "unrolled"])
def test_recurrent_teacher_is_exact_through_its_memory(method):
    """The GRU teacher's coefficients depend on its memory, threaded through the phases: its
    hypergradient (chained through the replayed memory) matches finite differences, and the
    episode returns the memory after the last phase."""
    from l2t.gradcheck import check

    cp = tiny_problem(teacher="recurrent", steps=12, every=4)
    res = check(cp, method, directions=3)
    assert res.max_rel_error < 1e-6 and res.jumps == 0
    assert set(res.grads) >= {"cell.weight_ih", "cell.weight_hh", "U", "W"}
    assert all(g.abs().sum() > 0 for g in res.grads.values())
    out = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method, memory=cp.memory)
    assert out.memory.shape == (6,) and out.memory.abs().sum() > 0 and not out.memory.requires_grad
    again = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method, memory=out.memory)
    assert not torch.equal(again.grads["W"], out.grads["W"])  # the memory it starts from matters


def test_coefficients_as_a_pytree_flow_through_every_engine():
    """A loss whose coefficients are two tensors (a dict): the engines' vector-Jacobian products,
    backward walk and chaining to the teacher handle any pytree, and agree with unrolled."""
    from dataclasses import replace

    from l2t.teachers import AttentionTeacher

    class SplitTeacher(AttentionTeacher):  # Φ as {"diag": c·1 + diag(WA), "off": WA − diag}
        def forward(self, features, memory=None):
            phi, memory = super().forward(features, memory)
            return {"diag": phi.diagonal(), "off": phi - torch.diag(phi.diagonal())}, memory

    def split_bilinear(logits, targets, coeffs, scale):
        phi = torch.diag(coeffs["diag"]) + coeffs["off"]
        from l2t.losses import bilinear

        return bilinear(logits, targets, phi, scale=scale)

    cp = tiny_problem(steps=9, every=3)
    teacher = SplitTeacher(10, 13, keys=4, w_init_std=0.1).double()
    teacher.load_state_dict(cp.teacher.state_dict())
    problem = replace(cp.problem, loss=lambda o, y, c: split_bilinear(o, y, c, 40.0))
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    for method in ("unrolled", "reverse", "checkpoint:2", "reversible"):
        res = hypergradient(problem, cp.episode, teacher, cp.teacher_params, cp.spec, method=method)
        assert isinstance(res.phases[0].coeffs, dict)
        assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm(), method


# --- the student trained by Adam --------------------------------------------------------------

ADAM = {"inner.optimizer": "adam", "inner.lr": 0.01, "inner.betas": [0.8, 0.95]}


@pytest.mark.parametrize("method", ["reverse", "checkpoint", "checkpoint:3", "truncated:50"])
def test_adam_students_are_exact(method):
    """Adam as the student's optimizer (with L2 decay and a step schedule): every method that
    takes it equals unrolled and central finite differences, also from a snapshot at step 7
    (non-zero moments, Adam's bias correction at the global step)."""
    for start in (0, 7):
        cp = tiny_problem(steps=9, every=4, start=start, overrides=ADAM)
        assert type(cp.problem.optimizer).__name__ == "InnerAdam"
        assert start == 0 or cp.episode.velocity["s:1.weight"].abs().sum() > 0
        ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
        res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
        assert _flat(ref.grads).norm() > 0
        assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm(), (method, start)
        assert res.outer_loss == pytest.approx(ref.outer_loss, rel=1e-12)
    for m in (method, "unrolled"):
        assert check_method(m, steps=9, every=4, directions=3, overrides=ADAM).max_rel_error < 1e-6, m


def test_adam_truncated_walks_back_with_the_moments_of_its_window():
    """truncated:4 of a 12-step Adam run walks the same last 4 steps as reverse: the last phase's
    coefficient adjoints are reverse's (each step's Adam product reads that step's moments), and
    the earlier phases get none."""
    cp = tiny_problem(steps=12, every=4, overrides=ADAM)
    trunc = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="truncated:4")
    exact = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="reverse")
    assert [bool(d.abs().sum() > 0) for d in trunc.info["d_coeffs"]] == [False, False, True]
    a, b = trunc.info["d_coeffs"][-1], exact.info["d_coeffs"][-1]
    assert float(b.norm()) > 0 and float((a - b).norm()) < 1e-12 * float(b.norm())


def test_adam_through_a_seq2seq_student_with_dropout_is_exact():
    from l2t.gradcheck import check

    cp = tiny_problem(student="transformer", steps=6, every=3, overrides=ADAM)
    ref = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="unrolled")
    res = hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method="checkpoint:2")
    assert torch.isfinite(_flat(ref.grads)).all() and _flat(ref.grads).norm() > 0  # pad embeddings: zero moments
    assert (_flat(res.grads) - _flat(ref.grads)).norm() < 1e-9 * _flat(ref.grads).norm()
    assert check(cp, "reverse", directions=2).max_rel_error < 1e-6


@pytest.mark.parametrize("method", ["reversible", "reverse+compile", "checkpoint+compile"])
def test_methods_that_need_momentum_sgd_refuse_adam_by_name(method):
    cp = tiny_problem(steps=4, every=2, overrides=ADAM)
    with pytest.raises(L2TError, match=f"hypergradient method '{method.replace('+', '[+]')}' needs inner.optimizer = sgd"):
        hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)
