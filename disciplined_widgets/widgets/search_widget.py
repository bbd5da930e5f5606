"""SearchWidget: run trials of a (possibly shared) search and watch the whole study fill up."""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets

from ..checks import flag, positive_float
from ..plots import plot_search
from ..search import Search, masked
from .compat import tooltip
from .live_plot import LivePlot
from .runner import Runner

WIDE = {"description_width": "120px"}


class SearchWidget(Runner):
    """Run adds trials from this notebook to ``search``; every view shows the whole study.

    With "follow the study" ticked, the view re-reads the storage every ``refresh_every``
    seconds, so a teacher's notebook shows the trials that every student's notebook (or any
    ``python -m disciplined_widgets search worker``) adds; an error while reading (the storage
    unreachable) unticks it and shows in the status line, as does an error of Refresh.
    ``run()`` runs and waits; the best trial is ``widget.best`` and the table
    ``widget.search.table()``.
    """

    _follower: threading.Thread | None = None  # the thread that re-reads the study

    def __init__(self, search: Search, *, trials: int = 0, refresh_every: float = 5.0,
                 follow: bool = False):
        if not isinstance(search, Search):
            raise TypeError(f"search must be a Search, got {type(search).__name__}")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 0:
            raise ValueError(f"trials must be an int >= 0 (0: until the study is done), got "
                             f"{trials!r}")
        self.search = search
        self.refresh_every = positive_float("refresh_every", refresh_every)
        flag("follow", follow)
        self.trials = tooltip(widgets.BoundedIntText(trials, min=0, max=100_000, style=WIDE,
                                                     description="trials to run"),
                              "0: until the study is done")
        self.follow = tooltip(widgets.Checkbox(follow, description="follow the study"),
                              "re-read the shared storage every few seconds")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.summary = widgets.HTML()
        self.table = widgets.HTML()
        self.plot = LivePlot(lambda _: plot_search(self.search), max_fps=1.0)
        self._seen = None
        self._refreshing = threading.Lock()
        self.refresh_button.on_click(lambda _: self._refresh_or_show(force=True))
        self.follow.observe(lambda change: self._set_following(change["new"]), "value")
        header = widgets.HBox([self.trials, self.follow, self.refresh_button])
        super().__init__([header, self.summary, self.plot.image, self.table])
        self.refresh(force=True)
        self._set_following(follow)

    @property
    def best(self) -> dict | None:
        return self.search.best

    def refresh(self, force: bool = False) -> None:
        """Re-read the study; redraw when it changed (or ``force``)."""
        with self._refreshing:  # one reader-writer at a time: the last shown is the newest
            self._refresh(force)

    def _refresh(self, force: bool) -> None:
        progress = self.search.progress()
        state = (progress.complete, progress.running, progress.waiting, progress.failed,
                 progress.requeued)
        if not force and state == self._seen:
            return
        self._seen = state
        self.set_progress(progress.complete, progress.planned)
        self.table.value = self._table_html()  # before the summary that a reader waits for
        self.summary.value = (
            f"<b>{html.escape(self.search.study.study_name)}</b> "
            f"({self.search.task['sampler']}, {masked(self.search.storage_url)}): "
            f"{html.escape(str(progress))}")
        if progress.complete:
            self.plot.update(state)

    def _table_html(self, rows: int = 8) -> str:
        frame = self.search.table()
        frame = frame[frame["state"] == "complete"]
        if frame.empty:
            return ""
        frame = frame.sort_values(self.search.metric,
                                  ascending=self.search.metric == "val_loss").head(rows)
        columns = ["trial", *sorted(self.search.space), "val_accuracy", "val_loss", "steps",
                   "worker"]
        return frame[columns].to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                      border=0, classes="dw-search-table")

    def _refresh_or_show(self, force: bool = False) -> bool:
        """:meth:`refresh`; an error is shown in the status line (False) instead of raised."""
        try:
            self.refresh(force)
        except Exception as error:  # noqa: BLE001 - shown to the user
            self.status.value = (f"<span style='color:#c62828'><b>{type(error).__name__}:</b> "
                                 f"{html.escape(str(error))}</span>")
            return False
        return True

    def _set_following(self, on: bool) -> None:
        if self._follower is not None:
            self._unfollow.set()
            if self._follower is not threading.current_thread():
                self._follower.join()
        if not on:
            return
        self._unfollow = threading.Event()

        def poll(stop: threading.Event) -> None:
            while not stop.wait(self.refresh_every):
                if not self._refresh_or_show():
                    self.follow.value = False  # stops this thread

        self._follower = threading.Thread(target=poll, args=(self._unfollow,), daemon=True,
                                          name="SearchWidget.follow")
        self._follower.start()

    def _steps(self, stop_event: threading.Event):
        started = set()

        def on_step(number, history):  # a trial started: show it running
            if number not in started:
                started.add(number)
                self.refresh(force=True)

        yield from self.search.run_steps(self.trials.value or None, stop_event=stop_event,
                                         callback=on_step,
                                         on_trial=lambda number, value: self.refresh(force=True))
        self.refresh(force=True)
        if self._seen[0]:
            self.plot.flush(self._seen)

    def _result(self):
        return self.best

    def close(self) -> None:
        self._set_following(False)
        super().close()
