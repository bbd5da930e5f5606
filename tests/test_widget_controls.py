"""The widgets' controls as a student meets them: checked as they change, in the widget's words,
greyed out where they do not apply, with tooltips; and the live plot's fast drawings."""

import io

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from disciplined_widgets import History, TensorLoader, fit, one_cycle, preview
from disciplined_widgets.comparisons import compare
from disciplined_widgets.plots import (plot_comparison, plot_history, update_comparison_plot,
                                     update_history_plot)
from disciplined_widgets.widgets import CompareWidget, RangeTestWidget, ScheduleWidget, TrainWidget
from disciplined_widgets.widgets.live_plot import Frames, figure_png


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def parts(digits):
    torch.manual_seed(0)
    model = TwoLayers()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train = TensorLoader(digits.x_train[:512], digits.y_train[:512], 64, seed=0)
    val = TensorLoader(digits.x_val, digits.y_val, 512, shuffle=False)
    return model, optimizer, nn.CrossEntropyLoss(), train, val


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)


def test_a_bad_field_is_marked_holds_run_and_says_why_in_the_widgets_words(parts):
    widget = RangeTestWidget(*parts)
    widget.num_iter.value = 0
    assert widget.num_iter.layout.border and widget.run_button.disabled
    assert "iterations: at least 2 steps, got 0" in widget.status.value
    with pytest.raises(ValueError, match="iterations: at least 2 steps, got 0"):
        widget.run()
    assert widget.start() is False and widget.result is None  # nothing ran
    widget.num_iter.value = 30
    assert not widget.num_iter.layout.border and not widget.run_button.disabled
    assert widget.status.value == ""
    widget.start_lr.value, widget.end_lr.value = 1.0, 1e-3
    assert "end LR: must be above the start LR 1" in widget.status.value

    compare = CompareWidget(*parts, parameter="weight_decay", values="1e-3, abc")
    assert "values: 'abc' is not a number" in compare.status.value
    compare.parameter.value = "batch_size"
    compare.values.value = "64, 0"
    assert "'0' is not a whole number of at least 1" in compare.status.value
    compare.values.value = "64, 128"
    assert compare.status.value == "" and not compare.run_button.disabled
    compare.parameter.value = "momentum"  # its example values hold "cyclical", which needs 1cycle
    assert "tick '1cycle up to max LR'" in compare.status.value and compare.run_button.disabled
    compare.use_one_cycle.value = True
    assert compare.status.value == "" and not compare.run_button.disabled


def test_controls_that_do_not_apply_are_greyed_out_and_overrides_exclusive(parts):
    widget = RangeTestWidget(*parts)
    widget.weight_decay.value = 1e-3
    assert widget.momentum.disabled and not widget.weight_decay.disabled
    widget.weight_decay.value = "as in the optimizer"
    assert not widget.momentum.disabled
    schedule = ScheduleWidget(steps_per_epoch=10)
    assert schedule.clr_mode.disabled and not schedule.pct_start.disabled
    schedule.policy.value = "CLR"
    assert not schedule.clr_mode.disabled and schedule.pct_start.disabled
    schedule.cycle_momentum.value = False
    assert schedule.momentum.disabled
    compare = CompareWidget(*parts)
    assert compare.milestones.disabled and compare.max_lr.disabled
    compare.use_one_cycle.value = True
    assert not compare.max_lr.disabled


def test_every_control_has_a_tooltip(parts):
    schedule = ScheduleWidget(steps_per_epoch=10)
    widgets = [RangeTestWidget(*parts), schedule, TrainWidget(*parts, schedule=schedule),
               CompareWidget(*parts)]
    shown = (ipywidgets.HTML, ipywidgets.Label, ipywidgets.IntProgress, ipywidgets.Image)
    controls = [value for widget in widgets for value in vars(widget).values()
                if isinstance(value, ipywidgets.ValueWidget) and not isinstance(value, shown)]
    assert len(controls) > 25
    for control in controls:
        name = "tooltip" if control.has_trait("tooltip") else "description_tooltip"
        assert getattr(control, name), f"{control.description!r} has no tooltip"


def test_train_widget_labels_runs_by_settings_and_restores_after_a_failed_run(parts):
    model, optimizer, criterion, train, val = parts
    schedule = ScheduleWidget(train, epochs=1, max_lr=0.1)
    widget = TrainWidget(model, optimizer, criterion, train, val, schedule=schedule)
    widget.run()
    assert widget._label == "1cycle to 0.1 (start /10), momentum 0.95 to 0.85, 1 epoch"
    assert "final train loss" in widget.final.value and "validation accuracy" in widget.final.value

    def failing(history):
        if history.steps_done == 3:
            raise RuntimeError("the user's callback failed")

    widget.fit_options["callback"] = failing
    widget.epochs.value = 1
    with pytest.raises(RuntimeError, match="callback failed"):
        widget.run()
    assert widget.history.steps_done == 3  # the partial run is kept and shown
    del widget.fit_options["callback"]
    widget.run()  # from the initial weights, although the failed run changed them
    assert widget.earlier_labels[0].startswith("1cycle to 0.1")
    assert widget.history.train_loss[0] == widget.earlier[0].train_loss[0]


def test_live_drawings_are_fast_and_show_what_a_full_drawing_shows(parts):
    model, optimizer, criterion, train, val = parts
    snapshots = []
    history = fit(model, optimizer, criterion, train, val, epochs=6, eval_every=4,
                  callback=lambda h: snapshots.append(History.from_dict(h.to_dict())))
    frames = Frames()
    for snapshot in [*snapshots[::4], history]:
        png = frames.png(plot_history(snapshot), 100, grow=True)
    drawings = frames.drawings
    assert drawings["whole"] == 1, drawings  # the layout is kept while live
    assert drawings["axes"] <= 3 and drawings["data"] >= 8, drawings  # the axes grew rarely
    assert_drawn_as_whole(png, plot_history(history), frames)


def test_a_live_spike_redraws_only_its_axes_and_looks_as_a_whole_drawing(parts):
    model, optimizer, criterion, train, val = parts
    history = fit(model, optimizer, criterion, train, val, epochs=2)
    frames = Frames()
    frames.png(plot_history(history), 100, grow=True)
    spiked = History.from_dict(history.to_dict())
    spiked.train_loss[-5:] = [40.0] * 5  # the loss leaves its axes: only that axes changes
    png = frames.png(plot_history(spiked), 100, grow=True)
    assert frames.drawings == {"whole": 1, "axes": 1, "data": 0}
    assert frames._limits[0][1][1] > 40  # the loss axes took the spike in
    assert_drawn_as_whole(png, plot_history(spiked), frames)
    spiked.train_loss[-5:] = [40000.0] * 5  # wider tick labels: the layout is made again
    frames.png(plot_history(spiked), 100, grow=True)
    assert frames.drawings["whole"] == 2
    assert all(region.x0 >= 0 for region in frames._regions)  # the "loss" label not cut off


def test_a_displayed_train_widget_shows_the_axes_its_run_fills_and_its_run_draws_no_whole(parts):
    widget = TrainWidget(*parts, epochs=3)
    bundle = widget._repr_mimebundle_()  # displayed: the empty axes, laid out before the click
    assert "image/png" in bundle and widget.plot.drawings == {"whole": 1, "axes": 0, "data": 0}
    empty = plot_history(History(), plan=widget._plan)
    assert [axes.get_xlim() for axes in empty.axes] == [(0, 3)] * 4  # loss, accuracy, LR, momentum
    widget.epochs.value = 4  # the empty axes follow
    assert widget._plan.epoch[-1] == 4 and widget.plot.drawings["axes"] == 1
    widget.run()
    assert widget.plot.drawings["whole"] == 1, widget.plot.drawings  # the run drew what changed
    assert_drawn_as_whole(widget.plot.image.value, widget._draw(widget.history), widget.plot._frames)


def test_a_displayed_range_test_widget_shows_the_swept_range_and_its_test_draws_no_whole(parts):
    model, optimizer, criterion, train, _ = parts
    widget = RangeTestWidget(model, optimizer, criterion, train, num_iter=30)
    widget._repr_mimebundle_()
    widget.end_lr.value = 3.0  # the empty axes follow the swept range
    assert widget.plot._frames._limits[0][0] == (1e-7, 3.0)
    widget.run()
    assert widget.plot.drawings["whole"] == 1, widget.plot.drawings


def test_a_displayed_compare_widget_shows_every_value_and_its_runs_draw_no_whole(parts):
    widget = CompareWidget(*parts, parameter="weight_decay", values="1e-3, 0", epochs=2)
    widget._repr_mimebundle_()  # displayed: a place in the legend for each value, 2 epochs wide
    legend = lambda: [t.get_text() for t in widget._draw(widget._current()).legends[0].get_texts()]
    assert legend() == ["0.001", "0"] and widget.plot._frames._limits[0][0] == (0, 2)
    widget.values.value = "1e-2, 1e-4, 0"  # the empty axes follow the values
    assert legend() == ["0.01", "0.0001", "0"] and widget.plot.drawings["whole"] == 2
    widget.run()  # three runs, one after the other: each fills its place
    assert widget.plot.drawings["whole"] == 2, widget.plot.drawings
    assert_drawn_as_whole(widget.plot.image.value, widget._draw(widget.comparison),
                          widget.plot._frames)


def test_a_refreshed_comparison_plot_is_the_plot_of_the_later_state(parts):
    model, optimizer, criterion, train, val = parts
    done = compare(model, optimizer, criterion, train, val, parameter="weight_decay",
                   values=[1e-3, 0.0], epochs=2)
    first = History.from_dict(done.histories[0].to_dict())
    halfway = type(done)(done.parameter, done.values, [first, History()])
    figure = plot_comparison(halfway, x="step")
    assert update_comparison_plot(figure, done, x="step")
    assert np.abs(pixels(figure_png(figure)) - pixels(figure_png(plot_comparison(done, x="step")))).max() == 0
    assert not update_comparison_plot(figure, done, x="epoch")  # other curves: drawn anew
    other = type(done)(done.parameter, [1e-2, 0.0], done.histories)
    assert not update_comparison_plot(figure, other, x="step")  # other values: drawn anew


def test_a_refreshed_history_plot_is_the_plot_of_the_later_state(parts):
    model, optimizer, criterion, train, val = parts
    snapshots = []
    fit(model, optimizer, criterion, train, val, epochs=3, eval_every=8,
        callback=lambda h: snapshots.append(History.from_dict(h.to_dict())))
    early, late = snapshots[9], snapshots[-1]  # both evaluated: the same curves
    figure = plot_history(early, x="step")
    assert update_history_plot(figure, late, x="step")
    assert np.abs(pixels(figure_png(figure)) - pixels(figure_png(plot_history(late, x="step")))).max() == 0
    assert not update_history_plot(figure, late, x="epoch")  # other curves: drawn anew
    before_evaluation = plot_history(snapshots[2], x="step")  # empty lines for what comes
    assert update_history_plot(before_evaluation, late, x="step")
    assert np.abs(pixels(figure_png(before_evaluation)) - pixels(figure_png(plot_history(late, x="step")))).max() == 0
    assert not update_history_plot(figure, late, x="step", earlier=[early])  # other runs: anew


def test_empty_axes_take_a_run_in_place_with_its_plan_and_refuse_a_run_without_accuracy(parts):
    model, optimizer, criterion, train, val = parts
    plan = preview(optimizer, lambda o: one_cycle(o, 0.5, 2 * len(train)), epochs=2, train_loader=train)
    history = fit(model, optimizer, criterion, train, val, epochs=2,
                  schedulers=[one_cycle(optimizer, 0.5, 2 * len(train))])
    empty = plot_history(History(), plan=preview(optimizer, epochs=2, train_loader=train))
    assert update_history_plot(empty, history, plan=plan)  # the plan's lines follow it too
    assert np.abs(pixels(figure_png(empty)) - pixels(figure_png(plot_history(history, plan=plan)))).max() == 0
    without_accuracy = History.from_dict(history.to_dict())
    without_accuracy.val_accuracy = [None] * len(history.val_accuracy)
    assert not update_history_plot(plot_history(History(), plan=plan), without_accuracy, plan=plan)


def test_an_accuracy_panel_without_accuracy_says_why(parts):
    """A regression (no classes): the accuracy panels of a run and of a comparison say why they
    are empty; a classifier's say nothing of the kind."""
    torch.manual_seed(0)
    x, y = torch.randn(128, 6), torch.randn(128, 1)
    model = nn.Linear(6, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loaders = TensorLoader(x, y, 32, seed=0), TensorLoader(x, y, 128, shuffle=False)
    regression = fit(model, optimizer, nn.MSELoss(), *loaders, epochs=2)
    runs = compare(model, optimizer, nn.MSELoss(), *loaders, parameter="weight_decay",
                   values=[0.0, 0.1], epochs=1)
    unfinished = type(runs)(runs.parameter, runs.values, [runs.histories[0], History()])
    said = lambda ax: " ".join(text.get_text() for text in ax.texts)
    assert "no accuracy" in said(plot_history(regression).axes[1])
    assert "no accuracy" in said(plot_comparison(runs).axes[1])
    assert "no accuracy" in said(plot_comparison(unfinished).axes[1])
    classifier = fit(*parts, epochs=1)
    assert not said(plot_history(classifier).axes[1])
    assert not said(plot_history(History()).axes[1])  # not run yet: nothing to say


def test_the_loss_axis_runs_from_zero_to_a_tenth_above_the_highest_loss(parts):
    """Set by the highest loss alone, so that a live run's falling losses leave the top where it
    is (an autoscaled top, with margins of the data's span, rose as the lowest loss fell, and
    every rise redrew the axes); a loss below zero keeps the autoscaled axis."""
    run = fit(*parts, epochs=2)
    highest = max(run.train_loss + run.val_loss)
    assert plot_history(run).axes[0].get_ylim() == pytest.approx((0, 1.1 * highest))
    comparison = compare(*parts, parameter="weight_decay", values=[0.0, 1e-3], epochs=1)
    highest = max(v for h in comparison.histories for v in h.val_loss)  # its live view's
    assert plot_comparison(comparison, steady=True).axes[0].get_ylim() == pytest.approx((0, 1.1 * highest))
    below_zero = History.from_dict({**run.to_dict(), "val_loss": [-0.5] * len(run.val_loss)})
    assert plot_history(below_zero).axes[0].get_ylim()[0] < -0.5


def assert_drawn_as_whole(png: bytes, reference, frames: Frames) -> None:
    """``png`` against a whole drawing of ``reference`` at the frames' positions and limits."""
    reference.set_layout_engine("none")
    for axes, position, limits in zip(reference.axes, frames._positions, frames._limits):
        axes.set_position(position)
        if limits is not None:
            axes.set_xlim(limits[0])
            axes.set_ylim(limits[1])
    difference = np.abs(pixels(png) - pixels(figure_png(reference, 100)))
    assert difference.mean() < 0.5 and (difference > 60).mean() < 0.005


def test_a_train_widget_whose_run_cannot_be_previewed_still_displays_and_run_says_why():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=8)
    widget = TrainWidget(model, optimizer, nn.CrossEntropyLoss(), empty, epochs=2)
    assert "image/png" in widget._repr_mimebundle_()  # empty axes without a plan
    with pytest.raises(ValueError, match="train_loader is empty"):
        widget.run()
