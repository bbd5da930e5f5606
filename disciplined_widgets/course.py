"""The course's switch between the papers' setting and the offline one.

Every chapter calls :func:`setting` once. With a CUDA GPU and CIFAR-10 on disk (or
``download=True``, which fetches it) it returns the papers' setting: CIFAR-10, a CIFAR ResNet,
on-device augmentation. Otherwise it says why and returns the offline setting that runs on a
laptop CPU in seconds (MNIST-1D or the digits, with a small model). Nothing downloads unless
asked.

On a CPU the offline setting runs PyTorch on one thread (``torch.set_num_threads(1)``): these
models are so small that one thread is about as fast as two, and a single thread does not stall
when other programs (the notebook server, a browser) share a few cores, which with OpenMP's
spin-waiting threads can make a run several times slower. It also makes results the same
however many cores the machine has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .data import Dataset, load_dataset
from .loader import TensorLoader, cifar_augment
from .models import CNN1D, resnet56
from .train import resolve_device


@dataclass
class Setting:
    """Data, a model factory, a device and a scale for one chapter's runs."""

    name: str
    data: Dataset
    make_model: Callable[[], nn.Module]
    device: torch.device
    paper: bool
    message: str
    augment: bool = False
    extra: dict = field(default_factory=dict)

    def loaders(self, batch_size: int = 128, *, seed: int = 0,
                val_batch_size: int = 1000) -> tuple[TensorLoader, TensorLoader]:
        """Train (shuffled, augmented for CIFAR) and validation loaders on the device."""
        train = TensorLoader(self.data.x_train, self.data.y_train, batch_size, seed=seed,
                             device=self.device, augment=cifar_augment() if self.augment else None)
        val = TensorLoader(self.data.x_val, self.data.y_val, val_batch_size, shuffle=False,
                           device=self.device)
        return train, val

    def __repr__(self) -> str:
        return f"Setting({self.name!r}, paper={self.paper}, device={self.device})"


def setting(*, paper_data: str = "cifar10", paper_model: Callable[[], nn.Module] = resnet56,
            offline_data: str = "mnist1d", offline_model: Callable[[], nn.Module] = CNN1D,
            offline_options: dict | None = None, root=None, download: bool = False,
            use_paper: bool | None = None, seed: int = 0) -> Setting:
    """The papers' setting when possible (a GPU and the data), else the offline one.

    ``use_paper=False`` forces the offline setting, ``True`` insists on the paper's (and fails
    clearly without a GPU or the data); ``None`` decides. ``offline_options`` go to
    :func:`~disciplined_widgets.load_dataset` (``train_size``, noise settings, ...).
    """
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
                           f"Paper setting: {name}.", augment=paper_data.startswith("cifar"))
    if use_paper:
        raise RuntimeError(f"the paper's setting is not available: {reason}")
    data = load_dataset(offline_data, seed=seed, **(offline_options or {}))
    name = f"{offline_data} + {getattr(offline_model, '__name__', 'model')} on {device}"
    threads = ""
    if device.type == "cpu":
        torch.set_num_threads(1)
        threads = " (one CPU thread: as fast for these small models, and steadier)"
    return Setting(name, data, offline_model, device, False,
                   f"Offline setting ({reason}): {name}{threads}.")
