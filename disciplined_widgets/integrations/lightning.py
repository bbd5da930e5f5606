"""The range test and 1cycle through Lightning's own ``Trainer`` (``pytorch_lightning``, or the
``lightning`` package's ``lightning.pytorch``; ``pip install "disciplined-widgets[lightning]"``).

- :func:`lr_range_test`: ``trainer.fit(module, train_dataloaders)`` on a Trainer of its own for
  ``num_iter`` optimizer steps, with the module's own ``training_step`` and
  ``configure_optimizers``, inside a :class:`~disciplined_widgets.RangeTest`: the sweep sets the
  LR (the module's LR schedulers sit the test out), the loss of every optimizer step is recorded,
  the fit stops where the test ends, and the module and its optimizer are restored bitwise.
- :class:`OneCycleFromRangeTest`: a callback for ``trainer.fit`` that runs that test on the same
  module and train dataloader when training starts, then trains with 1cycle between its bounds
  (:func:`~disciplined_widgets.one_cycle`, Smith 1803.09820 section 4.1) instead of the module's
  own schedule.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import torch

try:
    import pytorch_lightning as pl
    from pytorch_lightning.utilities.types import LRSchedulerConfig
except ModuleNotFoundError:  # the `lightning` package alone
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.types import LRSchedulerConfig

from ..optim import CYCLICAL_MOMENTUM
from ..range_test import RangeTest, RangeTestResult, check_sweep, loader_generators
from ..schedules import one_cycle

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)


def _only_optimizer(trainer: pl.Trainer) -> torch.optim.Optimizer:
    if len(trainer.optimizers) != 1:
        raise ValueError(f"configure_optimizers must give one optimizer for the range test, got "
                         f"{len(trainer.optimizers)}")
    return trainer.optimizers[0]


class _Sweep(pl.Callback):
    """A :class:`RangeTest` over a fit: entered when training starts (the optimizer exists),
    fed after every optimizer step, left when training ends or fails."""

    def __init__(self, generators: list[torch.Generator], **range_test):
        self.generators, self.range_test = generators, range_test
        self.stack, self.test = ExitStack(), None

    def on_train_start(self, trainer, pl_module) -> None:
        optimizer = _only_optimizer(trainer)
        trainer.strategy.lr_scheduler_configs = []  # the sweep sets the LR, not the module's schedule
        self.test = self.stack.enter_context(RangeTest(
            pl_module, optimizer, generators=self.generators, **self.range_test))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches == 0 and not self.test.record(
                outputs["loss"]):
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        self.stack.close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.stack.__exit__(type(exception), exception, exception.__traceback__)


def _trainer_of(module: pl.LightningModule) -> pl.Trainer | None:
    try:
        return module.trainer
    except RuntimeError:  # not attached to a Trainer
        return None


def lr_range_test(module: pl.LightningModule, train_dataloaders: Any = None, *,
                  datamodule: pl.LightningDataModule | None = None, start_lr: float = 1e-7,
                  end_lr: float = 10.0, num_iter: int = 100, mode: str = "exp",
                  smooth: float = 0.98, diverge_factor: float = 4.0,
                  **trainer_kwargs) -> RangeTestResult:
    """The range test of ``module`` through a Lightning ``Trainer`` (module docstring); returns
    its :class:`~disciplined_widgets.RangeTestResult`. ``trainer_kwargs`` go to the ``Trainer``
    (``accelerator``, ``devices``, ``precision``, ``accumulate_grad_batches``, ...); logging,
    checkpoints, progress bar and validation are off. The module trains in the modes it is in
    (Lightning leaves them to the user); its ``trainer`` is put back afterwards."""
    if not isinstance(module, pl.LightningModule):
        raise TypeError(f"module must be a {pl.__name__}.LightningModule, got "
                        f"{type(module).__name__}")
    sweep = _Sweep(loader_generators(train_dataloaders), start_lr=start_lr, end_lr=end_lr,
                   num_iter=num_iter, mode=mode, smooth=smooth, diverge_factor=diverge_factor)
    check_sweep(start_lr, end_lr, num_iter, mode, smooth, diverge_factor)
    trainer = pl.Trainer(**{**QUIET, "max_steps": num_iter, "max_epochs": -1,
                            "callbacks": [sweep], **trainer_kwargs})
    attached = _trainer_of(module)
    try:
        trainer.fit(module, train_dataloaders=train_dataloaders, datamodule=datamodule)
    finally:
        module.trainer = attached
    return sweep.test.result


class OneCycleFromRangeTest(pl.Callback):
    """``trainer.fit(module, ...)`` with ``callbacks=[OneCycleFromRangeTest()]``: when training
    starts, :func:`lr_range_test` on the same module and train dataloader (a Trainer of its own
    on the same device and precision, the module restored bitwise), then 1cycle between its
    ``bounds(max_at, div)`` for the whole fit: ``one_cycle(optimizer, max_lr, total_steps=
    trainer.estimated_stepping_batches, div=div)``, stepped after every optimizer step, with the
    momentum (Adam's beta1) cycled between ``momentum``. The test's result is ``self.result``.
    ``range_test`` (``start_lr``, ``end_lr``, ``num_iter``, ...) goes to :func:`lr_range_test`."""

    def __init__(self, *, max_at: str = "steepest", div: float = 10.0,
                 momentum: tuple[float, float] | None = CYCLICAL_MOMENTUM, style: str = "smith",
                 **range_test):
        self.max_at, self.div, self.momentum, self.style = max_at, div, momentum, style
        self.range_test = range_test
        self.result: RangeTestResult | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        optimizer = _only_optimizer(trainer)
        device = trainer.strategy.root_device
        self.result = lr_range_test(
            pl_module, trainer.train_dataloader, accelerator="gpu" if device.type == "cuda" else device.type,
            devices=[device.index or 0] if device.type == "cuda" else 1,
            precision=trainer.precision, **self.range_test)
        pl_module.to(device)  # the test's Trainer leaves the module on the CPU when it ends
        bounds = self.result.bounds(self.max_at, self.div)
        if bounds is None:
            raise RuntimeError(f"the range test gave no bounds ({self.result!r}): the loss never "
                               f"fell; widen start_lr..end_lr or raise num_iter")
        scheduler = one_cycle(optimizer, bounds[1], trainer.estimated_stepping_batches,
                              div=self.div, momentum=self.momentum, style=self.style)
        trainer.strategy.lr_scheduler_configs = [LRSchedulerConfig(scheduler, interval="step")]
