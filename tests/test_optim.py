import pytest
import torch

from l2t.optim import Adam, Constant, Cosine, InnerAdam, MomentumSGD, StepDecay, make_schedule


def _problem():
    torch.manual_seed(0)
    params = {"a": torch.randn(4, 3, dtype=torch.float64), "b": torch.randn(3, dtype=torch.float64)}
    x = torch.randn(8, 4, dtype=torch.float64)

    def loss(p):
        return ((x @ p["a"] + p["b"]).tanh() ** 2).sum()

    return params, loss


@pytest.mark.parametrize("momentum,wd", [(0.9, 0.0), (0.9, 1e-2), (0.0, 1e-3)])
def test_momentum_sgd_matches_torch_sgd(momentum, wd):
    params, loss = _problem()
    lrs = StepDecay(0.1, (3,), 0.5)
    opt = MomentumSGD(lrs, momentum, wd)
    ours, velocity = dict(params), opt.init(params)
    theirs = {k: v.clone().requires_grad_() for k, v in params.items()}
    ref = torch.optim.SGD(theirs.values(), lr=lrs(0), momentum=momentum, weight_decay=wd)
    for step in range(6):
        for group in ref.param_groups:
            group["lr"] = lrs(step)
        leaf = {k: v.clone().requires_grad_() for k, v in ours.items()}
        grads = dict(zip(leaf, torch.autograd.grad(loss(leaf), list(leaf.values()))))
        ours, velocity = opt.update(grads, velocity, ours, step)
        ref.zero_grad()
        loss(theirs).backward()
        ref.step()
        for k in ours:
            torch.testing.assert_close(ours[k], theirs[k].detach(), rtol=0, atol=1e-14)


def test_adam_matches_torch_adam():
    params, loss = _problem()
    opt = Adam(lr=0.01)
    ours, state = dict(params), opt.init(params)
    theirs = {k: v.clone().requires_grad_() for k, v in params.items()}
    ref = torch.optim.Adam(theirs.values(), lr=0.01)
    for _ in range(5):
        leaf = {k: v.clone().requires_grad_() for k, v in ours.items()}
        grads = dict(zip(leaf, torch.autograd.grad(loss(leaf), list(leaf.values()))))
        ours, state = opt.update(grads, state, ours)
        ref.zero_grad()
        loss(theirs).backward()
        ref.step()
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k].detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_the_students_adam_matches_torch_adam(wd):
    """The student's Adam: torch.optim.Adam's arithmetic under a schedule and L2 decay, step by
    step, with a weight whose gradient is always zero (its moments stay zero, its weight fixed)."""
    params, loss = _problem()
    params["unused"] = torch.randn(3, dtype=torch.float64)
    lrs = StepDecay(0.05, (3,), 0.5)
    opt = InnerAdam(lrs, (0.8, 0.95), 1e-6, wd)
    ours, state = dict(params), opt.init(params)
    assert set(state) == {f"{w}:{k}" for w in "ms" for k in params}
    theirs = {k: v.clone().requires_grad_() for k, v in params.items()}
    ref = torch.optim.Adam(theirs.values(), lr=lrs(0), betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    for step in range(6):
        for group in ref.param_groups:
            group["lr"] = lrs(step)
        leaf = {k: v.clone().requires_grad_() for k, v in ours.items()}
        grads = dict(zip(leaf, torch.autograd.grad(loss(leaf), list(leaf.values()), allow_unused=True)))
        grads["unused"] = torch.zeros(3, dtype=torch.float64)
        ours, state = opt.update(grads, state, ours, step)
        ref.zero_grad()
        loss(theirs).backward()
        theirs["unused"].grad = torch.zeros(3, dtype=torch.float64)
        ref.step()
        for k in ours:
            torch.testing.assert_close(ours[k], theirs[k].detach(), rtol=0, atol=1e-14)
    assert wd or torch.equal(ours["unused"], params["unused"])


@pytest.mark.parametrize("opt", [InnerAdam(StepDecay(0.05, (3,), 0.5), (0.8, 0.95), 1e-6, 1e-2),
                                 MomentumSGD(StepDecay(0.05, (3,), 0.5), 0.9, 1e-2)], ids=["adam", "sgd"])
def test_the_backward_step_of_the_students_optimizers_is_autograds(opt):
    """``vjp`` (what every hypergradient walk applies) equals autograd through ``update``; and
    autograd through Adam stays finite for a weight whose second moment is zero."""
    params, _ = _problem()
    params["unused"] = torch.randn(3, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    rand = lambda d: {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in d.items()}  # noqa: E731
    state = {k: v.abs() if k.startswith("s:") else v for k, v in rand(opt.init(params)).items()}
    grads = rand(params)
    grads["unused"] = torch.zeros(3, dtype=torch.float64)
    if "s:unused" in state:
        state["s:unused"], state["m:unused"] = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    leaves = [{k: v.clone().requires_grad_() for k, v in d.items()} for d in (grads, state, params)]
    new_params, new_state = opt.update(*leaves, 4)
    d_params, d_state = rand(new_params), rand(new_state)
    auto = torch.autograd.grad([*new_params.values(), *new_state.values()], [v for d in leaves for v in d.values()],
                               [*d_params.values(), *d_state.values()], allow_unused=True)
    mine = opt.vjp(grads, state, params, 4, d_params, d_state)
    flat = [d[k] for d, like in zip(mine, (grads, state, params)) for k in like]
    assert len(flat) == len(auto)
    for a, b in zip(auto, flat):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(torch.zeros_like(b) if a is None else a, b, rtol=1e-12, atol=1e-14)


def test_updates_are_pure():
    params, loss = _problem()
    before = {k: v.clone() for k, v in params.items()}
    opt = MomentumSGD(Constant(0.1), 0.9, 1e-3)
    grads = {k: torch.ones_like(v) for k, v in params.items()}
    opt.update(grads, opt.init(params), params, 0)
    for k in params:
        assert torch.equal(params[k], before[k])


def test_schedules():
    assert make_schedule("constant", 0.1, 100)(99) == 0.1
    s = make_schedule("step", 1.0, 100, (0.5, 0.75), 0.1)
    assert (s(49), s(50), s(75)) == (1.0, pytest.approx(0.1), pytest.approx(0.01))
    c = Cosine(1.0, 10)
    assert c(0) == 1.0 and c(10) == pytest.approx(0.0) and c(5) == pytest.approx(0.5)


def test_invalid_hyperparameters_are_loud():
    from l2t.errors import L2TError

    with pytest.raises(L2TError, match="Invalid learning rate: -1"):
        make_schedule("constant", -1, 10)
    with pytest.raises(ValueError, match="Invalid momentum"):
        MomentumSGD(Constant(0.1), momentum=1.5)
    with pytest.raises(L2TError, match="unknown lr schedule"):
        make_schedule("warmup", 0.1, 10)
