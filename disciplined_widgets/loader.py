"""A fast loader for tensors that live on the training device.

``DataLoader(TensorDataset(x, y))`` collates every batch sample by sample in Python. When the
whole data set fits on the device, one ``randperm`` per epoch and one indexing operation per
batch do the same job (as in KellerJordan/cifar10-airbench), with on-device augmentation.

The batch size may change between epochs (``loader.batch_size = 512``), which the
"increase the batch size instead of decaying the LR" schedules need.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import (DataLoader, IterableDataset, RandomSampler, SequentialSampler,
                              TensorDataset)
from torch.utils.data._utils.collate import default_collate

from .checks import existing_device, positive_int

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class TensorLoader:
    """Iterate over ``(inputs[idx], targets[idx])`` batches of device-resident tensors.

    Shuffling uses a ``torch.Generator`` seeded with ``seed``: the same seed gives the same
    batches. Each new iteration (epoch) draws a fresh permutation from that generator.
    ``augment(x, generator)`` is applied to each input batch (see :func:`cifar_augment`).
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int = 128,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        augment: Augment | None = None,
        device: str | torch.device | None = None,
    ):
        if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise TypeError("inputs and targets must be tensors")
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets differ in length: {len(inputs)} != {len(targets)}")
        if len(inputs) == 0:
            raise ValueError("inputs is empty")
        if augment is not None and not callable(augment):
            raise TypeError("augment must be callable as augment(inputs, generator)")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int (the same seed gives the same batches), got {seed!r}")
        positive_int("batch_size", batch_size)
        if device is not None:
            device = existing_device(device)
        self.inputs = inputs if device is None else inputs.to(device)
        self.targets = targets if device is None else targets.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        positive_int("batch_size", value)
        self._batch_size = value

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def __len__(self) -> int:
        n, b = len(self.inputs), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, b = len(self.inputs), self.batch_size
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.device, non_blocking=True)
        else:
            order = torch.arange(n, device=self.device)
        for start in range(0, len(self) * b, b):
            index = order[start:start + b]
            x = self.inputs[index]
            if self.augment is not None:
                x = self.augment(x, self.generator)
            yield x, self.targets[index]

    def __repr__(self) -> str:
        return (f"TensorLoader({len(self.inputs)} samples, batch_size={self.batch_size}, "
                f"{len(self)} batches, device={self.device})")


def cifar_augment(pad: int = 4, flip: bool = True) -> Augment:
    """Random crop after reflection padding by ``pad`` pixels, and random horizontal flip.

    The standard CIFAR augmentation of the ResNet papers, vectorised over the batch
    (N x C x H x W) and run on the batch's device.
    """
    positive_int("pad", pad)

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator).to(x.device)
        rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1)
        cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
        out = padded[batch, channel, rows, cols]
        if flip:
            mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
            out = torch.where(mirror, out.flip(3), out)
        return out

    return augment


def _indexable(loader) -> bool:
    """A plain single-process DataLoader over a TensorDataset with the default collation."""
    return (type(loader) is DataLoader and type(loader.dataset) is TensorDataset
            and loader.batch_sampler is not None and loader.collate_fn is default_collate
            and loader.num_workers == 0 and not loader.pin_memory)


def _indexed_batches(loader: DataLoader) -> Iterator[list[torch.Tensor]]:
    # DataLoader draws a base seed for its workers at every epoch: draw it too, so that the
    # sampler (and any later user of the same RNG) sees the same random numbers.
    torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
    tensors = loader.dataset.tensors
    for indices in loader.batch_sampler:
        index = torch.as_tensor(indices)
        yield [t[index] for t in tensors]


def iterate(loader: Iterable) -> Iterator:
    """``iter(loader)``, faster for a plain ``DataLoader`` over a ``TensorDataset``.

    Such a loader fetches every sample and stacks them; indexing the tensors with each batch
    of indices from its own sampler gives the same batches (same order, values, dtypes and
    list type, same random numbers drawn) at a fraction of the cost. Any other loader is
    iterated as it is.
    """
    return _indexed_batches(loader) if _indexable(loader) else iter(loader)


def _copy_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None:
        return None
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


def with_batch_size(loader, batch_size: int):
    """A copy of ``loader`` that yields batches of ``batch_size``; ``loader`` is not changed.

    A :class:`TensorLoader` shares its tensors; a ``DataLoader`` is rebuilt on the same dataset
    with the same shuffling, workers, collate and pinning. Either gets a copy of the shuffling
    generator (same state), so drawing from the copy leaves the original's untouched. A loader
    driven by a custom ``batch_sampler`` or ``sampler`` (a subset, weights, replacement) cannot
    be resized.
    """
    positive_int("batch_size", batch_size)
    if isinstance(loader, TensorLoader):
        copy = TensorLoader(loader.inputs, loader.targets, batch_size, shuffle=loader.shuffle,
                            drop_last=loader.drop_last, augment=loader.augment)
        copy.generator = _copy_generator(loader.generator)
        return copy
    if isinstance(loader, DataLoader):
        if loader.batch_size is None:
            raise TypeError("this DataLoader uses a custom batch_sampler; its batch size cannot change")
        sampler = loader.sampler
        if not isinstance(loader.dataset, IterableDataset) and not (
                type(sampler) is SequentialSampler or (
                    type(sampler) is RandomSampler and not sampler.replacement
                    and len(sampler) == len(loader.dataset))):
            # a rebuild would draw from the whole dataset, without the sampler's choice
            raise TypeError(f"this DataLoader draws its samples with a {type(sampler).__name__}; "
                            f"its batch size cannot change")
        return DataLoader(
            loader.dataset, batch_size=batch_size,
            shuffle=isinstance(loader.sampler, RandomSampler), drop_last=loader.drop_last,
            num_workers=loader.num_workers, collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory, generator=_copy_generator(loader.generator),
            worker_init_fn=loader.worker_init_fn,
            persistent_workers=loader.persistent_workers if loader.num_workers else False)
    raise TypeError(f"cannot change the batch size of a {type(loader).__name__}; "
                    f"use a TensorLoader or a DataLoader")
