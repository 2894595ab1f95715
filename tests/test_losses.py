import math

import pytest
import torch

from l2t.losses import LOSSES, bilinear, create_loss, cross_entropy, reduce_loss, smooth01


def test_cross_entropy_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    expected = [math.log(2), -math.log(math.exp(0) / (math.exp(2) + 1))]
    torch.testing.assert_close(cross_entropy(logits, y), torch.tensor(expected, dtype=torch.float64))


def test_smooth01_hand_computed():
    # margin = z_y - max_{j != y} z_j: example 0: 1 - 0.5 = 0.5; example 1: 0 - 3 = -3
    logits = torch.tensor([[1.0, 0.5, -1.0], [3.0, 0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    K = 2.0
    expected = [-math.log(1 / (1 + math.exp(-K * 0.5))), -math.log(1 / (1 + math.exp(K * 3.0)))]
    torch.testing.assert_close(smooth01(logits, y, K=K), torch.tensor(expected, dtype=torch.float64))


def test_smooth01_tends_to_zero_one_error():
    logits = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    loss = smooth01(logits, y, K=1e4)
    assert loss[0] < 1e-6  # correct with margin 1: ~0
    assert loss[1] == pytest.approx(1e4, rel=1e-6)  # wrong by margin 1: K·1


def test_bilinear_hand_computed():
    logits = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    phi = torch.tensor([[1.0, 0.0, 0.0], [0.5, 2.0, -1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    logp = torch.log_softmax(logits, -1)[0]
    z = 0.5 * logp[0] + 2.0 * logp[1] - 1.0 * logp[2]
    torch.testing.assert_close(bilinear(logits, y, phi, scale=3.0), (-3.0 * torch.sigmoid(z)).reshape(1))


def test_bilinear_at_small_identity_has_cross_entropy_gradient():
    """SPEC §8: near Φ = c·I, (4/c)·(−σ(c·log p_y)) has the gradient of cross entropy, up to O(c)."""
    torch.manual_seed(0)
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    c = 1e-4
    g_bil = torch.autograd.grad(bilinear(logits, y, c * torch.eye(5, dtype=torch.float64), scale=4 / c).sum(), logits)[0]
    g_ce = torch.autograd.grad(cross_entropy(logits, y).sum(), logits)[0]
    torch.testing.assert_close(g_bil, g_ce, rtol=1e-3, atol=1e-3)


def test_bilinear_family_contains_label_smoothing():
    """Near Φ = c·((1 − ε)·I + ε/C) the scaled bilinear loss has the gradient of label smoothing."""
    torch.manual_seed(0)
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    c, eps = 1e-4, 0.1
    phi = c * ((1 - eps) * torch.eye(5, dtype=torch.float64) + eps / 5)
    g_bil = torch.autograd.grad(bilinear(logits, y, phi, scale=4 / c).sum(), logits)[0]
    g_ls = torch.autograd.grad(create_loss("label_smoothing", eps=eps)(logits, y, None).sum(), logits)[0]
    torch.testing.assert_close(g_bil, g_ls, rtol=1e-3, atol=1e-3)


def test_bilinear_eps_bounds_only_the_off_diagonal_terms():
    logits = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    phi = torch.tensor([[1.0, 0.0, 0.0], [0.5, 2.0, -1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    p = torch.softmax(logits, -1)[0]
    z = 0.5 * torch.log(p[0] + 0.01) + 2.0 * torch.log(p[1]) - 1.0 * torch.log(p[2] + 0.01)
    torch.testing.assert_close(bilinear(logits, y, phi, scale=3.0, eps=0.01), (-3.0 * torch.sigmoid(z)).reshape(1))
    eye = 0.1 * torch.eye(3, dtype=torch.float64)  # Φ = c·I: eps changes nothing
    torch.testing.assert_close(bilinear(logits, y, eye, eps=0.01), bilinear(logits, y, eye))


def test_bilinear_off_diagonal_force_fades_with_eps():
    """A negative Φ(y, j) pushes logit j down with a force that does not fade as p_j -> 0 in the
    paper's form; with eps it fades once p_j << eps."""
    phi = torch.tensor([[0.1, -0.01], [-0.01, 0.1]], dtype=torch.float64)
    y = torch.tensor([0])

    def force(gap, eps):
        logits = torch.tensor([[gap, 0.0]], dtype=torch.float64, requires_grad=True)
        return torch.autograd.grad(bilinear(logits, y, phi, eps=eps).sum(), logits)[0][0, 1].item()

    assert force(30.0, 0.0) > 0.5 * force(5.0, 0.0) > 0  # still pushing at p_j ≈ 1e-13
    assert force(30.0, 1e-3) < 1e-8 * force(5.0, 1e-3)
    assert force(30.0, 1e-3) >= 0


@pytest.mark.parametrize("name", ["ce", "smooth01", "bilinear", "label_smoothing"])
def test_losses_are_per_token_for_sequences(name):
    """(B, T, C) logits and (B, T) targets give (B, T) values, equal to the flattened computation."""
    torch.manual_seed(0)
    logits, y = torch.randn(3, 4, 5), torch.randint(0, 5, (3, 4))
    fn = create_loss(name)
    coeffs = torch.randn(5, 5)
    out = fn(logits, y, coeffs)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, fn(logits.reshape(12, 5), y.reshape(12), coeffs).reshape(3, 4))


def test_reduce_loss_with_mask():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert reduce_loss(values, mask).item() == pytest.approx(2.0)
    assert reduce_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(2.0)


def test_unknown_loss_lists_known():
    from l2t.errors import L2TError

    with pytest.raises(L2TError, match="known: bilinear, ce, dln, focal, label_smoothing, lsoftmax, smooth01"):
        LOSSES.create("hinge")


def test_label_smoothing_hand_computed():
    from l2t.losses import label_smoothing

    logits = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    logp = torch.log_softmax(logits, -1)[0]
    expected = -(0.8 * logp[0] + 0.2 * logp.mean())
    torch.testing.assert_close(label_smoothing(logits, torch.tensor([0]), eps=0.2)[0], expected)
    torch.testing.assert_close(label_smoothing(logits, torch.tensor([0]), eps=0.0), cross_entropy(logits, torch.tensor([0])))


def _head(features, weight, bias=None):
    from l2t.types import HeadOutputs

    logits = features @ weight.t() + (0 if bias is None else bias)
    return HeadOutputs(logits, features, weight, bias)


@pytest.mark.parametrize("theta_deg,k", [(30.0, 0), (120.0, 1)])
def test_large_margin_softmax_hand_computed(theta_deg, k):
    """m = 2: ψ(θ) = cos 2θ on [0, π/2], −cos 2θ − 2 on [π/2, π]; λ = 0 gives the full margin."""
    from l2t.losses import large_margin

    th = math.radians(theta_deg)
    x = torch.tensor([[2.0 * math.cos(th), 2.0 * math.sin(th)]], dtype=torch.float64)  # ‖x‖ = 2
    W = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # ‖W_0‖ = 3, angle θ to x
    psi = math.cos(2 * th) if k == 0 else -math.cos(2 * th) - 2
    f0, f1 = 3 * 2 * psi, float(x[0] @ W[1])
    expected = -math.log(math.exp(f0) / (math.exp(f0) + math.exp(f1)))
    got = large_margin(_head(x, W), torch.tensor([0]), torch.tensor(0.0, dtype=torch.float64), m=2)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # λ -> ∞ is the plain softmax
    big = large_margin(_head(x, W), torch.tensor([0]), torch.tensor(1e12, dtype=torch.float64), m=2)
    assert big.item() == pytest.approx(cross_entropy(x @ W.t(), torch.tensor([0])).item(), rel=1e-9)


def test_large_margin_lambda_schedule():
    from l2t.losses import LambdaSchedule

    s = LambdaSchedule(base=1000, gamma=0.12, power=1, minimum=5)
    assert s.value(0) == 1000 and s.value(100) == pytest.approx(1000 / 13) and s.value(10**6) == 5
