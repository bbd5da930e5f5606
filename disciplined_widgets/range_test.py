"""The learning-rate range test (Smith, arXiv:1506.01186 section 3.3; 1803.09820 section 4.1).

Train for ``num_iter`` steps while the LR rises from ``start_lr`` to ``end_lr``, exponentially
(``lr_i = start * (end/start)^(i/(n-1))``) or linearly, and record the loss at every step.
The test runs through :func:`~disciplined_widgets.train.fit` and leaves nothing changed: the
model, optimizer, RNG states, GradScaler and the loader's shuffling generator are restored
bitwise afterwards, however the test ends. ``lr_range_test_steps`` and ``range_tests_steps``
are the same tests one optimizer step at a time (generators returning the result).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .checks import (dict_fields, from_json_numbers, optimizer_holds, positive_float, positive_int,
                     same_lengths, to_json_numbers)
from .snapshot import Snapshot
from .suggest import EMA, Divergence, Suggestions, ema, suggest, usable_window
from .optim import momentum_key, set_momentum
from .loader import iterate
from .train import (History, Hook, Steps, Training, TrainingOptions, _autocast, _evaluate, drain,
                    steps_of)

MODES = ("exp", "linear")


def sweep_lrs(start_lr: float, end_lr: float, num_iter: int, mode: str = "exp") -> list[float]:
    """The LR of each of the ``num_iter`` steps of a range test."""
    if mode == "exp":
        return [start_lr * (end_lr / start_lr) ** (i / (num_iter - 1)) for i in range(num_iter)]
    return [start_lr + (end_lr - start_lr) * i / (num_iter - 1) for i in range(num_iter)]


@dataclass
class RangeTestResult:
    """The curve of one range test, its settings, and the suggestions read from it."""

    lrs: list[float]
    losses: list[float]
    stop_reason: str
    smooth: float = 0.98
    diverge_factor: float = 4.0
    mode: str = "exp"
    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_iter: int = 100
    val_steps: list[int] = field(default_factory=list)
    val_lrs: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    val_accuracies: list[float | None] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @cached_property
    def smoothed_losses(self) -> list[float]:
        """Bias-corrected EMA of ``losses`` with beta ``smooth``."""
        return ema(self.losses, self.smooth)

    @cached_property
    def suggestions(self) -> Suggestions:
        return suggest(self.lrs, self.smoothed_losses, diverge_factor=self.diverge_factor)

    def bounds(self, max_at: str = "steepest", div: float = 10.0) -> tuple[float, float] | None:
        """``(max_lr / div, max_lr)`` with ``max_lr`` from the rule ``max_at``."""
        return suggest(self.lrs, self.smoothed_losses, diverge_factor=self.diverge_factor,
                       max_at=max_at, div=div).bounds

    @property
    def usable(self) -> tuple[int, int]:
        """The ``(start, end)`` slice of points the suggestions are read from."""
        return usable_window(self.smoothed_losses, diverge_factor=self.diverge_factor)

    def resmooth(self, smooth: float) -> "RangeTestResult":
        """The same curve smoothed with another beta (no re-run)."""
        ema([], smooth)  # validates
        return replace(self, smooth=float(smooth), lrs=list(self.lrs), losses=list(self.losses))

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.settings.items()) or "range test"

    VERSION = 1

    def to_dict(self) -> dict:
        """A dict for strict JSON (non-finite losses become None), with a ``version``."""
        data = asdict(self)
        for name in ("losses", "val_losses"):
            data[name] = to_json_numbers(data[name])
        return {**data, "version": self.VERSION}

    @classmethod
    def from_dict(cls, data: dict) -> "RangeTestResult":
        """The result ``to_dict`` wrote; missing or unknown keys and uneven lists are errors."""
        data = dict_fields("RangeTestResult", data, [f.name for f in fields(cls)], cls.VERSION)
        same_lengths("RangeTestResult", data, ("lrs", "losses"))
        same_lengths("RangeTestResult", data, ("val_steps", "val_lrs", "val_losses", "val_accuracies"))
        for name in ("losses", "val_losses"):
            data[name] = from_json_numbers(data[name])
        return cls(**data)

    def plot(self, ax=None):
        """A matplotlib Figure of loss against LR (see :mod:`disciplined_widgets.plots`)."""
        from .plots import plot_range_test
        return plot_range_test(self, ax=ax)

    def __repr__(self) -> str:
        s = self.suggestions
        shown = ", ".join(f"{name}={getattr(s, name):.3g}" for name in ("steepest", "minimum", "valley")
                          if getattr(s, name) is not None)
        return (f"RangeTestResult({len(self.lrs)} steps, {self.stop_reason}, "
                f"{shown or 'no suggestion'})")


@dataclass
class RangeTestCollection:
    """Several range tests from the same starting state, one per value of ``parameter``."""

    parameter: str
    values: list
    results: list[RangeTestResult]

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> RangeTestResult:
        return self.results[index]

    def to_dict(self) -> dict:
        return {"parameter": self.parameter, "values": list(self.values),
                "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict) -> "RangeTestCollection":
        return cls(data["parameter"], list(data["values"]),
                   [RangeTestResult.from_dict(r) for r in data["results"]])

    def plot(self, ax=None):
        """One Figure with every curve (smoothed loss against LR)."""
        from .plots import plot_range_tests
        return plot_range_tests(self, ax=ax)


class _LRSweep:
    """Sets every param group's LR to the sweep value of the coming step, keeping the groups'
    LR ratios (groups with different LRs keep them relative to the first)."""

    def __init__(self, optimizer: torch.optim.Optimizer, lrs: list[float]):
        first = optimizer.param_groups[0]["lr"]
        self.ratios = [g["lr"] / first if first else 1.0 for g in optimizer.param_groups]
        self.optimizer, self.lrs, self.index = optimizer, lrs, 0
        self._apply()

    def _apply(self) -> None:
        for group, ratio in zip(self.optimizer.param_groups, self.ratios):
            group["lr"] = self.lrs[self.index] * ratio

    def step(self) -> None:
        if self.index + 1 < len(self.lrs):
            self.index += 1
            self._apply()


class _Stop:
    """A stop event for fit: set by the user's event, or by the divergence check."""

    def __init__(self, user_event):
        self.user_event, self.diverged = user_event, False

    def is_set(self) -> bool:
        return self.diverged or (self.user_event is not None and self.user_event.is_set())


class _DivergenceWatch:
    """Smooths the losses as ``RangeTestResult.smoothed_losses`` does and feeds them to
    :class:`~disciplined_widgets.suggest.Divergence`, the rule that ends ``usable_window``:
    the test stops at the point where its usable window ends."""

    def __init__(self, smooth: float, diverge_factor: float):
        self.ema, self.rule, self.seen = EMA(smooth), Divergence(diverge_factor), 0

    def diverged(self, losses: list[float]) -> bool:
        """True once the smoothed losses have diverged (see :mod:`~disciplined_widgets.suggest`)."""
        for value in losses[self.seen:]:
            self.rule.update(self.ema.update(value))
        self.seen = len(losses)
        return self.rule.diverged


class _ValidationPoints(Hook):
    """Smith's test-loss points: the first ``batches`` batches of ``loader`` evaluated every
    ``every`` steps and after the last step, with the BatchNorm statistics of the weights of
    that step.

    In eval mode BatchNorm normalises with running averages over the last ~1/momentum steps
    (10 with PyTorch's 0.1). During a range test the weights change faster at every step, so
    those averages describe weights that are gone: on MNIST-1D's CNN1D the validation loss
    read with them was 5.4 at LR 0.24, 75 at 1.6 and 790 at 10, while the training loss was
    1.7, 1.5 and 7 (and the validation loss with statistics of the current weights 1.64, 1.63
    and 2.6). So each point first re-estimates the statistics of every BatchNorm layer on the
    same validation batches (their plain average, ``momentum=None`` as
    ``torch.optim.swa_utils.update_bn`` does; BatchNorm in train mode, the rest of the model in
    eval mode, no gradients), evaluates in eval mode, and then puts the running statistics,
    momenta and modes back exactly: the training steps are the same as without the points.
    Statistics re-estimated on four training batches instead gave the same losses to 0.02 up
    to LR 1.6 (0.1 at LR 10). Without BatchNorm a point is a plain evaluation.
    """

    def __init__(self, loader, every: int, batches: int | None):
        self.loader, self.every, self.batches = loader, every, batches
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.accuracies: list[float | None] = []

    def on_step_end(self, training) -> None:
        h = training.history
        if h.stop_reason is None and h.steps_done % self.every == 0:
            self._point(training)

    def on_finish(self, training) -> None:
        """The last step, when the run ended (not when it failed) and it was not evaluated."""
        h = training.history
        if h.stop_reason is not None and h.steps_done and (
                not self.steps or self.steps[-1] != h.steps_done):
            self._point(training)

    def _point(self, training) -> None:
        model, device = training.model, training.device
        batches = list(itertools.islice(iterate(self.loader), self.batches))
        norms = [m for m in model.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        modes = [m.training for m in model.modules()]
        saved = [(m.momentum, [b.detach().clone() for b in m.buffers()]) for m in norms]
        try:
            if norms:
                model.eval()
                for m in norms:
                    m.reset_running_stats()
                    m.momentum = None
                    m.train()
                with torch.no_grad(), _autocast(device, training.options.amp):
                    for batch in batches:
                        training.batch_loss(model, batch, device)
            result = _evaluate(model, training.batch_loss, batches, device, training.options,
                               None)
        finally:
            for module, mode in zip(model.modules(), modes):
                module.training = mode
            with torch.no_grad():
                for m, (momentum, buffers) in zip(norms, saved):
                    m.momentum = momentum
                    for buffer, old in zip(m.buffers(), buffers):
                        buffer.copy_(old)
        self.steps.append(training.history.steps_done)
        self.losses.append(result.loss)
        self.accuracies.append(result.accuracy)


def _loader_generator(loader) -> list[torch.Generator]:
    generator = getattr(loader, "generator", None)
    return [generator] if isinstance(generator, torch.Generator) else []


def lr_range_test_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: Callable | None,
    train_loader: Iterable,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: str = "exp",
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    val_loader: Iterable | None = None,
    val_every: int | None = None,
    val_batches: int | None = 4,
    callback: Callable[[RangeTestResult], Any] | None = None,
    stop_event: Any = None,
    seed: int | None = None,
    snapshot: str = "cpu",
    progress_bar: bool = False,
    settings: dict | None = None,
    **options,
) -> Steps[RangeTestResult]:
    """:func:`lr_range_test` one optimizer step at a time: a generator that yields after every
    step and returns the :class:`RangeTestResult` (arguments as ``lr_range_test``)."""
    optimizer_holds(model, optimizer)
    start_lr = positive_float("start_lr", start_lr)
    end_lr = positive_float("end_lr", end_lr)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be greater than start_lr, got start_lr={start_lr:g}, "
                         f"end_lr={end_lr:g}")
    positive_int("num_iter", num_iter)
    if num_iter < 2:
        raise ValueError(f"num_iter must be at least 2, got {num_iter}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not 0 <= smooth < 1:
        raise ValueError(f"smooth must be a number in [0, 1), got {smooth!r}")
    if positive_float("diverge_factor", diverge_factor) <= 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    training_options = TrainingOptions.of(options)
    if val_loader is None:
        if val_every is not None:
            raise ValueError("val_every asks for validation points but val_loader is None")
    else:
        if not hasattr(val_loader, "__iter__") or isinstance(val_loader, Iterator):
            raise TypeError(f"val_loader must give a new pass over its batches each time (a "
                            f"DataLoader, a TensorLoader, a list of batches), got "
                            f"{type(val_loader).__name__}")
        positive_int("val_every", val_every, allow_none=True)
        positive_int("val_batches", val_batches, allow_none=True)
        val_every = val_every or max(1, num_iter // 10)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    if snapshot not in ("cpu", "disk"):
        raise ValueError(f"snapshot must be 'cpu' or 'disk', got {snapshot!r}")

    lrs = sweep_lrs(start_lr, end_lr, num_iter, mode)
    stop = _Stop(stop_event)
    common = dict(smooth=float(smooth), diverge_factor=float(diverge_factor), mode=mode,
                  start_lr=start_lr, end_lr=end_lr, num_iter=num_iter,
                  settings=dict(settings or {}))
    points = (_ValidationPoints(val_loader, val_every, val_batches)
              if val_loader is not None else None)

    def result_of(history: History, stop_reason: str) -> RangeTestResult:
        lr_at, skipped = history.lr, set(history.skipped_steps)
        kept = [i for i, step in enumerate(history.step) if step not in skipped]
        losses = history.train_loss
        steps = list(points.steps) if points is not None else []
        return RangeTestResult(
            lrs=[lr_at[i] for i in kept], losses=[losses[i] for i in kept],
            stop_reason=stop_reason,
            val_steps=steps, val_lrs=[lr_at[s - 1] for s in steps],
            val_losses=list(points.losses) if points is not None else [],
            val_accuracies=list(points.accuracies) if points is not None else [],
            **common)

    watch = _DivergenceWatch(smooth, diverge_factor)

    def on_step(history: History) -> None:
        if watch.diverged(history.train_loss):
            stop.diverged = True
        if callback is not None:
            callback(result_of(history, "running"))

    original_device = next(model.parameters()).device
    saved = Snapshot(model, optimizer, training_options.grad_scaler, where=snapshot,
                     generators=_loader_generator(train_loader))
    try:
        history = yield from steps_of(Training(
            model, optimizer, criterion, train_loader, steps=num_iter,
            schedulers=[_LRSweep(optimizer, lrs)], hooks=[points] if points is not None else (),
            callback=on_step, stop_event=stop, seed=seed, progress_bar=progress_bar,
            **{**options, "sync_every": 1}))
    finally:
        model.to(original_device)
        saved.restore()
        saved.discard()
    reason = history.stop_reason
    if stop.diverged and reason != "non_finite":
        reason = "diverged"
    return result_of(history, reason)


def lr_range_test(model, optimizer, criterion, train_loader, **kwargs) -> RangeTestResult:
    """Run an LR range test and return its :class:`RangeTestResult`.

    The loader is cycled when it is shorter than ``num_iter``. The test stops early when the
    smoothed loss diverges (``"diverged"``: with the default ``diverge_factor=4`` once it has
    climbed back as far as it had fallen; see :mod:`~disciplined_widgets.suggest`), at once on a NaN
    or infinite loss (``"non_finite"``), or when ``stop_event`` is set (``"stopped"``).
    With ``val_loader``, the first ``val_batches`` batches are evaluated every ``val_every``
    steps (default: 10 points over the test) and after the last, as Smith does with the test
    loss, with BatchNorm statistics re-estimated for the weights of that step (running
    averages lag far behind weights that change this fast; see ``_ValidationPoints``).
    ``callback(partial_result)`` runs after every step. The snapshot that restores
    everything is kept on the CPU, or with ``snapshot="disk"`` in a private temporary directory.
    ``criterion`` is None for a model that returns its own ``.loss``; the other keyword options
    (``loss_fn``, ``unpack``, ``device``, ``amp``, ``grad_scaler``, ``accumulation_steps``,
    ``clip_grad_norm``, ...) are :class:`~disciplined_widgets.train.TrainingOptions`. Steps
    whose update fp16's GradScaler skipped are left out of the curve.
    """
    return drain(lr_range_test_steps(model, optimizer, criterion, train_loader, **kwargs))


lr_range_test.__signature__ = inspect.signature(lr_range_test_steps).replace(
    return_annotation=RangeTestResult)


def range_tests_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: Callable | None,
    train_loader: Iterable,
    *,
    weight_decays: list[float] | None = None,
    momentums: list[float] | None = None,
    **kwargs,
) -> Steps[RangeTestCollection]:
    """:func:`range_tests` one optimizer step at a time (a generator returning the collection)."""
    if (weight_decays is None) == (momentums is None):
        raise ValueError("give exactly one of weight_decays and momentums")
    parameter, values = (("weight_decay", weight_decays) if weight_decays is not None
                         else ("momentum", momentums))
    values = list(values)
    if not values:
        raise ValueError(f"{parameter}s is empty")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{parameter}s must be numbers >= 0, got {value!r}")
    groups = optimizer.param_groups
    key = momentum_key(groups[0]) if parameter == "momentum" else parameter
    if key is None or key not in groups[0]:
        raise ValueError(f"{type(optimizer).__name__} has no {parameter}"
                         + (" (nor betas)" if parameter == "momentum" else ""))
    originals = [g[key] for g in groups]
    results = []
    try:
        for value in values:
            for group in groups:
                if key == "weight_decay":
                    group[key] = float(value)
                else:
                    set_momentum(group, value)
            results.append((yield from lr_range_test_steps(
                model, optimizer, criterion, train_loader, settings={parameter: float(value)},
                **kwargs)))
    finally:
        for group, original in zip(groups, originals):
            group[key] = original
    return RangeTestCollection(parameter, values, results)


def range_tests(model, optimizer, criterion, train_loader, **kwargs) -> RangeTestCollection:
    """One range test per weight decay (or per momentum; Adam's beta1), each from the same
    starting state and the same batches, as in Smith's figure of range tests at WD 1e-3...0.
    ``kwargs`` go to :func:`lr_range_test`. The optimizer's values are restored afterwards."""
    return drain(range_tests_steps(model, optimizer, criterion, train_loader, **kwargs))


range_tests.__signature__ = inspect.signature(range_tests_steps).replace(
    return_annotation=RangeTestCollection)
