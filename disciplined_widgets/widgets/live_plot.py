"""A live matplotlib plot inside an ``ipywidgets.Image``.

The work only hands over the latest data (``update``, returns at once); a renderer thread
draws it off-screen with Agg and sets ``Image.value`` (a trait update, safe from a thread).
While the work runs (``live``), drawings come at most ``max_fps`` times a second and no more
often than keeps drawing under ``budget`` (3%) of the run's time so far (not counting its
first drawing, which lays the axes out), since drawing holds Python's GIL that training also
needs; a burst of updates costs one drawing. When idle (a slider moved
after a run) the change is drawn at once. ``flush`` draws the final state in the caller's
thread. Where no widget frontend exists (a static render of the notebook, a terminal), the plot
shows as a PNG.

Drawings while live are cheap (matplotlib's blitting, :class:`Frames`): the axes only grow
during a run, so most drawings differ from the last only in their data; the axes, ticks,
labels and legends are then reused as pixels and only the data is drawn over them.
"""

from __future__ import annotations

import io
import itertools
import math
import threading
import time
from typing import Any, Callable

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

IDLE_GATHER = 0.03  # seconds to gather the updates of a slider drag into one drawing


def figure_png(figure: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure, drawn with Agg (no pyplot, safe in any thread)."""
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return _png(canvas)


def _png(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's pixels as PNG (light compression: a quarter of the time, a little larger)."""
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _data_artists(axes) -> list:
    return [*axes.lines, *axes.collections, *axes.patches]


def _decorations(figure: Figure) -> tuple:
    """What two drawings share when only their data differs: the size, the figure's legends,
    and every axes' limits, scales, texts and legend labels."""
    parts: list = [tuple(figure.get_size_inches()), figure.dpi,
                   tuple(tuple(text.get_text() for text in legend.get_texts())
                         for legend in figure.legends)]
    for axes in figure.axes:
        legend = axes.get_legend()
        parts.append((axes.get_xlim(), axes.get_ylim(), axes.get_xscale(), axes.get_yscale(),
                      axes.get_title(), axes.get_xlabel(), axes.get_ylabel(),
                      tuple(text.get_text() for text in axes.texts),
                      tuple(text.get_text() for text in legend.get_texts()) if legend else ()))
    return tuple(parts)


HEADROOM = 0.25  # a limit that must grow grows by this share of the span more


def _grown(now: tuple, before: tuple, log: bool) -> tuple:
    """Limits ``before`` widened to take in ``now``, with headroom on a side that grew, so
    that data arriving over the next drawings stays inside them."""
    scale = (math.log10, lambda v: 10 ** v) if log else (float, float)
    (low, high), (old_low, old_high) = ([scale[0](v) for v in pair] for pair in (now, before))
    span = max(high, old_high) - min(low, old_low)
    low = old_low if low >= old_low else low - HEADROOM * span
    high = old_high if high <= old_high else high + HEADROOM * span
    return scale[1](low), scale[1](high)


class Frames:
    """PNGs of a sequence of figures, drawn fast when only their data changes (blitting).

    The first figure, and any whose decorations (:func:`_decorations`) differ from the last
    fully drawn one, is drawn whole, once without its data (the background, kept as pixels)
    and then with it; the next ones take that background's axes positions and draw only their
    lines, collections and patches over its pixels: a few milliseconds instead of a hundred.
    ``grow`` widens each axes' limits to take in the previous drawing's, so that while data
    arrives the axes only grow and most drawings are fast ones.
    """

    def __init__(self):
        self._canvas: FigureCanvasAgg | None = None
        self._background = None
        self._key: tuple | None = None
        self._positions: list = []
        self._limits: list = []

    def reset(self) -> None:
        """Forget the limits: the next drawings start from their own (a new run)."""
        self._limits = []

    def png(self, figure: Figure, dpi: int, grow: bool = False) -> bytes:
        """``figure`` as PNG; ``grow``: a live drawing (limits grown, the layout kept)."""
        figure.set_dpi(dpi)
        if grow:
            self._grow(figure)
        key = _decorations(figure)
        same_layout = len(self._positions) == len(figure.axes) and self._key is not None and \
            self._key[:3] == key[:3]
        if key == self._key and same_layout:
            self._draw_data_only(figure)
        else:
            if grow and same_layout:  # only limits changed while live: keep the axes in place
                self._place(figure)
            self._draw_whole(figure, key)
        self._limits = [(axes.get_xlim(), axes.get_ylim()) if axes.has_data() else None
                        for axes in figure.axes]
        return _png(self._canvas)

    def _grow(self, figure: Figure) -> None:
        if len(self._limits) != len(figure.axes):
            return
        for axes, limits in zip(figure.axes, self._limits):
            if limits is None:
                continue
            axes.set_xlim(_grown(axes.get_xlim(), limits[0], axes.get_xscale() == "log"))
            axes.set_ylim(_grown(axes.get_ylim(), limits[1], axes.get_yscale() == "log"))

    def _draw_whole(self, figure: Figure, key: tuple) -> None:
        self._canvas = FigureCanvasAgg(figure)
        data = [artist for axes in figure.axes for artist in _data_artists(axes)]
        shown = [artist.get_visible() for artist in data]
        for artist in data:
            artist.set_visible(False)
        self._canvas.draw()
        self._background = self._canvas.copy_from_bbox(figure.bbox)
        self._positions = [axes.get_position() for axes in figure.axes]
        for artist, visible in zip(data, shown):
            artist.set_visible(visible)
        self._draw_data_only(figure, positioned=True)
        self._key = key

    def _place(self, figure: Figure) -> None:
        """The axes where the last whole drawing's layout put them (no layout computed)."""
        figure.set_layout_engine("none")
        for axes, position in zip(figure.axes, self._positions):
            axes.set_position(position)

    def _draw_data_only(self, figure: Figure, positioned: bool = False) -> None:
        if not positioned:
            self._place(figure)
        renderer = self._canvas.get_renderer()
        self._canvas.restore_region(self._background)
        for axes in figure.axes:
            for artist in sorted(_data_artists(axes), key=lambda a: a.get_zorder()):
                if artist.get_visible():
                    artist.draw(renderer)


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
        self._frames = Frames()
        self._live = False
        self._urgent = False  # a control moved: draw at once, even while live
        self._versions = itertools.count(1)
        self._latest: tuple[int, Any] = (0, None)
        self._drawn = 0  # the version on show
        self._since = 0.0  # when the first update not yet drawn came
        self._run_started = 0.0  # while live: when the run began, and its drawing time since
        self._run_drawing = 0.0  # its first drawing (the layout)
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
            self._run_started, self._run_drawing = time.monotonic(), None
            self._frames.reset()
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
            spent = self._run_drawing or 0.0
            return max(self._since + self.interval, self._run_started + spent / self.budget)
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
            if self._live:  # the first drawing of a run is not counted: it lays the axes out
                took = time.monotonic() - started
                self._run_drawing = 0.0 if self._run_drawing is None else self._run_drawing + took

    def _render(self) -> None:
        with self._lock:
            version, data = self._latest
            if data is None or version <= self._drawn:
                return  # nothing, or drawn already (a flush came first)
            started = time.perf_counter()
            # while live (and for a run's final drawing) the axes only grow: fast drawings
            self.image.value = self._frames.png(self.draw(data), self.dpi, grow=self._live)
            self.image.layout.display = None
            self._drawn = version
            self.renders += 1
            self.render_seconds += time.perf_counter() - started
