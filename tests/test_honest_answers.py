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


# ---- the widget ----

def test_without_a_suggestion_the_widget_leaves_the_bounds_alone(mnist1d):
    setup = tour(mnist1d)
    widget = RangeTestWidget(*setup, start_lr=1e-7, end_lr=1e-4, num_iter=60)
    schedule = ScheduleWidget(setup[3], epochs=2, max_lr=0.3)
    schedule.follow(widget)
    placeholder = widget.bounds.value
    widget.run()
    assert widget.reading.suggestions is None and widget.selected_bounds is None
    assert widget.bounds.value == placeholder and schedule.max_lr.value == pytest.approx(0.3)
    assert "No suggestion" in widget.suggestion.value and "Suggested" not in widget.suggestion.value
    labels = widget._draw(widget.result).axes[0].get_legend_handles_labels()[1]
    assert not any(label.startswith(("bounds", "steepest", "minimum", "valley")) for label in labels)


def test_selected_bounds_are_the_suggestion_exactly_until_the_user_moves_them(mnist1d):
    widget = RangeTestWidget(*tour(mnist1d), num_iter=100, seed=0)
    result = widget.run()
    suggested = result.suggestions.bounds
    assert widget.selected_bounds == suggested  # exactly, not to the slider's step
    slider = widget.bounds._slider
    slider.value = tuple(round(v * 20) / 20 for v in slider.value)  # the browser snaps
    assert widget.selected_bounds == suggested and widget.bounds.value == suggested
    low, high = slider.value
    slider.value = (low, high - 0.5)  # the user drags the upper handle half a decade down
    assert widget.selected_bounds == (suggested[0], 10 ** (high - 0.5))
    assert "Warning" not in widget.suggestion.value
    limit = widget.reading.diverged_at or widget.reading.tested[1]
    slider.value = (low, math.log10(limit) + 0.3)  # past where the test diverged (or ended)
    assert "Warning" in widget.suggestion.value and format(limit, ".3g") in widget.suggestion.value


# ---- the plot and the validation points ----

def test_markers_sit_at_their_lr_on_the_curve_inside_the_tested_range(mnist1d):
    model, optimizer, criterion, train, val = tour(mnist1d)
    result = lr_range_test(model, optimizer, criterion, train, val_loader=val, seed=0)
    ax = plot_range_test(result).axes[0]
    lines = {line.get_label().split(":")[0]: line for line in ax.get_lines()}
    s = result.suggestions
    assert "minimum" not in lines and lines["minimum/10"].get_xdata()[0] == s.minimum
    lrs, curve = result.lrs[:result.usable[1]], result.smoothed_losses[:result.usable[1]]
    y = lines["minimum/10"].get_ydata()[0]
    nearby = [c for lr, c in zip(lrs, curve) if s.minimum / 1.3 < lr < s.minimum * 1.3]
    assert min(nearby) <= y <= max(nearby)
    for line in lines.values():
        x = line.get_xdata()
        if len(x) == 1:
            assert lrs[0] <= x[0] <= lrs[-1]
    # validation points use BatchNorm statistics of the current weights: they follow the
    # training loss instead of exploding (in eval mode they were 5.4, 75 and 790 past LR 0.2)
    for lr, loss in zip(result.val_lrs, result.val_losses):
        if lr < 3:
            assert loss < 2.5, (lr, loss)
