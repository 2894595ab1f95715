import pytest
import torch

from l2t.optim import Adam, Constant, Cosine, MomentumSGD, StepDecay, make_schedule


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
