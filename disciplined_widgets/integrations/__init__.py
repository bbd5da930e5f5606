"""The range test and 1cycle where people already train, each in its own module, imported on use:

- :mod:`~disciplined_widgets.integrations.lightning`: ``lr_range_test(module, train_dataloaders)``
  through a Lightning ``Trainer``, and ``OneCycleFromRangeTest``, a callback for ``trainer.fit``
  (``pip install "disciplined-widgets[lightning]"``);
- :mod:`~disciplined_widgets.integrations.transformers`: ``lr_range_test(trainer)`` for a Hugging
  Face ``Trainer`` and ``set_one_cycle(trainer, bounds)``
  (``pip install "disciplined-widgets[transformers]"``).

Both are :class:`~disciplined_widgets.RangeTest` around the library's own loop.
"""
