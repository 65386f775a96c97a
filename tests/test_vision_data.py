"""Datasets as in-memory tensors: real MNIST, synthetic Fashion-MNIST/CIFAR files, errors, splits, augmentation."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import NcanvasError
from core.vision import data as vd
from tests.vision_helpers import make_cifar_dataset, make_idx_dataset, write_idx


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCANVAS_OFFLINE", "1")  # no test may try the network


def test_real_mnist(mnist_dir: Path) -> None:
    train = vd.load_split("mnist", "train", mnist_dir)
    test = vd.load_split("mnist", "test", mnist_dir)
    assert train.x.shape == (60000, 1, 28, 28) and train.x.dtype == torch.uint8
    assert test.x.shape == (10000, 1, 28, 28) and len(test.y) == 10000
    assert test.y[:5].tolist() == [7, 2, 1, 0, 4]  # the famous first test digits
    x = vd.normalize(train.x[:2000], vd.get_info("mnist"))
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1


def test_fashion_in_torchvision_layout_uncompressed(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "FashionMNIST" / "raw", gz=False)
    tr = vd.load_split("fashion-mnist", "train", tmp_path)
    assert tr.x.shape == (64, 1, 28, 28) and vd.get_info("fashion-mnist").class_names[9] == "Ankle boot"


def test_cifar_batches(tmp_path: Path) -> None:
    make_cifar_dataset(tmp_path, per_batch=10)
    tr, te = vd.load_split("cifar10", "train", tmp_path), vd.load_split("cifar10", "test", tmp_path)
    assert tr.x.shape == (50, 3, 32, 32) and te.x.shape == (10, 3, 32, 32) and tr.y.dtype == torch.int64


def test_cifar_pickle_with_code_is_refused(tmp_path: Path) -> None:
    make_cifar_dataset(tmp_path, per_batch=2)

    class Evil:
        def __reduce__(self):  # would run a command on a plain pickle.load
            return (print, ("pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(NcanvasError, match="not a readable CIFAR-10 batch"):
        vd.load_split("cifar10", "test", tmp_path)


def test_missing_files_name_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(NcanvasError) as e:
        vd.load_split("mnist", "train", tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg and "\n" not in msg
    assert "--data-dir" in msg


def test_truncated_idx(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(NcanvasError, match="truncated"):
        vd.load_split("mnist", "test", tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28)), gz=False)
    with pytest.raises(NcanvasError, match="3 images but 32 labels"):
        vd.load_split("mnist", "test", tmp_path)


def test_unknown_dataset() -> None:
    with pytest.raises(NcanvasError, match="unknown dataset 'svhn'"):
        vd.get_info("svhn")


def test_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, n_train=100)
    full = vd.load_split("mnist", "train", tmp_path)
    full = vd.TensorData(full.x, torch.arange(100))  # labels = ids, to see which samples went where
    a_tr, a_va = vd.split_train_val(full, 0.2, seed=3)
    b_tr, b_va = vd.split_train_val(full, 0.2, seed=3)
    _, c_va = vd.split_train_val(full, 0.2, seed=4)
    assert len(a_va) == 20 and len(a_tr) == 80
    assert torch.equal(a_va.y, b_va.y) and not torch.equal(a_va.y, c_va.y)
    assert not set(a_tr.y.tolist()) & set(a_va.y.tolist())


def test_augment_crop_flip() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8).to(torch.uint8)
    torch.manual_seed(0)
    out = vd.augment_crop_flip(x, pad=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    ident = vd.augment_crop_flip(x, pad=0, generator=torch.Generator().manual_seed(1))
    for i in range(2):  # with no padding each sample is itself or its mirror
        assert torch.equal(ident[i], x[i]) or torch.equal(ident[i], x[i].flip(2))


def test_load_sample(mnist_dir: Path) -> None:
    pixels, label, name = vd.load_sample("mnist:0", mnist_dir)
    assert pixels.shape == (28, 28, 1) and pixels.dtype == np.uint8 and label == 7 and name == "7"
    _, label, _ = vd.load_sample("mnist:train:0", mnist_dir)
    assert label == 5
    with pytest.raises(NcanvasError, match="out of range"):
        vd.load_sample("mnist:10000", mnist_dir)


@pytest.mark.parametrize("spec", ["mnist", "mnist:x", "mnist:val:3", "a:b:c:d"])
def test_bad_sample_specs(spec: str) -> None:
    with pytest.raises(NcanvasError):
        vd.parse_sample_spec(spec)


def test_a_gzip_bomb_is_refused_after_its_header(tmp_path: Path) -> None:
    """Issue 13.7: an IDX .gz inflating far beyond what its header declares is stopped at the declared size, and a
    header declaring too much is refused before any payload is read."""
    import gzip
    import struct
    import tracemalloc

    from core.vision.data import read_idx

    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">III", 10, 28, 28))
        for _ in range(100):
            f.write(b"\0" * (1 << 20))  # 100 MB of zeros behind a header declaring 7,840 bytes
    tracemalloc.start()
    with pytest.raises(NcanvasError, match="holds more data than its header declares"):
        read_idx(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, f"read {peak / 2**20:.0f} MiB"
    huge = tmp_path / "huge-idx3-ubyte.gz"
    with gzip.open(huge, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">III", 10_000_000, 280, 280))
    with pytest.raises(NcanvasError, match=r"declares 784,000,000,000 bytes of data \(10000000 x 280 x 280\)"):
        read_idx(huge)
