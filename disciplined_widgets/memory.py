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
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .batch import unpack_batch
from .checks import positive_int
from .loader import with_batch_size


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


def _batch_of(inputs: torch.Tensor, targets: torch.Tensor, size: int):
    repeat = -(-size // len(inputs))
    index = torch.arange(size, device=inputs.device) % len(inputs)
    if repeat == 1:
        return inputs[:size], targets[:size]
    return inputs[index], targets[index]


def step_bytes(model: nn.Module, criterion: Callable, inputs: torch.Tensor,
               targets: torch.Tensor) -> int:
    """Bytes one forward and backward pass on this batch needs (see the module docstring)."""
    device = inputs.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        criterion(model(inputs), targets).backward()
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
        loss = criterion(model(inputs), targets)
    loss.backward()
    model.zero_grad(set_to_none=True)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    return saved + 4 * parameters + inputs.numel() * inputs.element_size()


def largest_batch_size(model_factory: Callable[[], nn.Module], train_loader, *,
                       criterion: Callable | None = None, start: int = 32, cap: int,
                       margin: float = 0.2, device: str | torch.device | None = None
                       ) -> tuple[int, list[BatchProbe]]:
    """Double the batch size from ``start`` while a training step fits (at most ``cap``).

    Returns the largest fitting size and every probe. The model comes fresh from
    ``model_factory()`` and is discarded; samples come from the loader's first batch,
    repeated to the candidate size.
    """
    from .train import resolve_device
    positive_int("start", start)
    positive_int("cap", cap)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}")
    device = resolve_device(device)
    criterion = criterion or nn.CrossEntropyLoss()
    with torch.random.fork_rng(devices=[]):  # the user's loader and RNG stay as they were
        inputs, targets = unpack_batch(next(iter(with_batch_size(train_loader, start))))[:2]
    inputs, targets = inputs.to(device), targets.to(device)
    model = model_factory().to(device).train()
    limit = (1 - margin) * available_bytes(device)
    probes: list[BatchProbe] = []
    size, best = min(start, cap), None
    while True:
        x, y = _batch_of(inputs, targets, size)
        try:
            need = step_bytes(model, criterion, x, y)
        except torch.OutOfMemoryError:
            probes.append(BatchProbe(size, None, False))
            break
        finally:
            del x, y
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
