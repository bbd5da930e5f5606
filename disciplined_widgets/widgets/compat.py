"""ipywidgets 7.7 (Colab's) and 8.x behind one API: the few places where the widgets meet a difference.

The core controls the widgets use (sliders, text boxes, toggles, boxes, ``Image``, ``HTML``,
``Layout`` and ``jslink``) have the same Python API in 7.7 and 8. What differs, and is handled
here:

- **Tooltips.** ipywidgets 8 gives every widget ``tooltip``; in 7 only ``Button`` has it, and
  the controls with a description have ``description_tooltip`` instead (deprecated in 8). Set
  tooltips with :func:`tooltip`, which picks the trait the widget has.
- **Display.** ipywidgets 8 shows a widget through ``_repr_mimebundle_``; 7 through
  ``_ipython_display_``, which IPython prefers to any mime bundle, so extra mime types a widget
  adds (the PNG of its last plot, for static renders) would be lost. :func:`widget_bundle` is the
  widget's own bundle in both, and :class:`DisplayedByBundle` makes 7 display through
  ``_repr_mimebundle_`` as 8 does.

Anything that exists in 8 only (``Stack``, ``TagsInput``, ``tooltip`` on non-buttons, slider
``behavior``, ``description_allow_html``, ``border_top`` and the like) is not used by the widgets;
``make test`` runs their tests under ipywidgets 7.7 with unknown constructor arguments turned into
errors, so such a use fails there instead of being silently ignored on Colab.
"""

from __future__ import annotations

import re

import ipywidgets
from IPython.display import display

IPYWIDGETS_VERSION: tuple[int, int] = tuple(
    int(part) for part in re.match(r"(\d+)\.(\d+)", ipywidgets.__version__).groups())
IPYWIDGETS_7 = IPYWIDGETS_VERSION < (8, 0)

VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"


def tooltip(widget, text: str | None):
    """Set ``widget``'s hover text (``tooltip`` in 8 and on 7's buttons, else
    ``description_tooltip``); returns the widget, so that it can wrap a constructor."""
    name = "tooltip" if widget.has_trait("tooltip") else "description_tooltip"
    setattr(widget, name, text)
    return widget


def widget_bundle(widget, **kwargs) -> dict:
    """The mime bundle that shows ``widget``: text/plain and the widget view."""
    if not IPYWIDGETS_7:
        return ipywidgets.Widget._repr_mimebundle_(widget, **kwargs)
    # ipywidgets 7's _ipython_display_, returning the bundle instead of displaying it
    plaintext = repr(widget)
    if len(plaintext) > 110:
        plaintext = plaintext[:110] + "…"
    bundle = {"text/plain": plaintext}
    if widget._view_name is not None:
        bundle[VIEW_MIMETYPE] = {"version_major": 2, "version_minor": 0,
                                 "model_id": widget._model_id}
        widget._handle_displayed(**kwargs)
    return bundle


class DisplayedByBundle:
    """Mixin (before the widget class) for a widget whose ``_repr_mimebundle_`` adds to
    :func:`widget_bundle`: ipywidgets 7 then displays it through that bundle, as 8 does."""

    if IPYWIDGETS_7:
        def _ipython_display_(self, **kwargs):
            display(self._repr_mimebundle_(**kwargs), raw=True)
