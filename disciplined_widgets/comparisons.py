"""The same short training over several values of one hyper-parameter, from the same start.

``compare`` runs :func:`~disciplined_widgets.fit` once per value, restoring the model, the
optimizer and the loader's shuffling before each run and once more at the end, so the runs
differ only in the value and the user's objects end as they were. Parameters:

- ``"batch_size"``: the loader's batch size (a ``TensorLoader``), with the LR scaled in
  proportion (``lr * b / b0``; Smith 1803.09820 section 4.2: larger batches want larger LRs);
- ``"momentum"``: a constant momentum (Adam: beta1), ``"cyclical"`` for 0.95 -> 0.85 -> 0.95
  under 1cycle (section 4.3; needs ``max_lr``), or ``"reverse"`` for 0.85 -> 0.95 -> 0.85 (the
  momentum rising with the LR);
- ``"weight_decay"``: the weight decay of every param group (section 4.4);
- ``"schedule"``: :class:`~disciplined_widgets.BatchSizeSchedule` objects (LR decay against
  batch growth against the hybrid; S. L. Smith et al. 1711.00489), or None for a constant one.

With ``max_lr`` every run uses :func:`~disciplined_widgets.one_cycle` up to it (max/``div``
at the ends). Results come back as a :class:`Comparison` with a table and a figure.
``compare_steps`` is the same comparison one optimizer step at a time.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .checks import optimizer_holds, positive_float, positive_int
from .optim import CYCLICAL_MOMENTUM, has_momentum, set_momentum
from .schedules import BatchSizeSchedule, one_cycle, preview
from .snapshot import Snapshot
from .train import History, Steps, Training, drain, steps_of

PARAMETERS = ("batch_size", "momentum", "weight_decay", "schedule")
#: The momentum cycles a comparison runs under 1cycle: (where the LR is lowest, at its peak).
CYCLES = {"cyclical": CYCLICAL_MOMENTUM, "reverse": CYCLICAL_MOMENTUM[::-1]}


def describe(value: Any) -> str:
    """A short label for a compared value."""
    if isinstance(value, BatchSizeSchedule):
        if value.max_batch_size == value.batch_size:
            return f"LR / {value.factor:g} at {list(value.milestones)}"
        if value.max_batch_size is None:
            return f"batch x {value.factor:g} at {list(value.milestones)}"
        return f"hybrid (batch to {value.max_batch_size}, then LR)"
    if value is None:
        return "constant"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Comparison:
    """One ``History`` per compared value."""

    parameter: str
    values: list
    histories: list[History]

    @property
    def labels(self) -> list[str]:
        return [describe(v) for v in self.values]

    def table(self) -> list[dict]:
        """Final figures of each run: validation loss and accuracy, updates and wall time."""
        rows = []
        for label, history in zip(self.labels, self.histories):
            accuracy = [a for a in history.val_accuracy if a is not None]
            rows.append({
                self.parameter: label,
                "final val loss": history.val_loss[-1] if history.val_loss else None,
                "final val accuracy": accuracy[-1] if accuracy else None,
                "best val accuracy": max(accuracy) if accuracy else None,
                "updates": history.steps_done,
                "epochs": history.epoch[-1] if history.epoch else 0.0,
                "seconds": history.time[-1] if history.time else 0.0,
                "stop": history.stop_reason,
            })
        return rows

    def plot(self, x: str = "epoch"):
        from .plots import plot_comparison
        return plot_comparison(self, x=x)


def compare_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: Callable | None,
    train_loader,
    val_loader=None,
    *,
    parameter: str,
    values: list,
    epochs: int,
    max_lr: float | None = None,
    div: float = 10.0,
    callback: Callable[[int, History], Any] | None = None,
    stop_event: Any = None,
    **options,
) -> Steps[Comparison]:
    """:func:`compare` one optimizer step at a time: a generator that yields after every step
    and returns the :class:`Comparison` (arguments as ``compare``)."""
    optimizer_holds(model, optimizer)
    if parameter not in PARAMETERS:
        raise ValueError(f"parameter must be one of {PARAMETERS}, got {parameter!r}")
    values = list(values)
    if not values:
        raise ValueError("values is empty")
    positive_int("epochs", epochs)
    if max_lr is not None:
        positive_float("max_lr", max_lr)
    group = optimizer.param_groups[0]
    resizable = isinstance(getattr(type(train_loader), "batch_size", None), property)  # a TensorLoader
    if parameter == "batch_size":
        if not resizable:
            raise TypeError("comparing batch sizes needs a TensorLoader (its batch size can change)")
        for value in values:
            positive_int("values", value)
    elif parameter == "momentum":
        if not has_momentum(optimizer):
            raise ValueError(f"{type(optimizer).__name__} has no momentum or betas")
        for value in values:
            if value in CYCLES:
                if max_lr is None:
                    raise ValueError(f"{value} momentum needs max_lr (it cycles under 1cycle)")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"momentum values must be in [0, 1), 'cyclical' or 'reverse', "
                                 f"got {value!r}")
    elif parameter == "weight_decay":
        if "weight_decay" not in group:
            raise ValueError(f"{type(optimizer).__name__} has no weight_decay")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"weight_decay values must be >= 0, got {value!r}")
    else:
        for value in values:
            if value is not None and not isinstance(value, BatchSizeSchedule):
                raise TypeError(f"schedule values must be BatchSizeSchedule or None, got {value!r}")
        if any(values) and not resizable:
            raise TypeError("batch-size schedules need a TensorLoader")

    generator = getattr(train_loader, "generator", None)
    start = Snapshot(model, optimizer, generators=[generator] if generator is not None else [])
    base_batch = train_loader.batch_size if resizable else None  # put back at the end
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    histories: list[History] = []
    try:
        for index, value in enumerate(values):
            if stop_event is not None and stop_event.is_set():
                break
            start.restore()
            scale, batch_size_schedule, cycle_momentum = 1.0, None, CYCLICAL_MOMENTUM
            if parameter == "batch_size":
                train_loader.batch_size = value
                scale = value / base_batch
                for g, lr in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = lr * scale
            elif parameter == "momentum":
                if value in CYCLES:
                    cycle_momentum = CYCLES[value]
                else:
                    for g in optimizer.param_groups:
                        set_momentum(g, value)
                    cycle_momentum = None
            elif parameter == "weight_decay":
                for g in optimizer.param_groups:
                    g["weight_decay"] = float(value)
            else:
                batch_size_schedule = value
            schedulers = []
            if max_lr is not None:
                steps = len(preview(optimizer, epochs=epochs, train_loader=train_loader,
                                    batch_size_schedule=batch_size_schedule).step)
                schedulers = [one_cycle(optimizer, max_lr * scale, steps, div=div,
                                        momentum=cycle_momentum if has_momentum(optimizer) else None)]
            run_callback = None if callback is None else (lambda h, i=index: callback(i, h))
            histories.append((yield from steps_of(Training(
                model, optimizer, criterion, train_loader, val_loader, epochs=epochs,
                schedulers=schedulers, batch_size_schedule=batch_size_schedule,
                callback=run_callback, stop_event=stop_event, **options))))
    finally:
        start.restore()
        if base_batch is not None:
            train_loader.batch_size = base_batch
    return Comparison(parameter, values[:len(histories)], histories)


def compare(model, optimizer, criterion, train_loader, val_loader=None, **kwargs) -> Comparison:
    """Run ``fit`` for ``epochs`` once per value of ``parameter`` (see the module docstring).

    ``callback(index, history)`` follows each run live; ``stop_event`` ends the current run
    and skips the rest. The other keyword options (``device``, ``amp``, ``loss_fn``, ...; see
    :class:`~disciplined_widgets.train.TrainingOptions`) go to every ``fit``.
    """
    return drain(compare_steps(model, optimizer, criterion, train_loader, val_loader, **kwargs))


compare.__signature__ = inspect.signature(compare_steps).replace(return_annotation=Comparison)
