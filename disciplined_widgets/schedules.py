"""Schedules for ``fit``: 1cycle, cyclical LR, batch-size growth, and a preview of any of them.

- :func:`one_cycle` (Smith 1803.09820 section 4.1; Smith & Topin 1708.07120) on
  ``torch.optim.lr_scheduler.OneCycleLR``. ``style="smith"``: LR rises linearly from
  ``max_lr/div`` to ``max_lr`` over ``pct_start`` of the steps, falls back linearly over the
  same number, then the remaining steps (10% by default) anneal it to ``max_lr/div/final_div``
  (``three_phase=True``). ``style="fastai"``: two cosine phases (up over ``pct_start``, then
  down to ``max_lr/div/final_div``). Momentum (Adam's beta1) moves between ``momentum[0]``,
  where the LR is lowest, and ``momentum[1]``, at its peak: (0.95, 0.85) moves it the opposite
  way to the LR (cyclical momentum, section 4.3), (0.85, 0.95) with it (the reverse cycle).
  Units: per optimizer step.
- :func:`cyclical` (Smith 1506.01186 section 3.1) on ``CyclicLR``: ``triangular``,
  ``triangular2`` and ``exp_range``; a cycle is two "steps" of ``step_size_up`` iterations.
- :class:`BatchSizeSchedule` (S. L. Smith et al. 1711.00489): at each milestone epoch multiply
  the batch size by ``factor`` instead of dividing the LR by it; once the batch would pass
  ``max_batch_size``, divide the LR instead (the hybrid). ``max_batch_size`` equal to the
  first batch size gives the classic step decay of the LR. Units: per epoch.
- :func:`preview`: LR, momentum and batch size of every step, computed on a probe optimizer.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR

from .checks import instance_of, momentum_pair, number_in, positive_float, positive_int
from .optim import CYCLICAL_MOMENTUM, has_momentum, momentum_of, scale_lrs
from .train import Hook, planned_batches, steps_in_epoch

STYLES = {
    # pct_start, final_div (of the min LR), anneal strategy, three phases
    "smith": (0.45, 100.0, "linear", True),
    "fastai": (0.25, 1e4, "cos", False),
}


class OneCycle(OneCycleLR):
    """``OneCycleLR`` that holds its final LR after the last training step (torch's would
    extrapolate the last phase, even below zero) and explains what to do when stepped further."""

    def get_lr(self):
        step = self.last_epoch
        self.last_epoch = min(step, self.total_steps - 1)
        try:
            return super().get_lr()
        finally:
            self.last_epoch = step

    def step(self, epoch=None):
        if self.last_epoch >= self.total_steps:
            raise RuntimeError(
                f"one_cycle was stepped {self.last_epoch + 1} times but was built for "
                f"total_steps={self.total_steps}: build it with total_steps = epochs * "
                f"len(train_loader) (optimizer steps), or pass steps= to fit")
        return super().step()


def _an_optimizer(optimizer) -> None:
    instance_of("optimizer", optimizer, torch.optim.Optimizer, "for example torch.optim.SGD(...)")


def _per_group(optimizer: torch.optim.Optimizer, lr: float) -> list[float]:
    """``lr`` for the first param group, the others scaled as their LRs are now
    (discriminative LRs keep their ratios)."""
    first = optimizer.param_groups[0]["lr"]
    return [lr * (group["lr"] / first if first else 1.0) for group in optimizer.param_groups]


def one_cycle(optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int, *,
              div: float = 10.0, final_div: float | None = None, pct_start: float | None = None,
              momentum: tuple[float, float] | None = CYCLICAL_MOMENTUM,
              style: str = "smith") -> OneCycle:
    """The 1cycle policy with cyclical momentum (see the module docstring); ``momentum`` is
    (where the LR is lowest, at the LR's peak), in either order."""
    _an_optimizer(optimizer)
    if style not in STYLES:
        raise ValueError(f"style must be one of {tuple(STYLES)}, got {style!r}")
    default_pct, default_final, anneal, three_phase = STYLES[style]
    max_lr = positive_float("max_lr", max_lr)
    positive_int("total_steps", total_steps)
    if positive_float("div", div) <= 1:
        raise ValueError(f"div must be > 1, got {div!r}")
    final_div = default_final if final_div is None else positive_float("final_div", final_div)
    if final_div < 1:
        raise ValueError(f"final_div must be >= 1 (the end LR is min_lr / final_div), got {final_div!r}")
    pct_start = default_pct if pct_start is None else number_in(
        "pct_start", pct_start, 0, 0.5 if three_phase else 1, include_low=False, include_high=False)
    if pct_start * total_steps <= 1:
        raise ValueError(f"total_steps={total_steps} is too short for pct_start={pct_start:g}: the LR "
                         f"would rise for {pct_start * total_steps:g} step; give total_steps > "
                         f"{math.floor(1 / pct_start)}")
    if momentum is not None:
        momentum = momentum_pair("momentum", momentum, ordered=False)
        if not has_momentum(optimizer):
            raise ValueError(f"{type(optimizer).__name__} has no momentum or betas to cycle; "
                             f"pass momentum=None")
    return OneCycle(
        optimizer, max_lr=_per_group(optimizer, max_lr), total_steps=total_steps, pct_start=pct_start,
        anneal_strategy=anneal, cycle_momentum=momentum is not None,
        base_momentum=(momentum or CYCLICAL_MOMENTUM)[1],
        max_momentum=(momentum or CYCLICAL_MOMENTUM)[0],
        div_factor=div, final_div_factor=final_div, three_phase=three_phase)


def cyclical(optimizer: torch.optim.Optimizer, base_lr: float, max_lr: float,
             step_size_up: int, *, mode: str = "triangular", gamma: float = 1.0,
             step_size_down: int | None = None,
             momentum: tuple[float, float] | None = None) -> CyclicLR:
    """Cyclical learning rates between ``base_lr`` and ``max_lr`` (per optimizer step)."""
    _an_optimizer(optimizer)
    base_lr, max_lr = positive_float("base_lr", base_lr), positive_float("max_lr", max_lr)
    if max_lr <= base_lr:
        raise ValueError(f"max_lr must be greater than base_lr, got {base_lr:g} and {max_lr:g}")
    positive_int("step_size_up", step_size_up)
    positive_int("step_size_down", step_size_down, allow_none=True)
    if mode not in ("triangular", "triangular2", "exp_range"):
        raise ValueError(f"mode must be 'triangular', 'triangular2' or 'exp_range', got {mode!r}")
    gamma = number_in("gamma", gamma, 0, 1, include_low=False)
    if momentum is not None:
        momentum = momentum_pair("momentum", momentum)
        if not has_momentum(optimizer):
            raise ValueError(f"{type(optimizer).__name__} has no momentum to cycle; pass momentum=None")
    high, low = momentum or (0.9, 0.8)
    return CyclicLR(optimizer, base_lr=_per_group(optimizer, base_lr),
                    max_lr=_per_group(optimizer, max_lr), step_size_up=step_size_up,
                    step_size_down=step_size_down, mode=mode, gamma=gamma,
                    cycle_momentum=momentum is not None, base_momentum=low, max_momentum=high)


@dataclass(frozen=True)
class BatchSizeSchedule(Hook):
    """Grow the batch size by ``factor`` at each milestone epoch; past ``max_batch_size``, divide
    the LR by ``factor`` instead (see the module docstring). Pass it to
    ``fit(batch_size_schedule=...)`` with a :class:`~disciplined_widgets.TensorLoader`: at the
    start of each epoch it sets the loader's batch size, and at a milestone where the LR falls
    it multiplies every group's current LR by 1/``factor`` (an LR scheduler stepped after
    every step, such as 1cycle, sets the LR itself: combine one with batch growth only)."""

    batch_size: int
    milestones: tuple[int, ...]
    factor: float = 5.0
    max_batch_size: int | None = None

    def __post_init__(self):
        positive_int("batch_size", self.batch_size)
        if isinstance(self.milestones, (str, bytes)) or not hasattr(self.milestones, "__iter__"):
            raise TypeError(f"milestones must be a list of epochs such as (30, 60), got "
                            f"{self.milestones!r}")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if not self.milestones:
            raise ValueError("milestones must name at least one epoch, such as (30, 60)")
        for m in self.milestones:
            positive_int("milestones", m)
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones must be increasing, got {self.milestones}")
        if positive_float("factor", self.factor) <= 1:
            raise ValueError(f"factor must be > 1, got {self.factor!r}")
        positive_int("max_batch_size", self.max_batch_size, allow_none=True)
        if self.max_batch_size is not None and self.max_batch_size < self.batch_size:
            raise ValueError(f"max_batch_size ({self.max_batch_size}) is below batch_size "
                             f"({self.batch_size})")

    def _stages(self, epoch: int) -> tuple[int, int]:
        """(times the batch grew, times the LR fell) by the start of ``epoch``."""
        passed = sum(epoch >= m for m in self.milestones)
        grown = 0
        while grown < passed and (self.max_batch_size is None or round(
                self.batch_size * self.factor ** (grown + 1)) <= self.max_batch_size):
            grown += 1
        return grown, passed - grown

    def __call__(self, epoch: int) -> int:
        """Batch size for ``epoch`` (0-based)."""
        return round(self.batch_size * self.factor ** self._stages(epoch)[0])

    def lr_factor(self, epoch: int) -> float:
        """The LR at ``epoch`` relative to the starting LR."""
        return self.factor ** -self._stages(epoch)[1]

    def on_epoch_start(self, training) -> None:
        """Set the batch size of ``training.epoch``; decay the LR where the schedule does."""
        epoch = training.epoch
        training.train_loader.batch_size = self(epoch)
        if epoch > 0 and self.lr_factor(epoch) != self.lr_factor(epoch - 1):
            scale_lrs(training.optimizer, self.lr_factor(epoch) / self.lr_factor(epoch - 1))


@dataclass
class SchedulePreview:
    """Per step: the LR and momentum the optimizer uses, and the nominal samples per step
    (batch size times accumulation steps; None without a loader)."""

    step: list[int]
    epoch: list[float]
    lr: list[float]
    momentum: list[float | None]
    batch_size: list[int]

    def to_dict(self) -> dict:
        return dict(vars(self))

    def plot(self, ax=None):
        from .plots import plot_schedule
        return plot_schedule(self, ax=ax)


def _probe(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """An optimizer of the same class with one dummy parameter and group 0's hyper-parameters
    (those its constructor takes: AdamW keeps Adam's ``decoupled_weight_decay`` in its
    defaults, but sets it itself)."""
    accepted = inspect.signature(type(optimizer)).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    settings = {k: v for k, v in optimizer.param_groups[0].items()
                if k != "params" and k in optimizer.defaults and (takes_any or k in accepted)}
    return type(optimizer)([torch.nn.Parameter(torch.zeros(1))], **settings)


@dataclass
class _PreviewState:
    """What a batch-size schedule's ``on_epoch_start`` reads and sets, for a preview."""

    optimizer: torch.optim.Optimizer
    train_loader: object
    epoch: int = 0


def preview(optimizer: torch.optim.Optimizer,
            schedulers: Callable[[torch.optim.Optimizer], object] | None = None, *,
            epochs: int | None = None, steps: int | None = None,
            steps_per_epoch: int | None = None, train_loader=None,
            batch_size_schedule: Callable[[int], int] | None = None,
            accumulation_steps: int = 1) -> SchedulePreview:
    """What ``fit`` would apply at every step, without touching ``optimizer``.

    ``schedulers(probe)`` builds the scheduler(s) for a probe optimizer (same class, group 0's
    hyper-parameters), for example ``lambda opt: one_cycle(opt, 0.5, total)``. Give the epoch
    length as ``steps_per_epoch`` or as the ``train_loader`` (needed with a batch-size schedule;
    its batch size is put back afterwards).
    """
    _an_optimizer(optimizer)
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs and steps")
    positive_int("epochs", epochs, allow_none=True)
    positive_int("steps", steps, allow_none=True)
    positive_int("accumulation_steps", accumulation_steps)
    if (steps_per_epoch is None) == (train_loader is None):
        raise ValueError("give exactly one of steps_per_epoch and train_loader")
    if batch_size_schedule is not None and train_loader is None:
        raise ValueError("a batch_size_schedule needs the train_loader to count steps per epoch")
    positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    probe = _probe(optimizer)
    made = schedulers(probe) if schedulers is not None else []
    made = made if isinstance(made, (list, tuple)) else [made]
    group = probe.param_groups[0]
    out = SchedulePreview([], [], [], [], [])
    if steps_per_epoch is None and len(train_loader) == 0:
        raise ValueError("train_loader is empty: it gives no batches")
    epochs = epochs or steps  # with steps: an upper bound, as every epoch has a step
    plan = ([steps_per_epoch] * epochs if steps_per_epoch is not None
            else planned_batches(train_loader, epochs, batch_size_schedule))
    hook = batch_size_schedule if hasattr(batch_size_schedule, "on_epoch_start") else None
    at = _PreviewState(probe, train_loader)
    original = getattr(train_loader, "batch_size", None)
    try:
        for epoch, batches in enumerate(plan):
            at.epoch = epoch
            if hook is not None:
                hook.on_epoch_start(at)
            elif batch_size_schedule is not None:
                train_loader.batch_size = batch_size_schedule(epoch)
            nominal = getattr(train_loader, "batch_size", None)
            for index in range(steps_in_epoch(batches, accumulation_steps)):
                if steps is not None and len(out.step) == steps:
                    return out
                out.step.append(len(out.step) + 1)
                out.epoch.append(epoch + min(batches, (index + 1) * accumulation_steps) / batches)
                out.lr.append(float(group["lr"]))
                out.momentum.append(momentum_of(group))
                out.batch_size.append(nominal * accumulation_steps if nominal else None)
                if made:  # without schedulers the settings stay: no step to take
                    probe.step()
                    for scheduler in made:
                        scheduler.step()
    finally:
        if train_loader is not None and batch_size_schedule is not None:
            train_loader.batch_size = original
    return out
