"""RangeTestWidget: run an LR range test live, read the suggestions, choose the bounds."""

from __future__ import annotations

import html
import math
import threading

import ipywidgets as widgets

from ..diagnose import RangeTestReading, read_range_test
from ..plots import plot_range_test
from ..range_test import RangeTestResult, lr_range_test_steps, range_tests_steps
from .compat import tooltip
from .controls import LogRangeSlider, auto, control, format_lr, wrapping_row
from .live_plot import LivePlot
from .runner import Runner

AS_IS = "as in the optimizer"
DEFAULTS = dict(start_lr=1e-7, end_lr=10.0, num_iter=100, mode="exp", smooth=0.98,
                diverge_factor=4.0, weight_decay=None, momentum=None)


class RangeTestWidget(Runner):
    """A live LR range test over the user's model, optimizer and data.

    ``defaults`` set the controls (``start_lr``, ``end_lr``, ``num_iter``, ``mode``,
    ``smooth``, ``diverge_factor``, ``weight_decay``, ``momentum``); anything else
    (``val_every``, ``device``, ``amp``, ``unpack``, ...) goes to
    :func:`~disciplined_widgets.lr_range_test`. After a run, ``result`` holds the
    :class:`~disciplined_widgets.RangeTestResult`, ``reading`` what it supports
    (:func:`~disciplined_widgets.diagnose.read_range_test`) and ``selected_bounds`` the chosen
    bounds: exactly the suggestion until the user moves the slider, then the slider's; None
    when the test gives no suggestion (the slider is then left where it was) and the user has
    not chosen. ``run()`` runs and waits.
    """

    def __init__(self, model, optimizer, criterion, train_loader, val_loader=None, **defaults):
        settings = {**DEFAULTS, **{k: v for k, v in defaults.items() if k in DEFAULTS}}
        self._core_options = {k: v for k, v in defaults.items() if k not in DEFAULTS}
        self._data = (model, optimizer, criterion, train_loader, val_loader)
        self.result: RangeTestResult | None = None
        self.earlier: list[RangeTestResult] = []
        self.reading: RangeTestReading | None = None
        self._chosen = False  # the user moved the bounds since the last suggestion
        self._placing = False  # the widget itself is moving the bounds

        self.start_lr = control(widgets.FloatLogSlider(
            settings["start_lr"], min=-10, max=0, step=0.5, description="start LR"),
            "the sweep's first, smallest learning rate")
        self.end_lr = control(widgets.FloatLogSlider(
            settings["end_lr"], min=-4, max=3, step=0.5, description="end LR"),
            "the sweep's last, largest learning rate (the test may stop before it)")
        self.num_iter = control(widgets.IntText(settings["num_iter"], description="iterations"),
                                "optimizer steps from start LR to end LR (Smith: about 100)")
        self.mode = control(widgets.ToggleButtons(
            options=["exp", "linear"], value=settings["mode"], description="LR spacing",
            style={"button_width": "64px"}),
            "exp: equal steps on a log scale (fastai, Lightning); linear: Smith's 1506.01186")
        self.smooth = control(widgets.FloatSlider(
            settings["smooth"], min=0.0, max=0.995, step=0.005, description="smoothing",
            readout_format=".3f"),
            "beta of the loss's moving average: higher is smoother but lags behind the LR")
        self.diverge_factor = control(widgets.FloatText(
            settings["diverge_factor"], description="stop at loss x best"),
            "stop once the smoothed loss exceeds this many times its best (fastai: 4)")
        self.weight_decay = control(widgets.Dropdown(
            options=[AS_IS, 1e-2, 1e-3, 1e-4, 1e-5, 0.0],
            value=AS_IS if settings["weight_decay"] is None else settings["weight_decay"],
            description="weight decay"),
            "test at this weight decay (one override at a time: momentum or weight decay)")
        self.momentum = control(widgets.Dropdown(
            options=[AS_IS, 0.99, 0.95, 0.9, 0.85, 0.8],
            value=AS_IS if settings["momentum"] is None else settings["momentum"],
            description="momentum"),
            "test at this momentum (one override at a time: momentum or weight decay)")
        self.keep_runs = tooltip(widgets.Checkbox(False, description="keep earlier runs",
                                                  indent=False, layout=auto()),
                                 "overlay earlier tests' smoothed curves, labelled by settings")
        self.bounds = LogRangeSlider(value=(1e-3, 1e-2), min=1e-10, max=1e3,
                                     description="chosen bounds")
        self.suggestion = widgets.HTML("Run the test to see the suggested learning rates.")
        self.plot = LivePlot(self._draw)

        self.smooth.observe(self._resmooth, "value")
        self.bounds.observe(self._bounds_moved, "value")
        for field in (self.start_lr, self.end_lr, self.num_iter, self.diverge_factor):
            field.observe(lambda _: self._check_fields(), "value")
        for field in (self.start_lr, self.end_lr):
            field.observe(lambda _: self._redraw_empty_axes(), "value")
        for override in (self.weight_decay, self.momentum):
            override.observe(lambda _: self._one_override_at_a_time(), "value")
        controls = wrapping_row([self.start_lr, self.end_lr, self.num_iter, self.mode,
                                 self.diverge_factor, self.smooth, self.weight_decay,
                                 self.momentum, self.keep_runs])
        super().__init__([controls, self.plot.image, self.bounds, self.suggestion])
        self._check_fields()
        self._one_override_at_a_time()

    def _check_fields(self) -> None:
        """Each field's value checked as it changes (the Run button waits for valid ones)."""
        self.check(self.num_iter, None if self.num_iter.value >= 2 else
                   f"at least 2 steps, got {self.num_iter.value}")
        factor = self.diverge_factor.value
        self.check(self.diverge_factor, None if factor > 1 and math.isfinite(factor) else
                   f"a number above 1 (the loss's multiple of its best), got {factor:g}")
        self.check(self.end_lr, None if self.end_lr.value > self.start_lr.value else
                   f"must be above the start LR {format_lr(self.start_lr.value)}")

    def _one_override_at_a_time(self) -> None:
        """A test overrides momentum or weight decay, not both: the other is greyed out."""
        self.momentum.disabled = self.weight_decay.value != AS_IS
        self.weight_decay.disabled = self.momentum.value != AS_IS

    @property
    def selected_bounds(self) -> tuple[float, float] | None:
        """The chosen bounds, ready for ``one_cycle``/``cyclical``: the suggestion exactly until
        the user moves the slider, then the slider's; None before a run and when the test
        gives no suggestion and the user has chosen none."""
        if self.result is None:
            return None
        if self._chosen:
            return tuple(self.bounds.value)
        return self.reading.bounds if self.reading is not None else None

    def _settings(self) -> dict:
        return dict(start_lr=self.start_lr.value, end_lr=self.end_lr.value,
                    num_iter=self.num_iter.value, mode=self.mode.value,
                    smooth=self.smooth.value, diverge_factor=self.diverge_factor.value)

    def _steps(self, stop_event: threading.Event):
        if self.result is not None and self.keep_runs.value:
            self.earlier.append(self.result)
        elif not self.keep_runs.value:
            self.earlier.clear()
        settings = self._settings()
        self.set_progress(0, settings["num_iter"])
        # The last result is no longer current: its curve and suggestion go at once.
        self.result = self.reading = None
        self.suggestion.value = "<i>Running: the suggestion comes when the test ends.</i>"
        self.plot.update(RangeTestResult([], [], "running", **settings), now=True)

        def on_step(partial: RangeTestResult) -> None:
            self.set_progress(len(partial.lrs), partial.num_iter)
            self.plot.update(partial)

        options = dict(self._core_options, callback=on_step, stop_event=stop_event, **settings)
        model, optimizer, criterion, train_loader, val_loader = self._data
        overrides = {name: [control.value] for name, control in
                     (("weight_decays", self.weight_decay), ("momentums", self.momentum))
                     if control.value != AS_IS}
        if overrides:
            collection = yield from range_tests_steps(model, optimizer, criterion, train_loader,
                                                      val_loader=val_loader, **overrides,
                                                      **options)
            result = collection[0]
        else:
            result = yield from lr_range_test_steps(model, optimizer, criterion, train_loader,
                                                    val_loader=val_loader, **options)
        self.result = result
        self._show_suggestions(new_run=True)
        self.plot.flush(result)

    def _draw_empty_axes(self) -> None:
        """The swept LR range (see :meth:`Runner._draw_empty_axes`)."""
        if self.result is None and not self._problems:
            self.plot.prepare(RangeTestResult([], [], "not run yet", **self._settings()))

    def _result(self) -> RangeTestResult:
        return self.result

    def _resmooth(self, change) -> None:
        if self.result is not None and not self.running:
            self.result = self.result.resmooth(change["new"])
            self._show_suggestions()
            self.plot.update(self.result)

    def _show_suggestions(self, new_run: bool = False) -> None:
        """Read the result; put the bounds on the suggestion unless the user has chosen them
        (a new run's suggestion always moves them); leave them alone without a suggestion."""
        self.reading = reading = read_range_test(self.result)
        if new_run:
            self._chosen = False
        if reading.bounds is not None and not self._chosen:
            self._placing = True
            try:
                self.bounds.value = reading.bounds
            finally:
                self._placing = False
        self._show_text()

    def _show_text(self) -> None:
        reading, result = self.reading, self.result
        steps = f"{result.stop_reason}, {len(result.lrs)} steps"
        if reading.suggestions is None:
            text = f"<b>No suggestion</b>: {html.escape(reading.reason)}."
        else:
            s = reading.suggestions
            text = (f"<b>Suggested</b>: steepest {format_lr(s.steepest)} &middot; minimum/10 "
                    f"{format_lr(s.minimum)} &middot; valley {format_lr(s.valley)} &rarr; bounds "
                    f"<b>{format_lr(s.bounds[0])} to {format_lr(s.bounds[1])}</b> ({steps})")
            if reading.note:
                text += f"<br>Note: {html.escape(reading.note)}."
        warning = self._bounds_warning()
        if warning:
            text += f"<br><span style='color:#c62828'><b>Warning</b>: {html.escape(warning)}</span>"
        self.suggestion.value = text

    def _bounds_warning(self) -> str:
        """Why the chosen bounds are risky: above the LR where the test diverged, or untested."""
        bounds = self.selected_bounds
        if bounds is None or self.reading is None:
            return ""
        high = bounds[1]
        diverged = self.reading.diverged_at
        if diverged is not None and high > diverged:
            return (f"the maximum bound {format_lr(high)} is above {format_lr(diverged)}, the LR "
                    f"where the test's loss diverged: training there is likely to diverge too")
        tested = self.reading.tested
        if tested is not None and high > tested[1]:
            return (f"the maximum bound {format_lr(high)} is above {format_lr(tested[1])}, the "
                    f"largest LR the test tried")
        return ""

    def _bounds_moved(self, _change) -> None:
        if self.result is None:
            return
        if not self._placing:
            self._chosen = True
            self._show_text()
        self.plot.update(self.result)

    def _draw(self, result: RangeTestResult):
        finished = result is self.result
        return plot_range_test(result, bounds=self.selected_bounds if finished else None,
                               earlier=self.earlier, suggestions=finished,
                               lr_range=(result.start_lr, result.end_lr))
