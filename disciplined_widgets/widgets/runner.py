"""Run and Stop around one background worker: the part every running widget shares.

A click on Run starts the work in one thread (a second click while it runs does nothing);
Stop sets an event that the core checks between steps. Errors are caught in the worker and
shown in the widget with their message. ``run()`` does the same work and waits for it, for
scripts, tests and notebook execution. Worker threads only set trait values (never
``with output:``), which is safe from a thread.
"""

from __future__ import annotations

import base64
import html
import threading
import time

import ipywidgets as widgets
import torch


class Runner(widgets.VBox):
    """Base class: subclasses implement ``_work(stop_event)`` and ``_result()``."""

    def __init__(self, children=(), **kwargs):
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play",
                                         tooltip="Start in the background")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True, tooltip="Stop after the current step")
        self.progress = widgets.IntProgress(value=0, min=0, max=1,
                                            layout=widgets.Layout(width="260px"))
        self.status = widgets.HTML()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = 0.0
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        bar = widgets.HBox([self.run_button, self.stop_button, self.progress, self.status])
        super().__init__([*children, bar], **kwargs)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the work in a background thread; False (and nothing done) if it is running."""
        if self.running:
            return False
        self._prepare()
        # PyTorch's CPU thread count is set per thread: give the worker the caller's.
        threads = torch.get_num_threads()
        self._thread = threading.Thread(target=self._execute, args=(threads,), daemon=True,
                                        name=type(self).__name__)
        self._thread.start()
        return True

    def _prepare(self) -> None:
        self._stop.clear()
        self.error = None
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "running..."
        self.progress.value = 0
        self._started = time.monotonic()

    def stop(self) -> None:
        """Ask the work to stop after the current step."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self):
        """Do the work in this thread and wait for it; returns the result (raises the error).

        The same work as the Run button. In this thread PyTorch's CPU ops also run at full
        speed: from a second thread, OpenMP throttles its thread pools (see ``_execute``)."""
        if self.running:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._prepare()
        self._execute()
        if self.error is not None:
            raise self.error
        return self._result()

    def set_progress(self, done: int, total: int | None) -> None:
        self.progress.max = max(1, total or done)
        self.progress.value = min(done, self.progress.max)

    def _execute(self, threads: int | None = None) -> None:
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        try:
            self._work(self._stop)
            elapsed = time.monotonic() - self._started
            self.status.value = (f"stopped after {elapsed:.1f} s" if self._stop.is_set()
                                 else f"done in {elapsed:.1f} s")
        except BaseException as error:  # shown to the user, re-raised by run()
            self.error = error
            self.status.value = (f"<span style='color:#c62828'><b>{type(error).__name__}:</b> "
                                 f"{html.escape(str(error))}</span>")
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True

    def _work(self, stop_event: threading.Event) -> None:
        raise NotImplementedError

    def _result(self):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}: a live widget (open the notebook in Jupyter to use it)"

    def _repr_mimebundle_(self, **kwargs):
        """The widget, plus its last plot as a PNG for places without a widget frontend."""
        bundle = super()._repr_mimebundle_(**kwargs)
        image = getattr(getattr(self, "plot", None), "image", None)
        if image is not None and image.value:
            bundle["image/png"] = base64.b64encode(image.value).decode("ascii")
        return bundle
