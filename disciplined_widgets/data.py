"""Data sets as tensors: offline ones generated here, image ones through torchvision.

``load_dataset(name)`` returns a :class:`Dataset` whose train and validation splits are
plain tensors (float inputs, int64 class indices), ready for :class:`TensorLoader` or a
``TensorDataset``. Offline data sets need no network:

- ``"mnist1d"`` (default): MNIST-1D, generated locally and seeded by
  ``mnist1d.data.make_dataset`` (4000 train / 1000 validation sequences of length 40);
- ``"digits"``: scikit-learn's bundled 8x8 digits (1797 images), split by a seeded
  permutation.

Image data sets read torchvision's on-disk formats under ``root`` and download only when
``download=True``: ``"cifar10"``, ``"cifar100"``, ``"mnist"``, ``"fashion_mnist"``. Their
validation split is the official test set, as in the papers.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .checks import an_int, flag, path_or_none

DEFAULT_ROOT_ENV = "DISCIPLINED_WIDGETS_DATA"

# Per-channel mean and standard deviation of the training images, for normalisation.
IMAGE_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}


@dataclass
class Dataset:
    """Train and validation tensors of one data set."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: list[str]
    input_shape: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.x_train)} train, {len(self.x_val)} validation, "
            f"input shape {self.input_shape}, {self.num_classes} classes)"
        )


def default_root() -> Path:
    """Where image data sets live: ``$DISCIPLINED_WIDGETS_DATA`` or ``~/.cache/disciplined_widgets``."""
    return Path(os.environ.get(DEFAULT_ROOT_ENV, Path.home() / ".cache" / "disciplined_widgets"))


def _subset(x: torch.Tensor, y: torch.Tensor, size: int | None, seed: int, what: str):
    if size is None:
        return x, y
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= len(x):
        raise ValueError(f"{what} must be an int in 1..{len(x)}, got {size!r}")
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size]
    return x[keep], y[keep]


@contextlib.contextmanager
def _global_rngs_kept():
    """Put Python's and NumPy's global random states back as they were on leaving."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _mnist1d(seed: int, **options) -> tuple:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    unknown = set(options) - set(vars(args))
    if unknown:
        raise TypeError(f"load_dataset('mnist1d'): unknown options {sorted(unknown)}; "
                        f"known: {sorted(vars(args))}")
    for key, value in options.items():
        setattr(args, key, value)
    args.seed = seed
    with _global_rngs_kept():  # make_dataset seeds Python's and NumPy's global generators
        data = make_dataset(args)  # generated locally; get_dataset() would try to download
    tensors = (
        torch.as_tensor(data["x"], dtype=torch.float32),
        torch.as_tensor(data["y"], dtype=torch.int64),
        torch.as_tensor(data["x_test"], dtype=torch.float32),
        torch.as_tensor(data["y_test"], dtype=torch.int64),
    )
    return (*tensors, [str(i) for i in range(10)])


@functools.lru_cache(maxsize=8)
def _mnist1d_cached(seed: int, options: tuple) -> tuple:
    return _mnist1d(seed, **dict(options))


def _mnist1d_once(seed: int, **options) -> tuple:
    """MNIST-1D generated once per seed and options in a process (each generation takes
    seconds; the last 8 are kept), given out as copies, so that a caller's changes to its
    tensors stay its own."""
    key = tuple(sorted(options.items()))
    try:
        parts = _mnist1d_cached(seed, key)
    except TypeError:  # an option that cannot be a key (a list): generated each time
        parts = _mnist1d(seed, **options)
    return (*(tensor.clone() for tensor in parts[:4]), list(parts[4]))


def _digits(seed: int, **options) -> tuple:
    from sklearn.datasets import load_digits

    unknown = sorted(set(options) - {"val_fraction"})
    if unknown:
        raise TypeError(f"load_dataset('digits'): unknown options {unknown}; known: "
                        f"['val_fraction']")
    val_fraction = options.get("val_fraction", 0.2)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    digits = load_digits()
    x = torch.as_tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # N x 1 x 8 x 8
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = round(len(x) * val_fraction)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val], [str(i) for i in range(10)]


def _images_to_tensor(images, name: str) -> torch.Tensor:
    """uint8 images (N x H x W x C or N x H x W) -> normalised float N x C x H x W."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32) / 255.0
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    mean, std = (torch.tensor(s).view(1, -1, 1, 1) for s in IMAGE_STATS[name])
    return ((x - mean) / std).contiguous()


def _without_file_md5(cifar_class):
    """torchvision's CIFAR class, checking that its files exist instead of hashing all of them
    on every load (downloads still check the archive's MD5)."""
    return type(cifar_class.__name__, (cifar_class,), {
        "train_list": [[file, None] for file, _ in cifar_class.train_list],
        "test_list": [[file, None] for file, _ in cifar_class.test_list],
        "meta": {**cifar_class.meta, "md5": None},
    })


def _torchvision(name: str, root: Path, download: bool) -> tuple:
    from torchvision import datasets

    cls = {
        "cifar10": _without_file_md5(datasets.CIFAR10),
        "cifar100": _without_file_md5(datasets.CIFAR100),
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
    }[name]
    try:
        train = cls(str(root), train=True, download=download)
        val = cls(str(root), train=False, download=download)
    except RuntimeError as error:
        if "not found" not in str(error):  # torchvision's words for missing files
            raise _corrupt(name, cls, root, error) from None
        if download:
            raise
        raise FileNotFoundError(
            f"load_dataset({name!r}): no {cls.__name__} files under {root} ({error}). "
            f"Pass download=True to fetch them (needs internet), or copy the data set there "
            f"in torchvision's layout, or point root= (or ${DEFAULT_ROOT_ENV}) at it."
        ) from None
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise _corrupt(name, cls, root, error) from None
    y_train = torch.as_tensor(np.asarray(train.targets), dtype=torch.int64)
    y_val = torch.as_tensor(np.asarray(val.targets), dtype=torch.int64)
    return (_images_to_tensor(train.data, name), y_train,
            _images_to_tensor(val.data, name), y_val, list(train.classes))


def _read_pickle(path: Path) -> None:
    with open(path, "rb") as file:
        if not isinstance(pickle.load(file, encoding="latin1"), dict):
            raise ValueError("not a pickled dict")


def _files(cls, root: Path) -> tuple[Path, list[Path], Callable[[Path], Any]]:
    """The folder of a torchvision data set, its files and a function that reads one."""
    if hasattr(cls, "base_folder"):  # CIFAR: pickled batches and a meta file
        folder = root / cls.base_folder
        names = [file for file, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return folder, [folder / n for n in names], _read_pickle
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    folder = root / cls.__name__ / "raw"  # MNIST: IDX files
    names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    return folder, [folder / n for n in names], read_sn3_pascalvincent_tensor


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _corrupt(name: str, cls, root: Path, error: Exception) -> ValueError:
    """The error for data files that are there but cannot be read, naming the bad file."""
    folder, paths, read = _files(cls, root)
    for path in paths:
        try:
            read(path)
        except Exception as bad:  # noqa: BLE001 - any failure to read marks the file
            what = f"{path} is truncated or corrupt ({_reason(bad)})"
            break
    else:
        what = f"the {cls.__name__} files under {folder} are corrupt ({_reason(error)})"
    return ValueError(f"load_dataset({name!r}): {what}. Delete {folder} and load it again with "
                      f"download=True (or copy good files there).")


OFFLINE = ("mnist1d", "digits")
IMAGE = tuple(IMAGE_STATS)
NAMES = OFFLINE + IMAGE


def load_dataset(
    name: str = "mnist1d",
    root: str | os.PathLike | None = None,
    download: bool = False,
    seed: int = 0,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
    **options,
) -> Dataset:
    """Load a data set as tensors.

    ``seed`` seeds generation (MNIST-1D), the digits split and the subsets.
    ``train_size``/``val_size`` keep a seeded random subset (small runs, overfitting demos).
    Extra ``options`` go to the generator: MNIST-1D's ``get_dataset_args()`` fields
    (``num_samples``, ``iid_noise_scale``, ``corr_noise_scale``, ...) or digits'
    ``val_fraction``.
    """
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    path_or_none("root", root)
    flag("download", download)
    an_int("seed", seed)
    if name == "mnist1d":
        parts = _mnist1d_once(seed, **options)
    elif name == "digits":
        parts = _digits(seed, **options)
    else:
        if options:
            raise TypeError(f"load_dataset({name!r}) takes no options, got {sorted(options)}")
        parts = _torchvision(name, Path(root) if root is not None else default_root(), download)
    x_train, y_train, x_val, y_val, classes = parts
    x_train, y_train = _subset(x_train, y_train, train_size, seed, "train_size")
    x_val, y_val = _subset(x_val, y_val, val_size, seed + 1, "val_size")
    return Dataset(name, x_train, y_train, x_val, y_val, classes, tuple(x_train.shape[1:]))
