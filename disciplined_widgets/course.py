"""The course's switch between the papers' setting, the offline one and the tests' smoke run.

Every chapter calls :func:`setting` once. With a CUDA GPU and CIFAR-10 on disk (or
``download=True``, which fetches it) it returns the papers' setting: CIFAR-10, a CIFAR ResNet,
on-device augmentation. Otherwise it says why and returns the offline setting that runs on a
laptop CPU in seconds (MNIST-1D or the digits, with a small model). Nothing downloads unless
asked.

The offline setting always runs on the CPU, even where a GPU is there: its models are so small
that a GPU gains nothing, and its printed results (which the course checks) stay the same on
every machine. PyTorch then runs on one thread (``torch.set_num_threads(1)``): one thread is
about as fast as two for these models, and does not stall when other programs (the notebook
server, a browser) share a few cores, which with OpenMP's spin-waiting threads can make a run
several times slower.

The third kind, ``use_paper="smoke"`` (or ``DW_COURSE_SETTING=smoke`` in the environment), is
for the tests: it takes every chapter's ``if s.paper:`` branch on the CPU, with whatever
CIFAR-10 files lie under the data root (a tiny copy written by the test) and a ResNet-8, so that
the paper's code path runs in seconds. Its numbers mean nothing: claim checks written with
:meth:`Setting.check` print what they would have asserted instead of failing, and chapters
shorten their runs where ``s.smoke`` is true.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .data import Dataset, load_dataset
from .loader import TensorLoader, cifar_augment
from .models import CNN1D, CifarResNet, resnet56
from .train import resolve_device

#: The environment variable that chooses the kind of setting when a chapter does not:
#: ``offline``, ``paper``, ``smoke`` or ``auto`` (the default: the paper's when possible).
SETTING_ENV = "DW_COURSE_SETTING"
KINDS = ("auto", "offline", "paper", "smoke")


def smoke_resnet(num_classes: int = 10) -> CifarResNet:
    """ResNet-8 (the smallest CIFAR ResNet, 78k weights): the smoke setting's paper model."""
    return CifarResNet(8, num_classes)


@dataclass
class Setting:
    """Data, a model factory, a device and a scale for one chapter's runs.

    ``kind`` is ``"offline"``, ``"paper"`` or ``"smoke"``; ``paper`` is true for the last two
    (the smoke setting takes the paper's branch).
    """

    name: str
    data: Dataset
    make_model: Callable[[], nn.Module]
    device: torch.device
    paper: bool
    message: str
    augment: bool = False
    extra: dict = field(default_factory=dict)
    kind: str = ""

    def __post_init__(self):
        if not self.kind:
            self.kind = "paper" if self.paper else "offline"

    @property
    def smoke(self) -> bool:
        """True in the tests' smoke run: the paper's branch on tiny data, numbers meaningless."""
        return self.kind == "smoke"

    def check(self, condition, message: str) -> None:
        """A claim check: ``assert condition, message``, except in the smoke run, where the
        numbers mean nothing and a failed check prints ``message`` instead of raising."""
        if condition:
            return
        if self.smoke:
            print(f"(smoke run, not checked: {message})")
            return
        raise AssertionError(message)

    def loaders(self, batch_size: int = 128, *, seed: int = 0,
                val_batch_size: int = 1000) -> tuple[TensorLoader, TensorLoader]:
        """Train (shuffled, augmented for CIFAR) and validation loaders on the device.

        In the smoke setting the training batch is at most a quarter of the (tiny) training
        set, so that every epoch has several steps, as it has with the real data."""
        if self.smoke:
            batch_size = min(batch_size, max(2, len(self.data.x_train) // 4))
        train = TensorLoader(self.data.x_train, self.data.y_train, batch_size, seed=seed,
                             device=self.device, augment=cifar_augment() if self.augment else None)
        val = TensorLoader(self.data.x_val, self.data.y_val, val_batch_size, shuffle=False,
                           device=self.device)
        return train, val

    def __repr__(self) -> str:
        return f"Setting({self.name!r}, kind={self.kind!r}, device={self.device})"


def mean_and_spread(values) -> tuple[float, float]:
    """A claim's figure over seeds: its mean, and its spread (the largest minus the smallest)."""
    values = list(values)
    return statistics.mean(values), max(values) - min(values)


def _kind_from_environment() -> str:
    kind = os.environ.get(SETTING_ENV, "auto").strip().lower() or "auto"
    if kind not in KINDS:
        raise ValueError(f"${SETTING_ENV} must be one of {KINDS}, got {kind!r}")
    return kind


def setting(*, paper_data: str = "cifar10", paper_model: Callable[[], nn.Module] = resnet56,
            offline_data: str = "mnist1d", offline_model: Callable[[], nn.Module] = CNN1D,
            offline_options: dict | None = None, root=None, download: bool = False,
            use_paper: bool | str | None = None, seed: int = 0) -> Setting:
    """The papers' setting when possible (a GPU and the data), else the offline one.

    ``use_paper=False`` forces the offline setting, ``True`` insists on the paper's (and fails
    clearly without a GPU or the data); ``None`` decides, or follows ``$DW_COURSE_SETTING``
    (``offline``, ``paper``, ``smoke``, ``auto``). ``"smoke"`` is the tests' run of the paper
    branch on the CPU: ``paper_data`` read from ``root`` (or the default data root; a tiny copy
    is enough), ResNet-8 for ``paper_model``, nothing downloaded. ``offline_options`` go to
    :func:`~disciplined_widgets.load_dataset` (``train_size``, noise settings, ...).
    """
    if use_paper is None:
        use_paper = {"auto": None, "offline": False, "paper": True,
                     "smoke": "smoke"}[_kind_from_environment()]
    if use_paper not in (None, True, False, "smoke"):
        raise ValueError(f"use_paper must be None, True, False or 'smoke', got {use_paper!r}")
    if use_paper == "smoke":
        data = load_dataset(paper_data, root=root, seed=seed)
        cpu = torch.device("cpu")
        torch.set_num_threads(1)
        name = f"{paper_data} ({len(data.x_train)} train images) + smoke_resnet on cpu"
        return Setting(name, data, smoke_resnet, cpu, True,
                       f"Smoke setting: the paper branch ran on {name}, a few steps to check "
                       f"that its code runs (its numbers mean nothing).",
                       augment=paper_data.startswith("cifar"), kind="smoke")
    device = resolve_device()
    reason = None
    if use_paper is False:
        reason = "the offline setting was asked for"
    elif device.type != "cuda":
        reason = "no CUDA GPU here"
    if reason is None:
        try:
            data = load_dataset(paper_data, root=root, download=download, seed=seed)
        except FileNotFoundError as error:
            reason = f"{paper_data} is not on disk (pass download=True to fetch it): {error}"
        else:
            name = f"{paper_data} + {getattr(paper_model, '__name__', 'model')} on {device}"
            return Setting(name, data, paper_model, device, True,
                           f"Paper setting: the paper branch runs on {name}.",
                           augment=paper_data.startswith("cifar"))
    if use_paper:
        raise RuntimeError(f"the paper's setting is not available: {reason}")
    data = load_dataset(offline_data, seed=seed, **(offline_options or {}))
    cpu = torch.device("cpu")
    name = f"{offline_data} + {getattr(offline_model, '__name__', 'model')} on cpu"
    torch.set_num_threads(1)
    note = (", on the CPU although a GPU is here: the same results on every machine"
            if device.type != "cpu" else "")
    return Setting(name, data, offline_model, cpu, False,
                   f"Offline setting ({reason}): {name}, the offline branch{note} "
                   f"(one CPU thread: as fast for these small models, and steadier).")
