"""Layouts the widgets share, input checks in the widgets' words, and a control ipywidgets
lacks: a range slider on a log scale for learning-rate bounds.

Widths: every control is at most ``CONTROL_WIDTH`` wide with its label in a label column of
``LABEL_WIDTH`` (the slider's track gets the rest, at least about 150 px), and rows wrap, so
the widgets stay usable in a 1024 px window."""

from __future__ import annotations

import math

import ipywidgets as widgets
import traitlets

from .compat import tooltip


CONTROL_WIDTH = "400px"
LABEL_WIDTH = "150px"
INVALID = "2px solid #c62828"


def format_lr(lr: float) -> str:
    return f"{lr:.3g}"


def control(widget, hint: str):
    """``widget`` at the shared width, its label in the label column, ``hint`` on hover."""
    widget.layout.width = CONTROL_WIDTH
    widget.layout.max_width = "100%"
    widget.style.description_width = LABEL_WIDTH
    if isinstance(widget, widgets.ToggleButtons):
        widget.layout.display = "flex"  # its label beside the buttons, as other controls'
    return tooltip(widget, hint)


def auto() -> widgets.Layout:
    """As wide as the content (a checkbox's whole description shows)."""
    return widgets.Layout(width="auto")


def wrapping_row(children) -> widgets.HBox:
    """A row of controls that wraps onto the next line in a narrow window."""
    return widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap",
                                                              align_items="center"))


def parse_epochs(text: str) -> tuple[int, ...]:
    """Epochs typed as ``"30, 60"`` (commas or semicolons); a ValueError in the field's words."""
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError(f"expected whole epochs such as '30, 60', got {text!r}")
    return tuple(int(part) for part in parts)


def mark(widget, problem: str | None) -> None:
    """Outline ``widget`` in red while its value has a ``problem`` (None: clear)."""
    widget.layout.border = INVALID if problem else ""


class LogRangeSlider(widgets.HBox):
    """A (low, high) learning-rate range on a log10 scale, shown in LR units.

    ``value`` is the pair of learning rates; the slider underneath moves in log10 steps
    (``steps_per_decade``). A value set from code is kept exactly (the handles show it at the
    nearest step); a handle the user drags takes the LR of its step. Bounds must be positive
    with ``low < high`` inside ``[min, max]``, as the core requires.
    """

    value = traitlets.Tuple(traitlets.Float(), traitlets.Float())
    min = traitlets.Float(1e-7)
    max = traitlets.Float(10.0)

    def __init__(self, value=(1e-3, 1e-2), *, min: float = 1e-7, max: float = 10.0,
                 description: str = "LR bounds", steps_per_decade: int = 20, **kwargs):
        if not (0 < min < max):
            raise ValueError(f"min and max must satisfy 0 < min < max, got {min!r}, {max!r}")
        self._slider = widgets.FloatRangeSlider(
            min=math.log10(min), max=math.log10(max), step=1 / steps_per_decade,
            readout=False, description=description, continuous_update=True,
            layout=widgets.Layout(width="420px"), style={"description_width": "initial"})
        self._readout = widgets.Label()
        self._showing = False
        super().__init__([self._slider, self._readout], min=min, max=max, **kwargs)
        self.value = tuple(value)
        self._slider.observe(self._from_slider, "value")

    @traitlets.validate("value")
    def _check(self, proposal):
        low, high = proposal["value"]
        low, high = max(low, self.min), min(high, self.max)  # inside the slider's range
        if not (0 < low < high):
            raise traitlets.TraitError(
                f"LR bounds must satisfy 0 < low < high within [{self.min:g}, {self.max:g}], "
                f"got {proposal['value']}")
        return (low, high)

    @traitlets.observe("value")
    def _to_slider(self, change):
        low, high = change["new"]
        self._showing = True  # our own move of the handles, not the user's
        try:
            self._slider.value = (math.log10(low), math.log10(high))
        finally:
            self._showing = False
        self._readout.value = f"{format_lr(low)} to {format_lr(high)}"

    def _from_slider(self, change):
        """A move of the handles. A handle that stays within half a step of the value it shows
        keeps that value exactly: the browser snaps the handles to the slider's steps and sends
        the snapped positions back, which must not change the bounds."""
        if self._showing:
            return
        shown = (math.log10(self.value[0]), math.log10(self.value[1]))
        half = self._slider.step / 2
        low, high = (old if abs(new - position) <= half else 10 ** new
                     for new, position, old in zip(change["new"], shown, self.value))
        if high > low and (low, high) != self.value:
            self.value = (low, high)
