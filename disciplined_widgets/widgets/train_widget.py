"""TrainWidget: run fit live, with curves, LR and momentum, progress and the diagnose verdict."""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets

from ..diagnose import diagnose
from ..plots import plot_history, update_history_plot
from ..schedules import SchedulePreview, preview
from ..snapshot import Snapshot
from ..train import History, Training, steps_of
from .compat import tooltip
from .controls import auto, control, wrapping_row
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
    (``eval_every``, ``device``, ``amp``, a ``callback`` of the user's, ...). ``history`` holds the last run's
    :class:`~disciplined_widgets.History`; ``run()`` runs and waits.
    """

    def __init__(self, model, optimizer, criterion, train_loader, val_loader=None, *,
                 schedule=None, epochs: int = 5, update_every: float = 0.2, **fit_options):
        self._data = (model, optimizer, criterion, train_loader, val_loader)
        self.schedule, self.fit_options = schedule, fit_options
        self.history: History | None = None
        self.earlier: list[History] = []
        self.earlier_labels: list[str] = []  # each earlier run's settings
        self.update_every = update_every
        self._label = "this run"
        self._plan = None
        generator = getattr(train_loader, "generator", None)
        self._initial = Snapshot(model, optimizer, generators=[generator] if generator is not None else [])
        self.epochs = tooltip(widgets.IntText(
            epochs, description="epochs", disabled=schedule is not None,
            layout=widgets.Layout(width="170px")),
            "set by the schedule widget" if schedule is not None else "epochs to train")
        if schedule is not None:
            widgets.jslink((schedule.epochs, "value"), (self.epochs, "value"))
            self.epochs.value = schedule.epochs.value
        self.from_start = tooltip(widgets.Checkbox(True, description="start from the initial weights",
                                                   indent=False, layout=auto()),
                                  "untick to continue training the current weights")
        self.keep_runs = tooltip(widgets.Checkbox(True, description="keep earlier runs",
                                                  indent=False, layout=auto()),
                                 "overlay the earlier runs' curves, labelled by their settings")
        self.x_axis = control(widgets.ToggleButtons(
            options=["epoch", "step", "time"], value="epoch", description="x axis",
            style={"button_width": "64px"}), "what the curves are drawn against")
        self.verdict = widgets.HTML("")
        self.final = widgets.HTML("")
        self.plot = LivePlot(self._draw, refresh=self._refresh)
        self.x_axis.observe(self._redraw, "value")
        self.epochs.observe(lambda _: self._check_epochs(), "value")
        self.epochs.observe(self._redraw, "value")
        controls = wrapping_row([self.epochs, self.from_start, self.keep_runs, self.x_axis])
        super().__init__([controls, self.plot.image, self.final, self.verdict])
        self._check_epochs()

    def _check_epochs(self) -> None:
        epochs = self.epochs.value
        self.check(self.epochs, None if epochs >= 1 else f"at least 1, got {epochs}")

    def _redraw(self, _change=None) -> None:
        """The x axis or the epochs changed: the latest state again, at once."""
        if not self._redraw_empty_axes():
            self.plot.redraw()

    def _draw(self, history: History):
        return plot_history(history, earlier=self.earlier, labels=self.earlier_labels,
                            label=self._label, x=self.x_axis.value, plan=self._plan)

    def _refresh(self, figure, history: History) -> bool:
        return update_history_plot(figure, history, earlier=self.earlier, labels=self.earlier_labels,
                                   label=self._label, x=self.x_axis.value, plan=self._plan)

    def _show_verdict(self, history: History) -> None:
        found = diagnose(history)
        colour = VERDICT_COLOURS[found.verdict]
        self.verdict.value = (f"<b style='color:{colour}'>{found.verdict}</b>: "
                              f"{html.escape(found.advice)}")

    def _show_final(self, history: History) -> None:
        """The run's last numbers, in words."""
        parts = [f"{history.steps_done} steps"]
        if history.train_loss:
            parts.append(f"final train loss {history.train_loss[-1]:.4g}")
        if history.val_loss:
            parts.append(f"validation loss {history.val_loss[-1]:.4g}")
            if history.val_accuracy[-1] is not None:
                parts.append(f"validation accuracy {history.val_accuracy[-1]:.2%}")
        self.final.value = f"<b>{html.escape(self._label)}</b>: " + ", ".join(parts)

    def _settings_label(self) -> str:
        """This run's settings, in a few words (the label of its curves)."""
        if self.schedule is None:
            lr = self._data[1].param_groups[0]["lr"]
            epochs = self.epochs.value
            text = f"constant LR {lr:.3g}, {epochs} epoch{'' if epochs == 1 else 's'}"
        else:
            text = self.schedule.describe()
        return text + ("" if self.from_start.value or self.history is None else ", continued")

    def _start_run(self) -> None:
        """Keep or drop the last run's curves; go back to the initial weights if asked (also
        after a failed run)."""
        if self.history is not None and self.keep_runs.value:
            self.earlier.append(self.history)
            self.earlier_labels.append(self._label)
        elif not self.keep_runs.value:
            self.earlier.clear()
            self.earlier_labels.clear()
        self._label = self._settings_label()
        if self.from_start.value:
            self._initial.restore()
        self.history = None
        self.verdict.value = self.final.value = ""

    def _steps(self, stop_event: threading.Event):
        model, optimizer, criterion, train_loader, val_loader = self._data
        self._start_run()
        self._plan = self._planned()
        if self.schedule is not None:
            schedulers = self.schedule.schedulers(optimizer)
            batch_size_schedule = self.schedule.batch_size_schedule
        else:
            schedulers, batch_size_schedule = [], None
        last_update = [0.0]
        options = dict(self.fit_options)
        user_callback = options.pop("callback", None)

        def on_event(history: History) -> None:
            if user_callback is not None:
                user_callback(history)
            now = time.monotonic()
            if now - last_update[0] < self.update_every:
                return
            last_update[0] = now
            self.set_progress(history.steps_done, history.total_steps)
            copy = History.from_dict(history.to_dict())
            self.plot.update(copy)
            if copy.val_loss:
                self._show_verdict(copy)

        training = Training(
            model, optimizer, criterion, train_loader, val_loader, epochs=self.epochs.value,
            schedulers=schedulers, batch_size_schedule=batch_size_schedule, callback=on_event,
            stop_event=stop_event, **options)
        try:
            history = yield from steps_of(training)
        except Exception:  # the curves so far stay on show, with the error
            partial = training.history
            if partial is not None and partial.step:
                self.history = partial
                self.plot.flush(History.from_dict(partial.to_dict()))
            raise
        self.history = history
        self.set_progress(history.steps_done, history.total_steps)
        self._show_final(history)
        self._show_verdict(history)
        self.plot.flush(history)

    def _planned(self) -> SchedulePreview | None:
        """The LR and momentum the run is to follow: the schedule widget's, or the optimizer's
        own for the epochs (None where it cannot be previewed: a loader without a length, an
        optimizer that cannot be rebuilt; the plan is only drawn, and ``fit`` reports the rest)."""
        if self.schedule is not None:
            return self.schedule.preview()
        try:
            return preview(self._data[1], epochs=self.epochs.value, train_loader=self._data[3],
                           accumulation_steps=self.fit_options.get("accumulation_steps", 1))
        except (TypeError, ValueError):
            return None

    def _draw_empty_axes(self) -> None:
        """The planned x range, LR and momentum (see :meth:`Runner._draw_empty_axes`)."""
        if self.history is None and self.epochs.value >= 1:
            self._plan = self._planned()
            self.plot.prepare(History())

    def _result(self) -> History:
        return self.history
