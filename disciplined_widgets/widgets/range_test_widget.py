"""RangeTestWidget: run an LR range test live, read the suggestions, choose the bounds."""

from __future__ import annotations

import threading

import ipywidgets as widgets

from ..plots import plot_range_test
from ..range_test import RangeTestResult, lr_range_test, range_tests
from .controls import LogRangeSlider, format_lr
from .live_plot import LivePlot
from .runner import Runner

AS_IS = "as in the optimizer"
DEFAULTS = dict(start_lr=1e-7, end_lr=10.0, num_iter=100, mode="exp", smooth=0.98,
                diverge_factor=4.0, weight_decay=None, momentum=None)
WIDE = {"description_width": "110px"}


class RangeTestWidget(Runner):
    """A live LR range test over the user's model, optimizer and data.

    ``defaults`` set the controls (``start_lr``, ``end_lr``, ``num_iter``, ``mode``,
    ``smooth``, ``diverge_factor``, ``weight_decay``, ``momentum``); anything else
    (``val_every``, ``device``, ``amp``, ``unpack``, ...) goes to
    :func:`~disciplined_widgets.lr_range_test`. After a run, ``result`` holds the
    :class:`~disciplined_widgets.RangeTestResult` and ``selected_bounds`` the bounds the slider
    shows (the suggestion, until the user moves it). ``run()`` runs and waits.
    """

    def __init__(self, model, optimizer, criterion, train_loader, val_loader=None, **defaults):
        settings = {**DEFAULTS, **{k: v for k, v in defaults.items() if k in DEFAULTS}}
        self._core_options = {k: v for k, v in defaults.items() if k not in DEFAULTS}
        self._data = (model, optimizer, criterion, train_loader, val_loader)
        self.result: RangeTestResult | None = None
        self.earlier: list[RangeTestResult] = []

        self.start_lr = widgets.FloatLogSlider(settings["start_lr"], min=-10, max=0, step=0.5,
                                               description="start LR", style=WIDE)
        self.end_lr = widgets.FloatLogSlider(settings["end_lr"], min=-4, max=3, step=0.5,
                                             description="end LR", style=WIDE)
        self.num_iter = widgets.BoundedIntText(settings["num_iter"], min=2, max=100_000,
                                               description="iterations", style=WIDE)
        self.mode = widgets.ToggleButtons(options=["exp", "linear"], value=settings["mode"],
                                          description="mode", style=WIDE)
        self.smooth = widgets.FloatSlider(settings["smooth"], min=0.0, max=0.995, step=0.005,
                                          description="smoothing", readout_format=".3f", style=WIDE)
        self.diverge_factor = widgets.BoundedFloatText(settings["diverge_factor"], min=1.01,
                                                       max=1e6, description="diverge factor",
                                                       style=WIDE)
        self.weight_decay = widgets.Dropdown(
            options=[AS_IS, 1e-2, 1e-3, 1e-4, 1e-5, 0.0],
            value=AS_IS if settings["weight_decay"] is None else settings["weight_decay"],
            description="weight decay", style=WIDE)
        self.momentum = widgets.Dropdown(
            options=[AS_IS, 0.99, 0.95, 0.9, 0.85, 0.8],
            value=AS_IS if settings["momentum"] is None else settings["momentum"],
            description="momentum", style=WIDE)
        self.keep_runs = widgets.Checkbox(False, description="keep earlier runs")
        self.bounds = LogRangeSlider(value=(1e-3, 1e-2), min=1e-10, max=1e3,
                                     description="chosen bounds")
        self.suggestion = widgets.HTML("Run the test to see the suggested learning rates.")
        self.plot = LivePlot(self._draw)

        self.smooth.observe(self._resmooth, "value")
        self.bounds.observe(lambda _: self.result is not None and self.plot.update(self.result),
                            "value")
        controls = widgets.VBox([
            widgets.HBox([self.start_lr, self.end_lr, self.num_iter]),
            widgets.HBox([self.mode, self.diverge_factor]),
            widgets.HBox([self.smooth, self.weight_decay, self.momentum, self.keep_runs]),
        ])
        super().__init__([controls, self.plot.image, self.bounds, self.suggestion])

    @property
    def selected_bounds(self) -> tuple[float, float] | None:
        """The bounds on the slider (after a run), ready for ``one_cycle``/``cyclical``."""
        return self.bounds.value if self.result is not None else None

    def _settings(self) -> dict:
        return dict(start_lr=self.start_lr.value, end_lr=self.end_lr.value,
                    num_iter=self.num_iter.value, mode=self.mode.value,
                    smooth=self.smooth.value, diverge_factor=self.diverge_factor.value)

    def _work(self, stop_event: threading.Event) -> None:
        if self.result is not None and self.keep_runs.value:
            self.earlier.append(self.result)
        elif not self.keep_runs.value:
            self.earlier.clear()
        settings = self._settings()
        self.set_progress(0, settings["num_iter"])

        def on_step(partial: RangeTestResult) -> None:
            self.set_progress(len(partial.lrs), partial.num_iter)
            self.plot.update(partial)

        options = dict(self._core_options, callback=on_step, stop_event=stop_event, **settings)
        model, optimizer, criterion, train_loader, val_loader = self._data
        overrides = {name: [control.value] for name, control in
                     (("weight_decays", self.weight_decay), ("momentums", self.momentum))
                     if control.value != AS_IS}
        if overrides:
            collection = range_tests(model, optimizer, criterion, train_loader,
                                     val_loader=val_loader, **overrides, **options)
            result = collection[0]
        else:
            result = lr_range_test(model, optimizer, criterion, train_loader,
                                   val_loader=val_loader, **options)
        self.result = result
        suggested = result.suggestions.bounds
        if suggested is not None:
            self.bounds.value = suggested
        self._show_suggestions()
        self.plot.flush(result)

    def _result(self) -> RangeTestResult:
        return self.result

    def _resmooth(self, change) -> None:
        if self.result is not None and not self.running:
            self.result = self.result.resmooth(change["new"])
            self._show_suggestions()
            self.plot.update(self.result)

    def _show_suggestions(self) -> None:
        s = self.result.suggestions
        if s.bounds is None:
            self.suggestion.value = (f"<b>No suggestion</b>: too few usable points "
                                     f"({self.result.stop_reason} after {len(self.result.lrs)} "
                                     f"steps). Lower the start LR or run more iterations.")
            return
        self.suggestion.value = (
            f"<b>Suggested</b>: steepest {format_lr(s.steepest)} &middot; minimum/10 "
            f"{format_lr(s.minimum)} &middot; valley {format_lr(s.valley)} &rarr; bounds "
            f"<b>{format_lr(s.bounds[0])} to {format_lr(s.bounds[1])}</b> "
            f"({self.result.stop_reason}, {len(self.result.lrs)} steps)")

    def _draw(self, result: RangeTestResult):
        finished = result is self.result
        return plot_range_test(result, bounds=self.bounds.value if finished else None,
                               earlier=self.earlier, suggestions=finished)
