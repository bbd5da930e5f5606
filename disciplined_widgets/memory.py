"""The largest batch size that fits in memory, found by doubling (Smith 1803.09820 section 4.2:
"use as large a batch size as fits in memory", with the LR scaled up with it).

On CUDA a real training step is run at each candidate size and its peak allocation read from
``torch.cuda.max_memory_allocated``; an out-of-memory error ends the doubling. Elsewhere (CPU,
MPS) the step's need is estimated as the tensors autograd saves for the backward pass (read
with ``torch.autograd.graph.saved_tensors_hooks``) plus the parameters, their gradients and
two optimizer buffers each, against the memory the system has available. A candidate fits
when it needs at most ``1 - margin`` of the limit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .batch import to_device
from .checks import positive_int
from .loader import with_batch_size
from .step import CROSS_ENTROPY, BatchLoss, criterion_with


@dataclass
class BatchProbe:
    """One candidate batch size, the bytes its training step needs, and whether it fits."""

    batch_size: int
    bytes: int | None
    fits: bool


def available_bytes(device: torch.device) -> int:
    """Memory the device can give: total GPU memory, or the system's available RAM."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: assume 8 GiB
        return 8 << 30


def _batch_of(batch, size: int):
    """``batch`` (tensors, or tensors nested in tuples, lists and dicts) cut or repeated to
    ``size`` samples."""
    if isinstance(batch, torch.Tensor):
        index = torch.arange(size, device=batch.device) % len(batch)
        return batch[:size] if size <= len(batch) else batch[index]
    if isinstance(batch, Mapping):
        return {key: _batch_of(value, size) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_batch_of(value, size) for value in batch)
    return batch


def step_bytes(model: nn.Module, batch_loss: BatchLoss, batch, device: torch.device) -> int:
    """Bytes one forward and backward pass on this batch needs (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        batch_loss(model, batch, device).loss.backward()
        torch.cuda.synchronize(device)
        need = torch.cuda.max_memory_allocated(device) - before
        model.zero_grad(set_to_none=True)
        return need + 3 * sum(p.numel() * p.element_size() for p in model.parameters())
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        done = batch_loss(model, batch, device)
    done.loss.backward()
    model.zero_grad(set_to_none=True)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    return saved + 4 * parameters + _tensor_bytes(batch)


def _tensor_bytes(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.numel() * batch.element_size()
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    return sum(map(_tensor_bytes, batch)) if isinstance(batch, (tuple, list)) else 0


def largest_batch_size(model_factory: Callable[[], nn.Module], train_loader, *,
                       criterion: Callable | None = CROSS_ENTROPY, start: int = 32,
                       cap: int, margin: float = 0.2, **options) -> tuple[int, list[BatchProbe]]:
    """Double the batch size from ``start`` while a training step fits (at most ``cap``).

    Returns the largest fitting size and every probe. The model comes fresh from
    ``model_factory()`` and is discarded; samples come from the loader's first batch,
    repeated to the candidate size. The batch becomes a loss as in ``fit`` (``criterion``,
    None for the model's own ``.loss``, or ``loss_fn``; keyword options as ``TrainingOptions``).
    """
    from .train import TrainingOptions, resolve_device
    positive_int("start", start)
    positive_int("cap", cap)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}")
    opts = TrainingOptions.of(options)
    batch_loss = BatchLoss(criterion_with(criterion, opts.loss_fn), loss_fn=opts.loss_fn,
                           unpack=opts.unpack)
    device = resolve_device(opts.device)
    with torch.random.fork_rng(devices=[]):  # the user's loader and RNG stay as they were
        first = to_device(next(iter(with_batch_size(train_loader, start))), device)
    model = model_factory().to(device).train()
    limit = (1 - margin) * available_bytes(device)
    probes: list[BatchProbe] = []
    size, best = min(start, cap), None
    while True:
        batch = _batch_of(first, size)
        try:
            need = step_bytes(model, batch_loss, batch, device)
        except torch.OutOfMemoryError:
            probes.append(BatchProbe(size, None, False))
            break
        finally:
            del batch
            if device.type == "cuda":
                torch.cuda.empty_cache()
        fits = need <= limit
        probes.append(BatchProbe(size, need, fits))
        if not fits:
            break
        best = size
        if size >= cap:
            break
        size = min(size * 2, cap)
    if best is None:
        raise ValueError(f"a batch of {probes[0].batch_size} does not fit in memory "
                         f"({probes[0].bytes} bytes needed, {int(limit)} allowed)")
    return best, probes
