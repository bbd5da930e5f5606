"""Figures from result objects: pure matplotlib, no widgets, no training.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot's global state
(safe in threads and scripts), or draws on the ``ax`` it is given.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter


def _axes(ax, size=(6.4, 4.0)):
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _legend_beside(ax, **kwargs) -> None:
    """The axes' legend to the right of it, off the data (constrained layout makes room)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
                  fontsize="small", **kwargs)


def _at(lrs, values, lr: float, log: bool) -> float:
    """``values`` at ``lr`` on the curve ``(lrs, values)``, interpolated linearly in log10 LR
    (``log``) or in LR; ``lr`` must lie within ``lrs`` (increasing)."""
    import numpy as np

    x = np.log10(lrs) if log else np.asarray(lrs, dtype=float)
    return float(np.interp(np.log10(lr) if log else lr, x, values))


MARKERS = {"steepest": ("v", "tab:red", "steepest"), "minimum": ("s", "tab:purple", "minimum/10"),
           "valley": ("D", "tab:green", "valley")}


def plot_range_test(result, ax=None, *, show_raw: bool = True, bounds=None, color=None,
                    label: str | None = None, earlier=(), suggestions: bool = True,
                    lr_range=None) -> Figure:
    """Loss against LR (log x): raw and smoothed loss, the suggestions and the bounds shaded
    (``bounds`` or the result's suggested bounds) unless ``suggestions=False`` (a test still
    running), validation points when there are any, and the smoothed curves of ``earlier``
    results for comparison. ``lr_range=(start, end)`` fixes the x axis (a live test).

    Suggestions are those :func:`~disciplined_widgets.diagnose.read_range_test` supports: a
    test whose loss never fell shows why instead. Each marker sits on the smoothed curve at
    its LR, and only inside the tested range (``minimum/10`` is a tenth of the LR of the
    lowest point); a dotted line marks the LR where the loss diverged."""
    from .diagnose import read_range_test

    figure, ax = _axes(ax)
    for index, old in enumerate(earlier):
        end = old.usable[1]
        ax.plot(old.lrs[:end], old.smoothed_losses[:end], lw=1.2, alpha=0.6,
                color=f"C{(index + 2) % 10}", label=f"earlier: {old.label}")
    reading = read_range_test(result) if suggestions and result.lrs else None
    s = reading.suggestions if reading is not None else None
    start, end = result.usable
    log = result.mode == "exp"
    if show_raw:
        ax.plot(result.lrs, result.losses, color=color or "tab:blue", alpha=0.25, lw=0.8,
                label="loss (raw)")
    smoothed = result.smoothed_losses
    ax.plot(result.lrs[:end], smoothed[:end], color=color or "tab:blue", lw=2,
            label=label or f"loss (smoothed, beta={result.smooth:g})")
    if result.val_losses:
        ax.plot(result.val_lrs, result.val_losses, "o--", color="tab:orange", ms=4,
                label="validation loss")
    shade = bounds if bounds is not None else (s.bounds if s is not None else None)
    if suggestions and shade is not None:
        ax.axvspan(*shade, color="tab:green", alpha=0.12,
                   label=f"bounds {shade[0]:.2g} to {shade[1]:.2g}")
    lrs = result.lrs[:end]
    for name, (marker, marker_color, shown) in MARKERS.items():
        lr = getattr(s, name) if s is not None else None
        if lr is None or not lrs or not lrs[0] <= lr <= lrs[-1]:
            continue  # no suggestion, or outside the tested range
        ax.plot(lr, _at(lrs, smoothed[:end], lr, log), marker, color=marker_color, ms=8,
                label=f"{shown}: {lr:.2g}")
    if reading is not None and reading.diverged_at is not None:
        ax.axvline(reading.diverged_at, color="tab:red", ls=":", lw=1.2,
                   label=f"diverged at {reading.diverged_at:.2g}")
    if reading is not None and s is None:
        ax.text(0.02, 0.97, f"no suggestion: {reading.reason}", transform=ax.transAxes,
                va="top", ha="left", fontsize="small", wrap=True,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.8))
    finite = [x for x in smoothed[start:end]] or [x for x in result.losses if x == x]
    if finite:
        low, high = min(finite), max(smoothed[start:end] or finite)
        pad = 0.15 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + 2 * pad)
    ax.set_xscale("log" if log else "linear")
    if lr_range is not None:  # the swept range, fixed: a running test's curve grows into it
        ax.set_xlim(*lr_range)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(f"LR range test ({result.stop_reason}, {len(result.lrs)} of {result.num_iter} steps)")
    _legend_beside(ax)
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
    _legend_beside(ax)
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
    ax.legend(handles=handles, labels=[h.get_label() for h in handles], fontsize="small",
              loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=len(handles))  # off the data
    return figure


def _smooth(values, window: int):
    """Running mean over ``window`` points (for noisy per-step losses)."""
    if window <= 1 or len(values) < window:
        return list(values)
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


X_FIELDS = {"epoch": ("eval_epoch", "epoch"), "step": ("eval_step", "parameter updates"),
            "time": ("eval_time", "seconds")}


def planned_extent(history, x: str = "step") -> float | None:
    """Where a run's x axis ends once it finishes: its planned steps, or the epochs or seconds
    they take at the pace so far (a running run's curves grow into it); None if unknown."""
    if not history.total_steps or not history.step:
        return None
    done = history.step[-1]
    reached = {"step": done, "epoch": history.epoch[-1], "time": history.time[-1]}[x]
    return reached * max(history.total_steps, done) / done


def plot_history(history, axes=None, *, earlier=(), x: str = "epoch", labels=None,
                 label: str = "this run", plan=None) -> Figure:
    """Training curves: loss (train smoothed per step, validation per evaluation), validation
    accuracy, and LR with momentum, all against ``x``: ``"epoch"``, ``"step"`` (parameter
    updates) or ``"time"`` (seconds). ``earlier`` histories are drawn thinner, named by
    ``labels`` (their settings; else "earlier 1", ...); a run in progress shows its whole
    planned x range, and ``plan`` (a :class:`~disciplined_widgets.SchedulePreview`) the LR and
    momentum it is to follow (with a plan, an empty history draws the axes the run will
    fill). The legend sits below the panels, off the data. :func:`update_history_plot` puts a
    later state of the same run into the figure."""
    if axes is None:  # two rows: legible when a laptop's notebook column scales it down
        figure = Figure(figsize=(8, 5.8), layout="constrained")
        mosaic = figure.subplot_mosaic([["loss", "loss"], ["accuracy", "lr"]])
        axes = [mosaic["loss"], mosaic["accuracy"], mosaic["lr"]]
    figure = axes[0].figure
    ax_loss, ax_acc, ax_lr = axes
    xlabel = X_FIELDS[x][1]
    names = _run_names(earlier, labels, label)
    runs = [(h, name, 1.0, 0.5) for h, name in zip(earlier, names)]
    runs.append((history, label, 1.8, 1.0))
    accuracy_shown = False
    for index, (run, name, width, alpha) in enumerate(runs):
        color = "tab:blue" if run is history else f"C{(index + 2) % 10}"
        curves = _curves(run, x)
        if run is history and not run.val_loss:  # empty lines its evaluations will fill
            curves |= {"val": ([], []), "accuracy": ([], [])}
        ids = {curve: curve if run is history else None for curve in curves}  # the lines' gids
        ax_loss.plot(*curves["train"], lw=width * 0.6, alpha=0.6 * alpha, color=color, label=name,
                     gid=ids["train"])
        if "val" in curves:
            ax_loss.plot(*curves["val"], "o-", ms=3, lw=width, alpha=alpha, color=color,
                         gid=ids["val"])
        if "accuracy" in curves:
            ax_acc.plot(*curves["accuracy"], "o-", ms=3, lw=width, alpha=alpha, color=color,
                        gid=ids["accuracy"])
            accuracy_shown = accuracy_shown or bool(curves["accuracy"][0])
    ax_loss.set(xlabel=xlabel, ylabel="loss", title="Loss (line: train, dots: validation)")
    if not history.step and not earlier:  # not run yet: a neutral loss scale
        ax_loss.set_ylim(0, 1)
    ax_acc.set(xlabel=xlabel, ylabel="accuracy", title="Validation accuracy")
    if not accuracy_shown and any(run.val_loss for run, *_ in runs):
        _say_no_accuracy(ax_acc)
    _plot_lr_and_momentum(ax_lr, history, x, xlabel, plan)
    _set_limits(axes, history, earlier, x, plan)
    if len(runs) > 1:
        figure.legend(*ax_loss.get_legend_handles_labels(), loc="outside lower center",
                      ncols=min(len(runs), 4), fontsize="small")
    return figure


def update_history_plot(figure: Figure, history, *, earlier=(), x: str = "epoch",
                        plan=None, labels=None, label: str = "this run") -> bool:
    """Put a later state of the run that :func:`plot_history` drew in ``figure`` into it, in
    place (new points, the plan, limits again): a live drawing without building a figure.
    False, and nothing changed, where the figure's curves or runs differ (another ``x``,
    other earlier runs, an evaluation without accuracy): draw it anew then."""
    lines = _identified_lines(figure)
    curves = _curves(history, x, momentum="momentum" in lines) | _plan_curves(plan, x)
    unfilled = set(lines) - set(curves)
    may_be_unfilled = set() if history.val_loss else {"val", "accuracy"}  # not yet evaluated
    legend = _run_names(earlier, labels, label) if earlier else []  # plot_history's legend
    if (not set(curves) <= set(lines) or not unfilled <= may_be_unfilled
            or figure.axes[0].get_xlabel() != X_FIELDS[x][1] or _legend_texts(figure) != legend):
        return False
    _put_curves(figure, lines, curves)
    by_ylabel = {axes.get_ylabel(): axes for axes in figure.axes}
    _set_limits([by_ylabel[ylabel] for ylabel in ("loss", "accuracy", "learning rate")], history,
                earlier, x, plan)
    return True


def _run_names(earlier, labels, label: str) -> list[str]:
    """The names of the earlier runs (``labels``, else "earlier 1", ...) and of this run."""
    return [*(labels or [f"earlier {i + 1}" for i in range(len(earlier))]), label]


def _curves(run, x: str, momentum: bool = False) -> dict[str, tuple[list, list]]:
    """A run's curves against ``x`` (points per curve): ``train`` (smoothed), ``val`` and
    ``accuracy`` (once evaluated; accuracy where every evaluation has one), ``lr`` and, with
    ``momentum``, ``momentum``."""
    x_eval = X_FIELDS[x][0]
    n = min(len(run.train_loss), len(getattr(run, x)))
    curves = {"train": (getattr(run, x)[:n], _smooth(run.train_loss[:n], max(1, n // 50)))}
    m = min(len(run.val_loss), len(getattr(run, x_eval)))
    if m:
        curves["val"] = (getattr(run, x_eval)[:m], run.val_loss[:m])
        accuracy = run.val_accuracy[:m]
        if all(a is not None for a in accuracy):
            curves["accuracy"] = (getattr(run, x_eval)[:m], accuracy)
    k = min(len(run.step), len(run.lr))
    curves["lr"] = (getattr(run, x)[:k], run.lr[:k])
    if momentum:
        curves["momentum"] = (getattr(run, x)[:k], run.momentum[:k])
    return curves


def _set_limits(axes, history, earlier, x: str, plan) -> None:
    """Steady y axes (:func:`_steady_y`) and the x axes over the planned range (the plan's, else
    the pace so far) and the earlier runs'."""
    runs = (*earlier, history)
    _steady_y(axes[0], axes[1], [v for run in runs for v in run.val_loss + run.train_loss])
    planned = (getattr(plan, x)[-1] if plan is not None and x != "time" and plan.step
               else planned_extent(history, x))
    _x_from_zero(axes, [planned] + [getattr(h, x)[-1] for h in earlier if h.step])


LOSS_MARGIN = 0.1  # room above the highest loss, a share of it


def _steady_y(ax_loss, ax_accuracy, losses) -> None:
    """The loss from 0 to a tenth above its highest value (when no loss is negative: a top
    that the falling losses of a live run leave where it is), and the accuracy from 0 to 1."""
    if all(v >= 0 for v in losses if v == v):
        highest = max((v for v in losses if math.isfinite(v)), default=0.0)
        ax_loss.set_ylim(0, highest * (1 + LOSS_MARGIN) if highest > 0 else None)
    ax_accuracy.set_ylim(0, 1.02)


def _x_from_zero(axes, reaches) -> None:
    """Every axes' x from 0 to the farthest of ``reaches`` (None: unknown)."""
    reaches = [r for r in reaches if r]
    if reaches:
        for ax in axes:
            ax.set_xlim(0, max(reaches))


def _plot_lr_and_momentum(ax, history, x: str, xlabel: str, plan) -> None:
    """The run's LR (left axis) and momentum (right axis, when it has one) against ``x``; the
    whole planned schedule faint behind them."""
    momentum = plan.momentum if plan is not None else history.momentum  # the plan's: axes first
    curves = _curves(history, x, momentum=bool(momentum) and all(m is not None for m in momentum))
    planned = _plan_curves(plan, x)
    if planned:
        ax.plot(*planned["planned lr"], color="tab:red", lw=1, alpha=0.25, gid="planned lr")
    ax.plot(*curves["lr"], color="tab:red", lw=1.5, gid="lr")
    if "momentum" in curves:
        twin = ax.twinx()
        if "planned momentum" in planned:
            twin.plot(*planned["planned momentum"], color="tab:gray", ls="--", lw=1, alpha=0.3,
                      gid="planned momentum")
        twin.plot(*curves["momentum"], color="tab:gray", ls="--", gid="momentum")
        twin.set_ylabel("momentum (dashed)")
    ax.set(xlabel=xlabel, ylabel="learning rate", title="Learning rate and momentum"
           + (" (faint: planned)" if planned else ""))


def _plan_curves(plan, x: str) -> dict[str, tuple[list, list]]:
    """The planned LR (``planned lr``) and momentum (``planned momentum``, where it has one)
    against ``x``; none without a plan or against time (not known ahead)."""
    if plan is None or x == "time":
        return {}
    curves = {"planned lr": (getattr(plan, x), plan.lr)}
    if plan.momentum and all(m is not None for m in plan.momentum):
        curves["planned momentum"] = (getattr(plan, x), plan.momentum)
    return curves


def plot_comparison(comparison, x: str = "epoch", axes=None, *, extent: float | None = None,
                    steady: bool = False) -> Figure:
    """Validation loss and accuracy of every run of a comparison against epochs, parameter
    updates or wall time (``x`` = ``"epoch"``, ``"step"`` or ``"time"``). Each run has its own
    line style, markers and width, so that runs that coincide (the same run until their
    settings part) stay visible on top of each other. A run not started yet (an empty
    ``History``) has its place in the legend; ``extent``, the planned end of the x axis, lets
    empty axes show it; ``steady`` (a live view) keeps the loss from 0 and the accuracy from 0
    to 1, so that the axes change little as runs come in. :func:`update_comparison_plot` puts
    later states into the figure."""
    if axes is None:  # stacked: legible when a laptop's notebook column scales it down
        figure = Figure(figsize=(6.8, 5.8), layout="constrained")
        axes = figure.subplots(2, 1, sharex=True)
    figure = axes[0].figure
    curves = _comparison_curves(comparison, x)
    for index, label in enumerate(comparison.labels):
        style = dict(color=f"C{index}", label=label, ls=("-", "--", ":", "-.")[index % 4],
                     marker="osD^v"[index % 5], ms=max(2.0, 5.0 - index), lw=max(1.0, 2.6 - 0.5 * index))
        axes[0].plot(*curves[f"val {index}"], gid=f"val {index}", **style)
        if f"accuracy {index}" in curves:
            axes[1].plot(*curves[f"accuracy {index}"], gid=f"accuracy {index}", **style)
    _comparison_limits(axes, comparison, x, extent, steady)
    name = comparison.parameter.replace("_", " ")
    axes[0].set(ylabel="validation loss", title=f"Validation loss by {name}")
    axes[1].set(xlabel=X_FIELDS[x][1], ylabel="validation accuracy", title=f"Validation accuracy by {name}")
    evaluated = [i for i, history in enumerate(comparison.histories) if history.val_loss]
    if evaluated and not any(f"accuracy {i}" in curves for i in evaluated):
        _say_no_accuracy(axes[1])
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                      fontsize="small")
    return figure


def update_comparison_plot(figure: Figure, comparison, x: str = "epoch", *,
                           extent: float | None = None, steady: bool = False) -> bool:
    """Put a later state of the comparison that :func:`plot_comparison` drew in ``figure`` into
    it, in place; False, and nothing changed, where its runs or curves differ from the
    figure's (other values, another ``x``, a run without accuracy): draw it anew then."""
    lines = _identified_lines(figure)
    curves = _comparison_curves(comparison, x)
    if (set(lines) != set(curves) or _legend_texts(figure) != comparison.labels
            or figure.axes[1].get_xlabel() != X_FIELDS[x][1]):
        return False
    _put_curves(figure, lines, curves)
    _comparison_limits(figure.axes, comparison, x, extent, steady)
    return True


def _say_no_accuracy(ax) -> None:
    """An empty accuracy panel says why: the outputs and targets are not classes."""
    ax.text(0.5, 0.5, "no accuracy: outputs and targets\nare not classes (see the loss)",
            transform=ax.transAxes, ha="center", va="center", color="0.4")


def _identified_lines(figure: Figure) -> dict:
    """The figure's lines that have a gid, by gid: the curves a live drawing refreshes."""
    return {line.get_gid(): line for axes in figure.axes for line in axes.lines if line.get_gid()}


def _legend_texts(figure: Figure) -> list[str]:
    """The labels of the figure's legend (none without one)."""
    return [text.get_text() for text in figure.legends[0].get_texts()] if figure.legends else []


def _put_curves(figure: Figure, lines: dict, curves: dict) -> None:
    """New points into the lines (by gid), and every axes' limits from its data again."""
    for gid, points in curves.items():
        lines[gid].set_data(*points)
    for axes in figure.axes:
        axes.set_autoscale_on(True)
        axes.relim()
        axes.autoscale_view()


def _comparison_curves(comparison, x: str) -> dict[str, tuple[list, list]]:
    """Each run's validation loss (``val i``) and accuracy (``accuracy i``, where every
    evaluation has one; an empty run has both, without points) against ``x``."""
    field = X_FIELDS[x][0]
    curves = {}
    for index, history in enumerate(comparison.histories):
        n = min(len(history.val_loss), len(getattr(history, field)))
        xs = getattr(history, field)[:n]
        curves[f"val {index}"] = (xs, history.val_loss[:n])
        if all(a is not None for a in history.val_accuracy[:n]):
            curves[f"accuracy {index}"] = (xs, history.val_accuracy[:n])
    return curves


def _comparison_limits(axes, comparison, x: str, extent: float | None, steady: bool) -> None:
    """The x axes over the runs' planned range (running curves grow into it) and ``extent``;
    before any evaluation (the loss 0 to 1), or ``steady``: steady y axes (:func:`_steady_y`)."""
    losses = [v for history in comparison.histories for v in history.val_loss if v == v]
    if not losses:
        axes[0].set_ylim(0, 1)
    if steady or not losses:
        _steady_y(axes[0], axes[1], losses)
    _x_from_zero(axes, [extent] + [planned_extent(h, x) for h in comparison.histories])


LOG_SCALED = ("max_lr", "weight_decay", "div_factor", "batch_size")


def plot_search(search, axes=None) -> Figure:
    """The metric of every complete trial against each searched hyper-parameter (one panel
    each; log axes for LR, weight decay, divisor and batch size, labelled at 1, 2, 5 (or every
    digit) when the trials span less than a decade); the best trial is starred."""
    frame = search.table()
    done = frame[frame["state"] == "complete"]
    names = sorted(search.space)
    if axes is None:
        figure = Figure(figsize=(3.6 * len(names) + 0.4, 3.4), layout="constrained")
        axes = figure.subplots(1, len(names), squeeze=False)[0]
    figure = axes[0].figure
    metric = search.metric
    best = search.best
    for ax, name in zip(axes, names):
        values = done[name].tolist()
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        xs = values if numeric else [str(v) for v in values]
        ax.scatter(xs, done[metric], s=22, alpha=0.8, color="tab:blue")
        if best is not None:
            chosen = best[name] if numeric else str(best[name])
            ax.scatter([chosen], [best[metric]], marker="*", s=160, color="tab:red",
                       label=f"best (trial {best['trial']})", zorder=3)
        positive = [v for v in values if numeric and v > 0]
        if numeric and name in LOG_SCALED and positive:
            if len(positive) == len(values):
                ax.set_xscale("log")
            else:  # zero weight decay among the values: linear near 0, log above
                ax.set_xscale("symlog", linthresh=min(positive))
            ax.xaxis.set_minor_formatter(NullFormatter())  # labels on decades only...
            low, high = min(positive), max(positive)
            if len(positive) == len(values) and high < 10 * low:  # ...unless under a decade
                from matplotlib.ticker import FuncFormatter, LogLocator
                subs = (1.0, 2.0, 5.0) if high >= 3 * low else range(1, 10)
                ax.xaxis.set_major_locator(LogLocator(subs=subs))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set(xlabel=name.replace("_", " "), ylabel=metric.replace("_", " "))
    axes[0].set_title(f"{search.task['sampler']} search: {len(done)} trials", loc="left")
    if best is not None:
        axes[-1].legend(fontsize="small")
    return figure


def plot_search_curves(search, top: int = 5, ax=None) -> Figure:
    """Validation accuracy (or loss) along the run of the ``top`` best complete trials."""
    figure, ax = _axes(ax)
    metric = search.metric
    maximize = metric == "val_accuracy"
    trials = sorted(search.completed(), key=lambda t: t.value, reverse=maximize)[:top]
    for index, trial in enumerate(trials):
        curve = trial.user_attrs.get("curve", {})
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.params.items())
        ax.plot(curve.get("step", []), curve.get(metric, []), "o-", ms=3, color=f"C{index}",
                label=f"#{trial.number}: {params}")
    ax.set(xlabel="parameter updates", ylabel=metric.replace("_", " "),
           title=f"The {len(trials)} best trials")
    if trials:
        ax.legend(fontsize="x-small")
    return figure
