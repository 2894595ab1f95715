import pytest
import torch

import math

from l2t.students import create_student
from l2t.teachers import (
    AttentionTeacher, DevStats, ScheduleTeacher, StateSpec, TeachingSession, load_teacher, save_teacher, teacher_params,
)
from l2t.types import Batch, ClassificationTask


def test_attention_teacher_shapes_and_cross_entropy_start():
    t = AttentionTeacher(num_classes=7, state_dim=10, keys=5, base=0.1)
    assert t.W.shape == (7, 7, 5) and t.V.shape == (5, 10)
    phi, memory = t(torch.rand(10), None)
    assert phi.shape == (7, 7) and memory is None
    torch.testing.assert_close(phi, 0.1 * torch.eye(7))  # W = 0 at the start
    assert t.loss_kwargs() == {"scale": 40.0}


def test_attention_teacher_is_w_softmax_vs():
    t = AttentionTeacher(num_classes=3, state_dim=4, keys=2, base=0.0, w_init_std=1.0)
    s = torch.rand(4)
    phi, _ = t(s, None)
    a = torch.softmax(t.V @ s, 0)
    expected = t.W[..., 0] * a[0] + t.W[..., 1] * a[1]
    torch.testing.assert_close(phi, expected)


def _dev(y):
    return (Batch(torch.zeros(len(y), 1), y),)


def test_state_features_hand_computed():
    y_dev = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 2, 0])  # class 0: 1 of 2 right, class 1: 1 of 2, class 2: 2 of 2
    spec = StateSpec(num_classes=4, total_steps=100, every=10, dev=_dev(y_dev))
    tracker = spec.tracker()
    tracker.observe(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), Batch(None, torch.tensor([0, 1])))  # 1 of 2
    tracker.observe(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), Batch(None, torch.tensor([0, 1])))  # 2 of 2
    s = tracker.features(30, DevStats(pred, y_dev), torch.float64)
    expected = [0.3, 0.75, 4 / 6, 0.5, 0.5, 1.0, 0.0]  # class 3 never predicted: precision 0
    torch.testing.assert_close(s, torch.tensor(expected, dtype=torch.float64))
    assert ((s >= 0) & (s <= 1)).all()
    # the training-accuracy window restarts after a refresh
    assert tracker.features(40, DevStats(pred, y_dev), torch.float64)[1] == 0.0


def test_padding_never_changes_a_state_feature():
    """Training accuracy and cross entropy count the real positions of a masked batch only."""
    spec = StateSpec(num_classes=3, total_steps=10, every=5, dev=_dev(torch.tensor([0, 1])), features="generic")
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]])  # (1, 3, 3)
    mask = torch.tensor([[True, True, False]])
    values = []
    for junk in (0, 2):
        tracker = spec.tracker()
        tracker.observe(logits, Batch(None, torch.tensor([[0, 0, junk]]), mask))
        values.append(tracker.features(0, DevStats(torch.tensor([0, 1]), torch.tensor([0, 1]), ce=0.5), torch.float64))
    assert torch.equal(values[0], values[1])
    ce = torch.nn.functional.cross_entropy(logits[0, :2], torch.tensor([0, 0])).item()
    assert values[0][2] == 0.5 and values[0][1].item() == pytest.approx(ce / math.log(3))  # accuracy, CE / log C
    assert values[0][4] == 1.0 and values[0][3].item() == pytest.approx(0.5 / math.log(3))
    assert values[0][5:].abs().sum() == 0  # no change at the first refresh
    assert spec.dim == 8 == StateSpec(3000, 10, 5, _dev(torch.tensor([0])), "generic").dim


def test_session_refreshes_once_per_phase():
    student = create_student("mlp", ClassificationTask((1, 8, 8), 10), widths=[8])
    params, buffers = student.init(0)
    spec = StateSpec(10, total_steps=12, every=5, dev=(Batch(torch.randn(20, 1, 8, 8), torch.randint(0, 10, (20,))),))
    teacher = AttentionTeacher(10, spec.dim, w_init_std=0.1)
    session = TeachingSession(teacher, teacher_params(teacher), spec, student)
    outputs, batch = torch.randn(4, 10), Batch(None, torch.randint(0, 10, (4,)))
    coeffs = [session(t, outputs, batch, params, buffers) for t in range(12)]
    assert [p.start for p in session.phases] == [0, 5, 10]
    assert session.phase_of_step == dict(enumerate([0] * 5 + [1] * 5 + [2] * 2))  # global step -> phase
    assert all(c is session.phases[0].coeffs for c in coeffs[:5])
    assert session.phases[1].features[0] == 5 / 12


def test_off_diagonal_eps_travels_with_the_teacher(tmp_path):
    t = AttentionTeacher(3, 6, off_diagonal_eps=1e-3)
    assert t.loss_kwargs() == {"scale": 40.0, "eps": 1e-3}
    save_teacher(tmp_path / "t.safetensors", t, teacher_params(t), name="attention", state_every=5)
    loaded = load_teacher(tmp_path / "t.safetensors")
    assert loaded.teacher.off_diagonal_eps == 1e-3 and loaded.meta["loss_kwargs"]["eps"] == 1e-3
    with pytest.raises(ValueError, match="off_diagonal_eps"):
        AttentionTeacher(3, 6, off_diagonal_eps=-1.0)


def test_init_smoothing_starts_at_label_smoothing_for_every_state(tmp_path):
    from l2t.losses import create_loss

    t = AttentionTeacher(5, 7, base=1e-4, init_smoothing=0.1).double()
    m = 0.9 * torch.eye(5, dtype=torch.float64) + 0.1 / 5
    for seed in range(3):
        phi, _ = t(torch.randn(7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
        torch.testing.assert_close(phi, 1e-4 * m)
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    g_teacher = torch.autograd.grad(create_loss("bilinear", **t.loss_kwargs())(logits, y, phi).sum(), logits)[0]
    g_ls = torch.autograd.grad(create_loss("label_smoothing", eps=0.1)(logits, y, None).sum(), logits)[0]
    torch.testing.assert_close(g_teacher, g_ls, rtol=1e-3, atol=1e-3)
    save_teacher(tmp_path / "t.safetensors", t, teacher_params(t), name="attention", state_every=5)
    assert load_teacher(tmp_path / "t.safetensors").teacher.init_smoothing == 0.1
    with pytest.raises(ValueError, match="init_smoothing"):
        AttentionTeacher(3, 6, init_smoothing=1.0)


def test_schedule_teacher_is_piecewise_linear_in_t():
    t = ScheduleTeacher(4, 7, knots=3, base=0.1, init_gain=[1.0, 2.0, 4.0], init_smoothing=[0.0, 0.2, 0.1]).double()
    eye = torch.eye(4, dtype=torch.float64)
    for time, g, e in [(0.0, 1.0, 0.0), (0.25, 1.5, 0.1), (0.5, 2.0, 0.2), (0.75, 3.0, 0.15), (1.0, 4.0, 0.1)]:
        s = torch.rand(7, dtype=torch.float64)
        s[0] = time
        phi, memory = t(s)
        torch.testing.assert_close(phi, 0.1 * g * ((1 - e) * eye + e / 4))
        assert memory is None
    # the other features are not read
    s = torch.rand(7, dtype=torch.float64)
    torch.testing.assert_close(t(s)[0], t(torch.cat([s[:1], torch.zeros(6, dtype=torch.float64)]))[0])


def test_schedule_teacher_starts_at_cross_entropy_and_round_trips(tmp_path):
    from l2t.losses import create_loss

    t = ScheduleTeacher(5, 8, knots=1, base=1e-4).double()
    phi, _ = t(torch.rand(8, dtype=torch.float64))
    torch.testing.assert_close(phi, 1e-4 * torch.eye(5, dtype=torch.float64))
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    g_teacher = torch.autograd.grad(create_loss("bilinear", **t.loss_kwargs())(logits, y, phi).sum(), logits)[0]
    g_ce = torch.autograd.grad(create_loss("ce")(logits, y, None).sum(), logits)[0]
    torch.testing.assert_close(g_teacher, g_ce, rtol=1e-3, atol=1e-3)

    t = ScheduleTeacher(5, 8, knots=2, init_gain=[2.0, 3.5], init_smoothing=0.1)
    params = teacher_params(t)
    params["gain"] = torch.tensor([1.5, 2.5])  # a trained teacher travels with its own weights
    save_teacher(tmp_path / "t.safetensors", t, params, name="schedule", state_every=5)
    loaded = load_teacher(tmp_path / "t.safetensors")
    assert isinstance(loaded.teacher, ScheduleTeacher) and loaded.teacher.init_gain == [2.0, 3.5]
    torch.testing.assert_close(loaded.params["gain"], torch.tensor([1.5, 2.5]))
    torch.testing.assert_close(loaded.params["smoothing"], torch.tensor([0.1, 0.1]))


def test_schedule_teacher_rejects_bad_options():
    with pytest.raises(ValueError, match="init_gain has 3 values for 2 knots"):
        ScheduleTeacher(3, 6, knots=2, init_gain=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="knots"):
        ScheduleTeacher(3, 6, knots=0)
    with pytest.raises(ValueError, match="base"):
        ScheduleTeacher(3, 6, base=0.0)


def test_schedule_teacher_projects_onto_nonnegative_gain_and_smoothing_in_0_1():
    t = ScheduleTeacher(3, 6, knots=3)
    params = {"gain": torch.tensor([-0.5, 0.0, 2.0]), "smoothing": torch.tensor([-0.01, 0.3, 1.2])}
    projected = t.project(params)
    assert projected["gain"].tolist() == [0.0, 0.0, 2.0]
    torch.testing.assert_close(projected["smoothing"], torch.tensor([0.0, 0.3, 1.0]))
    assert params["smoothing"][0] == -0.01  # the caller's weights are not changed in place
    # the attention teacher is unconstrained
    a = AttentionTeacher(3, 6)
    params = teacher_params(a)
    assert a.project(params) is params


def test_schedule_teacher_class_offset_scales_rows_and_starts_at_cross_entropy(tmp_path):
    """``class_offset``: row ``y`` of Φ is scaled by ``exp(o_y − ō)``; ``o = 0`` is the plain schedule
    (so cross entropy's start), a common shift of the offsets changes nothing, the factored form
    equals the dense one, and the offsets round-trip."""
    from l2t.losses import create_loss

    plain = ScheduleTeacher(4, 7, knots=2, init_gain=[1.0, 2.0], init_smoothing=[0.1, 0.3]).double()
    zero = ScheduleTeacher(4, 7, knots=2, init_gain=[1.0, 2.0], init_smoothing=[0.1, 0.3], class_offset=True).double()
    s = torch.rand(7, dtype=torch.float64)
    torch.testing.assert_close(zero(s)[0], plain(s)[0])
    offset = [0.5, -1.0, 0.0, 2.0]
    t = ScheduleTeacher(4, 7, knots=2, init_gain=[1.0, 2.0], init_smoothing=[0.1, 0.3], class_offset=True,
                        init_offset=offset).double()
    o = torch.tensor(offset, dtype=torch.float64)
    torch.testing.assert_close(t(s)[0], (o - o.mean()).exp().unsqueeze(-1) * plain(s)[0])
    shifted = ScheduleTeacher(4, 7, knots=2, init_gain=[1.0, 2.0], init_smoothing=[0.1, 0.3], class_offset=True,
                              init_offset=[v + 3.0 for v in offset]).double()
    torch.testing.assert_close(shifted(s)[0], t(s)[0])
    factored = ScheduleTeacher(4, 7, knots=2, init_gain=[1.0, 2.0], init_smoothing=[0.1, 0.3], class_offset=True,
                               init_offset=offset, factored=True).double()
    loss = create_loss("bilinear", **t.loss_kwargs())
    z, y = torch.randn(9, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1, 0, 2, 1, 3])
    torch.testing.assert_close(loss(z, y, t(s)[0]), loss(z, y, factored(s)[0]))
    # class 1's examples pull their own offset one way and the others (through the mean) the other;
    # the gradient has no component along a common shift
    params = {k: v.detach().requires_grad_() for k, v in teacher_params(t).items()}
    phi = torch.func.functional_call(t, params, (s,))[0]
    only_class_1 = y == 1
    grad = torch.autograd.grad(loss(z[only_class_1], y[only_class_1], phi).sum(), params["offset"])[0]
    assert (grad[1] * grad[[0, 2, 3]] < 0).all()
    torch.testing.assert_close(grad.sum(), torch.zeros((), dtype=torch.float64))
    params["offset"] = params["offset"].detach() + 0.25
    save_teacher(tmp_path / "t.safetensors", t, params, name="schedule", state_every=5)
    loaded = load_teacher(tmp_path / "t.safetensors")
    assert loaded.teacher.class_offset
    torch.testing.assert_close(loaded.params["offset"].double(), torch.tensor(offset, dtype=torch.float64) + 0.25)
    with pytest.raises(ValueError, match="init_offset has 3 values for 4 classes"):
        ScheduleTeacher(4, 7, class_offset=True, init_offset=[0.0, 0.0, 0.0])
