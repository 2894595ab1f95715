import pytest
import torch

from l2t.errors import L2TError
from l2t.students import STUDENTS, HeadOutputs, create_student

# (name, input shape, options, pinned parameter count for 10 classes, in the default suite?)
CASES = [
    ("mlp", (1, 8, 8), {"widths": [64]}, 64 * 64 + 64 + 64 * 10 + 10, True),
    ("mlp", (1, 28, 28), {"widths": [500]}, 784 * 500 + 500 + 500 * 10 + 10, True),
    ("lenet", (1, 28, 28), {}, 61706, True),
    ("resnet", (3, 32, 32), {"depth": 14}, 172506, True),
    ("resnet8", (3, 32, 32), {}, 75290, True),
    ("resnet20", (3, 32, 32), {}, 269722, True),
    ("resnet32", (3, 32, 32), {}, 464154, True),
    ("wrn", (3, 32, 32), {"depth": 10, "widen": 1}, 77850, True),
    ("wrn16_4", (3, 32, 32), {}, 2748890, False),
    ("wrn28_10", (3, 32, 32), {}, 36479194, False),
    ("densenet_bc", (3, 32, 32), {"depth": 16, "growth": 4}, 5466, True),
    ("densenet_bc_100_12", (3, 32, 32), {}, 769162, False),
    ("densenet_bc_190_40", (3, 32, 32), {}, 25624430, False),
]
FAST = [c[:4] for c in CASES if c[4]]
SLOW = [pytest.param(*c[:4], marks=pytest.mark.slow) for c in CASES if not c[4]]


def test_every_registered_student_is_covered():
    assert {c[0] for c in CASES} == set(STUDENTS.list())


@pytest.mark.parametrize("name,shape,options,count", [c[:4] for c in CASES])
def test_parameter_counts(name, shape, options, count):
    """Pinned; the named ones are the published counts (He et al.'s option-A ResNets 0.27M / 0.46M,
    WRN-16-4 2.7M, WRN-28-10 36.5M, DenseNet-BC-100-12 0.8M, DenseNet-BC-190-40 25.6M)."""
    assert create_student(name, shape, 10, **options).num_params() == count


def _double_backward(name, shape, options):
    s = create_student(name, shape, 10, **options)
    params, buffers = s.init(0, dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in params.items()}
    x = torch.randn(4, *shape, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    out, new_buffers = s.apply(params, buffers, x)
    loss = torch.nn.functional.cross_entropy(out, y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    v = [torch.randn_like(g) for g in grads]
    hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, v)), list(params.values()), allow_unused=True)
    hv = [h for h in hv if h is not None]
    assert all(torch.isfinite(h).all() for h in hv)
    assert sum(h.abs().sum() for h in hv) > 0
    if buffers:  # training mode updated the running statistics, on copies
        assert any(not torch.equal(buffers[k], new_buffers[k]) for k in buffers if buffers[k].is_floating_point())


@pytest.mark.parametrize("name,shape,options,count", FAST + SLOW)
def test_double_backward(name, shape, options, count):
    """Every student supports the Hessian-vector products the hypergradient needs (float64)."""
    _double_backward(name, shape, options)


@pytest.mark.parametrize("name,shape,options,count", FAST)
def test_head_outputs(name, shape, options, count):
    """features=True returns the final layer's input and weights, consistent with the logits."""
    s = create_student(name, shape, 10, **options)
    params, buffers = s.init(1, dtype=torch.float64)
    out, _ = s.apply(params, buffers, torch.randn(3, *shape, dtype=torch.float64), train=False, features=True)
    assert isinstance(out, HeadOutputs)
    torch.testing.assert_close(out.logits, out.features @ out.weight.t() + out.bias)


def test_init_is_a_pure_function_of_seed():
    s = create_student("lenet", (1, 28, 28), 10)
    torch.manual_seed(123)
    a, _ = s.init(7)
    torch.manual_seed(456)
    b, _ = s.init(7)
    c, _ = s.init(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cifar_nets_get_he_initialised_convolutions():
    s = create_student("resnet20", (3, 32, 32), 10)
    params, _ = s.init(0)
    w = params["blocks.8.conv2.weight"]  # 64 -> 64, 3x3: He (fan out) std sqrt(2 / (64 * 9))
    assert abs(float(w.std()) - (2 / (64 * 9)) ** 0.5) < 0.1 * (2 / (64 * 9)) ** 0.5


def test_apply_never_touches_module_parameters():
    s = create_student("mlp", (1, 8, 8), 10)
    before = {k: v.clone() for k, v in s.module.state_dict().items()}
    params, buffers = s.init(3)
    s.apply({k: v * 2 for k, v in params.items()}, buffers, torch.randn(2, 1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in s.module.state_dict().items())


def test_bad_student_inputs():
    with pytest.raises(L2TError, match="unknown student 'resnet999'; known: densenet_bc"):
        create_student("resnet999", (1, 8, 8), 10)
    with pytest.raises(L2TError, match="lenet expects inputs of shape"):
        create_student("lenet", (1, 8, 8), 10)
    with pytest.raises(L2TError, match="bad options for student 'mlp'"):
        create_student("mlp", (1, 8, 8), 10, depth=3)
    with pytest.raises(L2TError, match="depth must be 6n \\+ 2"):
        create_student("resnet", (3, 32, 32), 10, depth=21)
    with pytest.raises(L2TError, match="WRN depth must be 6n \\+ 4"):
        create_student("wrn", (3, 32, 32), 10, depth=27)
    with pytest.raises(L2TError, match="expects images"):
        create_student("resnet8", (64,), 10)
