import gzip
import struct

import numpy as np
import pytest
import torch

from l2t.data import BatchSchedule, TensorExamples, load_data, load_digits, load_idx_folder, load_npz, read_idx
from l2t.errors import L2TError


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (uint8) in LeCun's IDX format, as MNIST ships it."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        raw = gzip.compress(raw)
        path = path.with_name(path.name + ".gz")
    path.write_bytes(raw)


def make_idx_folder(folder, n_train=60, n_test=20, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.permutation(np.arange(n_train) % 10),  # every class in train
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        write_idx(folder / name, a, compress)
    return arrays


def test_digits_splits():
    d = load_digits()
    assert d.sizes() == {"train": 1000, "dev": 300, "test": 497}
    assert d.task.input_shape == (1, 8, 8) and d.num_classes == 10
    # splits are disjoint: no dev image appears in train
    train = {tuple(r) for r in d.train.x.flatten(1).tolist()}
    assert sum(tuple(r) in train for r in d.dev.x.flatten(1).tolist()) < 5  # digits has a few duplicate images


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder_round_trip(tmp_path, compress):
    arrays = make_idx_folder(tmp_path / "mnist", compress=compress)
    img = read_idx(tmp_path / "mnist" / ("train-images-idx3-ubyte" + (".gz" if compress else "")))
    assert np.array_equal(img, arrays["train-images-idx3-ubyte"])
    d = load_idx_folder(tmp_path / "mnist", dev_size=10)
    assert d.sizes() == {"train": 50, "dev": 10, "test": 20}
    assert d.task.input_shape == (1, 28, 28)
    assert torch.equal(d.test.y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]))
    # the same data through load_data by path
    assert load_data(str(tmp_path / "mnist"), dev_size=10).sizes() == d.sizes()


def test_corrupt_idx_files(tmp_path):
    make_idx_folder(tmp_path / "m")
    f = tmp_path / "m" / "train-images-idx3-ubyte"
    raw = f.read_bytes()
    f.write_bytes(raw[:-7])
    with pytest.raises(L2TError, match="corrupt IDX file .*header promises 47040 bytes of data, found 47033"):
        load_idx_folder(tmp_path / "m", dev_size=10)
    f.write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(L2TError, match="bad magic number"):
        read_idx(f)
    f.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(L2TError, match="cannot read IDX file"):
        read_idx(f)
    f.unlink()
    with pytest.raises(L2TError, match="missing IDX file train-images-idx3-ubyte"):
        load_idx_folder(tmp_path / "m", dev_size=10)


def _npz(path, **arrays):
    base = dict(
        x_train=np.random.rand(30, 5).astype(np.float32), y_train=np.arange(30) % 3,
        x_test=np.random.rand(10, 5).astype(np.float32), y_test=np.arange(10) % 3,
    )
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_npz_with_and_without_dev(tmp_path):
    d = load_npz(_npz(tmp_path / "a.npz"))
    assert d.sizes() == {"train": 27, "dev": 3, "test": 10} and d.num_classes == 3
    d = load_npz(_npz(tmp_path / "b.npz", x_dev=np.zeros((4, 5)), y_dev=np.array([0, 1, 2, 0]),
                      class_names=np.array(["cat", "dog", "eel"])))
    assert d.sizes() == {"train": 30, "dev": 4, "test": 10}
    assert d.class_names == ("cat", "dog", "eel")


@pytest.mark.parametrize(
    "arrays,message",
    [
        (dict(y_train=np.arange(30) % 3 - 1), "got a negative label"),
        (dict(y_test=np.full(10, 0.5)), "labels must be integers"),
        (dict(y_train=np.arange(29) % 3), "train has 30 inputs but 29 labels"),
        (dict(x_test=np.random.rand(10, 6)), r"test inputs have shape \(6,\), train inputs \(5,\)"),
        (dict(x_train=np.full((30, 5), np.nan)), "train inputs contain NaN"),
        (dict(y_test=None), "missing arrays y_test"),
        (dict(x_dev=np.zeros((2, 5))), "give both x_dev and y_dev"),
        (dict(class_names=np.array(["a", "b"])), "labels out of range"),
    ],
)
def test_bad_npz_inputs(tmp_path, arrays, message):
    with pytest.raises(L2TError, match=message):
        load_npz(_npz(tmp_path / "bad.npz", **arrays))


def test_corrupt_or_missing_data_paths(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(L2TError, match="corrupt .npz file"):
        load_data(str(tmp_path / "junk.npz"))
    with pytest.raises(L2TError, match="no such data file"):
        load_data(str(tmp_path / "missing.npz"))
    with pytest.raises(L2TError, match="unknown data set 'cifar-1000'"):
        load_data("cifar-1000")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(L2TError, match="expected a folder of IDX files or a .npz file"):
        load_data(str(tmp_path / "notes.txt"))


def test_batch_schedule_is_a_pure_function_of_seed_and_step():
    x, y = torch.arange(100.0).unsqueeze(1), torch.arange(100)
    a = BatchSchedule(TensorExamples(x, y), 32, seed=5)
    b = BatchSchedule(TensorExamples(x, y), 32, seed=5)
    forward = [a(t).targets for t in range(10)]
    backward = [b(t).targets for t in reversed(range(10))][::-1]  # called in the opposite order
    assert all(torch.equal(f, g) for f, g in zip(forward, backward))
    # each epoch (3 batches of 32, tail dropped) has no repeats, and epochs are reshuffled
    epoch0 = torch.cat(forward[:3])
    assert len(set(epoch0.tolist())) == 96
    assert not torch.equal(forward[0], forward[3])
    assert not torch.equal(BatchSchedule(TensorExamples(x, y), 32, seed=6)(0).targets, forward[0])


def test_batch_schedule_augmentation_is_replayable():
    x, y = torch.zeros(10, 3), torch.arange(10)
    sched = BatchSchedule(TensorExamples(x, y), 5, seed=1, augment=lambda xb, g: xb + torch.rand(xb.shape, generator=g))
    assert torch.equal(sched(7).inputs, sched(7).inputs)
    assert not torch.equal(sched(7).inputs, sched(8).inputs)
    # the seed of the step's own randomness (dropout) is a pure function of (seed, step) too
    assert sched(7).seed == sched(7).seed != sched(8).seed
    assert BatchSchedule(TensorExamples(x, y), 5, seed=2)(7).seed != sched(7).seed


def test_toy_reverse_batches_are_padded_and_masked():
    from l2t.data import load_data

    d = load_data("toy-reverse", train_size=20, dev_size=6, test_size=6, split_seed=3)
    assert d.task.kind == "seq2seq" and d.num_classes == d.task.tgt_vocab == 9
    sched = BatchSchedule(d.train, 8, seed=0)
    for t in range(5):
        b = sched(t)
        src, tgt_in = b.inputs["src"], b.inputs["tgt_in"]
        assert tgt_in.shape == b.targets.shape == b.mask.shape
        assert (tgt_in[:, 0] == 1).all()  # BOS
        for i in range(len(src)):
            n = int((src[i] != 0).sum()) - 1  # symbols before EOS
            symbols = src[i, :n]
            assert torch.equal(b.targets[i, :n], symbols.flip(0)) and b.targets[i, n] == 2  # reversed, then EOS
            assert b.mask[i].tolist() == [True] * (n + 1) + [False] * (b.targets.shape[1] - n - 1)
        assert b.mask.any(0).all()  # trimmed to the longest member
    assert sum(b.count() for b in d.dev.chunks(4)) == int((d.dev.tgt[:, 1:] != 0).sum())
    again = load_data("toy-reverse", train_size=20, dev_size=6, test_size=6, split_seed=3)
    assert torch.equal(again.train.src, d.train.src)
