"""The range test and 1cycle for a Hugging Face ``transformers.Trainer``
(``pip install "disciplined-widgets[transformers]"``).

- :func:`lr_range_test`: a :class:`~disciplined_widgets.RangeTest` on the Trainer's own parts: its
  model, its optimizer as ``trainer.create_optimizer()`` builds it (AdamW with the arguments'
  weight decay and betas by default; the groups keep their LR ratios), its train dataloader
  (``get_train_dataloader()``, cycled), and ``loss = model(**batch).loss`` under the Trainer's
  ``accelerator.autocast()``, gradients clipped to ``args.max_grad_norm`` as the Trainer does.
  The model and optimizer are restored bitwise, and an optimizer the test had to build is
  dropped again, so ``trainer.train()`` builds its own as it would have.
- :func:`set_one_cycle`: the bounds into the Trainer: ``args.learning_rate = max_lr`` and
  ``trainer.lr_scheduler = one_cycle(optimizer, max_lr, total_steps, div=max_lr / min_lr)``
  (Smith 1803.09820 section 4.1), which the Trainer steps after every optimizer step, with
  Adam(W)'s beta1 (SGD's momentum) cycled between ``momentum``.
"""

from __future__ import annotations

import itertools

import torch
import transformers

from ..checks import positive_float
from ..optim import CYCLICAL_MOMENTUM
from ..range_test import RangeTest, RangeTestResult, loader_generators
from ..schedules import OneCycle, one_cycle


def _check_trainer(trainer) -> None:
    if not isinstance(trainer, transformers.Trainer):
        raise TypeError(f"trainer must be a transformers.Trainer, got {type(trainer).__name__}")


def lr_range_test(trainer: transformers.Trainer, *, start_lr: float = 1e-7, end_lr: float = 10.0,
                  num_iter: int = 100, mode: str = "exp", smooth: float = 0.98,
                  diverge_factor: float = 4.0) -> RangeTestResult:
    """The range test of ``trainer``'s model (module docstring); its
    :class:`~disciplined_widgets.RangeTestResult`."""
    _check_trainer(trainer)
    model, built = trainer.model, trainer.optimizer is None
    optimizer = trainer.create_optimizer()
    try:
        loader = trainer.get_train_dataloader()
        with RangeTest(model, optimizer, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter,
                       mode=mode, smooth=smooth, diverge_factor=diverge_factor,
                       generators=loader_generators(loader)) as test:
            model.train()
            for batch in itertools.chain.from_iterable(itertools.repeat(loader)):
                optimizer.zero_grad(set_to_none=True)
                with trainer.accelerator.autocast():
                    loss = model(**batch).loss
                loss.backward()
                if trainer.args.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
                optimizer.step()
                if not test.record(loss):
                    break
    finally:
        if built:
            trainer.optimizer = None
    return test.result


def set_one_cycle(trainer: transformers.Trainer, bounds: tuple[float, float], *,
                  momentum: tuple[float, float] | None = CYCLICAL_MOMENTUM,
                  style: str = "smith") -> OneCycle:
    """Make ``trainer.train()`` follow 1cycle from ``bounds = (min_lr, max_lr)`` (for instance
    ``result.bounds()``) over the Trainer's own count of optimizer steps (``max_steps``, or
    epochs times update steps per epoch); returns the scheduler (module docstring)."""
    _check_trainer(trainer)
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
        raise TypeError(f"bounds must be (min_lr, max_lr), got {bounds!r}")
    low, high = positive_float("bounds[0]", bounds[0]), positive_float("bounds[1]", bounds[1])
    if high <= low:
        raise ValueError(f"bounds must be (min_lr, max_lr) with min_lr < max_lr, got {bounds!r}")
    trainer.args.learning_rate = high
    optimizer = trainer.create_optimizer()
    total_steps = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1]
    trainer.lr_scheduler = one_cycle(optimizer, high, total_steps, div=high / low,
                                     momentum=momentum, style=style)
    return trainer.lr_scheduler
