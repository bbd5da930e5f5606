"""ScheduleWidget: design a 1cycle or CLR schedule, with batch-size milestones, and see it."""

from __future__ import annotations

import html

import ipywidgets as widgets
import torch

from ..plots import plot_schedule
from ..schedules import BatchSizeSchedule, SchedulePreview, cyclical, one_cycle, preview
from .controls import control, format_lr, mark, parse_epochs, wrapping_row
from .live_plot import LivePlot


def _probe_optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


class ScheduleWidget(widgets.VBox):
    """Controls for a schedule and an instant preview of LR, momentum and batch size per step.

    Give the epoch length as ``train_loader`` (needed for batch-size milestones) or
    ``steps_per_epoch``. ``schedulers(optimizer)`` builds the schedulers for
    :func:`~disciplined_widgets.fit`, ``batch_size_schedule`` the batch-size schedule, and
    ``settings`` the values as a dict. ``follow(range_test_widget)`` takes the LR bounds
    from a :class:`RangeTestWidget` whenever they change.
    """

    def __init__(self, train_loader=None, *, steps_per_epoch: int | None = None, epochs: int = 10,
                 optimizer: torch.optim.Optimizer | None = None, policy: str = "1cycle",
                 max_lr: float = 0.1, div: float = 10.0, pct_start: float = 0.45,
                 final_div: float = 100.0, momentum=(0.95, 0.85), style: str = "smith"):
        if (train_loader is None) == (steps_per_epoch is None):
            raise ValueError("give exactly one of train_loader and steps_per_epoch")
        self.train_loader, self.steps_per_epoch = train_loader, steps_per_epoch
        self.optimizer = optimizer
        self.policy = control(widgets.ToggleButtons(
            options=["1cycle", "CLR", "constant"], value=policy, description="policy",
            style={"button_width": "80px"}),
            "1cycle: one rise and fall (1803.09820); CLR: repeated cycles (1506.01186); "
            "constant: the max LR throughout")
        self.cycle_style = control(widgets.Dropdown(
            options=["smith", "fastai"], value=style, description="1cycle shape"),
            "smith: linear up and down, then a short annealing; fastai: two cosine phases")
        self.max_lr = control(widgets.FloatLogSlider(
            max_lr, min=-6, max=1, step=0.05, description="max LR"),
            "the highest LR of the cycle: the range test's upper bound")
        self.div = control(widgets.FloatSlider(
            div, min=2, max=50, step=0.5, description="start LR = max LR /"),
            "the cycle starts (and CLR bottoms out) at max LR divided by this")
        self.pct_start = control(widgets.FloatSlider(
            pct_start, min=0.05, max=0.49, step=0.01, description="share rising"),
            "share of the steps over which the LR rises to its maximum")
        self.final_div = control(widgets.FloatLogSlider(
            final_div, min=0, max=5, step=0.25, description="end LR = start LR /"),
            "the last steps anneal the LR down to the start LR divided by this")
        self.cycle_momentum = control(widgets.Checkbox(
            momentum is not None, description="cyclical momentum", indent=False),
            "momentum falls while the LR rises, and rises again (1803.09820 section 4.3)")
        high, low = momentum or (0.95, 0.85)
        self.momentum = control(widgets.FloatRangeSlider(
            value=(low, high), min=0.5, max=0.99, step=0.01, description="momentum range"),
            "lowest momentum (at the LR's peak) to highest (at its start and end)")
        self.epochs = control(widgets.BoundedIntText(
            epochs, min=1, max=10_000, description="epochs"), "length of the training")
        self.clr_mode = control(widgets.Dropdown(
            options=["triangular", "triangular2", "exp_range"], description="CLR mode"),
            "triangular: same cycles; triangular2: amplitude halves each cycle; "
            "exp_range: amplitude decays by 0.99994 per step")
        self.clr_half_cycle = control(widgets.BoundedFloatText(
            2.0, min=0.1, max=1000, step=0.5, description="CLR half cycle"),
            "in epochs: from the lowest LR to the highest (Smith: 2 to 10 epochs)")
        self.milestones = control(widgets.Text(
            "", placeholder="e.g. 30, 60", description="grow batch at epochs"),
            "epochs at which the batch size grows instead of the LR decaying (1711.00489)")
        self.batch_factor = control(widgets.BoundedFloatText(
            5.0, min=1.01, max=100, description="batch growth factor"),
            "the batch size is multiplied by this at each milestone")
        self.max_batch = control(widgets.BoundedIntText(
            0, min=0, max=10**7, description="largest batch (0: none)"),
            "past this batch size, divide the LR instead (the hybrid)")
        self.message = widgets.HTML()
        # nothing trains here: redraw as soon as the design changes
        self.plot = LivePlot(lambda p: plot_schedule(p), max_fps=5, budget=1.0)
        controls = [self.policy, self.cycle_style, self.max_lr, self.div, self.pct_start,
                    self.final_div, self.cycle_momentum, self.momentum, self.epochs,
                    self.clr_mode, self.clr_half_cycle, self.milestones, self.batch_factor,
                    self.max_batch]
        for widget in controls:
            widget.observe(lambda _: self.refresh(), "value")
        super().__init__([
            wrapping_row([widgets.VBox(controls[:9]), widgets.VBox([*controls[9:], self.message])]),
            self.plot.image,
        ])
        self.refresh()

    def __repr__(self) -> str:
        return "ScheduleWidget: a live widget (open the notebook in Jupyter to use it)"

    # ---- what the core needs ----

    @property
    def batch_size_schedule(self) -> BatchSizeSchedule | None:
        text = self.milestones.value.strip()
        if not text:
            return None
        if self.train_loader is None or not hasattr(self.train_loader, "batch_size"):
            raise ValueError("batch-size milestones need a train_loader with a batch size")
        try:
            milestones = parse_epochs(text)
        except ValueError as error:
            raise ValueError(f"grow batch at epochs: {error}") from None
        return BatchSizeSchedule(self.train_loader.batch_size, milestones,
                                 factor=self.batch_factor.value,
                                 max_batch_size=self.max_batch.value or None)

    def _epoch_length(self) -> dict:
        if self.train_loader is None:
            return {"steps_per_epoch": self.steps_per_epoch}
        return {"train_loader": self.train_loader}

    def total_steps(self) -> int:
        return len(preview(_probe_optimizer(), epochs=self.epochs.value,
                           batch_size_schedule=self.batch_size_schedule, **self._epoch_length()).step)

    def steps_per_epoch_now(self) -> int:
        return self.steps_per_epoch or len(self.train_loader)

    def schedulers(self, optimizer: torch.optim.Optimizer) -> list:
        """The schedulers for ``fit(schedulers=...)``, built on ``optimizer``. Like any torch
        scheduler, each sets the optimizer's LR when it is built; under ``"constant"`` it is a
        ``LambdaLR`` that holds the first param group at the max LR (the others in proportion)."""
        momentum = ((self.momentum.value[1], self.momentum.value[0])
                    if self.cycle_momentum.value else None)
        if self.policy.value == "1cycle":
            return [one_cycle(optimizer, self.max_lr.value, self.total_steps(),
                              div=self.div.value, final_div=self.final_div.value,
                              pct_start=self.pct_start.value, momentum=momentum,
                              style=self.cycle_style.value)]
        if self.policy.value == "CLR":
            half = max(1, round(self.clr_half_cycle.value * self.steps_per_epoch_now()))
            return [cyclical(optimizer, self.max_lr.value / self.div.value, self.max_lr.value,
                             half, mode=self.clr_mode.value, gamma=0.99994, momentum=momentum)]
        factor = self.max_lr.value / optimizer.param_groups[0]["lr"]
        return [torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: factor)]

    @property
    def settings(self) -> dict:
        return {"policy": self.policy.value, "style": self.cycle_style.value,
                "max_lr": self.max_lr.value, "div": self.div.value,
                "pct_start": self.pct_start.value, "final_div": self.final_div.value,
                "momentum": (self.momentum.value[1], self.momentum.value[0])
                if self.cycle_momentum.value else None,
                "epochs": self.epochs.value, "clr_mode": self.clr_mode.value,
                "clr_half_cycle_epochs": self.clr_half_cycle.value,
                "batch_size_schedule": self.batch_size_schedule}

    def preview(self) -> SchedulePreview:
        optimizer = self.optimizer or _probe_optimizer()
        return preview(optimizer, self.schedulers, epochs=self.epochs.value,
                       batch_size_schedule=self.batch_size_schedule, **self._epoch_length())

    # ---- interaction ----

    def describe(self) -> str:
        """The schedule in a few words (the label of a run that used it)."""
        policy, top = self.policy.value, format_lr(self.max_lr.value)
        text = {"1cycle": f"1cycle to {top} (start /{self.div.value:g})",
                "CLR": f"CLR {self.clr_mode.value} {format_lr(self.max_lr.value / self.div.value)}"
                       f" to {top}",
                "constant": f"constant LR {top}"}[policy]
        if self.cycle_momentum.value and policy != "constant":
            low, high = self.momentum.value
            text += f", momentum {high:g} to {low:g}"
        epochs = self.epochs.value
        text += f", {epochs} epoch{'' if epochs == 1 else 's'}"
        if self.milestones.value.strip():
            text += f", batch x{self.batch_factor.value:g} at {self.milestones.value.strip()}"
        return text

    def _grey_out_what_does_not_apply(self) -> None:
        policy = self.policy.value
        for widget in (self.cycle_style, self.pct_start, self.final_div):
            widget.disabled = policy != "1cycle"
        for widget in (self.clr_mode, self.clr_half_cycle):
            widget.disabled = policy != "CLR"
        self.div.disabled = self.cycle_momentum.disabled = policy == "constant"
        self.momentum.disabled = policy == "constant" or not self.cycle_momentum.value
        growing = bool(self.milestones.value.strip())
        self.batch_factor.disabled = self.max_batch.disabled = not growing

    def refresh(self) -> None:
        """Recompute the preview (called on every change)."""
        self._grey_out_what_does_not_apply()
        fastai = self.cycle_style.value == "fastai"
        self.pct_start.max = 0.95 if fastai else 0.49
        try:
            self.batch_size_schedule
        except (ValueError, TypeError) as error:
            return self._show_problem(error, self.milestones)
        mark(self.milestones, None)
        try:
            shown = self.preview()
        except (ValueError, TypeError) as error:
            return self._show_problem(error)
        if self.policy.value == "constant":
            self.message.value = f"{len(shown.step)} steps at a constant LR of {self.max_lr.value:.3g}"
        else:
            self.message.value = (f"{len(shown.step)} steps; LR {min(shown.lr):.3g} to "
                                  f"{max(shown.lr):.3g}")
        if self.plot.renders:
            self.plot.update(shown)
        else:
            self.plot.flush(shown)  # the first preview at once

    def _show_problem(self, error: Exception, field=None) -> None:
        """The message in red (and ``field`` outlined); the preview keeps its last design."""
        if field is not None:
            mark(field, str(error))
        self.message.value = (f"<span style='color:#c62828'>{html.escape(str(error), quote=False)} "
                              f"(the preview shows the last valid design)</span>")

    def follow(self, range_test_widget) -> None:
        """Set max LR and the divisor from the range test's chosen bounds, now and on change."""
        def apply(_=None):
            bounds = range_test_widget.selected_bounds
            if bounds is not None:
                low, high = bounds
                self.max_lr.value = high
                self.div.value = min(max(high / low, self.div.min), self.div.max)
        range_test_widget.bounds.observe(apply, "value")
        apply()
