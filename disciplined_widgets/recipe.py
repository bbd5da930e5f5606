"""The whole disciplined procedure in one call, each decision with its evidence (Smith 1803.09820).

:func:`discipline` spends a budget of optimizer steps, counted in samples at the loader's batch
size so that larger batches are not given more compute, in five stages:

1. an LR range test (section 4.1) gives the bounds ``(max_lr / 10, max_lr)`` for 1cycle;
2. weight decay (section 4.4): short 1cycle runs at 1e-3, 1e-4, 1e-5 and 0, then the exponent
   is bisected around the best (1e-4 -> 3e-4 and 3e-5);
3. momentum (section 4.3): cyclical 0.95 -> 0.85 against constants 0.85, 0.9 and 0.95; the
   cyclical one is kept unless a constant beats it by more than ``tolerance``;
4. batch size (section 4.2): the largest batch that fits in memory with a safety margin,
   found by doubling (:mod:`~disciplined_widgets.memory`), at most a tenth of the training set;
   sizes from the loader's up to it are run on the same number of samples with the LR scaled
   by ``b / b0``, and the largest within ``tolerance`` of the best is kept;
5. the final 1cycle training with the chosen values on what is left of the budget.

Runs are compared on their final validation accuracy (ties on validation loss).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .checks import number_in, positive_int
from .comparisons import Comparison
from .memory import BatchProbe, largest_batch_size
from .range_test import RangeTestResult, lr_range_test
from .runs import Hyperparameters, OptimizerFactory, build_optimizer, train_run
from .step import CROSS_ENTROPY, criterion_with
from .train import History, TrainingOptions

WEIGHT_DECAYS = (1e-3, 1e-4, 1e-5, 0.0)
CONSTANT_MOMENTUMS = (0.85, 0.9, 0.95)
SHORT_RUNS = len(WEIGHT_DECAYS) + 2 + len(CONSTANT_MOMENTUMS)


@dataclass
class Decision:
    """One choice of the recipe: the value, why, and the runs it was read from."""

    name: str
    value: Any
    reason: str
    table: list[dict] = field(default_factory=list)
    comparison: Comparison | None = None


@dataclass
class Recipe:
    """What :func:`discipline` chose, why, what it cost, and the trained model."""

    hyperparameters: Hyperparameters
    decisions: list[Decision]
    range_test: RangeTestResult
    history: History
    model: nn.Module
    budget_steps: int
    base_batch_size: int
    steps_used: int
    samples_used: int
    runs: int
    seconds: float
    memory_probes: list[BatchProbe]

    @property
    def final_accuracy(self) -> float | None:
        return self.history.val_accuracy[-1] if self.history.val_accuracy else None

    @property
    def final_loss(self) -> float | None:
        return self.history.val_loss[-1] if self.history.val_loss else None

    @property
    def best_accuracy(self) -> float | None:
        values = [a for a in self.history.val_accuracy if a is not None]
        return max(values) if values else None

    def report(self):
        """The :class:`~disciplined_widgets.report.Report` (HTML in a notebook, files from a script)."""
        from .report import Report
        return Report(self)

    def __repr__(self) -> str:
        hp = self.hyperparameters
        return (f"Recipe(max_lr={hp.max_lr:.3g}, min_lr={hp.min_lr:.3g}, "
                f"weight_decay={hp.weight_decay:g}, momentum={hp.momentum}, "
                f"batch_size={hp.batch_size}: final val accuracy {self.final_accuracy}, "
                f"{self.steps_used} steps in {self.runs} runs)")


def _score(history: History) -> tuple[float, float]:
    """Higher is better: final validation accuracy, then lower final validation loss."""
    accuracy = history.val_accuracy[-1] if history.val_accuracy else None
    loss = history.val_loss[-1] if history.val_loss else math.inf
    return (accuracy if accuracy is not None else -math.inf,
            -loss if loss is not None and math.isfinite(loss) else -math.inf)


def _row(value: Any, history: History) -> dict:
    return {"value": value,
            "final val accuracy": history.val_accuracy[-1] if history.val_accuracy else None,
            "final val loss": history.val_loss[-1] if history.val_loss else None,
            "steps": history.steps_done, "seconds": history.time[-1] if history.time else 0.0}


def _listed(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _neighbours(weight_decay: float) -> list[float]:
    """Bisect the exponent: 1e-4 -> 3e-4 and 3e-5 (one significant digit)."""
    return [float(f"{weight_decay * 3:.0e}"), float(f"{weight_decay / 3:.0e}")]


def discipline(
    model_factory: Callable[[], nn.Module],
    train_loader,
    val_loader,
    *,
    budget_steps: int,
    criterion: Callable | None = CROSS_ENTROPY,
    optimizer: OptimizerFactory = torch.optim.SGD,
    trial_steps: int | None = None,
    range_test_steps: int | None = None,
    tolerance: float = 0.005,
    memory_margin: float = 0.2,
    max_batch_size: int | None = None,
    seed: int = 0,
    callback: Callable[[str, History], Any] | None = None,
    progress_bar: bool = False,
    **options,
) -> Recipe:
    """Choose LR bounds, weight decay, momentum and batch size, then train (module docstring).

    ``budget_steps``: optimizer steps at the loader's batch size for everything, the final
    training included. ``trial_steps`` (default ``budget_steps // 30``) is the length of each
    short run, ``range_test_steps`` (default up to 200) the range test's. ``callback(stage,
    history)`` follows every run live. The user's loaders are not changed.

    ``criterion`` defaults to cross-entropy (None: the model's own ``.loss``); ``optimizer``
    (a class or a function ``params -> optimizer``; default SGD) is built fresh for every run,
    with the cycled momentum as Adam's beta1 for Adam-like optimizers. The other keyword
    options (``loss_fn``, ``device``, ``amp``, ``accumulation_steps``, ``clip_grad_norm``,
    ``unpack``, ...) go to every run, as :class:`~disciplined_widgets.train.TrainingOptions`.
    """
    TrainingOptions.of(options)
    criterion = criterion_with(criterion, options.get("loss_fn"))
    if val_loader is None:
        raise ValueError("val_loader is None: every decision of the recipe is read from validation")
    if not callable(model_factory) or isinstance(model_factory, nn.Module):
        raise TypeError("model_factory must be a function that builds a fresh model, such as "
                        f"lambda: MyNet(), got {type(model_factory).__name__}")
    positive_int("budget_steps", budget_steps)
    base_batch = getattr(train_loader, "batch_size", None)
    if not isinstance(base_batch, int):
        raise TypeError("train_loader must have an int batch_size (a TensorLoader or DataLoader)")
    n_train = len(train_loader.dataset) if hasattr(train_loader, "dataset") else len(train_loader.inputs)
    trial_steps = max(20, budget_steps // 30) if trial_steps is None else trial_steps
    range_test_steps = (max(50, min(200, budget_steps // 20)) if range_test_steps is None
                        else range_test_steps)
    positive_int("trial_steps", trial_steps)
    positive_int("range_test_steps", range_test_steps)
    positive_int("max_batch_size", max_batch_size, allow_none=True)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    number_in("memory_margin", memory_margin, 0, 1, include_high=False)
    cap = min(max_batch_size or n_train, max(base_batch, n_train // 10))
    batch_runs = max(0, int(math.log2(cap / base_batch)))
    tests = range_test_steps + (SHORT_RUNS + batch_runs) * trial_steps
    if budget_steps < 2 * tests:
        raise ValueError(f"budget_steps={budget_steps} is too small: the range test and the short "
                         f"runs take up to {tests} steps and the final training needs at least as "
                         f"many; give budget_steps >= {2 * tests} or a smaller trial_steps")
    start_time = time.perf_counter()
    budget_samples = budget_steps * base_batch
    spent = {"steps": 0, "samples": 0, "runs": 0}
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm
        bar = tqdm(total=budget_samples, unit="sample", desc="discipline")

    def account(steps: int, batch_size: int) -> None:
        spent["steps"] += steps
        spent["samples"] += steps * batch_size
        spent["runs"] += 1
        if bar is not None:
            bar.update(steps * batch_size)

    def short_run(stage: str, hp: Hyperparameters, steps: int = trial_steps) -> History:
        history = train_run(model_factory, train_loader, val_loader, hp, steps=steps,
                            criterion=criterion, optimizer=optimizer, seed=seed,
                            callback=None if callback is None else (lambda h: callback(stage, h)),
                            **options)
        account(history.steps_done, hp.batch_size)
        return history

    decisions: list[Decision] = []
    try:
        # 1. LR range test -> bounds
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_factory()
        probe = build_optimizer(optimizer, model, lr=1e-7, weight_decay=0.0, momentum=0.9)
        result = lr_range_test(model, probe, criterion, train_loader, num_iter=range_test_steps,
                               seed=seed, **options)
        account(len(result.lrs), base_batch)
        bounds = result.bounds()
        if bounds is None:
            raise ValueError("the range test found no usable learning rate (the loss never fell); "
                             "check the model and data, or raise range_test_steps")
        min_lr, max_lr = bounds
        hp = Hyperparameters(max_lr=max_lr, div_factor=max_lr / min_lr, momentum="cyclical",
                             weight_decay=0.0, batch_size=base_batch)
        found = result.suggestions
        decisions.append(Decision(
            "learning rate", (min_lr, max_lr),
            f"the smoothed loss fell fastest at LR {max_lr:.3g} (steepest descent, read before "
            f"the loss climbed back {(result.diverge_factor - 1) / 3:.0%} of its fall); 1cycle "
            f"runs from {min_lr:.3g} (max / 10) up to it",
            [{"rule": name, "lr": getattr(found, name)} for name in ("steepest", "minimum", "valley")
             if getattr(found, name, None) is not None]))

        # 2. weight decay grid, then bisect the exponent
        runs = {wd: short_run("weight decay", hp.replace(weight_decay=wd)) for wd in WEIGHT_DECAYS}
        best_wd = max(runs, key=lambda wd: _score(runs[wd]))
        if best_wd > 0:
            for wd in _neighbours(best_wd):
                runs[wd] = short_run("weight decay", hp.replace(weight_decay=wd))
            coarse = best_wd
            best_wd = max(runs, key=lambda wd: _score(runs[wd]))
            why = (f"{coarse:g} was best of {_listed(WEIGHT_DECAYS)}; bisecting the exponent around "
                   f"it ({', '.join(f'{v:g}' for v in _neighbours(coarse))}) chose {best_wd:g}")
        else:
            why = (f"no weight decay did best of {_listed(WEIGHT_DECAYS)} (large LRs regularise; "
                   f"values below 1e-5 barely differ from 0)")
        order = sorted(runs, reverse=True)
        decisions.append(Decision(
            "weight decay", best_wd, why,
            [_row(wd, runs[wd]) for wd in order],
            Comparison("weight_decay", order, [runs[wd] for wd in order])))
        hp = hp.replace(weight_decay=best_wd)

        # 3. cyclical momentum against the best constant
        momentum_runs = {"cyclical": runs[best_wd]}
        for m in CONSTANT_MOMENTUMS:
            momentum_runs[m] = short_run("momentum", hp.replace(momentum=m))
        best_constant = max(CONSTANT_MOMENTUMS, key=lambda m: _score(momentum_runs[m]))
        gain = _score(momentum_runs[best_constant])[0] - _score(momentum_runs["cyclical"])[0]
        if gain > tolerance:
            chosen_momentum = best_constant
            why = (f"constant {best_constant:g} beat cyclical 0.95-0.85 by {gain:.3f} in "
                   f"accuracy (more than the tolerance {tolerance:g})")
        else:
            chosen_momentum = "cyclical"
            why = (f"cyclical 0.95-0.85 is within {tolerance:g} of the best constant "
                   f"({best_constant:g}, {-gain:+.3f} for cyclical) and needs no tuning")
        labels = ["cyclical", *CONSTANT_MOMENTUMS]
        decisions.append(Decision(
            "momentum", chosen_momentum, why,
            [_row(m, momentum_runs[m]) for m in labels],
            Comparison("momentum", labels, [momentum_runs[m] for m in labels])))
        hp = hp.replace(momentum=chosen_momentum)

        # 4. the largest batch that fits, LR scaled, checked on the same number of samples
        largest, probes = largest_batch_size(model_factory, train_loader, criterion=criterion,
                                             start=base_batch, cap=cap, margin=memory_margin,
                                             **options)
        batch_runs_done = {base_batch: momentum_runs[chosen_momentum]}
        size = base_batch * 2
        while size <= largest:
            steps = max(1, trial_steps * base_batch // size)
            batch_runs_done[size] = short_run(
                "batch size", hp.replace(batch_size=size, max_lr=hp.max_lr * size / base_batch),
                steps)
            if _score(batch_runs_done[size])[0] < max(
                    _score(h)[0] for h in batch_runs_done.values()) - tolerance:
                break
            size *= 2
        top = max(_score(h)[0] for h in batch_runs_done.values())
        chosen_batch = max(b for b, h in batch_runs_done.items() if _score(h)[0] >= top - tolerance)
        limit = (f"memory allows batch {largest} with a {memory_margin:.0%} margin"
                 + (" (the cap: a tenth of the training set)" if largest == cap else ""))
        why = (f"{limit}; on {trial_steps * base_batch} samples each, batch {chosen_batch} "
               f"(LR x{chosen_batch / base_batch:g}) is the largest within {tolerance:g} of the "
               f"best accuracy")
        sizes = sorted(batch_runs_done)
        decisions.append(Decision(
            "batch size", chosen_batch, why,
            [_row(b, batch_runs_done[b]) for b in sizes],
            Comparison("batch_size", sizes, [batch_runs_done[b] for b in sizes])))
        hp = hp.replace(batch_size=chosen_batch, max_lr=hp.max_lr * chosen_batch / base_batch)

        # 5. the final training on what is left
        final_steps = (budget_samples - spent["samples"]) // chosen_batch
        model_holder: list[nn.Module] = []

        def keep_model():
            model = model_factory()
            model_holder.append(model)
            return model

        history = train_run(keep_model, train_loader, val_loader, hp, steps=final_steps,
                            criterion=criterion, optimizer=optimizer, seed=seed, evaluations=20,
                            callback=None if callback is None else (lambda h: callback("final", h)),
                            **options)
        account(history.steps_done, chosen_batch)
    finally:
        if bar is not None:
            bar.close()
    return Recipe(hp, decisions, result, history, model_holder[0], budget_steps, base_batch,
                  spent["steps"], spent["samples"], spent["runs"],
                  time.perf_counter() - start_time, probes)
