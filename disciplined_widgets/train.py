"""The one training loop: :class:`Training` (one optimizer step per call), ``fit``, ``History``
and ``evaluate``.

Everything that trains (range tests, 1cycle runs, comparisons, searches, widgets) runs a
:class:`Training`; ``fit`` is ``Training(...).run()``. A batch becomes a loss through the one
hook of :mod:`~disciplined_widgets.step` (a criterion, the model's own ``.loss``, or the user's
``loss_fn``). Features that act during training plug into named moments of the loop
(:class:`Hook`: epoch start, step end, evaluation): LR schedulers are stepped after every
optimizer step (any ``torch.optim.lr_scheduler`` scheduler), a batch-size schedule acts at the
start of every epoch, the progress bar and the callback follow the steps.

Each epoch is one ``for batch in train_loader`` pass, exhausted as a plain loop would, so a
shuffled ``DataLoader`` draws the same batches as the user's own loop. Losses stay on the device
and are read back in chunks of ``sync_every`` steps, so the loop does not wait for the device
after every step.

Under ``torchrun`` (``torch.distributed`` initialised, a ``DistributedDataParallel`` model, a
``DistributedSampler``) every rank runs the same loop: the sampler's ``set_epoch(epoch)`` is
called at the start of every epoch (a new shuffle each epoch, the same on every rank), and
evaluation sums losses, correct predictions and samples over the ranks before dividing, so
every rank gets the mean over all the ranks' validation samples.
"""

from __future__ import annotations

import inspect
import itertools
import math
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Generator, Iterable, NamedTuple, Protocol, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .batch import Unpack, unpack_batch
from .checks import (dict_fields, existing_device, flag, from_json_numbers, instance_of, optimizer_holds,
                     positive_float, positive_int, same_lengths, to_json_numbers)
from .loader import iterate
from .optim import momentum_of
from .step import BatchLoss, Metric, correct_count

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_END = object()  # what _next_batch returns at the end of an epoch


class Stepper(Protocol):
    def step(self) -> Any: ...


@dataclass
class History:
    """What happened during a training run.

    Per optimizer step: ``step`` (1, 2, ...), ``epoch`` (fractional epochs done after the
    step; whole epochs for a loader without a length), ``train_loss`` (mean over the step's
    samples), ``lr`` and ``momentum`` (of the first param group, as used by the step; momentum
    is Adam's beta1 for Adam-like optimizers), ``batch_size`` (samples in the step) and
    ``time`` (seconds since the start). ``skipped_steps``: the steps whose update fp16's
    GradScaler skipped (an inf/NaN gradient). Per evaluation: ``eval_step``, ``eval_epoch``,
    ``val_loss``, ``val_accuracy`` (None when outputs and targets are not classification-shaped),
    ``val_metrics`` (``{name: [value per evaluation]}``) and ``eval_time``.
    """

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    _train_loss: list[float] = field(default_factory=list, repr=False)
    lr: list[float] = field(default_factory=list)
    momentum: list[float | None] = field(default_factory=list)
    batch_size: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    skipped_steps: list[int] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_epoch: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    val_metrics: dict[str, list[float]] = field(default_factory=dict)
    eval_time: list[float] = field(default_factory=list)
    stop_reason: str | None = None
    total_steps: int | None = None
    _pending: list[torch.Tensor] = field(default_factory=list, repr=False)

    STEP_FIELDS = ("step", "epoch", "train_loss", "lr", "momentum", "batch_size", "time")
    EVAL_FIELDS = ("eval_step", "eval_epoch", "val_loss", "val_accuracy", "eval_time")

    @property
    def train_loss(self) -> list[float]:
        self.sync()
        return self._train_loss

    def sync(self) -> None:
        """Read the step losses still on the device back into ``train_loss``."""
        if len(self._pending) == 1:
            self._train_loss.append(self._pending.pop().item())
        elif self._pending:
            self._train_loss += torch.stack(self._pending).float().tolist()
            self._pending.clear()

    def last_loss(self) -> torch.Tensor | float:
        """The last step's loss without reading it back: a device tensor until the next sync."""
        return self._pending[-1] if self._pending else self._train_loss[-1]

    @property
    def steps_done(self) -> int:
        return len(self.step)

    VERSION = 1
    DICT_KEYS = (*STEP_FIELDS, *EVAL_FIELDS, "skipped_steps", "val_metrics", "stop_reason",
                 "total_steps")

    def to_dict(self) -> dict:
        """A dict for strict JSON (``json.dumps(allow_nan=False)``): lists of numbers, NaN and
        infinite losses as None, the stop reason, and a ``version``."""
        lists = {name: to_json_numbers(getattr(self, name))
                 for name in (*self.STEP_FIELDS, *self.EVAL_FIELDS, "skipped_steps")}
        return {**lists, "val_metrics": {k: to_json_numbers(v) for k, v in self.val_metrics.items()},
                "stop_reason": self.stop_reason, "total_steps": self.total_steps,
                "version": self.VERSION}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """The History ``to_dict`` wrote; missing or unknown keys and uneven lists are errors."""
        data = dict_fields("History", data, cls.DICT_KEYS, cls.VERSION)
        same_lengths("History", data, cls.STEP_FIELDS)
        same_lengths("History", {**data, **data["val_metrics"]}, [*cls.EVAL_FIELDS, *data["val_metrics"]])
        for name in ("train_loss", "val_loss"):
            data[name] = from_json_numbers(data[name])
        data["val_metrics"] = {k: from_json_numbers(v) for k, v in data["val_metrics"].items()}
        data["_train_loss"] = data.pop("train_loss")
        return cls(**data)

    def __repr__(self) -> str:
        last = ""
        if self.val_loss:
            acc = self.val_accuracy[-1]
            last = f", last val_loss={self.val_loss[-1]:.4f}" + (
                f" val_accuracy={acc:.4f}" if acc is not None else "")
        return f"History({self.steps_done} steps, stop_reason={self.stop_reason!r}{last})"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` means the best available: CUDA, then Apple's MPS, then the CPU. A device that
    does not exist or is not available here is a ``ValueError`` naming it."""
    if device is not None:
        return existing_device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class TrainingOptions:
    """How each batch is trained and evaluated. The same keyword arguments are accepted by
    ``fit``, ``evaluate``, ``lr_range_test``, ``range_tests``, ``compare``, ``train_run``,
    ``discipline``, ``Search`` and ``largest_batch_size``, and passed on unchanged.

    ``loss_fn(model, batch)``: the user's own step (see :mod:`~disciplined_widgets.step`).
    ``unpack(batch) -> (inputs, targets)`` for a criterion. ``metrics``: ``{name: fn(outputs,
    targets)}`` averaged over the validation samples. ``amp``: ``"bf16"`` or ``"fp16"`` (with
    ``grad_scaler``, or a new ``GradScaler``). ``accumulation_steps`` batches per optimizer step
    (each batch's loss divided by it). ``clip_grad_norm``: the largest total gradient norm
    (``torch.nn.utils.clip_grad_norm_``, after unscaling). ``sync_every``: steps between reading
    losses back from the device.
    """

    loss_fn: Callable | None = None
    unpack: Unpack = unpack_batch
    metrics: Mapping[str, Metric] | None = None
    device: str | torch.device | None = None
    amp: str | None = None
    grad_scaler: torch.amp.GradScaler | None = None
    accumulation_steps: int = 1
    clip_grad_norm: float | None = None
    sync_every: int = 16

    def __post_init__(self) -> None:
        if self.amp not in (None, *AMP_DTYPES):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        positive_int("accumulation_steps", self.accumulation_steps)
        positive_int("sync_every", self.sync_every)
        if self.clip_grad_norm is not None:
            positive_float("clip_grad_norm", self.clip_grad_norm)
        if self.metrics is not None:
            if not isinstance(self.metrics, Mapping):
                raise TypeError(f"metrics must be a dict of name -> fn(outputs, targets), got "
                                f"{type(self.metrics).__name__}")
            for name, metric in self.metrics.items():
                if not isinstance(name, str) or not callable(metric):
                    raise TypeError(f"metrics[{name!r}] must be a callable fn(outputs, targets)")
        if self.grad_scaler is not None and not isinstance(self.grad_scaler, torch.amp.GradScaler):
            raise TypeError(f"grad_scaler must be a torch.amp.GradScaler, got "
                            f"{type(self.grad_scaler).__name__}")

    @classmethod
    def of(cls, options: Mapping) -> "TrainingOptions":
        """Options from keyword arguments; an unknown name is a ``TypeError`` naming it."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"unknown training options {unknown}; expected some of {known}")
        return cls(**options)


class Evaluation(NamedTuple):
    """Mean loss over the samples, accuracy (or None) and the user's metrics."""

    loss: float
    accuracy: float | None
    metrics: dict[str, float]


def amp_autocast(device: torch.device, amp: str | None):
    """``torch.autocast`` for ``amp`` (``"bf16"``, ``"fp16"``) on ``device``; nothing for None."""
    if amp is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def world_size() -> int:
    """The number of ranks under ``torch.distributed`` (1 when it is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks (``all_reduce``, in place); itself on one process."""
    if world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def evaluate_batches(model: nn.Module, batch_loss: BatchLoss, loader: Iterable,
                     device: torch.device, options: TrainingOptions,
                     max_batches: int | None = None, across_ranks: bool = True) -> Evaluation:
    """:class:`Evaluation` of ``loader`` (its first ``max_batches``) through ``batch_loss``:
    ``sum(loss_b * n_b) / sum(n_b)`` over the batches ``b`` of ``n_b`` samples, the same for the
    accuracy and the metrics. With ``across_ranks`` under ``torch.distributed`` the sums are
    taken over every rank's batches (every rank must call it). In eval mode, without gradients,
    under ``options.amp``; the model's mode is put back."""
    metrics = dict(options.metrics or {})
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    sums = {name: torch.zeros((), device=device) for name in metrics}
    count, classified = 0, True
    try:
        with torch.no_grad(), amp_autocast(device, options.amp):
            for batch in itertools.islice(iterate(loader), max_batches):
                done = batch_loss(model, batch, device)
                loss_sum += done.loss.float() * done.samples
                count += done.samples
                right = correct_count(done.outputs, done.targets) if classified else None
                classified = right is not None
                if classified:
                    correct += right
                for name, metric in metrics.items():
                    sums[name] += torch.as_tensor(metric(done.outputs, done.targets),
                                                  device=device).float() * done.samples
    finally:
        model.train(was_training)
    totals = torch.stack([loss_sum.double(), correct.double(),
                          torch.tensor(float(count), device=device, dtype=torch.float64),
                          *(total.double() for total in sums.values())])
    if across_ranks:
        sum_over_ranks(totals)
    loss_total, right, count, *rest = totals.tolist()
    if count == 0:
        raise ValueError("evaluate: the loader gave no batches")
    return Evaluation(loss_total / count, right / count if classified else None,
                      {name: total / count for name, total in zip(sums, rest)})


def evaluate(model: nn.Module, criterion: Callable | None, loader: Iterable, *,
             max_batches: int | None = None, across_ranks: bool = True, **options) -> Evaluation:
    """Mean loss over the samples of ``loader`` (or its first ``max_batches`` batches), the
    accuracy where outputs and targets are classification-shaped, and ``metrics``. Keyword
    options as :class:`TrainingOptions`. Leaves the model's train/eval mode as it was. Under
    ``torch.distributed`` the means are over every rank's samples (see
    :func:`evaluate_batches`); ``across_ranks=False`` evaluates this rank's alone."""
    instance_of("model", model, nn.Module, "a torch.nn.Module")
    opts = TrainingOptions.of(options)
    positive_int("max_batches", max_batches, allow_none=True)
    batch_loss = BatchLoss(criterion, loss_fn=opts.loss_fn, unpack=opts.unpack)
    device = resolve_device(opts.device) if opts.device is not None else next(model.parameters()).device
    return evaluate_batches(model, batch_loss, loader, device, opts, max_batches, across_ranks)


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            # Adam-like "step" counters stay where torch keeps them (a CPU scalar by default).
            if isinstance(value, torch.Tensor) and key != "step" and value.device != device:
                state[key] = value.to(device)


def _length(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def steps_in_epoch(batches: int, accumulation_steps: int = 1) -> int:
    """Optimizer steps in an epoch of ``batches`` batches (the last step may take fewer)."""
    return math.ceil(batches / accumulation_steps)


def planned_batches(train_loader, epochs: int,
                    batch_size_schedule: Callable[[int], int] | None = None) -> list[int]:
    """Batches in each of ``epochs`` epochs, at each epoch's batch size from the schedule (the
    loader's batch size is put back afterwards). The step plan of ``fit`` and ``preview``."""
    if batch_size_schedule is None:
        return [len(train_loader)] * epochs
    original, out = train_loader.batch_size, []
    try:
        for epoch in range(epochs):
            train_loader.batch_size = batch_size_schedule(epoch)
            out.append(len(train_loader))
    finally:
        train_loader.batch_size = original
    return out


class Hook:
    """A feature acting at named moments of the loop; override the moments it needs."""

    def on_epoch_start(self, training: "Training") -> None: ...

    def on_step_end(self, training: "Training") -> None: ...

    def on_evaluation(self, training: "Training") -> None: ...

    def on_finish(self, training: "Training") -> None: ...


class _Schedulers(Hook):
    """Steps every LR (and momentum) scheduler after every optimizer step."""

    def __init__(self, schedulers: list[Stepper]):
        self.schedulers = schedulers

    def on_step_end(self, training):
        for scheduler in self.schedulers:
            scheduler.step()


class _BatchSizes(Hook):
    """``batch_size_schedule(epoch)`` sets the loader's batch size at the start of each epoch."""

    def __init__(self, schedule: Callable[[int], int]):
        self.schedule = schedule

    def on_epoch_start(self, training):
        training.train_loader.batch_size = self.schedule(training.epoch)


class _SamplerEpochs(Hook):
    """``sampler.set_epoch(epoch)`` at the start of each epoch: a ``DistributedSampler``
    shuffles with ``seed + epoch``, so without it every epoch repeats the first one's order."""

    def __init__(self, sampler):
        self.sampler = sampler

    def on_epoch_start(self, training):
        self.sampler.set_epoch(training.epoch)


class _Callback(Hook):
    def __init__(self, callback: Callable[[History], Any]):
        self.callback = callback

    def on_step_end(self, training):
        self.callback(training.history)

    on_evaluation = on_step_end


class _ProgressBar(Hook):
    def __init__(self, total: int | None):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, unit="step")

    def on_step_end(self, training):
        self.bar.update(1)

    def on_evaluation(self, training):
        self.bar.set_postfix(val_loss=f"{training.history.val_loss[-1]:.4f}", refresh=False)

    def on_finish(self, training):
        self.bar.close()


class _EndWhenSet(Hook):
    """Ends the run after the step in which ``event`` was set, with ``reason``."""

    def __init__(self, event: threading.Event, reason: str):
        self.event, self.reason = event, reason

    def on_step_end(self, training):
        if self.event.is_set() and training.history.stop_reason is None:
            training.history.stop_reason = self.reason


class _OwnRandomness:
    """The run's own torch RNG streams (CPU, and the training GPU's), swapped in around each
    step: work done between steps neither draws from them nor sees them changed."""

    def __init__(self, seed: int, device: torch.device):
        self.cuda = (device.index or 0) if device.type == "cuda" else None  # the GPU's index
        outer = self._get()
        torch.manual_seed(seed)
        self.state = self._get()
        self._set(outer)

    def _get(self):
        return (torch.get_rng_state(),
                torch.cuda.get_rng_state(self.cuda) if self.cuda is not None else None)

    def _set(self, state) -> None:
        torch.set_rng_state(state[0])
        if self.cuda is not None:
            torch.cuda.set_rng_state(state[1], self.cuda)

    def __enter__(self):
        self.outer = self._get()
        self._set(self.state)

    def __exit__(self, *exc):
        self.state = self._get()
        self._set(self.outer)


def _scheduler_list(schedulers) -> list:
    """One scheduler, or an iterable of them, as a list."""
    if callable(getattr(schedulers, "step", None)):
        return [schedulers]
    try:
        return list(schedulers)
    except TypeError:
        raise TypeError(f"schedulers must be a list of LR schedulers (objects with step()), got "
                        f"{type(schedulers).__name__}") from None


@contextmanager
def _interrupts_end_the_run():
    """While the block runs in the main thread, SIGINT sets the yielded event instead of raising
    KeyboardInterrupt; a second SIGINT raises it as usual."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread() or (
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield interrupted  # a thread, or a handler of the host's own: leave it alone
        return

    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        interrupted.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _hook_list(hooks) -> list:
    """``hooks`` as a list of :class:`Hook` objects (a TypeError naming what is not one)."""
    if isinstance(hooks, Hook) or not hasattr(hooks, "__iter__"):
        raise TypeError(f"hooks must be a list of Hook objects, got {type(hooks).__name__}")
    hooks = list(hooks)
    for hook in hooks:
        if not isinstance(hook, Hook):
            raise TypeError(f"hooks must be Hook objects (subclasses of disciplined_widgets.Hook), "
                            f"got {type(hook).__name__}")
    return hooks


def _check_run(epochs, steps, val_loader, eval_every, eval_each_epoch, eval_batches, callback,
               stop_event, seed, schedulers, batch_size_schedule, train_loader) -> None:
    if (epochs is None) == (steps is None):
        raise ValueError(f"give exactly one of epochs and steps, got epochs={epochs!r}, steps={steps!r}")
    positive_int("epochs", epochs, allow_none=True)
    positive_int("steps", steps, allow_none=True)
    positive_int("eval_every", eval_every, allow_none=True)
    positive_int("eval_batches", eval_batches, allow_none=True)
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if loader is not None and (not hasattr(loader, "__iter__") or isinstance(loader, Iterator)):
            raise TypeError(f"{name} must give a new pass over its batches each epoch (a "
                            f"DataLoader, a TensorLoader, a list of batches), got "
                            f"{type(loader).__name__}")
        if _length(loader) == 0:
            raise ValueError(f"{name} is empty: it gives no batches")
    if val_loader is None and (eval_every is not None or eval_each_epoch):
        raise ValueError("eval_every/eval_each_epoch ask for evaluation but val_loader is None")
    for scheduler in schedulers:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"schedulers must have a step() method, got {type(scheduler).__name__}")
    if batch_size_schedule is not None:
        if not callable(batch_size_schedule):
            raise TypeError("batch_size_schedule must be callable as batch_size_schedule(epoch)")
        if not isinstance(getattr(type(train_loader), "batch_size", None), property):
            raise TypeError("batch_size_schedule needs a train_loader whose batch_size can change "
                            "between epochs (a TensorLoader)")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    if stop_event is not None and not callable(getattr(stop_event, "is_set", None)):
        raise TypeError("stop_event must have an is_set() method (e.g. threading.Event)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")


class Training:
    """The one training loop, one optimizer step per :meth:`step` call.

    ``Training(...).run()`` trains to the end and returns the :class:`History` (that is
    ``fit``); a caller that interleaves its own work calls ``step()`` until it returns False,
    then ``finish()``. Arguments as :func:`fit`.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: Callable | None,
        train_loader: Iterable,
        val_loader: Iterable | None = None,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        schedulers: Iterable[Stepper] = (),
        batch_size_schedule: Callable[[int], int] | None = None,
        hooks: Iterable[Hook] = (),
        eval_every: int | None = None,
        eval_each_epoch: bool | None = None,
        eval_batches: int | None = None,
        callback: Callable[[History], Any] | None = None,
        progress_bar: bool = False,
        stop_event: Any = None,
        stop_on_non_finite: bool = True,
        seed: int | None = None,
        **options,
    ):
        optimizer_holds(model, optimizer)
        self.options = TrainingOptions.of(options)
        self.batch_loss = BatchLoss(criterion, loss_fn=self.options.loss_fn,
                                    unpack=self.options.unpack)
        schedulers = _scheduler_list(schedulers)
        hooks = _hook_list(hooks)
        for name, value in (("progress_bar", progress_bar), ("stop_on_non_finite", stop_on_non_finite),
                            ("eval_each_epoch", eval_each_epoch)):
            if value is not None:
                flag(name, value)
        _check_run(epochs, steps, val_loader, eval_every, eval_each_epoch, eval_batches, callback,
                   stop_event, seed, schedulers, batch_size_schedule, train_loader)
        self.model, self.optimizer = model, optimizer
        self.train_loader, self.val_loader = train_loader, val_loader
        self.epochs, self.steps, self.eval_every, self.eval_batches = epochs, steps, eval_every, eval_batches
        self.eval_each_epoch = (val_loader is not None and eval_every is None
                                if eval_each_epoch is None else eval_each_epoch)
        self.stop_event, self.stop_on_non_finite = stop_event, stop_on_non_finite
        self.device = resolve_device(self.options.device)
        self.history = History(total_steps=self._total_steps(batch_size_schedule))
        for scheduler in schedulers:
            length = getattr(scheduler, "total_steps", None)
            if isinstance(length, int) and self.history.total_steps and length < self.history.total_steps:
                raise ValueError(
                    f"schedulers: {type(scheduler).__name__} was built for total_steps={length}, "
                    f"but the run has {self.history.total_steps} optimizer steps; build it with "
                    f"total_steps={self.history.total_steps} or pass steps={length}")
        if batch_size_schedule is not None and not hasattr(batch_size_schedule, "on_epoch_start"):
            batch_size_schedule = _BatchSizes(batch_size_schedule)
        sampler = getattr(train_loader, "sampler", None)
        self.hooks = [*([_SamplerEpochs(sampler)] if callable(getattr(sampler, "set_epoch", None)) else []),
                      *([_Schedulers(schedulers)] if schedulers else []),
                      *([batch_size_schedule] if batch_size_schedule else []),
                      *hooks, *([_ProgressBar(self.history.total_steps)] if progress_bar else []),
                      *([_Callback(callback)] if callback is not None else [])]
        self.randomness = _OwnRandomness(seed, self.device) if seed is not None else nullcontext()
        self.epoch = 0  # epochs completed
        self._batches, self._stash, self._in_epoch, self._epoch_length = None, _END, 0, None
        self._started = self._closed = False

    def _total_steps(self, batch_size_schedule) -> int | None:
        if self.steps is not None:
            return self.steps
        if _length(self.train_loader) is None:
            return None
        return sum(steps_in_epoch(batches, self.options.accumulation_steps)
                   for batches in planned_batches(self.train_loader, self.epochs, batch_size_schedule))

    # ---- the run ----

    def run(self) -> History:
        """Train to the end and return the History, however the run ends: a first Ctrl-C (or a
        notebook's interrupt) ends it after the current step with ``stop_reason ==
        "interrupted"``, a second one at once; any other error carries the partial History as
        ``error.history``."""
        try:
            with _interrupts_end_the_run() as interrupted:
                self.hooks.append(_EndWhenSet(interrupted, "interrupted"))
                return drain(steps_of(self))
        except BaseException as error:
            error.history = self.history
            raise

    def step(self) -> bool:
        """One optimizer step (and the evaluations due after it); False once the run has ended."""
        if self._closed:
            raise RuntimeError("this Training has finished; build a new one to train again")
        if not self._started:
            self._start()
        if self.history.stop_reason is None and self.stop_event is not None and self.stop_event.is_set():
            self.history.stop_reason = "stopped"
        if self.history.stop_reason is not None:
            return False
        with self.randomness:
            if self.history.steps_done == 0:
                self._first_step()
            else:
                self._train_step()
        return self.history.stop_reason is None

    def finish(self) -> History:
        """Evaluate the last step if it was not, then :meth:`close`; returns the History."""
        if not self._closed and self._started and self.val_loader is not None and (
                self.history.steps_done and not self._evaluated_last_step()):
            with self.randomness:
                self._evaluate(self.history.epoch[-1])
        self.close()
        return self.history

    def close(self) -> None:
        """Read back the losses and restore the model's mode (also after an error)."""
        if self._closed:
            return
        self._closed = True
        self.history.sync()
        if self._started:
            self.model.train(self._was_training)
        for hook in self.hooks:
            hook.on_finish(self)

    def _start(self) -> None:
        self._started = True
        self._was_training = self.model.training
        self.model.to(self.device)
        _move_optimizer_state(self.optimizer, self.device)
        self.model.train()
        self.scaler = self.options.grad_scaler if self.options.grad_scaler is not None else (
            torch.amp.GradScaler(self.device.type) if self.options.amp == "fp16" else None)
        self._params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self._autocast = (amp_autocast(self.device, self.options.amp)  # reused for every batch
                          if self.options.amp is not None else None)
        self._start_time = time.perf_counter()

    def _first_step(self) -> None:
        """The first step, undoing BatchNorm statistics and the loader's shuffling if it fails
        (a bad loss, a bad batch), so that a failed call changes nothing of the user's."""
        buffers = [b.detach().clone() for b in self.model.buffers()]
        generator = getattr(self.train_loader, "generator", None)
        shuffling = generator.get_state() if isinstance(generator, torch.Generator) else None
        try:
            self._train_step()
        except (TypeError, ValueError):
            with torch.no_grad():
                for buffer, saved in zip(self.model.buffers(), buffers):
                    buffer.copy_(saved)
            if shuffling is not None:
                generator.set_state(shuffling)
            raise

    # ---- epochs and batches ----

    def _next_batch(self):
        """The next batch of the current epoch (beginning one if needed), or _END at its end."""
        if self._batches is None:
            for hook in self.hooks:
                hook.on_epoch_start(self)
            self._epoch_length = _length(self.train_loader)
            self._batches, self._in_epoch = iterate(self.train_loader), 0
        batch, self._stash = (self._stash, _END) if self._stash is not _END else (
            next(self._batches, _END), _END)
        self._in_epoch += batch is not _END
        return batch

    def _epoch_ended(self) -> bool:
        """Whether the known length of the epoch is reached and the loader is exhausted (as a
        plain ``for`` loop exhausts it: a shuffling sampler draws when it ends)."""
        if self._epoch_length is None or self._in_epoch < self._epoch_length:
            return False
        self._stash = next(self._batches, _END)
        return self._stash is _END

    def _end_epoch(self) -> None:
        self._batches = None
        self.epoch += 1
        if self.history.stop_reason is None and not self._losses_finite():
            self.history.stop_reason = "non_finite"
        if self.history.stop_reason is None and self.epoch == self.epochs:
            self.history.stop_reason = "completed"
        if self.eval_each_epoch and self.history.stop_reason != "stopped" and not self._evaluated_last_step():
            self._evaluate(float(self.epoch))

    # ---- one step ----

    def _train_step(self) -> None:
        accumulation = self.options.accumulation_steps
        step_loss, samples, count = None, 0, 0
        while count < accumulation:
            batch = self._next_batch()
            if batch is _END:
                if count:
                    break
                if self._in_epoch == 0:
                    raise ValueError("train_loader gave no batches")
                self._end_epoch()  # a loader without a length ended at a step boundary
                if self.history.stop_reason is not None:
                    return
                continue
            if count == 0:  # after the fetch (and any epoch start), as in the usual loop
                group = self.optimizer.param_groups[0]
                lr, momentum = float(group["lr"]), momentum_of(group)
                self.optimizer.zero_grad(set_to_none=True)
            if self._autocast is None:
                done = self.batch_loss(self.model, batch, self.device)
            else:
                with self._autocast:
                    done = self.batch_loss(self.model, batch, self.device)
            part = done.loss / accumulation if accumulation > 1 else done.loss
            (self.scaler.scale(part) if self.scaler is not None else part).backward()
            step_loss = part.detach() if step_loss is None else step_loss + part.detach()
            samples += done.samples
            count += 1
        if count < accumulation:  # a short last step of an epoch: the mean over its batches
            step_loss = self._rescale(step_loss, accumulation / count)
        skipped = self._optimizer_step()
        self._record(step_loss, lr, momentum, samples, skipped)
        epoch_over = batch is _END or self._epoch_ended()
        self._after_step()
        if epoch_over:
            self._end_epoch()

    def _rescale(self, step_loss: torch.Tensor, factor: float) -> torch.Tensor:
        for p in self._params:
            if p.grad is not None:
                p.grad.mul_(factor)
        return step_loss * factor

    def _optimizer_step(self) -> bool:
        """Clip and step; True when fp16's GradScaler skipped the update (inf/NaN gradients)."""
        clip = self.options.clip_grad_norm
        if self.scaler is None:
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(self._params, clip)
            self.optimizer.step()
            return False
        if clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self._params, clip)
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return self.scaler.get_scale() < scale

    def _record(self, step_loss, lr, momentum, samples, skipped) -> None:
        h = self.history
        h._pending.append(step_loss)
        h.step.append(h.steps_done + 1)
        fraction = self._in_epoch / self._epoch_length if self._epoch_length else 0.0
        h.epoch.append(self.epoch + fraction)
        h.lr.append(lr)
        h.momentum.append(momentum)
        h.batch_size.append(samples)
        h.time.append(time.perf_counter() - self._start_time)
        if skipped:
            h.skipped_steps.append(h.steps_done)

    def _after_step(self) -> None:
        h, step = self.history, self.history.steps_done
        if step % self.options.sync_every == 0 and not self._losses_finite():
            h.stop_reason = "non_finite"
        elif step == self.steps:
            h.stop_reason = "completed" if self._losses_finite() else "non_finite"
        elif self.eval_every is not None and step % self.eval_every == 0:
            self._evaluate(h.epoch[-1])
        for hook in self.hooks:
            hook.on_step_end(self)

    # ---- evaluation ----

    def _losses_finite(self) -> bool:
        self.history.sync()
        recent = self.history._train_loss[-self.options.sync_every:]
        return not self.stop_on_non_finite or all(map(math.isfinite, recent))

    def _evaluated_last_step(self) -> bool:
        h = self.history
        return bool(h.eval_step) and h.eval_step[-1] == h.steps_done

    def _evaluate(self, epoch: float) -> None:
        result = evaluate_batches(self.model, self.batch_loss, self.val_loader, self.device,
                                  self.options, self.eval_batches)
        h = self.history
        h.eval_step.append(h.steps_done)
        h.eval_epoch.append(epoch)
        h.val_loss.append(result.loss)
        h.val_accuracy.append(result.accuracy)
        for name, value in result.metrics.items():
            h.val_metrics.setdefault(name, []).append(value)
        h.eval_time.append(time.perf_counter() - self._start_time)
        for hook in self.hooks:
            hook.on_evaluation(self)


T = TypeVar("T")
Steps = Generator[None, None, T]  # yields after every optimizer step, returns the result


def steps_of(training: Training) -> Steps[History]:
    """``training.run()`` one optimizer step at a time: yields after every step that leaves
    the run going, returns the History; the training is closed however the generator ends."""
    try:
        while training.step():
            yield
        return training.finish()
    finally:
        training.close()


def drain(steps: Steps[T]) -> T:
    """Run a step-wise generator to its end and return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, criterion: Callable | None,
        train_loader: Iterable, val_loader: Iterable | None = None, **settings) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader`` or for ``steps`` optimizer steps.

    ``criterion(outputs, targets)``, or None when the model returns its own ``.loss``, or
    ``loss_fn=`` (see :mod:`~disciplined_widgets.step`). The loader needs no length with
    ``steps=``. After each optimizer step every scheduler in ``schedulers`` is stepped
    (per-step units). ``batch_size_schedule(epoch)`` sets ``train_loader.batch_size`` at the
    start of each epoch (a :class:`TensorLoader`); a
    :class:`~disciplined_widgets.schedules.BatchSizeSchedule` also decays the LR past its
    largest batch. ``hooks``: :class:`Hook` objects acting at the loop's named moments.

    Evaluation on ``val_loader`` (all of it, or its first ``eval_batches`` batches) runs every
    ``eval_every`` steps and/or at the end of each epoch (``eval_each_epoch``, on by default
    when there is a validation loader and no ``eval_every``), and once at the end if the last
    step was not evaluated.

    ``callback(history)`` runs after every step and evaluation; ``progress_bar`` shows a
    ``tqdm.auto`` bar. ``stop_event`` (anything with ``is_set()``, e.g. ``threading.Event``)
    is checked between steps: the run ends after a complete step with
    ``history.stop_reason == "stopped"``. A non-finite training loss ends it with
    ``"non_finite"`` (checked when losses are read back, every ``sync_every`` steps).
    ``seed`` gives the run its own torch RNG streams (dropout, shuffling), leaving the global
    ones as they were. The model and the optimizer's state move to ``device``. The other
    keyword options (``device``, ``amp``, ``grad_scaler``, ``accumulation_steps``,
    ``clip_grad_norm``, ``loss_fn``, ``unpack``, ``metrics``, ``sync_every``) are
    :class:`TrainingOptions`. Under ``torchrun`` every rank calls it; a ``DistributedSampler``
    gets ``set_epoch`` each epoch and evaluation is averaged over the ranks (module docstring).
    """
    return Training(model, optimizer, criterion, train_loader, val_loader, **settings).run()


fit.__signature__ = inspect.signature(Training)  # the keyword arguments, for help() and editors
