"""load_dataset: offline data, and image data sets read from tiny copies in the real on-disk formats."""

import pickle
import struct

import numpy as np
import pytest
import torch

from disciplined_widgets import load_dataset


def test_mnist1d_is_generated_locally_and_seeded(mnist1d):
    assert mnist1d.x_train.shape == (4000, 40) and mnist1d.x_val.shape == (1000, 40)
    assert mnist1d.x_train.dtype == torch.float32 and mnist1d.y_train.dtype == torch.int64
    assert mnist1d.input_shape == (40,) and mnist1d.num_classes == 10
    assert set(mnist1d.y_train.tolist()) == set(range(10))
    again = load_dataset("mnist1d", seed=0, num_samples=1000)
    other = load_dataset("mnist1d", seed=1, num_samples=1000)
    same = load_dataset("mnist1d", seed=0, num_samples=1000)
    assert torch.equal(again.x_train, same.x_train)
    assert not torch.equal(again.x_train, other.x_train)
    assert len(again.x_train) + len(again.x_val) == 1000


def test_mnist1d_is_generated_once_per_seed_and_options_and_each_caller_gets_its_own_copy(monkeypatch):
    import mnist1d.data

    made = []
    make = mnist1d.data.make_dataset
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda args: made.append(args.seed) or make(args))
    first = load_dataset("mnist1d", seed=7, num_samples=600)
    first.x_train += 100.0  # the caller's change ...
    second = load_dataset("mnist1d", seed=7, num_samples=600)
    assert made == [7] and second.x_train.abs().max() < 100  # ... is not the next caller's
    assert len(load_dataset("mnist1d", seed=7, num_samples=700).x_train) > len(second.x_train)
    assert made == [7, 7]  # other options: generated
    noisy = load_dataset("mnist1d", seed=7, num_samples=600, iid_noise_scale=0.5)
    assert not torch.equal(noisy.x_train, second.x_train) and len(made) == 3


def test_loading_mnist1d_leaves_the_global_random_generators_as_they_were():
    import random

    random.seed(3)
    np.random.seed(3)
    expected = (random.random(), np.random.rand())
    random.seed(3)
    np.random.seed(3)
    load_dataset("mnist1d", seed=11, num_samples=600)  # generated: mnist1d seeds both
    load_dataset("mnist1d", seed=11, num_samples=600)  # from the cache
    assert (random.random(), np.random.rand()) == expected


def test_mnist1d_rejects_unknown_options():
    with pytest.raises(TypeError, match="nosie"):
        load_dataset("mnist1d", nosie=0.1)


def test_digits_split_is_seeded_and_disjoint(digits):
    assert digits.input_shape == (1, 8, 8)
    assert len(digits.x_train) + len(digits.x_val) == 1797
    assert 0 <= digits.x_train.min() and digits.x_train.max() <= 1
    other = load_dataset("digits", seed=1)
    assert not torch.equal(digits.y_val, other.y_val)
    # no image of the validation split appears in the training split
    train_rows = {tuple(r) for r in digits.x_train.flatten(1).tolist()}
    overlap = sum(tuple(r) in train_rows for r in digits.x_val.flatten(1).tolist())
    assert overlap < 5  # the digits set holds a few exact duplicate images


def test_subsets_are_seeded_and_sized():
    a = load_dataset("digits", train_size=100, val_size=50)
    b = load_dataset("digits", train_size=100, val_size=50)
    assert len(a.x_train) == 100 and len(a.x_val) == 50
    assert torch.equal(a.x_train, b.x_train)
    with pytest.raises(ValueError, match="train_size"):
        load_dataset("digits", train_size=0)
    with pytest.raises(ValueError, match="train_size"):
        load_dataset("digits", train_size=10**6)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="mnist1d"):
        load_dataset("imagenet")


# ---- tiny copies in torchvision's on-disk formats ----

def _pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_tiny_cifar10(root, per_batch=4):
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _pickle(folder / name, {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                                "labels": rng.integers(0, 10, per_batch).tolist()})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names})
    return names


def write_tiny_cifar100(root, n=6):
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    for name in ("train", "test"):
        _pickle(folder / name, {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                "fine_labels": rng.integers(0, 100, n).tolist(),
                                "coarse_labels": rng.integers(0, 20, n).tolist()})
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})


def write_idx(path, array):
    """MNIST's IDX format: magic (0x08 = uint8, then the number of dimensions), sizes, bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_tiny_mnist(root, folder="MNIST", n_train=5, n_test=3):
    rng = np.random.default_rng(2)
    raw = root / folder / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))


def test_cifar10_from_pickled_batches(tmp_path):
    names = write_tiny_cifar10(tmp_path)
    data = load_dataset("cifar10", root=tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_val.shape == (4, 3, 32, 32)
    assert data.classes == names and data.input_shape == (3, 32, 32)
    # the first pixel of the first image, red channel, normalised with CIFAR-10's statistics
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    expected = (raw["data"][0, 0] / 255 - 0.4914) / 0.2470
    assert data.x_train[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)
    assert data.y_train[:4].tolist() == raw["labels"]


def test_cifar100_from_pickled_files(tmp_path):
    write_tiny_cifar100(tmp_path)
    data = load_dataset("cifar100", root=tmp_path)
    assert data.x_train.shape == (6, 3, 32, 32) and data.num_classes == 100


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_from_idx_files(tmp_path, name, folder):
    write_tiny_mnist(tmp_path, folder)
    data = load_dataset(name, root=tmp_path)
    assert data.x_train.shape == (5, 1, 28, 28) and data.x_val.shape == (3, 1, 28, 28)
    assert data.y_train.dtype == torch.int64 and data.num_classes == 10


def test_root_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path)
    monkeypatch.setenv("DISCIPLINED_WIDGETS_DATA", str(tmp_path))
    assert len(load_dataset("mnist").x_train) == 5


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist"])
def test_missing_files_say_how_to_get_them(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="download=True") as error:
        load_dataset(name, root=tmp_path)
    assert str(tmp_path) in str(error.value)


# ---- files that are there but broken, and arguments of the wrong kind ----

@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a dict"])
@pytest.mark.parametrize("file", ["data_batch_3", "test_batch", "batches.meta"])
def test_a_corrupt_cifar10_file_is_named_with_what_to_do(tmp_path, file, damage):
    write_tiny_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / file
    path.write_bytes({"truncated": path.read_bytes()[:100], "garbage": b"\x00not a pickle" * 9,
                      "not a dict": pickle.dumps([1, 2, 3])}[damage])
    with pytest.raises(ValueError) as error:
        load_dataset("cifar10", root=tmp_path)
    message = str(error.value)
    assert f"{path} is truncated or corrupt" in message
    assert f"Delete {path.parent}" in message and "download=True" in message


def test_a_cifar10_batch_without_its_labels_names_the_folder(tmp_path):
    write_tiny_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    _pickle(folder / "data_batch_2", {"data": np.zeros((4, 3072), dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"CIFAR10 files under .* are corrupt \(KeyError"):
        load_dataset("cifar10", root=tmp_path)


def test_a_truncated_mnist_file_is_named_not_called_missing(tmp_path):
    write_tiny_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match=f"{path} is truncated or corrupt .*Delete"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize("kwargs,match", [
    (dict(root=123), "root must be a path"),
    (dict(root=["data"]), "root must be a path"),
    (dict(download="no"), "download must be True or False"),
    (dict(download=1), "download must be True or False"),
])
def test_arguments_of_the_wrong_kind_are_named(kwargs, match):
    with pytest.raises(TypeError, match=match):
        load_dataset("cifar10", **kwargs)
