"""A live matplotlib plot inside an ``ipywidgets.Image``.

The work only hands over the latest data (``update``, returns at once); a renderer thread
draws it off-screen with Agg and sets ``Image.value`` (a trait update, safe from a thread).
While the work runs (``live``), drawings come at most ``max_fps`` times a second and no more
often than keeps drawing under ``budget`` (3%) of the time, since drawing holds Python's GIL
that training also needs; a burst of updates costs one drawing. When idle (a slider moved
after a run) the change is drawn at once. ``flush`` draws the final state in the caller's
thread. Where no widget frontend exists (a static render of the notebook, a terminal), the plot
shows as a PNG.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from typing import Any, Callable

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

IDLE_GATHER = 0.03  # seconds to gather the updates of a slider drag into one drawing


def figure_png(figure: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure, drawn with Agg (no pyplot, safe in any thread)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # light compression: a quarter of the encoding time, for a slightly larger image
    figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
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
        self.render_seconds = 0.0  # time spent drawing, in all
        self._live = False
        self._urgent = False  # a control moved: draw at once, even while live
        self._versions = itertools.count(1)
        self._latest: tuple[int, Any] = (0, None)
        self._drawn = 0  # the version on show
        self._since = 0.0  # when the first update not yet drawn came
        self._next = 0.0  # earliest time of the next drawing while live (the budget)
        self._pending = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one drawing at a time
        self._thread: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """True while the work runs: drawings throttled to ``max_fps`` and ``budget``."""
        return self._live

    @live.setter
    def live(self, value: bool) -> None:
        self._live = bool(value)
        if self._live:
            self._next = 0.0
        self._wake.set()  # a waiting drawing is due at once when idle

    def update(self, data: Any, *, now: bool = False) -> None:
        """Ask for ``data`` to be drawn soon (``now``: at once, even while live); returns at once."""
        if not self._pending.is_set():
            self._since = time.monotonic()
        self._latest = (next(self._versions), data)
        if now:
            self._urgent = True
            self._wake.set()
        self._pending.set()
        if self._thread is None or not self._thread.is_alive():
            # Not a daemon: Python waits for it at exit (it ends within half a second when idle)
            # instead of killing it inside matplotlib's C++ drawing code, which aborts.
            self._thread = threading.Thread(target=self._loop, name="LivePlot")
            self._thread.start()

    def redraw(self) -> None:
        """Draw the latest data again at once: a control that changes the drawing moved."""
        data = self._latest[1]
        if data is not None:
            self.update(data, now=True)

    def flush(self, data: Any = None) -> None:
        """Draw ``data`` (or the latest data) now, in this thread."""
        if data is not None:
            self._latest = (next(self._versions), data)
        self._pending.clear()
        self._render()

    def _due(self) -> float:
        if self._live and not self._urgent:  # the first drawing of a run waits a frame
            return max(self._since + self.interval, self._next)
        return self._since + IDLE_GATHER

    def _loop(self) -> None:
        while self._pending.wait(timeout=0.5):
            while True:
                self._wake.clear()  # before reading the state: a change meanwhile wakes us
                wait = self._due() - time.monotonic()
                if wait <= 0:
                    break
                self._wake.wait(wait)
            if not self._pending.is_set():
                continue  # flushed meanwhile
            self._pending.clear()
            self._urgent = False
            started = time.monotonic()
            self._render()
            took = time.monotonic() - started
            self._next = started + max(self.interval, took / self.budget)

    def _render(self) -> None:
        with self._lock:
            version, data = self._latest
            if data is None or version <= self._drawn:
                return  # nothing, or drawn already (a flush came first)
            started = time.perf_counter()
            self.image.value = figure_png(self.draw(data), self.dpi)
            self.image.layout.display = None
            self._drawn = version
            self.renders += 1
            self.render_seconds += time.perf_counter() - started
