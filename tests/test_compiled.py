"""``METHOD+compile``: the backward walk's products by torch.compile, against the eager walk, the
unrolled reference and central finite differences in float64; and its fallbacks to the eager
products (dropout, a compiler failure, a compiled program that disagrees)."""

import warnings

import pytest
import torch

from l2t.errors import L2TError
from l2t.gradcheck import SMALL_STUDENTS, check, tiny_problem
from l2t.hypergrad import compiled, get_method, hypergradient


def _flat(grads):
    return torch.cat([g.flatten() for g in grads.values()])


def _run(cp, method):
    return hypergradient(cp.problem, cp.episode, cp.teacher, cp.teacher_params, cp.spec, method=method)


def _quiet(cp, method):
    """The run, with the +compile warnings it raised."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = _run(cp, method)
    return res, [str(w.message) for w in seen if str(w.message).startswith("+compile")]


def test_compiled_walks_are_exact_and_deterministic():
    """One problem (one compilation) for every walk: each +compile method equals unrolled to
    float64 rounding, checkpoint+compile replays reverse+compile bit for bit, a second run gives
    the same bits, and reverse+compile matches central finite differences."""
    cp = tiny_problem(steps=12, every=4)
    ref = _flat(_run(cp, "unrolled").grads)
    first, warned = _quiet(cp, "reverse+compile")
    assert not warned, warned  # compiled and verified against the eager products: no fallback
    assert compiled.products_for(cp.problem).verified and not compiled.products_for(cp.problem).disabled
    g = _flat(first.grads)
    assert (g - ref).norm() < 1e-9 * ref.norm()
    assert torch.equal(_flat(_run(cp, "reverse+compile").grads), g)
    for k in (1, 5, 12):
        assert torch.equal(_flat(_run(cp, f"checkpoint:{k}+compile").grads), g), k
    trunc, eager = _flat(_run(cp, "truncated:5+compile").grads), _flat(_run(cp, "truncated:5").grads)
    assert (trunc - eager).norm() < 1e-9 * eager.norm() and not torch.equal(trunc, g)
    res = check(cp, "reverse+compile", directions=3)
    assert res.max_rel_error < 1e-6 and res.jumps == 0, res.rel_errors


def test_compiled_checkpoint_keeps_weights_not_graphs():
    """The default interval with compiled products is √(T·S/P): a segment holds weights only."""
    from l2t.hypergrad.checkpoint import default_interval

    cp = tiny_problem(steps=17, every=4)
    res = _run(cp, "checkpoint+compile")
    state = 2 * sum(v.numel() * v.element_size() for v in cp.episode.params.values())
    assert res.info["interval"] == default_interval(17, state, state // 2) == 6


@pytest.mark.slow
def test_compiled_products_for_batchnorm_and_seq2seq_students():
    """BatchNorm (running statistics updated inside the compiled program) and a masked seq2seq
    student with a pytree batch: both compile, verify and equal the eager walk (slow: the
    Transformer's program takes about a minute to compile on 2 cores)."""
    for cp in (tiny_problem(steps=8, every=3, batchnorm=True, bn_mode="batch"),
               tiny_problem(student="transformer", steps=6, every=3,
                            overrides={"student.options": SMALL_STUDENTS["transformer"] | {"dropout": 0.0}})):
        res, warned = _quiet(cp, "reverse+compile")
        assert not warned, warned
        ref = _flat(_run(cp, "reverse").grads)
        assert (_flat(res.grads) - ref).norm() < 1e-9 * ref.norm()


def test_dropout_students_use_the_eager_products_and_say_so():
    cp = tiny_problem(student="mlp", overrides={"student.options": {"widths": [16], "dropout": 0.3}}, steps=6, every=3)
    res, warned = _quiet(cp, "reverse+compile")
    assert len(warned) == 1 and "dropout" in warned[0] and "eager" in warned[0]
    assert torch.equal(_flat(res.grads), _flat(_run(cp, "reverse").grads))
    _, again = _quiet(cp, "reverse+compile")
    assert not again  # warned once per problem


def test_a_compiler_failure_falls_back_to_the_eager_products(monkeypatch):
    def broken(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("inductor: no C++ compiler found\nsecond line")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    cp = tiny_problem(steps=6, every=3)
    res, warned = _quiet(cp, "reverse+compile")
    assert len(warned) == 1 and "compilation failed (RuntimeError: inductor: no C++ compiler found)" in warned[0]
    assert torch.equal(_flat(res.grads), _flat(_run(cp, "reverse").grads))


def test_compiled_products_that_disagree_are_refused(monkeypatch):
    """A compiled program that returns wrong products is caught by the first-use comparison with
    the eager ones: the walk warns and its result is the eager walk's, bit for bit."""
    def wrong(fn, **kw):
        def run(*a, **k):
            d_params, d_leaves = fn(*a, **k)
            return {n: 1.01 * v for n, v in d_params.items()}, d_leaves
        return run

    monkeypatch.setattr(torch, "compile", wrong)
    cp = tiny_problem(steps=6, every=3)
    res, warned = _quiet(cp, "checkpoint+compile")
    assert len(warned) == 1 and "differ from the eager ones" in warned[0]
    eager = _run(cp, "checkpoint")
    assert torch.equal(_flat(res.grads), _flat(eager.grads))
    again, _ = _quiet(cp, "checkpoint+compile")  # known to fall back: segments keep graphs, k as for eager
    assert again.info["interval"] == eager.info["interval"] and torch.equal(_flat(again.grads), _flat(eager.grads))


@pytest.mark.parametrize("spec", ["unrolled+compile", "reversible+compile", "reversible:40+compile"])
def test_methods_without_a_compiled_form_are_a_clear_error(spec):
    with pytest.raises(L2TError, match="has no compiled form .+compile: checkpoint, reverse, truncated"):
        get_method(spec)


def test_compile_on_the_command_line(capsys):
    from l2t.cli import main

    assert main(["check-grad", "--method", "checkpoint+compile", "--steps", "6", "--every", "3", "--directions", "2"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["check-grad", "--method", "unrolled+compile"]) == 2
    out, err = capsys.readouterr()
    assert not out and err.strip().splitlines() == [
        "l2t: error: bad hypergradient method 'unrolled+compile': unrolled has no compiled form (+compile: checkpoint, "
        "reverse, truncated)"]


def test_compiled_products_live_as_long_as_their_problem():
    """The products are cached on the problem (one compilation per problem, reused by every
    teacher step) and freed with it: no process-wide cache keeps old problems alive."""
    import gc
    import weakref

    cp = tiny_problem(steps=4, every=2)
    _run(cp, "reverse+compile")
    assert compiled.products_for(cp.problem) is compiled.products_for(cp.problem)
    problem = weakref.ref(cp.problem)
    del cp
    gc.collect()
    assert problem() is None
