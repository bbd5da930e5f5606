"""The one training loop: ``fit``, its ``History``, and ``evaluate``.

Everything that trains (range tests, 1cycle runs, comparisons, searches) calls :func:`fit`.
Schedules plug in as objects with ``step()`` called after every optimizer step (any
``torch.optim.lr_scheduler`` scheduler: LR, and momentum or Adam's beta1 for ``OneCycleLR``
and ``CyclicLR``), and as a batch-size schedule called at the start of every epoch.

Losses stay on the device and are read back in chunks of ``sync_every`` steps, so the loop
does not wait for the device after every step.
"""

from __future__ import annotations

import itertools
import math
import time
from contextlib import nullcontext
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn

from .batch import Unpack, batch_size_of, to_device, unpack_batch
from .checks import loader_length, optimizer_holds, positive_int
from .loader import iterate

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Stepper(Protocol):
    def step(self) -> Any: ...


class History:
    """What happened during ``fit``.

    Per optimizer step: ``step`` (1, 2, ...), ``epoch`` (fractional epochs done after the
    step), ``train_loss`` (mean over the step's samples), ``lr`` and ``momentum`` (of the first
    param group, as used by the step; momentum is Adam's beta1 for Adam-like optimizers),
    ``batch_size`` (samples in the step) and ``time`` (seconds since the start).
    Per evaluation: ``eval_step``, ``eval_epoch``, ``val_loss``, ``val_accuracy`` (None when
    the targets are not class indices) and ``eval_time``.
    """

    STEP_FIELDS = ("step", "epoch", "train_loss", "lr", "momentum", "batch_size", "time")
    EVAL_FIELDS = ("eval_step", "eval_epoch", "val_loss", "val_accuracy", "eval_time")

    def __init__(self) -> None:
        for name in self.STEP_FIELDS + self.EVAL_FIELDS:
            if name != "train_loss":
                setattr(self, name, [])
        self._train_loss: list[float] = []
        self._pending: list[torch.Tensor] = []
        self.stop_reason: str | None = None
        self.total_steps: int | None = None

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

    @property
    def steps_done(self) -> int:
        return len(self.step)

    def to_dict(self) -> dict:
        """JSON-safe dict (lists of numbers and the stop reason)."""
        fields = {name: list(getattr(self, name)) for name in self.STEP_FIELDS + self.EVAL_FIELDS}
        return {**fields, "stop_reason": self.stop_reason, "total_steps": self.total_steps}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        history = cls()
        for name in cls.STEP_FIELDS + cls.EVAL_FIELDS:
            setattr(history, "_train_loss" if name == "train_loss" else name, list(data[name]))
        history.stop_reason, history.total_steps = data["stop_reason"], data["total_steps"]
        return history

    def __repr__(self) -> str:
        last = ""
        if self.val_loss:
            acc = self.val_accuracy[-1]
            last = f", last val_loss={self.val_loss[-1]:.4f}" + (
                f" val_accuracy={acc:.4f}" if acc is not None else "")
        return f"History({self.steps_done} steps, stop_reason={self.stop_reason!r}{last})"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` means the best available: CUDA, then Apple's MPS, then the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def evaluate(model: nn.Module, criterion: Callable, loader: Iterable, *,
             device: str | torch.device | None = None, unpack: Unpack = unpack_batch,
             max_batches: int | None = None, amp: str | None = None) -> tuple[float, float | None]:
    """Mean loss over the samples of ``loader`` (or its first ``max_batches`` batches) and the
    accuracy (None when outputs are not N x classes scores or targets not class indices).
    Leaves the model's train/eval mode as it was."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count, classified = 0, True
    try:
        with torch.no_grad():
            for batch in itertools.islice(iterate(loader), max_batches):
                inputs, targets = (to_device(part, device) for part in unpack(batch))
                with _autocast(device, amp):
                    outputs = model(inputs)
                    loss = criterion(outputs, targets)
                n = batch_size_of(inputs)
                loss_sum += loss.float() * n
                count += n
                classified = classified and (
                    outputs.ndim == 2 and targets.ndim == 1 and not targets.is_floating_point())
                if classified:
                    correct += (outputs.argmax(dim=1) == targets).sum()
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader gave no batches")
    return loss_sum.item() / count, (correct.item() / count if classified else None)


def momentum_of(group: dict) -> float | None:
    """A param group's momentum: ``momentum``, or Adam's beta1; None when it has neither."""
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    return None


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            # Adam-like "step" counters stay where torch keeps them (a CPU scalar by default).
            if isinstance(value, torch.Tensor) and key != "step" and value.device != device:
                state[key] = value.to(device)


def _planned_steps(loader, epochs: int, accumulation_steps: int,
                   batch_size_schedule: Callable[[int], int] | None) -> int:
    if batch_size_schedule is None:
        return epochs * math.ceil(len(loader) / accumulation_steps)
    original, total = loader.batch_size, 0
    try:
        for epoch in range(epochs):
            loader.batch_size = batch_size_schedule(epoch)
            total += math.ceil(len(loader) / accumulation_steps)
    finally:
        loader.batch_size = original
    return total


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: Callable,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    schedulers: Iterable[Stepper] = (),
    batch_size_schedule: Callable[[int], int] | None = None,
    eval_every: int | None = None,
    eval_each_epoch: bool | None = None,
    eval_batches: int | None = None,
    callback: Callable[[History], Any] | None = None,
    progress_bar: bool = False,
    stop_event: Any = None,
    stop_on_non_finite: bool = True,
    device: str | torch.device | None = None,
    amp: str | None = None,
    grad_scaler: torch.amp.GradScaler | None = None,
    accumulation_steps: int = 1,
    unpack: Unpack = unpack_batch,
    seed: int | None = None,
    sync_every: int = 16,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader`` or for ``steps`` optimizer steps.

    One optimizer step consumes ``accumulation_steps`` batches (gradient accumulation: each
    batch's loss is divided by the number of batches in its step). After each step every
    scheduler in ``schedulers`` is stepped (per-step units). ``batch_size_schedule(epoch)``
    sets ``train_loader.batch_size`` at the start of each epoch (a :class:`TensorLoader`); if
    it also has ``lr_factor(epoch)`` (a :class:`~disciplined_widgets.schedules.BatchSizeSchedule`),
    each group's LR is set to its starting LR times that factor.

    Evaluation on ``val_loader`` (all of it, or its first ``eval_batches`` batches) runs every
    ``eval_every`` steps and/or at the end of each epoch (``eval_each_epoch``, on by default
    when there is a validation loader and no ``eval_every``), and once at the end if the last
    step was not evaluated.

    ``callback(history)`` runs after every step and evaluation; ``progress_bar`` shows a
    ``tqdm.auto`` bar. ``stop_event`` (anything with ``is_set()``, e.g. ``threading.Event``)
    is checked between steps: the run ends after a complete step with
    ``history.stop_reason == "stopped"``. A non-finite training loss ends it with
    ``"non_finite"`` (checked when losses are read back, every ``sync_every`` steps).

    ``amp`` is ``"bf16"`` or ``"fp16"`` (with ``grad_scaler``, or a new ``GradScaler``).
    ``seed`` seeds torch's RNGs for the run (dropout, DataLoader shuffling) and restores
    their state afterwards. The model and the optimizer's state move to ``device``.
    """
    # ---- check everything before touching anything ----
    optimizer_holds(model, optimizer)
    if not callable(criterion):
        raise TypeError("criterion must be callable as criterion(outputs, targets)")
    if (epochs is None) == (steps is None):
        raise ValueError(f"give exactly one of epochs and steps, got epochs={epochs!r}, steps={steps!r}")
    positive_int("epochs", epochs, allow_none=True)
    positive_int("steps", steps, allow_none=True)
    positive_int("accumulation_steps", accumulation_steps)
    positive_int("eval_every", eval_every, allow_none=True)
    positive_int("eval_batches", eval_batches, allow_none=True)
    positive_int("sync_every", sync_every)
    loader_length("train_loader", train_loader)
    if val_loader is not None:
        loader_length("val_loader", val_loader)
    if eval_each_epoch is None:
        eval_each_epoch = val_loader is not None and eval_every is None
    if val_loader is None and (eval_every is not None or eval_each_epoch):
        raise ValueError("eval_every/eval_each_epoch ask for evaluation but val_loader is None")
    if amp not in (None, *AMP_DTYPES):
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    schedulers = list(schedulers)
    for scheduler in schedulers:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"schedulers must have a step() method, got {type(scheduler).__name__}")
    if batch_size_schedule is not None:
        if not callable(batch_size_schedule):
            raise TypeError("batch_size_schedule must be callable as batch_size_schedule(epoch)")
        if not isinstance(getattr(type(train_loader), "batch_size", None), property):
            raise TypeError("batch_size_schedule needs a train_loader whose batch_size can change "
                            "between epochs (a TensorLoader)")
    for name, hook in (("callback", callback), ("unpack", unpack)):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name} must be callable")
    if stop_event is not None and not callable(getattr(stop_event, "is_set", None)):
        raise TypeError("stop_event must have an is_set() method (e.g. threading.Event)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    device = resolve_device(device)

    # ---- train ----
    history = History()
    history.total_steps = steps if steps is not None else _planned_steps(
        train_loader, epochs, accumulation_steps, batch_size_schedule)
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    rng = torch.random.fork_rng(devices=rng_devices) if seed is not None else nullcontext()
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm
        bar = tqdm(total=history.total_steps, unit="step")
    was_training = model.training
    model.to(device)
    _move_optimizer_state(optimizer, device)
    scaler = grad_scaler if grad_scaler is not None else (
        torch.amp.GradScaler(device.type) if amp == "fp16" else None)
    group = optimizer.param_groups[0]
    lr_factor = getattr(batch_size_schedule, "lr_factor", None)  # hybrid schedules decay the LR
    start_lrs = [g["lr"] for g in optimizer.param_groups]

    def run_evaluation(epoch: float) -> None:
        loss, accuracy = evaluate(model, criterion, val_loader, device=device, unpack=unpack,
                                  max_batches=eval_batches, amp=amp)
        history.eval_step.append(history.steps_done)
        history.eval_epoch.append(epoch)
        history.val_loss.append(loss)
        history.val_accuracy.append(accuracy)
        history.eval_time.append(time.perf_counter() - start)
        if bar is not None:
            bar.set_postfix(val_loss=f"{loss:.4f}", refresh=False)
        if callback is not None:
            callback(history)

    def losses_finite() -> bool:
        history.sync()
        return not stop_on_non_finite or all(map(math.isfinite, history._train_loss[-sync_every:]))

    try:
        with rng:
            if seed is not None:
                torch.manual_seed(seed)
            model.train()
            autocast = _autocast(device, amp)  # reused for every batch
            start = time.perf_counter()
            epoch = step = 0
            while history.stop_reason is None:
                if batch_size_schedule is not None:
                    train_loader.batch_size = batch_size_schedule(epoch)
                    if lr_factor is not None:
                        for g, lr in zip(optimizer.param_groups, start_lrs):
                            g["lr"] = lr * lr_factor(epoch)
                batches_in_epoch = len(train_loader)
                batches = iterate(train_loader)
                done_in_epoch = 0
                while done_in_epoch < batches_in_epoch:
                    if stop_event is not None and stop_event.is_set():
                        history.stop_reason = "stopped"
                        break
                    micro = min(accumulation_steps, batches_in_epoch - done_in_epoch)
                    history.lr.append(float(group["lr"]))
                    history.momentum.append(momentum_of(group))
                    step_loss, samples = None, 0
                    for index in range(micro):
                        inputs, targets = unpack(next(batches))
                        if index == 0:  # after the fetch, as in the usual loop: measurably faster
                            optimizer.zero_grad(set_to_none=True)
                        inputs, targets = to_device(inputs, device), to_device(targets, device)
                        with autocast:
                            loss = criterion(model(inputs), targets)
                        part = loss / micro if micro > 1 else loss
                        (scaler.scale(part) if scaler is not None else part).backward()
                        step_loss = part.detach() if step_loss is None else step_loss + part.detach()
                        samples += batch_size_of(inputs)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    for scheduler in schedulers:
                        scheduler.step()
                    done_in_epoch += micro
                    step += 1
                    history._pending.append(step_loss)
                    history.step.append(step)
                    history.epoch.append(epoch + done_in_epoch / batches_in_epoch)
                    history.batch_size.append(samples)
                    history.time.append(time.perf_counter() - start)
                    if bar is not None:
                        bar.update(1)
                    if step % sync_every == 0 and not losses_finite():
                        history.stop_reason = "non_finite"
                    elif step == steps:
                        history.stop_reason = "completed"
                    elif eval_every is not None and step % eval_every == 0:
                        run_evaluation(history.epoch[-1])
                    if callback is not None:
                        callback(history)
                    if history.stop_reason is not None:
                        break
                epoch += 1
                if history.stop_reason is None and not losses_finite():
                    history.stop_reason = "non_finite"
                if history.stop_reason is None and epochs is not None and epoch == epochs:
                    history.stop_reason = "completed"
                if eval_each_epoch and done_in_epoch == batches_in_epoch and (
                        not history.eval_step or history.eval_step[-1] != history.steps_done):
                    run_evaluation(float(epoch))
            if history.stop_reason == "completed" and not losses_finite():
                history.stop_reason = "non_finite"
            if val_loader is not None and history.steps_done and (
                    not history.eval_step or history.eval_step[-1] != history.steps_done):
                run_evaluation(history.epoch[-1])
    finally:
        history.sync()
        model.train(was_training)
        if bar is not None:
            bar.close()
    return history
