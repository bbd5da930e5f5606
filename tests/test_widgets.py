"""The widgets without a frontend: controls, clicks on Run and Stop, results, live plots."""

import time

import pytest
import torch
import traitlets
from torch import nn

from disciplined_widgets import TensorLoader, fit
from disciplined_widgets.models import SmallCNN
from disciplined_widgets.widgets import (CompareWidget, LivePlot, LogRangeSlider, RangeTestWidget,
                                         ScheduleWidget, TrainWidget)


@pytest.fixture
def setup(digits):
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    train = TensorLoader(digits.x_train, digits.y_train, 64, seed=0)
    val = TensorLoader(digits.x_val, digits.y_val, 512, shuffle=False)
    return model, optimizer, nn.CrossEntropyLoss(), train, val


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def fast_plot(widget):
    widget.plot.interval, widget.plot.budget = 0.02, 1.0


# ---- building blocks ----

def test_log_range_slider_speaks_learning_rates():
    slider = LogRangeSlider(value=(1e-3, 1e-1), min=1e-6, max=10)
    assert slider._slider.value == pytest.approx((-3, -1))
    assert slider._readout.value == "0.001 to 0.1"
    slider._slider.value = (-2, 0)  # the user drags
    assert slider.value == pytest.approx((1e-2, 1.0))
    slider.value = (1e-9, 1e-4)  # clamped into the slider's range
    assert slider.value == pytest.approx((1e-6, 1e-4))
    with pytest.raises(traitlets.TraitError, match="low < high"):
        slider.value = (0.1, 0.01)
    with pytest.raises(ValueError, match="0 < min < max"):
        LogRangeSlider(min=0.0, max=1.0)


def test_live_plot_is_throttled_and_flush_shows_the_final_state():
    from matplotlib.figure import Figure

    def draw(n):
        figure = Figure(figsize=(2, 2))
        figure.add_subplot().plot(range(n))
        return figure

    plot = LivePlot(draw, max_fps=5)
    for n in range(2, 60):
        plot.update(n)
    wait_until(lambda: plot.renders >= 1, timeout=10)  # a process's first drawing loads fonts
    time.sleep(0.3)
    assert plot.renders <= 3  # a burst of 58 updates costs a drawing or two
    before = plot.image.value
    plot.flush(100)
    assert plot.image.value != before and bytes(plot.image.value).startswith(b"\x89PNG")


# ---- RangeTestWidget ----

def test_range_widget_run_button_result_bounds_and_changing_plot(setup):
    widget = RangeTestWidget(*setup, num_iter=300, start_lr=1e-5)
    fast_plot(widget)
    images = []
    widget.plot.image.observe(lambda change: images.append(change["new"]), "value")
    widget.run_button.click()
    assert widget.running and widget.run_button.disabled and not widget.stop_button.disabled
    assert widget.start() is False  # a second click while running does nothing
    widget.wait()
    assert widget.error is None and widget.result.stop_reason in ("completed", "diverged")
    assert len(set(images)) >= 2  # drawn while running, and the final state
    assert widget.selected_bounds == pytest.approx(widget.result.suggestions.bounds)
    assert "Suggested" in widget.suggestion.value and "steepest" in widget.suggestion.value
    assert widget.progress.value == len(widget.result.lrs)
    widget.bounds.value = (1e-3, 1e-2)  # the user moves the bounds
    assert widget.selected_bounds == pytest.approx((1e-3, 1e-2))
    assert not widget.run_button.disabled and widget.stop_button.disabled


def test_blocking_run_gives_the_same_result_as_the_button(setup):
    widget = RangeTestWidget(*setup, num_iter=40)
    widget.run_button.click()
    widget.wait()
    clicked = widget.result
    assert widget.run().losses == clicked.losses


def test_stop_takes_effect_within_a_step(setup):
    widget = RangeTestWidget(*setup, num_iter=5000, start_lr=1e-6, end_lr=1e-3)
    widget.run_button.click()
    wait_until(lambda: widget.progress.value >= 5)
    widget.stop_button.click()
    widget.wait(timeout=10)
    assert not widget.running and widget.result.stop_reason == "stopped"
    assert len(widget.result.lrs) < 5000 and "stopped" in widget.status.value


def test_an_error_is_shown_in_the_widget_and_the_model_is_restored(setup):
    model, optimizer, _, train, val = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def broken(outputs, targets):
        calls.append(1)
        if len(calls) > 3:
            raise ValueError("targets out of range")
        return nn.functional.cross_entropy(outputs, targets)

    widget = RangeTestWidget(model, optimizer, broken, train, num_iter=20)
    widget.run_button.click()
    widget.wait()
    assert isinstance(widget.error, ValueError)
    assert "ValueError" in widget.status.value and "targets out of range" in widget.status.value
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="targets out of range"):
        widget.run()


def test_smoothing_resmooths_without_running_and_earlier_runs_overlay(setup):
    widget = RangeTestWidget(*setup, num_iter=60)
    first = widget.run()
    widget.smooth.value = 0.5
    assert widget.result.losses == first.losses and widget.result.smooth == 0.5
    widget.keep_runs.value = True
    widget.weight_decay.value = 1e-2
    widget.run()
    assert widget.earlier and widget.result.settings == {"weight_decay": 1e-2}
    labels = widget._draw(widget.result).axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("earlier") for label in labels)
    assert "image/png" in widget._repr_mimebundle_()


def test_unknown_options_reach_the_core_and_fail_there(setup):
    widget = RangeTestWidget(*setup, num_iter=10, val_evry=3)
    with pytest.raises(TypeError, match="val_evry"):
        widget.run()


# ---- ScheduleWidget ----

def test_schedule_widget_previews_follows_and_builds_what_fit_uses(setup):
    model, optimizer, criterion, train, val = setup
    schedule = ScheduleWidget(train, epochs=2, max_lr=0.3)
    shown = schedule.preview()
    assert len(shown.lr) == 2 * len(train) and max(shown.lr) == pytest.approx(0.3, rel=0.02)
    schedule.policy.value = "CLR"
    assert "steps" in schedule.message.value
    schedule.policy.value = "constant"
    assert schedule.div.disabled and schedule.clr_mode.disabled and schedule.momentum.disabled
    constant, = schedule.schedulers(optimizer)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.3)
    optimizer.step()
    constant.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.3)  # held there, a scheduler
    optimizer.param_groups[0]["lr"] = 0.05
    schedule.policy.value = "1cycle"
    ranges = RangeTestWidget(model, optimizer, criterion, train, num_iter=60)
    ranges.run()
    schedule.follow(ranges)
    low, high = ranges.selected_bounds
    assert schedule.max_lr.value == pytest.approx(high, rel=0.15)  # the slider's own steps
    schedule.milestones.value = "oops"
    assert "expected whole epochs such as '30, 60'" in schedule.message.value
    assert schedule.milestones.layout.border  # the offending field is marked
    schedule.milestones.value = "1"
    assert not schedule.milestones.layout.border and "steps" in schedule.message.value


# ---- TrainWidget ----

def test_train_widget_runs_stops_and_restarts_from_the_initial_weights(setup):
    model, optimizer, criterion, train, val = setup
    schedule = ScheduleWidget(train, epochs=2, max_lr=0.2)
    widget = TrainWidget(model, optimizer, criterion, train, val, schedule=schedule,
                         update_every=0.05)
    started = time.monotonic()
    history = widget.run()
    updates = (time.monotonic() - started) / 0.05
    assert history.stop_reason == "completed" and history.steps_done == 2 * len(train)
    assert history.lr == pytest.approx(schedule.preview().lr)
    assert widget.verdict.value  # diagnose's verdict shown
    assert widget.plot.renders <= 2 + updates / 4  # throttled: a drawing per several updates

    schedule.epochs.value = 1000
    widget.epochs.value = 1000
    widget.run_button.click()
    wait_until(lambda: widget.progress.value > 0)
    widget.stop_button.click()
    widget.wait(timeout=10)
    second = widget.history
    assert second.stop_reason == "stopped" and second.steps_done < second.total_steps
    assert second.train_loss[0] == pytest.approx(history.train_loss[0])  # same starting weights
    assert widget.earlier == [history]


# ---- CompareWidget ----

def test_compare_widget_overlays_runs_and_leaves_the_model_alone(setup):
    model, optimizer, criterion, train, val = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    widget = CompareWidget(model, optimizer, criterion, train, val, parameter="weight_decay",
                           values="1e-3, 0", epochs=2, max_lr=0.2)
    comparison = widget.run()
    assert comparison.labels == ["0.001", "0"]
    rows = comparison.table()
    assert [r["updates"] for r in rows] == [2 * len(train)] * 2
    assert "<table>" in widget.table.value and "best val accuracy" in widget.table.value
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["weight_decay"] == 5e-4 and train.batch_size == 64
    widget.parameter.value = "schedule"
    assert widget.values.value == "LR decay, batch growth, hybrid"
    values = widget.parsed_values()
    assert [v.max_batch_size for v in values] == [64, None, 320]


def test_the_worker_uses_the_callers_cpu_threads(setup):
    torch.set_num_threads(1)  # as the course's offline setting does
    widget = TrainWidget(*setup, epochs=1)
    seen = []
    work = widget._work
    widget._work = lambda stop_event: (seen.append(torch.get_num_threads()), work(stop_event))
    widget.run_button.click()
    widget.wait()
    assert seen == [1] and widget.error is None and widget.history.steps_done > 0


# ---- SearchWidget ----

def test_search_widget_runs_trials_and_shows_the_whole_shared_study(tmp_path):
    from disciplined_widgets.search import Search
    from disciplined_widgets.widgets import SearchWidget

    storage = f"journal:{tmp_path}/class.log"
    space = {"max_lr": [0.05, 0.2], "weight_decay": [0.0, 1e-3]}
    teacher = Search("mlp", "digits", space, sampler="grid", steps=30, study="class",
                     storage=storage)
    widget = SearchWidget(teacher, follow=True, refresh_every=0.1)
    fast_plot(widget)
    assert "0 of 4 complete" in widget.summary.value and widget.table.value == ""
    student = Search("mlp", "digits", space, sampler="grid", steps=30, study="class",
                     storage=storage)
    student.run(n_trials=2)  # another notebook fills the shared study
    wait_until(lambda: "2 of 4 complete" in widget.summary.value)
    wait_until(lambda: widget.plot.renders >= 1)
    assert widget.table.value.count("<tr>") == 2  # body rows, one per complete trial
    widget.trials.value = 1
    widget.run()  # this notebook adds one trial
    assert "3 of 4 complete" in widget.summary.value and widget.progress.value == 3
    widget.trials.value = 0
    best = widget.run()  # until the study is done
    assert "4 of 4 complete" in widget.summary.value
    assert best == teacher.best and best["val_accuracy"] == teacher.table()["val_accuracy"].max()
    assert widget.table.value.count("<tr>") == 4
    widget.close()
    assert not widget._follower.is_alive()


def test_search_widget_stop_leaves_the_trial_queued_again(digits):
    from disciplined_widgets.search import Search
    from disciplined_widgets.widgets import SearchWidget

    search = Search("mlp", "digits", {"max_lr": [0.05, 0.2]}, sampler="grid", steps=200_000)
    widget = SearchWidget(search)
    widget.start()
    wait_until(lambda: search.progress().running == 1)
    widget.stop()
    widget.wait(30)
    progress = search.progress()
    assert (progress.complete, progress.running, progress.failed, progress.waiting) == (0, 0, 0, 2)
    assert progress.requeued == 1
    assert "stopped" in widget.status.value
    widget.close()


# ---- the Run button on an event loop (as in a notebook's kernel), live plots ----

def on_a_loop(scenario):
    """Run ``scenario()`` (a coroutine function) on an asyncio loop in this thread, as a
    notebook kernel's cells and clicks run."""
    import asyncio
    return asyncio.run(scenario())


def test_on_a_running_loop_the_button_steps_as_a_task_and_stop_is_served(setup):
    import asyncio
    widget = RangeTestWidget(*setup, num_iter=5000, start_lr=1e-6, end_lr=1e-3)

    async def scenario():
        widget.run_button.click()
        assert widget.running and widget._thread is None and widget.start() is False
        with pytest.raises(RuntimeError, match="await widget.finished"):
            widget.wait()  # a blocking wait would stop the loop the work runs on
        turns = 0
        while widget.progress.value < 5:  # other work is served between the steps
            await asyncio.sleep(0)
            turns += 1
        widget.stop_button.click()
        await asyncio.wait_for(widget.finished(), 10)
        return turns

    assert on_a_loop(scenario) >= 4
    assert not widget.running and widget.result.stop_reason == "stopped"
    assert len(widget.result.lrs) < 5000 and "stopped" in widget.status.value
    assert not widget.run_button.disabled and widget.stop_button.disabled


def test_the_click_on_a_loop_gives_what_run_gives_and_shows_errors(setup):
    model, optimizer, criterion, train, val = setup
    widget = TrainWidget(model, optimizer, criterion, train, val, epochs=1)

    async def click():
        widget.run_button.click()
        await widget.finished()

    on_a_loop(click)
    clicked = widget.history
    assert widget.error is None and clicked.stop_reason == "completed"
    assert widget.run().train_loss == clicked.train_loss  # from the same initial weights

    def broken(outputs, targets):
        raise ValueError("targets out of range")

    failing = TrainWidget(model, optimizer, broken, train, val, epochs=1)
    widget = failing
    on_a_loop(click)
    assert isinstance(failing.error, ValueError) and "targets out of range" in failing.status.value
    assert not failing.running and not failing.run_button.disabled


def test_a_new_range_test_clears_the_last_one_and_grows_into_the_swept_range(setup):
    import asyncio
    from disciplined_widgets import RangeTestResult

    widget = RangeTestWidget(*setup, num_iter=300, start_lr=1e-5, end_lr=1.0)
    widget.run()
    assert "Suggested" in widget.suggestion.value

    async def scenario():
        widget.run_button.click()
        while widget.progress.value < 3:
            await asyncio.sleep(0)
        during = (widget.result, widget.selected_bounds, widget.suggestion.value)
        widget.stop()
        await widget.finished()
        return during

    result, bounds, text = on_a_loop(scenario)
    assert result is None and bounds is None and "Suggested" not in text
    partial = RangeTestResult(widget.result.lrs[:3], widget.result.losses[:3], "running",
                              start_lr=1e-5, end_lr=1.0, num_iter=300)
    assert widget._draw(partial).axes[0].get_xlim() == pytest.approx((1e-5, 1.0))


def test_live_plot_throttles_while_live_and_redraws_at_once_when_idle():
    from matplotlib.figure import Figure

    def draw(n):
        time.sleep(0.05)  # a slow drawing: the budget then spaces live drawings widely
        figure = Figure(figsize=(2, 2))
        figure.add_subplot().plot(range(n))
        return figure

    plot = LivePlot(draw, max_fps=20, budget=0.03)
    plot.live = True
    plot.update(2)
    time.sleep(0.1)
    plot.update(3)  # a frame later the run's first drawing is due: drawn here, between steps
    assert plot.renders == 1
    plot.update(4)
    time.sleep(0.5)
    assert plot.renders == 1  # 0.05 s of drawing is 3% of 1.7 s: the next drawing waits
    # from here, a throttled drawing would wait over 2 s (the budget, then the thread's 1 s)
    plot.update(5, now=True)  # a control moved: at once, even while live
    wait_until(lambda: plot.renders == 2, timeout=1.0)
    plot.update(6)
    plot.live = False  # the run ended: what is pending is drawn at once
    wait_until(lambda: plot.renders == 3, timeout=1.0)
    started = time.monotonic()
    plot.update(7)  # a slider moved after the run
    # drawn after 0.03 s plus the 0.05 s drawing; 1 s of room for a loaded 2-core machine
    wait_until(lambda: plot.renders == 4, timeout=1.0)
    assert time.monotonic() - started < 1.0
    live = plot.live_seconds
    assert 0.1 <= live <= plot.render_seconds - 0.1  # the two live drawings, not the idle two
    plot.flush(8)
    assert plot.live_seconds == live  # nor a flush


def test_compare_widget_shows_curves_and_progress_during_its_first_run(setup):
    widget = CompareWidget(*setup, parameter="weight_decay", values="1e-3, 0", epochs=3)
    widget.x_axis.value = "step"  # before any run: nothing to redraw, and no error
    fast_plot(widget)
    drawn, progress = [], []
    draw, refresh = widget.plot.draw, widget.plot.refresh
    evaluations = lambda comparison: drawn.append([len(h.val_loss) for h in comparison.histories])
    widget.plot.draw = lambda comparison: (evaluations(comparison), draw(comparison))[1]
    widget.plot.refresh = lambda figure, comparison: (evaluations(comparison),
                                                      refresh(figure, comparison))[1]
    widget.progress.observe(lambda change: progress.append(change["new"]), "value")
    widget.run()
    assert widget.progress.max == 200 and any(0 < value < 100 for value in progress)
    assert any(runs[0] > 0 and runs[1] == 0 for runs in drawn)  # curves of the first run
    assert drawn[-1] == [3, 3]


def test_schedule_widget_constant_policy_is_a_scheduler_that_fit_follows(setup):
    model, optimizer, criterion, train, val = setup
    schedule = ScheduleWidget(train, epochs=1, max_lr=0.3, policy="constant")
    assert "constant LR of 0.3" in schedule.message.value
    assert optimizer.param_groups[0]["lr"] == 0.05  # the preview leaves the optimizer alone
    history = fit(model, optimizer, criterion, train, epochs=1,
                  schedulers=schedule.schedulers(optimizer))
    assert history.lr == pytest.approx([0.3] * len(train))
    assert schedule.describe() == "constant LR 0.3, 1 epoch"
