"""The one hook that turns a batch into a loss, for everything that trains or evaluates.

:class:`BatchLoss` is chosen once from the user's arguments and called on every batch:

- ``criterion`` given: ``inputs, targets = unpack(batch)``, then
  ``loss = criterion(model(inputs), targets)``; inputs that are a tuple or list are passed as
  ``model(*inputs)``, a dict as ``model(**inputs)``.
- ``criterion=None``: the model computes its own loss (the Hugging Face convention). A dict
  batch goes in as ``model(**batch)`` (its ``"labels"`` are the targets), a tensor as
  ``model(batch)``, anything else is split by ``unpack`` and the inputs go in as above; the
  loss is ``outputs.loss`` or ``outputs["loss"]``, and the logits (``.logits`` /
  ``["logits"]``) and targets feed the metrics.
- ``loss_fn(model, batch)``: the user's own step. It returns the loss, or
  ``(loss, outputs, targets)`` so that accuracy and ``metrics`` can be computed.

Accuracy is computed only where the outputs are N x classes scores and the targets N class
indices; ``metrics={"name": fn(outputs, targets)}`` adds the user's own, averaged over samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from .batch import Unpack, batch_size_of, to_device, unpack_batch

Metric = Callable[[Any, Any], Any]
CROSS_ENTROPY = nn.CrossEntropyLoss()  # the default criterion of runs, the recipe and searches


def criterion_with(criterion: Callable | None, loss_fn: Callable | None) -> Callable | None:
    """The criterion to use beside ``loss_fn``: the default cross-entropy gives way to it."""
    return None if loss_fn is not None and criterion is CROSS_ENTROPY else criterion


class Computed(NamedTuple):
    """One batch's loss (a scalar tensor), what the model returned, the targets, the samples."""

    loss: torch.Tensor
    outputs: Any
    targets: Any
    samples: int


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(*inputs)`` for a tuple or list, ``model(**inputs)`` for a dict, else ``model(inputs)``."""
    if type(inputs) is torch.Tensor:  # the common case first: every step passes here
        return model(inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _field(outputs: Any, name: str) -> Any:
    if isinstance(outputs, Mapping):
        return outputs.get(name)
    return getattr(outputs, name, None)


def logits_of(outputs: Any) -> Any:
    """The scores in ``outputs``: a tensor itself, or its ``.logits`` / ``["logits"]``."""
    return outputs if isinstance(outputs, torch.Tensor) else _field(outputs, "logits")


def correct_count(outputs: Any, targets: Any) -> torch.Tensor | None:
    """How many argmax predictions equal the targets; None unless outputs are N x classes
    scores and targets N class indices."""
    scores = logits_of(outputs)
    if not (isinstance(scores, torch.Tensor) and isinstance(targets, torch.Tensor)
            and scores.ndim == 2 and targets.ndim == 1 and len(scores) == len(targets)
            and not targets.is_floating_point() and not targets.is_complex()):
        return None
    return (scores.argmax(dim=1) == targets).sum()


class BatchLoss:
    """``batch_loss(model, batch, device) -> Computed`` (see the module docstring)."""

    def __init__(self, criterion: Callable | None = None, *, loss_fn: Callable | None = None,
                 unpack: Unpack = unpack_batch):
        if criterion is not None and loss_fn is not None:
            raise ValueError("give criterion or loss_fn, not both: loss_fn(model, batch) "
                             "computes the loss itself")
        for name, value in (("criterion", criterion), ("loss_fn", loss_fn), ("unpack", unpack)):
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable, got {type(value).__name__}")
        self.criterion, self.loss_fn, self.unpack = criterion, loss_fn, unpack

    def __call__(self, model: nn.Module, batch: Any, device: torch.device) -> Computed:
        if self.loss_fn is not None:
            batch = to_device(batch, device)
            returned = self.loss_fn(model, batch)
            loss, outputs, targets = (returned if isinstance(returned, tuple) and len(returned) == 3
                                      else (returned, None, None))
            return Computed(_scalar(loss, "loss_fn(model, batch)"), outputs, targets,
                            batch_size_of(batch))
        if self.criterion is not None:
            inputs, targets = self.unpack(batch)
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            outputs = call_model(model, inputs)
            loss = _scalar(self.criterion(outputs, targets), "criterion(outputs, targets)")
            return Computed(loss, outputs, targets, batch_size_of(inputs))
        if isinstance(batch, Mapping):
            inputs, targets = to_device(batch, device), batch.get("labels")
        elif isinstance(batch, torch.Tensor):
            inputs, targets = to_device(batch, device), None
        else:
            inputs, targets = (to_device(part, device) for part in self.unpack(batch))
        outputs = call_model(model, inputs)
        loss = _field(outputs, "loss")
        if loss is None:
            raise ValueError(
                f"criterion is None, so the model must return its loss as outputs.loss or "
                f"outputs['loss'], but it returned {_described(outputs)}: pass a criterion, "
                f"or loss_fn=lambda model, batch: ...")
        return Computed(_scalar(loss, "the model's outputs.loss"), outputs,
                        to_device(targets, device), batch_size_of(inputs))


def _described(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"


def _scalar(loss: Any, source: str) -> torch.Tensor:
    """``loss`` if it is a one-element tensor; otherwise a clear error naming its source."""
    if type(loss) is torch.Tensor and loss.ndim == 0:  # the common case first
        return loss
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"{source} must give the loss as a scalar tensor, got "
                         f"{_described(loss)}; reduce it with .mean() or .sum()")
    return loss if loss.ndim == 0 else loss.reshape(())
