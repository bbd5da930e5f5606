"""The one hook that turns a batch from any loader into ``(inputs, targets)``.

Every public API that takes data (``fit``, the range test, the searches) calls
``unpack(batch)`` on each batch. The default, :func:`unpack_batch`, understands:

- a ``(inputs, targets)`` tuple or list, including tuples with extra items
  (``(inputs, targets, index, ...)``: the extras are ignored);
- a dict (or any mapping) with one input key and one target key, such as
  ``{"image": ..., "label": ...}`` or ``{"x": ..., "y": ...}``.

For anything else, pass your own ``unpack`` callable, for example
``unpack=lambda b: (b["pixels"], b["class_id"])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import torch

INPUT_KEYS = ("inputs", "input", "x", "image", "images", "img", "data", "features")
TARGET_KEYS = ("targets", "target", "y", "label", "labels", "class", "classes")

Unpack = Callable[[Any], tuple[Any, Any]]


def _pick(batch: Mapping, keys: tuple[str, ...], role: str) -> Any:
    found = [k for k in keys if k in batch]
    if len(found) != 1:
        raise ValueError(
            f"unpack_batch: cannot tell the {role} in a dict batch with keys {sorted(batch)}; "
            f"expected exactly one of {keys}. Pass unpack=lambda b: (b[...], b[...])."
        )
    return batch[found[0]]


def unpack_batch(batch: Any) -> tuple[Any, Any]:
    """Default hook: ``(inputs, targets)`` from a tuple/list or a dict batch."""
    if type(batch) in (tuple, list) and len(batch) >= 2:  # the common case, without ABC checks
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        return _pick(batch, INPUT_KEYS, "inputs"), _pick(batch, TARGET_KEYS, "targets")
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(
        f"unpack_batch: a batch must be an (inputs, targets, ...) tuple or a dict, "
        f"got {type(batch).__name__}. Pass unpack=... to say how to split it."
    )


def to_device(value: Any, device: torch.device) -> Any:
    """Move a tensor, or tensors nested in tuples/lists/dicts, to ``device``."""
    if isinstance(value, torch.Tensor):
        return value if value.device == device else value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def batch_size_of(inputs: Any) -> int:
    """Number of samples in ``inputs`` (a tensor, or the first tensor inside a container)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.shape[0]
    if isinstance(inputs, Mapping):
        return batch_size_of(next(iter(inputs.values())))
    if isinstance(inputs, (list, tuple)) and inputs:
        return batch_size_of(inputs[0])
    raise TypeError(f"cannot tell the batch size of inputs of type {type(inputs).__name__}")
