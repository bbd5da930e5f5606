"""The learning-rate range test (Smith, arXiv:1506.01186 section 3.3; 1803.09820 section 4.1).

Train for ``num_iter`` steps while the LR rises from ``start_lr`` to ``end_lr``, exponentially
(``lr_i = start * (end/start)^(i/(n-1))``) or linearly, and record the loss at every step.
:class:`RangeTest` is the test around any loop (the user's own, Lightning's, the Hugging Face
Trainer's): it sets each step's LR, smooths the losses and stops on divergence, and leaves
nothing changed: the model, optimizer, RNG states, GradScaler and the loader's shuffling
generator are restored bitwise afterwards, however the block ends. :func:`lr_range_test` is
``RangeTest`` around :func:`~disciplined_widgets.train.fit`'s loop; ``lr_range_test_steps``
and ``range_tests_steps`` are the same tests one optimizer step at a time (generators
returning the result).

Under ``torchrun`` every rank sweeps the same LRs and records the mean of the ranks' losses
(one ``all_reduce`` per read), so every rank takes the same decision to stop and returns the
same result, with no rank left waiting in a collective.
"""

from __future__ import annotations

import inspect
import itertools
import math
import threading
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn

from .checks import (dict_fields, from_json_numbers, number_in, optimizer_holds, positive_float, positive_int,
                     same_lengths, to_json_numbers)
from .snapshot import Snapshot
from .suggest import EMA, Divergence, Suggestions, ema, suggest, usable_window
from .optim import momentum_key, set_momentum
from .loader import iterate
from .train import (Hook, Steps, Training, TrainingOptions, amp_autocast, drain, evaluate_batches,
                    steps_of, sum_over_ranks, world_size)

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


def _mean_over_ranks(values: list) -> list[float]:
    """The values (floats or one-element tensors) as floats, each the mean over the ranks under
    ``torch.distributed`` (one ``all_reduce`` for them all), read back from the device at once."""
    ranks = world_size()
    if ranks == 1 and len(values) == 1:
        return [float(values[0])]  # the usual case: one step's loss, one process
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
    if ranks > 1 and device.type == "cpu" and dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.float32 if device.type == "mps" else torch.float64
    stacked = torch.stack([torch.as_tensor(v, dtype=dtype, device=device).reshape(()) for v in values])
    return (sum_over_ranks(stacked) / ranks).tolist()


def check_sweep(start_lr=1e-7, end_lr=10.0, num_iter=100, mode="exp", smooth=0.98,
                diverge_factor=4.0, snapshot="cpu", sync_every=16) -> tuple[float, float]:
    """Refuse bad :class:`RangeTest` settings by name; ``(start_lr, end_lr)`` as floats."""
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
    if snapshot not in ("cpu", "disk"):
        raise ValueError(f"snapshot must be 'cpu' or 'disk', got {snapshot!r}")
    positive_int("sync_every", sync_every)
    return start_lr, end_lr


_RUNNING = weakref.WeakSet()  # the models and optimizers of the range tests running now
_RUNNING_LOCK = threading.Lock()


class RangeTest:
    """The range test around the user's own training loop::

        with RangeTest(model, optimizer, start_lr=1e-7, end_lr=10, num_iter=100) as test:
            for batch in loader:
                loss = my_step(model, optimizer, batch)  # forward, backward, optimizer.step()
                if not test.record(loss):
                    break
        test.result  # a RangeTestResult

    Entering takes a :class:`~disciplined_widgets.snapshot.Snapshot` (the model, the
    optimizer, the RNG states, ``grad_scaler``, the ``generators`` such as a loader's
    shuffling generator) and sets the first LR; leaving restores all of it bitwise and moves
    the model back to its device, whether the block ends normally, by ``break``, by an
    exception or by KeyboardInterrupt.

    ``record(loss)`` after each optimizer step adds the step's loss to the curve and sets the
    LR of the next step: ``lr_i`` of the sweep (module docstring) times each param group's
    ratio to the first group at the start. It returns False once the test has ended: after
    ``num_iter`` steps (``"completed"``), at a NaN or infinite loss (``"non_finite"``), or where
    the bias-corrected EMA of the losses (beta ``smooth``) diverges by the rule of
    :mod:`~disciplined_widgets.suggest` (``"diverged"``); the curve ends at that point. Leaving
    before the end gives ``"stopped"`` (``"interrupted"`` on KeyboardInterrupt, ``"failed"`` on
    another exception).

    A loss on an accelerator (a CUDA tensor) is read back every ``sync_every`` records, not at
    every step, so the loop waits for the device only that often; a stop is then seen up to
    ``sync_every - 1`` steps late (the curve still ends where the rule says, and the extra steps
    are undone with the rest). Floats and CPU tensors are read at once. ``test.result`` is the
    :class:`RangeTestResult` so far inside the block (``stop_reason="running"`` until the end;
    reading it reads the losses back), and the final one after it. ``snapshot="disk"`` keeps the
    snapshot in a private temporary directory instead of CPU memory; ``settings`` are what the
    result's ``label`` shows (``range_tests`` puts the weight decay or momentum there).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100,
                 mode: str = "exp", smooth: float = 0.98, diverge_factor: float = 4.0,
                 grad_scaler: torch.amp.GradScaler | None = None,
                 generators: Iterable[torch.Generator] = (), snapshot: str = "cpu",
                 sync_every: int = 16, settings: dict | None = None):
        optimizer_holds(model, optimizer)
        self.start_lr, self.end_lr = check_sweep(start_lr, end_lr, num_iter, mode, smooth,
                                                  diverge_factor, snapshot, sync_every)
        if grad_scaler is not None and not isinstance(grad_scaler, torch.amp.GradScaler):
            raise TypeError(f"grad_scaler must be a torch.amp.GradScaler, got "
                            f"{type(grad_scaler).__name__}")
        generators = list(generators)
        if not all(isinstance(g, torch.Generator) for g in generators):
            raise TypeError("generators must be torch.Generator objects (a loader's .generator)")
        self.model, self.optimizer, self.grad_scaler = model, optimizer, grad_scaler
        self.num_iter, self.mode, self.smooth = num_iter, mode, float(smooth)
        self.diverge_factor, self.snapshot, self.sync_every = float(diverge_factor), snapshot, sync_every
        self.generators, self.settings = generators, dict(settings or {})
        self.lrs = sweep_lrs(self.start_lr, self.end_lr, num_iter, mode)
        self.steps = 0  # records so far
        self.stop_reason: str | None = None
        self._running, self._final = False, None

    # ---- the block ----

    def __enter__(self) -> "RangeTest":
        if self._running:
            raise RuntimeError("this RangeTest is already running: it cannot be entered again "
                               "inside its own with block")
        if self._final is not None:
            raise RuntimeError("this RangeTest has already run; build a new one for another test")
        with _RUNNING_LOCK:
            if self.model in _RUNNING or self.optimizer in _RUNNING:
                raise RuntimeError("a range test is already running on this model or optimizer "
                                   "(a RangeTest or lr_range_test inside another): each would "
                                   "undo the other's steps when it restores")
            _RUNNING.add(self.model)
            _RUNNING.add(self.optimizer)
        try:
            self._device = next(self.model.parameters()).device
            self._snapshot = Snapshot(self.model, self.optimizer, self.grad_scaler,
                                      where=self.snapshot, generators=self.generators)
            self._sweep = _LRSweep(self.optimizer, self.lrs)
        except BaseException:
            self._release()
            raise
        self._ema, self._rule = EMA(self.smooth), Divergence(self.diverge_factor)
        self._pending: list[tuple[Any, bool]] = []  # (loss not read yet, skipped)
        self._steps_read = 0  # steps read into the curve (skipped ones included)
        self._lrs: list[float] = []
        self._losses: list[float] = []
        self._points: list[tuple[int, float, float | None]] = []  # (step, loss, accuracy)
        self._running = True
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is None or world_size() == 1:  # a collective only where every rank comes
                self._read()
            ending = ("stopped" if kind is None else
                      "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")
            self._final = self._result(self.stop_reason or ending)
        finally:
            self._running = False
            try:
                self.model.to(self._device)
                self._snapshot.restore()
            finally:
                self._snapshot.discard()
                self._release()

    def _release(self) -> None:
        with _RUNNING_LOCK:
            _RUNNING.discard(self.model)
            _RUNNING.discard(self.optimizer)

    # ---- recording ----

    def record(self, loss: torch.Tensor | float, *, skipped: bool = False) -> bool:
        """Record the loss of the step just taken and set the next LR; False once the test has
        ended. ``skipped``: fp16's GradScaler skipped this step's update (the LR moves on, the
        point is left out of the curve). Under ``torchrun`` every rank must call it."""
        self._check_running("record")
        if self.stop_reason is not None:
            raise RuntimeError(f"RangeTest.record: the test has ended ({self.stop_reason}, "
                               f"{len(self._losses)} points); stop the loop once record returns "
                               f"False")
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise ValueError(f"record: loss must be one number, got a tensor of shape "
                                 f"{tuple(loss.shape)}")
            loss = loss.detach()
        elif isinstance(loss, bool) or not isinstance(loss, (int, float)):
            raise TypeError(f"record: loss must be a float or a one-element tensor, got "
                            f"{type(loss).__name__}")
        self.steps += 1
        self._pending.append((loss, bool(skipped)))
        on_device = isinstance(loss, torch.Tensor) and loss.device.type != "cpu"
        if not on_device or len(self._pending) >= self.sync_every or self.steps == self.num_iter:
            self._read()
        if self.stop_reason is None and self.steps == self.num_iter:
            self.stop_reason = "completed"
        if self.stop_reason is None:
            self._sweep.step()
        return self.stop_reason is None

    def record_validation(self, loss: torch.Tensor | float, accuracy: float | None = None) -> None:
        """A validation point (Smith's test loss) at the step last recorded, averaged over the
        ranks under ``torchrun`` (every rank must call it)."""
        self._check_running("record_validation")
        if self.steps == 0:
            raise RuntimeError("record_validation: record a training loss first; a validation "
                               "point belongs to the step last recorded")
        values = _mean_over_ranks([loss, 0.0 if accuracy is None else accuracy])
        self._points.append((self.steps, values[0], None if accuracy is None else values[1]))

    @property
    def result(self) -> RangeTestResult:
        """The :class:`RangeTestResult` (so far, inside the block)."""
        if self._final is not None:
            return self._final
        self._check_running("result")
        self._read()
        return self._result(self.stop_reason or "running")

    def _check_running(self, what: str) -> None:
        if not self._running:
            raise RuntimeError(f"RangeTest.{what}: the test is not running; use it inside "
                               f"`with RangeTest(...) as test:`"
                               + (" (this one has ended)" if self._final is not None else ""))

    def _read(self) -> None:
        """Read the pending losses back (their mean over the ranks) into the curve, which ends
        at the first non-finite or diverged point."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        for value, (_, skipped) in zip(_mean_over_ranks([loss for loss, _ in pending]), pending):
            if self.stop_reason is not None:
                return  # steps taken before the end was seen: left out
            self._steps_read += 1
            if skipped:
                continue
            self._lrs.append(self.lrs[self._steps_read - 1])
            self._losses.append(value)
            if not math.isfinite(value):
                self.stop_reason = "non_finite"
            elif self._rule.update(self._ema.update(value)):
                self.stop_reason = "diverged"

    def _result(self, stop_reason: str) -> RangeTestResult:
        points = [p for p in self._points if p[0] <= self._steps_read]
        return RangeTestResult(
            lrs=list(self._lrs), losses=list(self._losses), stop_reason=stop_reason,
            smooth=self.smooth, diverge_factor=self.diverge_factor, mode=self.mode,
            start_lr=self.start_lr, end_lr=self.end_lr, num_iter=self.num_iter,
            val_steps=[step for step, _, _ in points],
            val_lrs=[self.lrs[step - 1] for step, _, _ in points],
            val_losses=[loss for _, loss, _ in points],
            val_accuracies=[accuracy for _, _, accuracy in points],
            settings=dict(self.settings))


class _Record(Hook):
    """Feeds every step's loss to the :class:`RangeTest`, and ends the run when the test ends."""

    def __init__(self, test: RangeTest):
        self.test = test

    def on_step_end(self, training) -> None:
        h = training.history
        skipped = bool(h.skipped_steps) and h.skipped_steps[-1] == h.steps_done
        if not self.test.record(h.last_loss(), skipped=skipped) and h.stop_reason is None:
            h.stop_reason = self.test.stop_reason


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

    def __init__(self, test: RangeTest, loader, every: int, batches: int | None):
        self.test, self.loader, self.every, self.batches = test, loader, every, batches
        self.last = 0  # the step evaluated last

    def on_step_end(self, training) -> None:
        h = training.history
        if h.stop_reason is None and h.steps_done % self.every == 0:
            self._point(training)

    def on_finish(self, training) -> None:
        """The last step, when the run ended (not when it failed) and it was not evaluated."""
        h = training.history
        if h.stop_reason is not None and h.steps_done and self.last != h.steps_done:
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
                with torch.no_grad(), amp_autocast(device, training.options.amp):
                    for batch in batches:
                        training.batch_loss(model, batch, device)
            result = evaluate_batches(model, training.batch_loss, batches, device,
                                      training.options)
        finally:
            for module, mode in zip(model.modules(), modes):
                module.training = mode
            with torch.no_grad():
                for m, (momentum, buffers) in zip(norms, saved):
                    m.momentum = momentum
                    for buffer, old in zip(m.buffers(), buffers):
                        buffer.copy_(old)
        self.last = training.history.steps_done
        self.test.record_validation(result.loss, result.accuracy)


def loader_generators(loader) -> list[torch.Generator]:
    """The shuffling generator of ``loader`` (its ``.generator``), if it has one, as a list."""
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
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    # validation points and the callback read every step's loss; otherwise options' sync_every
    reads_each_step = val_loader is not None or callback is not None
    test = RangeTest(model, optimizer, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter,
                     mode=mode, smooth=smooth, diverge_factor=diverge_factor,
                     grad_scaler=training_options.grad_scaler,
                     generators=loader_generators(train_loader), snapshot=snapshot,
                     sync_every=1 if reads_each_step else training_options.sync_every,
                     settings=settings)
    hooks = [_Record(test)]
    if val_loader is not None:
        hooks.append(_ValidationPoints(test, val_loader, val_every or max(1, num_iter // 10),
                                       val_batches))
    training = Training(
        model, optimizer, criterion, train_loader, steps=num_iter, hooks=hooks,
        callback=None if callback is None else lambda _: callback(test.result),
        stop_event=stop_event, stop_on_non_finite=False,  # the test decides, the same on every rank
        seed=seed, progress_bar=progress_bar, **options)
    with test:
        yield from steps_of(training)
    return test.result


def lr_range_test(model, optimizer, criterion, train_loader, **kwargs) -> RangeTestResult:
    """Run an LR range test and return its :class:`RangeTestResult`: a :class:`RangeTest`
    around the one training loop (:class:`~disciplined_widgets.train.Training`), so under
    ``torchrun`` it runs on every rank and returns the same result there (module docstring).

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
    name = f"{parameter}s"
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of numbers such as [1e-3, 1e-4], got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty")
    top = (math.inf, True) if parameter == "weight_decay" else (1.0, False)  # momentum < 1
    values = [number_in(name, value, 0, top[0], include_high=top[1]) for value in values]
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
