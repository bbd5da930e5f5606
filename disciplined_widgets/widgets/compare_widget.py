"""CompareWidget: one short training per value of a hyper-parameter, curves overlaid."""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets

from ..comparisons import CYCLES, Comparison, compare_steps, describe
from ..plots import plot_comparison, update_comparison_plot
from ..schedules import BatchSizeSchedule
from ..train import History
from .compat import tooltip
from .controls import auto, control, parse_epochs, wrapping_row
from .live_plot import LivePlot
from .runner import Runner

EXAMPLES = {
    "batch_size": "64, 128, 256, 512",
    "momentum": "0.9, 0.95, 0.99, cyclical",
    "weight_decay": "1e-3, 1e-4, 1e-5, 0",
    "schedule": "LR decay, batch growth, hybrid",
}


class CompareWidget(Runner):
    """Runs :func:`~disciplined_widgets.comparisons.compare` and overlays the runs live.

    Values are typed comma-separated. For ``schedule`` they are ``LR decay``, ``batch growth``
    and ``hybrid`` at the milestone epochs given, by ``factor`` (the hybrid grows the batch
    once, then decays the LR). ``comparison`` holds the result; ``run()`` runs and waits.
    """

    def __init__(self, model, optimizer, criterion, train_loader, val_loader=None, *,
                 parameter: str = "batch_size", values: str | None = None, epochs: int = 5,
                 max_lr: float | None = None, milestones: str = "2, 4", factor: float = 5.0,
                 **fit_options):
        self._data = (model, optimizer, criterion, train_loader, val_loader)
        self.fit_options = fit_options
        self.comparison: Comparison | None = None
        self.parameter = control(widgets.Dropdown(
            options=list(EXAMPLES), value=parameter, description="compare"),
            "the hyper-parameter whose values are compared")
        self.values = control(widgets.Text(values or EXAMPLES[parameter], description="values"),
                              "comma-separated values, one short training each")
        self.epochs = control(widgets.IntText(epochs, description="epochs"),
                              "epochs of each training")
        self.use_one_cycle = tooltip(widgets.Checkbox(
            max_lr is not None, description="1cycle up to max LR", indent=False, layout=auto()),
            "train each value with 1cycle up to the max LR; unticked: the optimizer's LR")
        self.max_lr = control(widgets.FloatLogSlider(
            max_lr or 0.1, min=-5, max=1, step=0.05, description="max LR",
            disabled=max_lr is None), "the 1cycle's highest LR")
        self.milestones = control(widgets.Text(milestones, description="milestones (epochs)"),
                                  "schedule comparison: the epochs at which LR or batch change")
        self.factor = control(widgets.FloatText(factor, description="factor"),
                              "schedule comparison: the LR is divided or the batch multiplied by this")
        self.x_axis = control(widgets.ToggleButtons(
            options=["epoch", "step", "time"], value="epoch", description="x axis",
            style={"button_width": "64px"}), "what the curves are drawn against")
        self.table = widgets.HTML()
        self._live: list[History] = []
        self._values_in_progress: list = []
        self._planned_epochs = epochs
        self.plot = LivePlot(self._draw, refresh=self._refresh)
        self.parameter.observe(lambda c: setattr(self.values, "value", EXAMPLES[c["new"]]), "value")
        self.use_one_cycle.observe(lambda c: setattr(self.max_lr, "disabled", not c["new"]), "value")
        self.x_axis.observe(self._redraw, "value")
        for field in (self.parameter, self.values, self.epochs, self.milestones, self.factor,
                      self.use_one_cycle):
            field.observe(self._field_changed, "value")
        controls = wrapping_row([self.parameter, self.values, self.epochs, self.use_one_cycle,
                                 self.max_lr, self.milestones, self.factor, self.x_axis])
        super().__init__([controls, self.plot.image, self.table])
        self._check_fields()

    def _field_changed(self, _change) -> None:
        """Checked at once, and the empty axes follow the values and epochs."""
        self._check_fields()
        self._redraw_empty_axes()

    def _check_fields(self) -> None:
        """Each field's value checked as it changes (the Run button waits for valid ones)."""
        schedules = self.parameter.value == "schedule"
        self.milestones.disabled = self.factor.disabled = not schedules
        self.check(self.epochs, None if self.epochs.value >= 1 else
                   f"at least 1, got {self.epochs.value}")
        self.check(self.factor, None if not schedules or self.factor.value > 1 else
                   f"a number above 1, got {self.factor.value:g}")
        self.check(self.milestones, _problem(lambda: parse_epochs(self.milestones.value)) if schedules else None)
        try:
            values, problem = self.parsed_values(), None
        except ValueError as error:
            values, problem = [], str(error)
        cycles = [v for v in values if v in CYCLES]
        if cycles and not self.use_one_cycle.value:
            problem = f"{cycles[0]} momentum cycles under 1cycle: tick '1cycle up to max LR'"
        self.check(self.values, problem)

    def parsed_values(self) -> list:
        """The typed values as the core wants them; a ValueError in the widget's words."""
        parts = [p.strip() for p in self.values.value.split(",") if p.strip()]
        if not parts:
            raise ValueError("type at least one value, separated by commas")
        parameter = self.parameter.value
        if parameter == "schedule":
            return self._schedules(parts)
        parse = {"batch_size": _whole_number, "weight_decay": _number,
                 "momentum": lambda p: p if p in CYCLES else _number(p)}[parameter]
        return [parse(part) for part in parts]

    def _schedules(self, parts: list[str]) -> list:
        batch = self._data[3].batch_size
        milestones, factor = parse_epochs(self.milestones.value), self.factor.value
        kinds = {"LR decay": batch, "batch growth": None, "hybrid": round(batch * factor),
                 "constant": "constant"}
        unknown = [p for p in parts if p not in kinds]
        if unknown:
            raise ValueError(f"unknown schedules {unknown}; use {list(kinds)}")
        return [None if kinds[p] == "constant" else
                BatchSizeSchedule(batch, milestones, factor=factor, max_batch_size=kinds[p])
                for p in parts]

    def _current(self) -> Comparison:
        """The result, or the runs so far, with the values still to run (empty) in the legend."""
        if self.comparison is not None:
            return self.comparison
        values = self._values_in_progress
        waiting = [History() for _ in values[len(self._live):]]
        return Comparison(self.parameter.value, values, list(self._live) + waiting)

    def _extent(self) -> float | None:
        """The planned end of the x axis, where it is known before the runs: their epochs."""
        return self._planned_epochs if self.x_axis.value == "epoch" else None

    def _draw(self, comparison: Comparison):
        return plot_comparison(comparison, x=self.x_axis.value, extent=self._extent(), steady=True)

    def _refresh(self, figure, comparison: Comparison) -> bool:
        return update_comparison_plot(figure, comparison, x=self.x_axis.value,
                                      extent=self._extent(), steady=True)

    def _redraw(self, _change=None) -> None:
        """The x axis changed: the latest state again, at once."""
        if not self._redraw_empty_axes():
            self.plot.redraw()

    def _draw_empty_axes(self) -> None:
        """Every value's place in the legend, over the planned epochs (see
        :meth:`Runner._draw_empty_axes`); nothing while a field is invalid."""
        if self._problems or self.comparison is not None:
            return
        self._values_in_progress, self._live = self.parsed_values(), []
        self._planned_epochs = self.epochs.value
        self.plot.prepare(self._current())

    def _steps(self, stop_event: threading.Event):
        values = self.parsed_values()
        self.comparison, self._live, self._values_in_progress = None, [], values
        self._planned_epochs = self.epochs.value
        self.table.value = ""
        last = [0.0]
        total_runs = len(values)
        self.set_progress(0, total_runs * 100)
        self.plot.update(self._current())  # empty axes at once: the previous result is gone

        def on_event(index: int, history: History) -> None:
            now = time.monotonic()
            shown = self._live[index] if index < len(self._live) else None
            evaluated = shown is None or len(history.val_loss) != len(shown.val_loss)
            if now - last[0] < 0.2 and not evaluated:  # every evaluation is shown
                return
            last[0] = now
            copy = History.from_dict(history.to_dict())
            self._live[index:] = [copy]
            done = history.steps_done / history.total_steps if history.total_steps else 0.0
            self.set_progress(round(100 * (index + done)), total_runs * 100)
            self.status.value = f"run {index + 1} of {total_runs}: {html.escape(describe(values[index]))}"
            self.plot.update(self._current())

        model, optimizer, criterion, train_loader, val_loader = self._data
        max_lr = self.max_lr.value if self.use_one_cycle.value else None
        self.comparison = yield from compare_steps(
            model, optimizer, criterion, train_loader, val_loader,
            parameter=self.parameter.value, values=values, epochs=self.epochs.value,
            max_lr=max_lr, callback=on_event, stop_event=stop_event, **self.fit_options)
        self.set_progress(total_runs * 100, total_runs * 100)
        self.table.value = _html_table(self.comparison.table())
        self.plot.flush(self.comparison)

    def _result(self) -> Comparison:
        return self.comparison


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _whole_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _problem(parse) -> str | None:
    """What is wrong with a field, in its words: the ValueError that parsing it raises."""
    try:
        parse()
    except ValueError as error:
        return str(error)
    return None


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return ""

    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return html.escape(str(value))

    head = "".join(f"<th style='padding:2px 8px'>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{cell(v)}</td>"
                                    for v in row.values()) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
