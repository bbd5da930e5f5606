"""TrainWidget: run fit live, with curves, LR and momentum, progress and the diagnose verdict."""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets

from ..diagnose import diagnose
from ..plots import plot_history
from ..snapshot import Snapshot
from ..train import History, Training, steps_of
from .live_plot import LivePlot
from .runner import Runner

VERDICT_COLOURS = {"good": "#2e7d32", "overfitting": "#c62828", "underfitting": "#ef6c00",
                   "diverged": "#c62828", "too early to tell": "#555"}


class TrainWidget(Runner):
    """Train the user's model with :func:`~disciplined_widgets.fit` and watch it.

    With a :class:`ScheduleWidget` as ``schedule``, each run uses its schedulers, batch-size
    schedule and epochs; otherwise the optimizer's own LR for ``epochs``. Each run starts from
    the weights and optimizer state the model had when the widget was made (untick "start from
    the initial weights" to continue training instead). ``fit_options`` go to ``fit``
    (``eval_every``, ``device``, ``amp``, ...). ``history`` holds the last run's
    :class:`~disciplined_widgets.History`; ``run()`` runs and waits.
    """

    def __init__(self, model, optimizer, criterion, train_loader, val_loader=None, *,
                 schedule=None, epochs: int = 5, update_every: float = 0.2, **fit_options):
        self._data = (model, optimizer, criterion, train_loader, val_loader)
        self.schedule, self.fit_options = schedule, fit_options
        self.history: History | None = None
        self.earlier: list[History] = []
        self.update_every = update_every
        generator = getattr(train_loader, "generator", None)
        self._initial = Snapshot(model, optimizer, generators=[generator] if generator is not None else [])
        self.epochs = widgets.BoundedIntText(epochs, min=1, max=100_000, description="epochs",
                                             disabled=schedule is not None)
        if schedule is not None:
            widgets.jslink((schedule.epochs, "value"), (self.epochs, "value"))
            self.epochs.value = schedule.epochs.value
        self.from_start = widgets.Checkbox(True, description="start from the initial weights")
        self.keep_runs = widgets.Checkbox(True, description="keep earlier runs")
        self.x_axis = widgets.ToggleButtons(options=["epoch", "step", "time"], value="epoch",
                                            description="x axis", style={"button_width": "64px"},
                                            layout=widgets.Layout(width="auto", flex="0 0 auto"))
        self.verdict = widgets.HTML("")
        self.plot = LivePlot(self._draw)
        self.x_axis.observe(self._redraw, "value")
        controls = widgets.HBox([self.epochs, self.from_start, self.keep_runs, self.x_axis])
        super().__init__([controls, self.plot.image, self.verdict])

    def _redraw(self, _change=None) -> None:
        self.plot.redraw()  # the x axis changed: the latest state again, at once

    def _draw(self, history: History):
        return plot_history(history, earlier=self.earlier, x=self.x_axis.value)

    def _show_verdict(self, history: History) -> None:
        found = diagnose(history)
        colour = VERDICT_COLOURS[found.verdict]
        self.verdict.value = (f"<b style='color:{colour}'>{found.verdict}</b>: "
                              f"{html.escape(found.advice)}")

    def _steps(self, stop_event: threading.Event):
        model, optimizer, criterion, train_loader, val_loader = self._data
        if self.history is not None:
            if self.keep_runs.value:
                self.earlier.append(self.history)
            else:
                self.earlier.clear()
            if self.from_start.value:
                self._initial.restore()
        if self.schedule is not None:
            schedulers = self.schedule.schedulers(optimizer)
            batch_size_schedule = self.schedule.batch_size_schedule
        else:
            schedulers, batch_size_schedule = [], None
        last_update = [0.0]

        def on_event(history: History) -> None:
            now = time.monotonic()
            if now - last_update[0] < self.update_every:
                return
            last_update[0] = now
            self.set_progress(history.steps_done, history.total_steps)
            copy = History.from_dict(history.to_dict())
            self.plot.update(copy)
            if copy.val_loss:
                self._show_verdict(copy)

        history = yield from steps_of(Training(
            model, optimizer, criterion, train_loader, val_loader, epochs=self.epochs.value,
            schedulers=schedulers, batch_size_schedule=batch_size_schedule, callback=on_event,
            stop_event=stop_event, **self.fit_options))
        self.history = history
        self.set_progress(history.steps_done, history.total_steps)
        self._show_verdict(history)
        self.plot.flush(history)

    def _result(self) -> History:
        return self.history
