import pytest
import torch

from l2t.errors import L2TError
from l2t.students import STUDENTS, create_student
from l2t.types import Batch, ClassificationTask, DetectionTask, HeadOutputs, Seq2SeqTask, SegmentationTask

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

# Sequence-to-sequence students on one 40-token vocabulary (embeddings shared where the student
# can): (name, options, pinned parameter count, in the default suite?). The small transformer's
# count by hand: embedding 40·16 = 640; encoder layer 2 LayerNorms 64 + attention 4·(16·16 + 16)
# = 1088 + FFN 16·32 + 32 + 32·16 + 16 = 1072; decoder layer 96 + 2·1088 + 1072; final LayerNorms
# 64: 640 + 2224 + 3344 + 64 = 6272.
SEQ_TASK = Seq2SeqTask(src_vocab=40, tgt_vocab=40)
SEQ_CASES = [
    ("transformer", {"d_model": 16, "heads": 2, "ffn": 32, "enc_layers": 1, "dec_layers": 1}, 6272, True),
    ("transformer", {}, 3964928, True),
    ("transformer_iwslt", {}, 31565824, False),
    ("lstm1", {"d_emb": 8, "d_hidden": 12}, None, True),
    ("lstm1", {}, 1081384, True),
    ("lstm2", {"d_emb": 8, "d_hidden": 12}, 5876, True),
    ("lstm2", {}, 2263336, True),
]
SEQ_SMALL = [c[:2] for c in SEQ_CASES if c[1]]


# Dense students on 32x32 one-channel images, 11 classes, widths 8/16/32: (name, task, count).
# U-Net by hand: levels 680 + 3520 + 13952 (3x3 convolutions without bias, BatchNorm 2c each),
# transposed convolutions 520 + 2064, merge blocks 1760 + 6976, 1x1 head 99: 29571. Detector:
# backbone 88 + 1184 + 2336 + 4672 + 9280, class head 9248 + 363, box head 9248 + 132: 36551.
DENSE_CASES = [
    ("unet", SegmentationTask((1, 32, 32), 11), 29571),
    ("detector", DetectionTask((1, 32, 32), 11, stride=4), 36551),
]


def test_every_registered_student_is_covered():
    covered = {c[0] for c in CASES} | {c[0] for c in SEQ_CASES} | {c[0] for c in DENSE_CASES}
    assert covered == set(STUDENTS.list())


@pytest.mark.parametrize("name,task,count", DENSE_CASES)
def test_dense_parameter_counts(name, task, count):
    assert create_student(name, task, widths=[8, 16, 32]).num_params() == count


@pytest.mark.parametrize("name,shape,options,count", [c[:4] for c in CASES])
def test_parameter_counts(name, shape, options, count):
    """Pinned; the named ones are the published counts (He et al.'s option-A ResNets 0.27M / 0.46M,
    WRN-16-4 2.7M, WRN-28-10 36.5M, DenseNet-BC-100-12 0.8M, DenseNet-BC-190-40 25.6M)."""
    assert create_student(name, ClassificationTask(shape, 10), **options).num_params() == count


def _double_backward(name, shape, options):
    s = create_student(name, ClassificationTask(shape, 10), **options)
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
    s = create_student(name, ClassificationTask(shape, 10), **options)
    params, buffers = s.init(1, dtype=torch.float64)
    out, _ = s.apply(params, buffers, torch.randn(3, *shape, dtype=torch.float64), "eval", features=True)
    assert isinstance(out, HeadOutputs)
    torch.testing.assert_close(out.logits, out.features @ out.weight.t() + out.bias)


def test_init_is_a_pure_function_of_seed():
    s = create_student("lenet", ClassificationTask((1, 28, 28), 10))
    torch.manual_seed(123)
    a, _ = s.init(7)
    torch.manual_seed(456)
    b, _ = s.init(7)
    c, _ = s.init(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cifar_nets_get_he_initialised_convolutions():
    s = create_student("resnet20", ClassificationTask((3, 32, 32), 10))
    params, _ = s.init(0)
    w = params["blocks.8.conv2.weight"]  # 64 -> 64, 3x3: He (fan out) std sqrt(2 / (64 * 9))
    assert abs(float(w.std()) - (2 / (64 * 9)) ** 0.5) < 0.1 * (2 / (64 * 9)) ** 0.5


def test_apply_never_touches_module_parameters():
    s = create_student("mlp", ClassificationTask((1, 8, 8), 10))
    before = {k: v.clone() for k, v in s.module.state_dict().items()}
    params, buffers = s.init(3)
    s.apply({k: v * 2 for k, v in params.items()}, buffers, torch.randn(2, 1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in s.module.state_dict().items())


def test_bad_student_inputs():
    with pytest.raises(L2TError, match="unknown student 'resnet999'; known: densenet_bc"):
        create_student("resnet999", ClassificationTask((1, 8, 8), 10))
    with pytest.raises(L2TError, match="lenet expects inputs of shape"):
        create_student("lenet", ClassificationTask((1, 8, 8), 10))
    with pytest.raises(L2TError, match="bad options for student 'mlp'"):
        create_student("mlp", ClassificationTask((1, 8, 8), 10), depth=3)
    with pytest.raises(L2TError, match="depth must be 6n \\+ 2"):
        create_student("resnet", ClassificationTask((3, 32, 32), 10), depth=21)
    with pytest.raises(L2TError, match="WRN depth must be 6n \\+ 4"):
        create_student("wrn", ClassificationTask((3, 32, 32), 10), depth=27)
    with pytest.raises(L2TError, match="expects images"):
        create_student("resnet8", ClassificationTask((64,), 10))


@pytest.mark.parametrize("name,options,count", [c[:3] for c in SEQ_CASES if c[2]])
def test_seq2seq_parameter_counts(name, options, count):
    assert create_student(name, SEQ_TASK, **options).num_params() == count


def _seq_batch(lengths, tgt_lengths, vocab=40, pad=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, S, T = len(lengths), max(lengths), max(tgt_lengths)
    src = torch.full((B, S), pad)
    tgt = torch.full((B, T), pad)
    for i, (ls, lt) in enumerate(zip(lengths, tgt_lengths)):
        src[i, :ls] = torch.randint(3, vocab, (ls,), generator=g)
        tgt[i, :lt] = torch.randint(3, vocab, (lt,), generator=g)
    return src, tgt


@pytest.mark.parametrize("name,options", SEQ_SMALL)
def test_seq2seq_double_backward_and_shapes(name, options):
    s = create_student(name, SEQ_TASK, **options)
    params, buffers = s.init(0, dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in params.items()}
    src, tgt = _seq_batch([5, 3, 7], [4, 6, 2])
    out, _ = s.apply(params, buffers, {"src": src, "tgt_in": tgt}, rng=1)
    assert out.shape == (3, 6, 40)
    mask = tgt != 0
    loss = torch.nn.functional.cross_entropy(out[mask], tgt[mask])
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    v = [torch.randn_like(g) for g in grads]
    hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, v)), list(params.values()), allow_unused=True)
    assert all(torch.isfinite(h).all() for h in hv if h is not None)
    assert sum(h.abs().sum() for h in hv if h is not None) > 0


@pytest.mark.parametrize("name,options", SEQ_SMALL)
def test_padding_never_reaches_a_real_position(name, options):
    """Tokens behind the padding (source and target side) and extra padding columns leave the
    logits at every real position unchanged, in eval mode and in a seeded training pass."""
    s = create_student(name, SEQ_TASK, **{**options, "dropout": 0.2})
    params, buffers = s.init(0, dtype=torch.float64)
    src, tgt = _seq_batch([5, 3, 7], [4, 6, 2])
    noisy_src = torch.cat([src, torch.zeros(3, 2, dtype=torch.long)], 1)  # two more padding columns
    noisy_tgt = torch.cat([tgt, torch.zeros(3, 1, dtype=torch.long)], 1)
    real_src, real_tgt = noisy_src != 0, noisy_tgt != 0
    noisy_src = torch.where(real_src, noisy_src, torch.randint(3, 40, noisy_src.shape))  # junk behind the mask
    noisy_tgt = torch.where(real_tgt, noisy_tgt, torch.randint(3, 40, noisy_tgt.shape))

    for mode in ("eval", "train"):
        a, _ = s.apply(params, buffers, {"src": src, "tgt_in": tgt}, mode, rng=3)
        # the model reads padding from the pad id, so put the pad id back behind the mask on the
        # source (what a batch holds); the decoder's junk stays: causality must ignore it
        b, _ = s.apply(params, buffers, {"src": torch.where(real_src, noisy_src, 0), "tgt_in": noisy_tgt}, mode, rng=3)
        mask = tgt != 0
        if mode == "eval":
            torch.testing.assert_close(a[mask], b[:, : tgt.shape[1]][mask], rtol=1e-12, atol=1e-12)
        else:  # dropout masks depend on the tensor shapes; only check determinism under a seed
            c, _ = s.apply(params, buffers, {"src": src, "tgt_in": tgt}, mode, rng=3)
            assert torch.equal(a, c)


def test_stochastic_layers_replay_under_the_batch_seed():
    s = create_student("mlp", ClassificationTask((1, 8, 8), 10), dropout=0.5)
    params, buffers = s.init(0)
    x = torch.randn(6, 1, 8, 8)
    a, _ = s.apply(params, buffers, x, rng=7)
    torch.manual_seed(123)  # the global generator does not matter, and is left as it was
    state = torch.get_rng_state()
    b, _ = s.apply(params, buffers, x, rng=7)
    assert torch.equal(torch.get_rng_state(), state)
    c, _ = s.apply(params, buffers, x, rng=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    e, _ = s.apply(params, buffers, x, "eval")
    f, _ = s.apply(params, buffers, x, "batch_stats")
    assert torch.equal(e, f)  # no BatchNorm here: the dev objective's mode only turns dropout off
    s.check_replay(params, buffers, Batch(x, torch.zeros(6, dtype=torch.long), seed=7))


def test_a_layer_whose_randomness_cannot_be_replayed_is_named():
    import numpy as np

    from l2t.errors import L2TError

    class NumpyNoise(torch.nn.Module):
        def forward(self, x):
            return x + torch.from_numpy(np.random.randn(*x.shape)).to(x.dtype) if self.training else x

    s = create_student("mlp", ClassificationTask((1, 8, 8), 10), widths=[8])
    s.module.insert(2, NumpyNoise())  # after the first Linear
    s = type(s)("noisy", s.module, s.task)
    params, buffers = s.init(0)
    batch = Batch(torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), seed=1)
    with pytest.raises(L2TError, match=r"layer '2' \(NumpyNoise\) draws randomness that cannot be replayed"):
        s.check_replay(params, buffers, batch)


def test_seq2seq_students_refuse_an_image_task_and_back():
    from l2t.errors import L2TError

    with pytest.raises(L2TError, match="transformer is a sequence-to-sequence student; the data set poses a classification task"):
        create_student("transformer", ClassificationTask((1, 8, 8), 10))
    with pytest.raises(L2TError, match="lenet is an image classifier; the data set poses a seq2seq task"):
        create_student("lenet", SEQ_TASK)
