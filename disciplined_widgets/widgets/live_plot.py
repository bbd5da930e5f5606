"""A live matplotlib plot inside an ``ipywidgets.Image``.

The work hands over the latest data (``update``); it is drawn off-screen with Agg and set as
``Image.value`` (a trait update, safe from a thread). While the work runs (``live``),
drawings come at most ``max_fps`` times a second and no more often than keeps drawing under
``budget`` (3%) of the run's time so far, its first drawing included; a burst of updates
costs one drawing. A live drawing that is due is drawn by the update itself, between the
work's steps, so that no second thread competes with the work for the cores and Python's GIL;
a renderer thread draws what waits longer (no update came) and, when idle (a slider moved
after a run), draws the change at once. ``flush`` draws the final state in the caller's
thread. Where no widget frontend exists (a static render of the notebook, a terminal), the
plot shows as a PNG.

Drawings while live are cheap (matplotlib's blitting, :class:`Frames`): the axes only grow
during a run, so most drawings differ from the last only in their data; the axes, ticks,
labels and legends are then reused as pixels and only the data is drawn over them. When one
axes' limits grow, only that axes is drawn again; the layout is computed once per kind of
figure. A widget that can put new data into its last live figure (``refresh``), or into the
empty axes it prepared, saves building a figure. Encoding the PNG is then most of a drawing's
cost, which a 256-colour palette halves.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox, IdentityTransform
from PIL import Image

IDLE_GATHER = 0.03  # seconds to gather the updates of a slider drag into one drawing
LATE = 1.0  # seconds past due after which the renderer thread draws a live update itself


def figure_png(figure: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure, drawn with Agg (no pyplot, safe in any thread)."""
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return _png(canvas)


def _png(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's pixels as a PNG of 256 colours (Pillow's fast octree: each colour within 6%
    of its own, half the time and size of a full-colour PNG) with light compression."""
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    buffer = io.BytesIO()
    image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(
        buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _data_artists(axes) -> list:
    return [*axes.lines, *axes.collections, *axes.patches]


def _decorations(figure: Figure) -> tuple:
    """What two drawings share when only their data differs: the figure's part (its size and
    legends) and, per axes, its limits, scales, texts and legend labels."""
    legends = tuple(tuple(text.get_text() for text in legend.get_texts()) for legend in figure.legends)
    per_axes = []
    for axes in figure.axes:
        legend = axes.get_legend()
        per_axes.append((axes.get_xlim(), axes.get_ylim(), axes.get_xscale(), axes.get_yscale(),
                         axes.get_title(), axes.get_xlabel(), axes.get_ylabel(),
                         tuple(text.get_text() for text in axes.texts),
                         tuple(text.get_text() for text in legend.get_texts()) if legend else ()))
    return (tuple(figure.get_size_inches()), figure.dpi, legends), tuple(per_axes)


def _structure(key: tuple) -> tuple:
    """What a layout depends on: the figure's part, and each axes' scales, which of its labels
    it has and its legend (not its limits or its texts' wording)."""
    figure_part, per_axes = key
    return figure_part, tuple((x_scale, y_scale, bool(title), bool(xlabel), bool(ylabel), legend)
                              for _, _, x_scale, y_scale, title, xlabel, ylabel, _, legend in per_axes)


LAYOUTS: dict[tuple, list] = {}  # a structure -> its axes' positions, from its last laid-out drawing


HEADROOM = 0.25  # a limit that must grow grows by this share of the span more
PAD = 2  # pixels around an axes' decorations cleared before they are drawn again


def _grown(now: tuple, before: tuple, log: bool) -> tuple:
    """Limits ``before`` widened to take in ``now``, with headroom on a side that grew, so
    that data arriving over the next drawings stays inside them."""
    scale = (math.log10, lambda v: 10 ** v) if log else (float, float)
    (low, high), (old_low, old_high) = ([scale[0](v) for v in pair] for pair in (now, before))
    span = max(high, old_high) - min(low, old_low)
    slack = 1e-9 * span  # rounding (a planned end computed from the pace) is no growth
    low = old_low if low >= old_low - slack else low - HEADROOM * span
    high = old_high if high <= old_high + slack else high + HEADROOM * span
    return scale[1](low), scale[1](high)


@contextlib.contextmanager
def _data_hidden(figure: Figure) -> Iterator[None]:
    """The figure without its data (lines, collections, patches) for the duration."""
    data = [artist for axes in figure.axes for artist in _data_artists(axes)]
    shown = [artist.get_visible() for artist in data]
    for artist in data:
        artist.set_visible(False)
    try:
        yield
    finally:
        for artist, visible in zip(data, shown):
            artist.set_visible(visible)


class Frames:
    """PNGs of a sequence of figures, drawn fast when only their data changes (blitting).

    A figure is drawn whole (its background: everything but the data, kept as pixels; then its
    data) when it is the first, or its figure-level part or number of axes changed, or, when
    not live, when any decoration (:func:`_decorations`) changed. Live drawings keep the
    layout: the axes stay where the last whole drawing put them (the first whole drawing of a
    figure's :func:`_structure` lays it out once per process, see ``LAYOUTS``), an axes whose
    limits or texts changed is drawn again over its own pixels only (with its twins), and the
    data is drawn over the background: a few milliseconds instead of a hundred. ``grow``
    widens each axes' limits to take in the previous drawing's, so that while data arrives the
    axes only grow and most drawings are data-only. ``drawings`` counts each kind.
    """

    def __init__(self):
        self._canvas: FigureCanvasAgg | None = None
        self._background = None
        self._key: tuple | None = None
        self._positions: list = []
        self._regions: list = []  # per axes: the pixels its decorations cover (live drawings)
        self._limits: list = []
        self._engine = None  # the figures' own layout engine (a placed figure's is replaced)
        self.drawings = {"whole": 0, "axes": 0, "data": 0}

    def reset(self) -> None:
        """Forget the limits: the next drawings start from their own (a new run)."""
        self._limits = []

    def png(self, figure: Figure, dpi: int, grow: bool = False) -> bytes:
        """``figure`` as PNG; ``grow``: a live drawing (limits grown, the layout kept)."""
        figure.set_dpi(dpi)
        if grow:
            self._grow(figure)
        key, engine = _decorations(figure), figure.get_layout_engine()
        if isinstance(engine, PlaceHolderLayoutEngine):  # a figure placed here before (refreshed)
            engine = self._engine
        self._engine = engine
        if key == self._key and len(self._positions) == len(figure.axes):
            self._place(figure, self._positions)
            kind = "data"
        else:
            kind = self._redraw_changed_axes(figure, key) if grow else "whole"
            if kind != "axes":
                self._draw_whole(figure, key, engine, live=grow, fresh_layout=kind == "relayout")
                kind = "whole"
        self._draw_data(figure)
        self.drawings[kind] += 1
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

    def _draw_whole(self, figure: Figure, key: tuple, engine, live: bool,
                    fresh_layout: bool = False) -> None:
        """The background; while live, at the structure's known layout if there is one (else,
        with ``fresh_layout``, and where labels would pass the figure's edge there, laid out by
        ``engine``)."""
        structure = _structure(key)
        laid_out = (live and not fresh_layout and structure in LAYOUTS
                    and len(LAYOUTS[structure]) == len(figure.axes))
        if laid_out:
            self._place(figure, LAYOUTS[structure])
        else:  # placed axes are out of the layout (set_position): put them back in
            figure.set_layout_engine(engine)
            for axes in figure.axes:
                axes.set_in_layout(True)
        self._canvas = FigureCanvasAgg(figure)
        with _data_hidden(figure):
            self._canvas.draw()
            renderer = self._canvas.get_renderer()
            self._regions = [axes.get_tightbbox(renderer) for axes in figure.axes] if live else []
        if laid_out and not all(_inside(region, figure.bbox) for region in self._regions):
            return self._draw_whole(figure, key, engine, live, fresh_layout=True)
        self._background = self._canvas.copy_from_bbox(figure.bbox)
        self._positions = [axes.get_position() for axes in figure.axes]
        if not laid_out:
            LAYOUTS[structure] = self._positions
        self._key = key

    def _redraw_changed_axes(self, figure: Figure, key: tuple) -> str:
        """Draw again, over the background, only the axes whose decorations changed (with the
        axes sharing their place: twins): ``"axes"``. Nothing drawn where that cannot be done:
        ``"whole"`` for another layout or decorations that would reach into another axes'
        pixels, ``"relayout"`` for decorations that would pass the figure's edge."""
        old = self._key
        if (old is None or old[0] != key[0] or len(old[1]) != len(key[1])
                or len(self._regions) != len(figure.axes)):
            return "whole"
        self._place(figure, self._positions)
        changed = {i for i, (now, before) in enumerate(zip(key[1], old[1])) if now != before}
        places = [tuple(position.bounds) for position in self._positions]
        redrawn = [i for i in range(len(places)) if places[i] in {places[j] for j in changed}]
        renderer = self._canvas.get_renderer()
        with _data_hidden(figure):
            regions = {i: Bbox.union([self._regions[i], figure.axes[i].get_tightbbox(renderer)])
                       for i in redrawn}
            others = [self._regions[i] for i in range(len(places)) if i not in regions]
            if any(region.overlaps(other) for region in regions.values() for other in others):
                return "whole"
            if not all(_inside(region, figure.bbox) for region in regions.values()):
                return "relayout"
            self._canvas.restore_region(self._background)
            for i in redrawn:
                _clear(renderer, figure, regions[i].padded(PAD))
            for i in redrawn:
                figure.axes[i].draw(renderer)
        self._background = self._canvas.copy_from_bbox(figure.bbox)
        self._regions = [regions.get(i, region) for i, region in enumerate(self._regions)]
        self._key = key
        return "axes"

    @staticmethod
    def _place(figure: Figure, positions: list) -> None:
        """The axes at ``positions`` (no layout computed)."""
        figure.set_layout_engine("none")
        for axes, position in zip(figure.axes, positions):
            axes.set_position(position)

    def _draw_data(self, figure: Figure) -> None:
        renderer = self._canvas.get_renderer()
        self._canvas.restore_region(self._background)
        for axes in figure.axes:
            for artist in sorted(_data_artists(axes), key=lambda a: a.get_zorder()):
                if artist.get_visible():
                    artist.draw(renderer)


def _inside(box: Bbox, outer: Bbox) -> bool:
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1


def _clear(renderer, figure: Figure, box: Bbox) -> None:
    """Paint ``box`` (pixels) in the figure's background colour."""
    patch = Rectangle((box.x0, box.y0), box.width, box.height, transform=IdentityTransform(),
                      facecolor=figure.get_facecolor(), edgecolor="none", linewidth=0)
    patch.set_figure(figure)
    patch.draw(renderer)


class LivePlot:
    """``draw(data) -> Figure`` rendered into ``self.image`` (throttled, off the caller's thread).

    ``refresh(figure, data) -> bool``, if given, puts later data into the figure of the last
    live drawing in place (no figure built: most of a live drawing's cost), or says False
    where it cannot; ``draw`` builds the figure then."""

    def __init__(self, draw: Callable[[Any], Figure], *, max_fps: float = 4.0,
                 budget: float = 0.03, dpi: int = 100,
                 refresh: Callable[[Figure, Any], bool] | None = None):
        self.draw, self.interval, self.budget, self.dpi = draw, 1.0 / max_fps, budget, dpi
        self.refresh = refresh
        self._figure: Figure | None = None  # the last live drawing's, for refresh
        # natural size (a flex column would stretch it to the full width), hidden until drawn
        self.image = widgets.Image(format="png", layout=widgets.Layout(
            max_width="100%", align_self="flex-start", display="none"))
        self.renders = 0
        self.render_seconds = 0.0  # time spent drawing, in all
        self.live_seconds = 0.0  # of which drawing the updates of running work (not flush, prepare)
        self._frames = Frames()
        self._live = False
        self._urgent = False  # a control moved: draw at once, even while live
        self._versions = itertools.count(1)
        self._latest: tuple[int, Any] = (0, None)
        self._drawn = 0  # the version on show
        self._prepared = -1  # the version prepare drew
        self._since = 0.0  # when the first update not yet drawn came
        self._run_started = 0.0  # while live: when the run began, and its drawing time since
        self._run_drawing = 0.0
        self._pending = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one drawing at a time
        self._thread: threading.Thread | None = None

    @property
    def drawings(self) -> dict[str, int]:
        """How many drawings were whole, of changed axes only, or of the data only."""
        return dict(self._frames.drawings)

    @property
    def live(self) -> bool:
        """True while the work runs: drawings throttled to ``max_fps`` and ``budget``."""
        return self._live

    @live.setter
    def live(self, value: bool) -> None:
        self._live = bool(value)
        if self._live:
            self._run_started, self._run_drawing = time.monotonic(), 0.0
            self._frames.reset()
            if self._drawn != self._prepared:  # a run's first drawing refreshes the empty axes
                self._figure = None  # on show (drawn by prepare), else builds its figure
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
        if self._live and not now and time.monotonic() >= self._due():
            self._draw_pending()  # here, between the work's steps: no thread competes with it
            return
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

    def prepare(self, data: Any) -> None:
        """Draw ``data`` now, in this thread, as a run's first drawing: laid out as live drawings
        are, so that a run starting from it draws only what changed (the empty axes a run will
        fill, drawn before it starts)."""
        self._prepared = next(self._versions)
        self._latest = (self._prepared, data)
        self._pending.clear()
        self._frames.reset()  # its own limits, not grown from the last drawing's
        self._render(grow=True)

    def _due(self) -> float:
        if self._live and not self._urgent:  # the first drawing of a run waits a frame
            return max(self._since + self.interval,
                       self._run_started + self._run_drawing / self.budget)
        return self._since + IDLE_GATHER

    def _due_in_thread(self) -> float:
        """While live the work's next update draws what is due; the thread only what waits
        ``LATE`` seconds past that (updates came no more)."""
        return self._due() + (LATE if self._live and not self._urgent else 0.0)

    def _loop(self) -> None:
        while self._pending.wait(timeout=0.5):
            while True:
                self._wake.clear()  # before reading the state: a change meanwhile wakes us
                wait = self._due_in_thread() - time.monotonic()
                if wait <= 0:
                    break
                self._wake.wait(wait)
            if self._pending.is_set():  # not drawn meanwhile
                self._draw_pending()

    def _draw_pending(self) -> None:
        """Draw the latest data, counting the time against a live run's budget."""
        self._pending.clear()
        self._urgent = False
        started = time.monotonic()
        self._render()
        if self._live:
            took = time.monotonic() - started
            self.live_seconds += took
            self._run_drawing += took

    def _figure_of(self, data: Any) -> Figure:
        """The last live drawing's figure with ``data`` put in, or a new one."""
        if self._figure is not None and self.refresh is not None and self.refresh(self._figure, data):
            return self._figure
        return self.draw(data)

    def _render(self, grow: bool | None = None) -> None:
        """Draw the latest data; ``grow``: as a live drawing (default: while live)."""
        with self._lock:
            version, data = self._latest
            if data is None or version <= self._drawn:
                return  # nothing, or drawn already (a flush came first)
            started = time.perf_counter()
            # while live (and for a run's final drawing) the axes only grow: fast drawings
            grow = self._live if grow is None else grow
            figure = self._figure_of(data) if grow else self.draw(data)
            self._figure = figure if grow else None
            self.image.value = self._frames.png(figure, self.dpi, grow=grow)
            self.image.layout.display = None
            self._drawn = version
            self.renders += 1
            self.render_seconds += time.perf_counter() - started
