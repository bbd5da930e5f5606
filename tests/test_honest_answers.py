"""Honest answers: a diverged run is called diverged, a range test that never fell suggests
nothing, the chosen bounds are the suggestion exactly, and the plot marks only what was tested."""

import math

import pytest
import torch
from torch import nn

from disciplined_widgets import TensorLoader, lr_range_test
from disciplined_widgets.diagnose import read_range_test
from disciplined_widgets.models import CNN1D, SmallCNN
from disciplined_widgets.plots import plot_range_test
from disciplined_widgets.widgets import RangeTestWidget, ScheduleWidget


def tour(mnist1d, lr=0.1):
    """The widgets tour's setting: MNIST-1D, batches of 128, CNN1D (BatchNorm), SGD."""
    train = TensorLoader(mnist1d.x_train, mnist1d.y_train, batch_size=128, seed=0)
    val = TensorLoader(mnist1d.x_val, mnist1d.y_val, batch_size=1000, shuffle=False)
    torch.manual_seed(0)
    model = CNN1D()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    return model, optimizer, nn.CrossEntropyLoss(), train, val


# ---- reading a range test ----

def test_a_range_test_stopped_before_the_loss_fell_suggests_nothing(mnist1d):
    model, optimizer, criterion, train, _ = tour(mnist1d)
    stop = StopAfter(25)
    result = lr_range_test(model, optimizer, criterion, train, callback=stop, stop_event=stop)
    assert result.stop_reason == "stopped" and len(result.lrs) == 25
    reading = read_range_test(result)
    assert reading.suggestions is None and reading.bounds is None and not reading.fell
    assert "the loss never fell" in reading.reason and "stopped after 25 of 100" in reading.reason


class StopAfter:
    """A stop event set after ``steps`` steps (the user's Stop, at a known step)."""

    def __init__(self, steps):
        self.steps, self.done = steps, 0

    def __call__(self, partial):
        self.done = len(partial.lrs)

    def is_set(self):
        return self.done >= self.steps


def test_a_range_test_whose_loss_never_fell_suggests_nothing(mnist1d):
    model, optimizer, criterion, train, _ = tour(mnist1d)
    result = lr_range_test(model, optimizer, criterion, train, start_lr=1e-7, end_lr=1e-5,
                           num_iter=100)
    assert result.stop_reason == "completed"
    reading = read_range_test(result)
    assert reading.suggestions is None and reading.diverged_at is None
    assert "the loss never fell" in reading.reason and "raise the end LR" in reading.reason
    assert str(reading).startswith("no suggestion: the loss never fell")


def test_a_full_range_test_keeps_its_suggestions_and_says_where_it_diverged(mnist1d):
    model, optimizer, criterion, train, _ = tour(mnist1d)
    result = lr_range_test(model, optimizer, criterion, train, seed=0)
    reading = read_range_test(result)
    assert reading.fell and reading.suggestions == result.suggestions
    assert reading.evidence["drop_in_errors"] > 10
    start, end = result.usable
    if end < len(result.lrs):
        assert reading.diverged_at == result.lrs[end] > reading.bounds[1]
    assert reading.to_dict()["suggestions"]["bounds"] == list(reading.bounds)
