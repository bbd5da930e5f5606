"""A live matplotlib plot inside an ``ipywidgets.Image``.

The training thread only hands over the latest data (``update``): a renderer thread draws it
off-screen with Agg at most ``max_fps`` times a second, and no more often than keeps drawing
under ``budget`` (3%) of the time, since drawing holds Python's GIL that training also needs.
A burst of updates costs one drawing. ``flush`` draws the final state at once. Where no widget
frontend exists (a static render of the notebook, a terminal), the plot shows as a PNG.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any, Callable

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def figure_png(figure: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure, drawn with Agg (no pyplot, safe in any thread)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class LivePlot:
    """``draw(data) -> Figure`` rendered into ``self.image`` (throttled, off the caller's thread)."""

    def __init__(self, draw: Callable[[Any], Figure], *, max_fps: float = 4.0,
                 budget: float = 0.03, dpi: int = 100):
        self.draw, self.interval, self.budget, self.dpi = draw, 1.0 / max_fps, budget, dpi
        # natural size (a flex column would stretch it to the full width), hidden until drawn
        self.image = widgets.Image(format="png", layout=widgets.Layout(
            max_width="100%", align_self="flex-start", display="none"))
        self.renders = 0
        self._latest: Any = None
        self._pending = threading.Event()
        self._lock = threading.Lock()  # one drawing at a time
        self._thread: threading.Thread | None = None

    def update(self, data: Any) -> None:
        """Ask for ``data`` to be drawn soon; returns at once."""
        self._latest = data
        self._pending.set()
        if self._thread is None or not self._thread.is_alive():
            # Not a daemon: Python waits for it at exit (it ends within half a second when idle)
            # instead of killing it inside matplotlib's C++ drawing code, which aborts.
            self._thread = threading.Thread(target=self._loop, name="LivePlot")
            self._thread.start()

    def flush(self, data: Any = None) -> None:
        """Draw ``data`` (or the latest data) now, in this thread."""
        if data is not None:
            self._latest = data
        self._pending.clear()
        self._render(self._latest)

    def _loop(self) -> None:
        while self._pending.wait(timeout=0.5):
            time.sleep(self.interval)  # gather a burst; a short run ends before drawing at all
            if not self._pending.is_set():
                continue  # flushed meanwhile
            started = time.monotonic()
            self._pending.clear()
            self._render(self._latest)
            took = time.monotonic() - started
            time.sleep(max(self.interval, took / self.budget) - took)

    def _render(self, data: Any) -> None:
        if data is None:
            return
        with self._lock:
            self.image.value = figure_png(self.draw(data), self.dpi)
            self.image.layout.display = None
            self.renders += 1
