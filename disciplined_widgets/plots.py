"""Figures from result objects: pure matplotlib, no widgets, no training.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot's global state
(safe in threads and scripts), or draws on the ``ax`` it is given.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def _axes(ax, size=(6.4, 4.0)):
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def plot_range_test(result, ax=None, *, show_raw: bool = True, bounds=None, color=None,
                    label: str | None = None, earlier=()) -> Figure:
    """Loss against LR (log x): raw and smoothed loss, the suggestions, the bounds shaded
    (``bounds`` or the result's suggested bounds), validation points when there are any, and
    the smoothed curves of ``earlier`` results for comparison."""
    figure, ax = _axes(ax)
    for index, old in enumerate(earlier):
        end = old.usable[1]
        ax.plot(old.lrs[:end], old.smoothed_losses[:end], lw=1.2, alpha=0.6,
                color=f"C{(index + 2) % 10}", label=f"earlier: {old.label}")
    s = result.suggestions
    start, end = result.usable
    if show_raw:
        ax.plot(result.lrs, result.losses, color=color or "tab:blue", alpha=0.25, lw=0.8,
                label="loss (raw)")
    smoothed = result.smoothed_losses
    ax.plot(result.lrs[:end], smoothed[:end], color=color or "tab:blue", lw=2,
            label=label or f"loss (smoothed, beta={result.smooth:g})")
    if result.val_losses:
        ax.plot(result.val_lrs, result.val_losses, "o--", color="tab:orange", ms=4,
                label="validation loss")
    shade = bounds if bounds is not None else s.bounds
    if shade is not None:
        ax.axvspan(*shade, color="tab:green", alpha=0.12,
                   label=f"bounds {shade[0]:.2g} to {shade[1]:.2g}")
    markers = {"steepest": ("v", "tab:red"), "minimum": ("s", "tab:purple"),
               "valley": ("D", "tab:green")}
    lrs = result.lrs[:end]
    for name, (marker, marker_color) in markers.items():
        lr = getattr(s, name)
        if lr is None or not lrs:
            continue
        nearest = min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr))
        ax.plot(lr, smoothed[nearest], marker, color=marker_color, ms=8, label=f"{name}: {lr:.2g}")
    finite = [x for x in smoothed[start:end]] or [x for x in result.losses if x == x]
    if finite:
        low, high = min(finite), max(smoothed[start:end] or finite)
        pad = 0.15 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + 2 * pad)
    ax.set_xscale("log" if result.mode == "exp" else "linear")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(f"LR range test ({result.stop_reason}, {len(result.lrs)} of {result.num_iter} steps)")
    ax.legend(fontsize="small")
    return figure


def plot_range_tests(collection, ax=None) -> Figure:
    """Smoothed loss against LR for every test of a collection (e.g. one per weight decay)."""
    figure, ax = _axes(ax)
    lows, highs = [], []
    for index, result in enumerate(collection.results):
        start, end = result.usable
        curve = result.smoothed_losses[:end]
        ax.plot(result.lrs[:end], curve, lw=2, color=f"C{index}", label=result.label)
        if end > start:
            lows.append(min(curve[start:end]))
            highs.append(max(curve[start:end]))
    if lows:
        pad = 0.15 * (max(highs) - min(lows) or 1.0)
        ax.set_ylim(min(lows) - pad, max(highs) + 2 * pad)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="loss (smoothed)",
           title=f"LR range tests by {collection.parameter.replace('_', ' ')}")
    ax.legend(fontsize="small")
    return figure


def plot_schedule(preview, ax=None) -> Figure:
    """LR (left axis), momentum (right axis) and, when it changes, batch size against step."""
    if ax is None:
        figure = Figure(figsize=(6.4, 3.6), layout="constrained")
        ax = figure.add_subplot()
    figure = ax.figure
    ax.plot(preview.step, preview.lr, color="tab:red", lw=2, label="learning rate")
    ax.set(xlabel="step", ylabel="learning rate", title="Schedule")
    handles = ax.get_lines()
    if any(m is not None for m in preview.momentum):
        twin = ax.twinx()
        handles += twin.plot(preview.step, preview.momentum, color="tab:gray", ls="--",
                             label="momentum")
        twin.set_ylabel("momentum")
    sizes = [b for b in preview.batch_size if b is not None]
    if sizes and min(sizes) != max(sizes):
        third = ax.twinx()
        third.spines["right"].set_position(("axes", 1.15))
        handles += third.plot(preview.step, preview.batch_size, color="tab:blue", ls=":",
                              label="batch size")
        third.set_ylabel("batch size")
    ax.legend(handles=handles, labels=[h.get_label() for h in handles], fontsize="small")
    return figure
