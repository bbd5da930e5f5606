"""Run and Stop around the work every running widget shares, one optimizer step at a time.

A widget writes only ``_steps(stop_event)``: a generator that does its work through the core's
step-wise functions (``lr_range_test_steps``, ``compare_steps``, ``Search.run_steps``, or
``steps_of(Training(...))``), yields after every optimizer step and keeps the result on the
widget; and ``_result()``. How the work is driven is decided here, once (:func:`event_loop`):

- Where an asyncio event loop runs in this thread (a notebook: the IPython kernel's), a click
  on Run schedules the work as a task on that loop, in the kernel's main thread. Between steps
  it yields to the loop (``await asyncio.sleep(0)``), so clicks on Stop, slider moves and
  other cells are served while it trains, and PyTorch's CPU ops run at full speed: from a
  second thread, libgomp (PyTorch's OpenMP) throttles its thread pools on machines with few
  cores, several times slower.
- Where no loop runs (a plain script, a thread of its own), the work runs in a background
  thread, with the caller's number of PyTorch threads.

``run()`` does the same work in the calling thread and waits for it (scripts, tests, notebook
execution by nbval); ``await widget.finished()`` waits for a click's work without stopping the
loop. A second click while the work runs does nothing; Stop sets an event that the core checks
between steps; an error is caught and shown in the widget with its message (``run()`` raises
it). The work only sets trait values (never ``with output:``), which is safe from any thread;
the live plot draws in its own thread (see :mod:`.live_plot`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import threading
import time
from collections.abc import Iterator

import ipywidgets as widgets
import torch

from ..train import drain
from .compat import DisplayedByBundle, widget_bundle
from .controls import mark


def event_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio event loop running in this thread (in a notebook, the kernel's), or None.

    The one place that decides how a widget's work is driven: as a task on this loop, or,
    with no loop, in a background thread."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Runner(DisplayedByBundle, widgets.VBox):
    """Base class: subclasses implement ``_steps(stop_event)`` and ``_result()``."""

    def __init__(self, children=(), **kwargs):
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play",
                                         tooltip="Start (the notebook stays usable meanwhile)")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True, tooltip="Stop after the current step")
        self.progress = widgets.IntProgress(value=0, min=0, max=1,
                                            layout=widgets.Layout(width="260px"))
        self.status = widgets.HTML()
        self.error: BaseException | None = None
        self._problems: dict[str, str] = {}  # field description -> what is wrong with its value
        self._busy = False
        self._done = threading.Event()
        self._done.set()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._stop = threading.Event()
        self._started = 0.0
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        bar = widgets.HBox([self.run_button, self.stop_button, self.progress, self.status])
        super().__init__([*children, bar], **kwargs)

    def check(self, field, problem: str | None) -> None:
        """Mark ``field`` and hold the Run button while its value has a ``problem``; the
        status line says what is wrong, in the field's words (None: the value is fine)."""
        mark(field, problem)
        name = field.description or type(field).__name__
        if problem:
            self._problems[name] = problem
        else:
            self._problems.pop(name, None)
        if not self._busy:
            self.run_button.disabled = bool(self._problems)
            self.status.value = (f"<span style='color:#c62828'>{html.escape(self._problem(), quote=False)}</span>"
                                 if self._problems else "")

    def _problem(self) -> str:
        return "; ".join(f"{name}: {problem}" for name, problem in self._problems.items())

    @property
    def running(self) -> bool:
        """Whether the work is under way (from a click or from ``run()``)."""
        return self._busy

    def start(self) -> bool:
        """Start the work in the background: a task on this thread's event loop, or a thread
        where none runs (see the module docstring). False, and nothing done, if it is running."""
        if self._busy or self._problems:
            return False
        loop = event_loop()
        self._prepare()
        if loop is not None:
            self._thread, self._task = None, loop.create_task(self._drive_on_loop())
        else:
            # PyTorch's CPU thread count is set per thread: give the worker the caller's.
            self._task = None
            self._thread = threading.Thread(target=self._drive_in_thread,
                                            args=(torch.get_num_threads(),), daemon=True,
                                            name=type(self).__name__)
            self._thread.start()
        return True

    def stop(self) -> None:
        """Ask the work to stop after the current step."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a click's work to end, from another thread or in a script.

        On the event loop that runs the work (a notebook cell), waiting would stop it: use
        ``await widget.finished()`` there, or ``run()``."""
        if self._thread is not None:
            self._thread.join(timeout)
            return
        task = self._task
        if task is not None and not task.done():
            if event_loop() is task.get_loop():
                raise RuntimeError(
                    f"{type(self).__name__} works on this notebook's event loop, which a blocking "
                    f"wait() would stop: use `await widget.finished()`, or run() to work here")
            self._done.wait(timeout)

    async def finished(self) -> None:
        """Wait for the work to end without blocking the event loop (``await`` it in a cell)."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task})
        while self._busy:  # a worker thread (no loop when it started)
            await asyncio.sleep(0.02)

    def run(self):
        """Do the work in this thread and wait for it; returns the result (raises the error).

        The same work as the Run button, from code: scripts, tests, notebook execution."""
        if self._busy:
            raise RuntimeError(f"{type(self).__name__} is already running")
        if self._problems:
            raise ValueError(self._problem())
        self._prepare()
        with self._reporting():
            self._work(self._stop)
        if self.error is not None:
            raise self.error
        return self._result()

    def set_progress(self, done: int, total: int | None) -> None:
        self.progress.max = max(1, total or done)
        self.progress.value = min(done, self.progress.max)

    # ---- driving the work ----

    def _prepare(self) -> None:
        self._busy = True
        self._done.clear()
        self._stop.clear()
        self.error = None
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "running..."
        self.progress.value = 0
        self._set_plot_live(True)
        self._started = time.monotonic()

    @contextlib.contextmanager
    def _reporting(self) -> Iterator[None]:
        """Around the work: its outcome in the status line, the buttons back afterwards."""
        try:
            yield
            elapsed = time.monotonic() - self._started
            self.status.value = (f"stopped after {elapsed:.1f} s" if self._stop.is_set()
                                 else f"done in {elapsed:.1f} s")
        except asyncio.CancelledError:
            self.status.value = f"cancelled after {time.monotonic() - self._started:.1f} s"
            raise
        except BaseException as error:  # shown to the user, re-raised by run()
            self.error = error
            self.status.value = (f"<span style='color:#c62828'><b>{type(error).__name__}:</b> "
                                 f"{html.escape(str(error))}</span>")
        finally:
            self.run_button.disabled, self.stop_button.disabled = bool(self._problems), True
            self._set_plot_live(False)
            self._busy = False
            self._done.set()

    def _drive_in_thread(self, threads: int) -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with self._reporting():
            self._work(self._stop)

    async def _drive_on_loop(self) -> None:
        with self._reporting():
            steps = self._steps(self._stop)
            try:
                for _ in steps:
                    await asyncio.sleep(0)  # serve clicks, slider moves and cells
            finally:
                steps.close()  # a cancelled task: the core restores what it must

    def _work(self, stop_event: threading.Event) -> None:
        """The whole work in this thread: ``_steps`` to its end."""
        drain(self._steps(stop_event))

    def _steps(self, stop_event: threading.Event) -> Iterator[None]:
        """The work, yielding after every optimizer step; keeps its result on the widget."""
        raise NotImplementedError

    def _result(self):
        raise NotImplementedError

    def _set_plot_live(self, live: bool) -> None:
        plot = getattr(self, "plot", None)
        if plot is not None and hasattr(plot, "live"):
            plot.live = live

    def __repr__(self) -> str:
        return f"{type(self).__name__}: a live widget (open the notebook in Jupyter to use it)"

    def _draw_empty_axes(self) -> None:
        """Before the first run, a widget with a live plot may draw the empty axes the run will
        fill (``LivePlot.prepare``): laid out when displayed, before the click, so that the
        run's drawings only add what changed."""

    def _redraw_empty_axes(self) -> bool:
        """A setting changed: the empty axes again, where they are on show (displayed, before
        the first run); whether they were."""
        if self.running or self._result() is not None or not self.plot.image.value:
            return False
        self._draw_empty_axes()
        return True

    def _repr_mimebundle_(self, **kwargs):
        """The widget, plus its last plot as a PNG for places without a widget frontend (before
        the first run, its empty axes)."""
        image = getattr(getattr(self, "plot", None), "image", None)
        if image is not None and not image.value:
            self._draw_empty_axes()
        bundle = widget_bundle(self, **kwargs)
        if image is not None and image.value:
            bundle["image/png"] = base64.b64encode(image.value).decode("ascii")
        return bundle
