import pytest
import torch

from l2t.errors import L2TError
from l2t.students import STUDENTS, create_student

# (name, input shape, options, pinned parameter count)
CASES = [
    ("mlp", (1, 8, 8), {"widths": [64]}, 64 * 64 + 64 + 64 * 10 + 10),
    ("mlp", (1, 28, 28), {"widths": [500]}, 784 * 500 + 500 + 500 * 10 + 10),
    ("lenet", (1, 28, 28), {}, 61706),
]


def test_every_registered_student_is_covered():
    assert {c[0] for c in CASES} == set(STUDENTS.list())


@pytest.mark.parametrize("name,shape,options,count", CASES)
def test_parameter_counts(name, shape, options, count):
    assert create_student(name, shape, 10, **options).num_params() == count


@pytest.mark.parametrize("name,shape,options,count", CASES)
def test_double_backward(name, shape, options, count):
    """Every student supports the Hessian-vector products the hypergradient needs (float64)."""
    s = create_student(name, shape, 10, **options)
    params, buffers = s.init(0, dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in params.items()}
    x = torch.randn(4, *shape, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    out, _ = s.apply(params, buffers, x)
    loss = torch.nn.functional.cross_entropy(out, y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    v = [torch.randn_like(g) for g in grads]
    hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, v)), list(params.values()))
    assert all(torch.isfinite(h).all() for h in hv)
    assert sum(h.abs().sum() for h in hv) > 0


def test_init_is_a_pure_function_of_seed():
    s = create_student("lenet", (1, 28, 28), 10)
    torch.manual_seed(123)
    a, _ = s.init(7)
    torch.manual_seed(456)
    b, _ = s.init(7)
    c, _ = s.init(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_apply_never_touches_module_parameters():
    s = create_student("mlp", (1, 8, 8), 10)
    before = {k: v.clone() for k, v in s.module.state_dict().items()}
    params, buffers = s.init(3)
    s.apply({k: v * 2 for k, v in params.items()}, buffers, torch.randn(2, 1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in s.module.state_dict().items())


def test_bad_student_inputs():
    with pytest.raises(L2TError, match="unknown student 'resnet999'; known: lenet, mlp"):
        create_student("resnet999", (1, 8, 8), 10)
    with pytest.raises(L2TError, match="lenet expects inputs of shape"):
        create_student("lenet", (1, 8, 8), 10)
    with pytest.raises(L2TError, match="bad options for student 'mlp'"):
        create_student("mlp", (1, 8, 8), 10, depth=3)
