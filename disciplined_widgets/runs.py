"""One short training described by plain hyper-parameters: the unit of searches and the recipe.

A run builds a fresh model with ``model_factory()`` (the same initial weights for every run
with the same ``seed``), an optimizer (plain SGD by default, or any ``params -> optimizer``
such as ``torch.optim.AdamW``) with the run's momentum (Adam: beta1) and weight decay, and
1cycle (Smith 1803.09820 section 4.1) from ``max_lr / div_factor`` up to ``max_lr`` and back,
over a budget of ``steps`` optimizer steps or ``epochs``. ``momentum="cyclical"`` cycles
0.95 -> 0.85 -> 0.95 against the LR (section 4.3); a number keeps it constant. The batch
size resizes a copy of the training loader; the user's loader is not changed.

Step-wise forms: ``train_run_steps`` (and ``lr_range_test_steps``, ``compare_steps``,
``Search.run_steps``) are generators that yield after every optimizer step and return the
result; the blocking function is ``drain`` of its twin, so there is one implementation. A
caller that interleaves other work between steps (a widget on the notebook's event loop)
advances the generator itself; ``train.steps_of(training)`` is the step-wise ``Training.run()``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import torch
from torch import nn

from .checks import positive_float, positive_int
from .loader import with_batch_size
from .optim import CYCLICAL_MOMENTUM, has_momentum, set_momentum
from .schedules import one_cycle
from .step import CROSS_ENTROPY, criterion_with
from .train import History, Steps, Training, drain, steps_of

HYPERPARAMETERS = ("max_lr", "div_factor", "momentum", "weight_decay", "batch_size")
OptimizerFactory = Callable[[Any], torch.optim.Optimizer]
@dataclass(frozen=True)
class Hyperparameters:
    """The values one run trains with (see the module docstring for their meaning)."""

    max_lr: float = 0.1
    div_factor: float = 10.0
    momentum: float | str = "cyclical"
    weight_decay: float = 0.0
    batch_size: int = 128

    def __post_init__(self) -> None:
        positive_float("max_lr", self.max_lr)
        if positive_float("div_factor", self.div_factor) <= 1:
            raise ValueError(f"div_factor must be > 1, got {self.div_factor!r}")
        if self.momentum != "cyclical" and (
                isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float))
                or not 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1) or 'cyclical', got {self.momentum!r}")
        if (isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float))
                or not math.isfinite(self.weight_decay) or self.weight_decay < 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        positive_int("batch_size", self.batch_size)

    def replace(self, **changes) -> "Hyperparameters":
        """A copy with some values changed (validated)."""
        unknown = sorted(set(changes) - set(HYPERPARAMETERS))
        if unknown:
            raise ValueError(f"unknown hyper-parameters {unknown}; expected some of {HYPERPARAMETERS}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def min_lr(self) -> float:
        return self.max_lr / self.div_factor


def build_optimizer(optimizer: OptimizerFactory, model: nn.Module, *, lr: float,
                    weight_decay: float, momentum: float | None) -> torch.optim.Optimizer:
    """``optimizer(model.parameters())`` (a class such as ``torch.optim.AdamW``, or a factory),
    with ``lr``, ``weight_decay`` and ``momentum`` (Adam: beta1) set on every param group."""
    if not callable(optimizer) or isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer must be an optimizer class or a function params -> optimizer, "
                        f"such as torch.optim.AdamW, got {type(optimizer).__name__}")
    built = optimizer(model.parameters())
    if not isinstance(built, torch.optim.Optimizer):
        raise TypeError(f"optimizer(params) must return a torch.optim.Optimizer, got "
                        f"{type(built).__name__}")
    if momentum is not None and not has_momentum(built):
        raise ValueError(f"{type(built).__name__} has no momentum or betas for momentum={momentum!r}")
    if weight_decay and "weight_decay" not in built.param_groups[0]:
        raise ValueError(f"{type(built).__name__} has no weight_decay for weight_decay={weight_decay!r}")
    for group in built.param_groups:
        group["lr"] = lr
        if "weight_decay" in group:
            group["weight_decay"] = weight_decay
        if momentum is not None:
            set_momentum(group, momentum)
    return built


def train_run_steps(
    model_factory: Callable[[], nn.Module],
    train_loader,
    val_loader,
    hyperparameters: Hyperparameters,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    criterion: Callable | None = CROSS_ENTROPY,
    optimizer: OptimizerFactory = torch.optim.SGD,
    seed: int = 0,
    evaluations: int = 10,
    callback: Callable[[History], Any] | None = None,
    stop_event: Any = None,
    **options,
) -> Steps[History]:
    """:func:`train_run` one optimizer step at a time: a generator that yields after every step
    and returns the ``History`` (arguments as ``train_run``; they are checked at the first step)."""
    if not callable(model_factory) or isinstance(model_factory, nn.Module):
        raise TypeError("model_factory must be a function that builds a fresh model, such as "
                        f"lambda: MyNet(), got {type(model_factory).__name__}")
    if not isinstance(hyperparameters, Hyperparameters):
        raise TypeError(f"hyperparameters must be Hyperparameters, got {type(hyperparameters).__name__}")
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps and epochs as the budget")
    positive_int("steps", steps, allow_none=True)
    positive_int("epochs", epochs, allow_none=True)
    positive_int("evaluations", evaluations)
    hp = hyperparameters
    loader = with_batch_size(train_loader, hp.batch_size)
    if hasattr(loader, "generator") and isinstance(loader.generator, torch.Generator):
        loader.generator.manual_seed(seed)
    total = steps if steps is not None else epochs * len(loader)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_factory() must return an nn.Module, got {type(model).__name__}")
    constant = hp.momentum != "cyclical"
    built = build_optimizer(optimizer, model, lr=hp.min_lr, weight_decay=hp.weight_decay,
                            momentum=float(hp.momentum) if constant else CYCLICAL_MOMENTUM[0])
    schedule = one_cycle(built, hp.max_lr, total, div=hp.div_factor,
                         momentum=None if constant else CYCLICAL_MOMENTUM)
    criterion = criterion_with(criterion, options.get("loss_fn"))
    return (yield from steps_of(Training(
        model, built, criterion, loader, val_loader, steps=total, schedulers=[schedule],
        eval_every=math.ceil(total / evaluations), callback=callback, stop_event=stop_event,
        seed=seed, **options)))


def train_run(model_factory, train_loader, val_loader, hyperparameters, **settings) -> History:
    """Train a fresh ``model_factory()`` with ``hyperparameters`` and return its ``History``.

    Exactly one of ``steps`` and ``epochs`` is the budget. The validation set is evaluated
    ``evaluations`` times along the run (and at its end). ``criterion`` defaults to
    cross-entropy (None: the model's own ``.loss``); ``optimizer`` to SGD. The other keyword
    options (``loss_fn``, ``device``, ``amp``, ``accumulation_steps``, ``clip_grad_norm``, ...)
    go to ``fit``.
    """
    return drain(train_run_steps(model_factory, train_loader, val_loader, hyperparameters,
                                 **settings))


train_run.__signature__ = inspect.signature(train_run_steps).replace(return_annotation=History)
