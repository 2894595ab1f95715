"""CIFAR python-format readers and augmentation, on fixtures written in the real format."""

import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from l2t.data import DATASETS, crop_flip, load_cifar, load_data, read_cifar_pickle
from l2t.data.download import SOURCES, download, md5sum, safe_extract, verify
from l2t.errors import L2TError


def write_cifar(root, classes=10, per_batch=20, n_test=15, seed=0):
    """Batches as CIFAR ships them: a pickled dict with bytes keys, uint8 (N, 3072) data."""
    rng = np.random.default_rng(seed)
    if classes == 10:
        folder, train, labels_key, meta, names_key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], b"labels", "batches.meta", b"label_names"
    else:
        folder, train, labels_key, meta, names_key = root / "cifar-100-python", ["train"], b"fine_labels", "meta", b"fine_label_names"
    folder.mkdir(parents=True)
    arrays = {}
    for name, n in [(b, per_batch) for b in train] + [("test_batch" if classes == 10 else "test", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, n).tolist()
        arrays[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", labels_key: labels, b"data": data, b"filenames": [b"f"] * n}, f, protocol=2)
    with open(folder / meta, "wb") as f:
        pickle.dump({names_key: [f"class{i}".encode() for i in range(classes)], b"num_vis": 3072}, f, protocol=2)
    return folder, arrays


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_round_trip(tmp_path, classes):
    folder, arrays = write_cifar(tmp_path, classes)
    d = load_data(str(tmp_path), dev_size=10)  # the parent folder is recognised too
    n_train = 100 if classes == 10 else 20
    assert d.sizes() == {"train": n_train - 10, "dev": 10, "test": 15}
    assert d.task.input_shape == (3, 32, 32) and d.num_classes == classes and d.class_names[1] == "class1"
    test_name = "test_batch" if classes == 10 else "test"
    assert torch.equal(d.test.y, torch.tensor(arrays[test_name][1]))
    # pixel layout: 1024 red, 1024 green, 1024 blue, row-major; standardised per channel on train
    raw = torch.from_numpy(arrays[test_name][0].reshape(-1, 3, 32, 32).astype(np.float32) / 255)
    train_raw = torch.cat([torch.from_numpy(arrays[b][0].reshape(-1, 3, 32, 32).astype(np.float32) / 255)
                           for b in arrays if b != test_name])
    train_raw = train_raw[torch.randperm(len(train_raw), generator=torch.Generator().manual_seed(0))[10:]]
    mean, std = train_raw.mean(dim=(0, 2, 3))[:, None, None], train_raw.std(dim=(0, 2, 3))[:, None, None]
    torch.testing.assert_close(d.test.x, (raw - mean) / std, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d.train.x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)


def test_named_cifar_reads_from_the_data_dir(tmp_path, monkeypatch):
    write_cifar(tmp_path / "cifar10")
    monkeypatch.setenv("L2T_DATA_DIR", str(tmp_path))
    assert DATASETS.create("cifar10", dev_size=5).num_classes == 10
    monkeypatch.setenv("L2T_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(L2TError, match="data set 'cifar100' not found.*--download"):
        load_data("cifar100")


def test_a_tampered_cifar_pickle_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(L2TError, match="corrupt or unsafe CIFAR file.*refusing to load global"):
        read_cifar_pickle(tmp_path / "data_batch_1")
    assert not marker.exists()


def test_corrupt_cifar_files(tmp_path):
    folder, _ = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(L2TError, match="corrupt or unsafe CIFAR file .*data_batch_3"):
        load_cifar(tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f, protocol=2)
    with pytest.raises(L2TError, match=r"data \(4, 100\)"):
        load_cifar(tmp_path)
    with pytest.raises(L2TError, match="no CIFAR-100 python files"):
        load_cifar(tmp_path, 100)


def test_crop_flip_is_a_shifted_possibly_mirrored_window():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    out = crop_flip(x, g)
    assert out.shape == x.shape
    assert torch.equal(out, crop_flip(x, torch.Generator().manual_seed(0)))  # a function of the generator
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for b in range(2):  # each output is some 32x32 window of the padded image, maybe flipped
        windows = [padded[b, :, i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
        assert any(torch.equal(out[b], w) or torch.equal(out[b], w.flip(-1)) for w in windows)
    flips = [not torch.equal(crop_flip(x, torch.Generator().manual_seed(s))[0, 0, 10, 10:12],
                             crop_flip(x, torch.Generator().manual_seed(s))[0, 0, 10, 10:12].sort().values) for s in range(40)]
    assert 5 < sum(flips) < 35  # about half the images are mirrored


def test_download_checks_without_the_network(tmp_path):
    """verify and safe_extract on local files (tests never download)."""
    f = tmp_path / "a.bin"
    f.write_bytes(b"hello")
    verify(f, md5sum(f))
    with pytest.raises(L2TError, match="checksum mismatch"):
        verify(f, "0" * 32)
    ok = tmp_path / "ok.tar.gz"
    with tarfile.open(ok, "w:gz") as tar:
        tar.add(f, arcname="folder/a.bin")
    safe_extract(ok, tmp_path / "out")
    assert (tmp_path / "out" / "folder" / "a.bin").read_bytes() == b"hello"
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(f, arcname="../../escape.bin")
    with pytest.raises(L2TError, match="refusing unsafe archive member"):
        safe_extract(evil, tmp_path / "out2")
    with pytest.raises(L2TError, match="no download known for 'digits'"):
        download("digits", tmp_path)
    assert set(SOURCES) == {"mnist", "fashion-mnist", "cifar10", "cifar100", "voc", "multi30k"}
    assert all(len(s.md5) == 32 and s.unpack in ("", "tar", "gunzip") for files in SOURCES.values() for s in files)
