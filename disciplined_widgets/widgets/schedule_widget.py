"""ScheduleWidget: design a 1cycle or CLR schedule, with batch-size milestones, and see it."""

from __future__ import annotations

import ipywidgets as widgets
import torch

from ..plots import plot_schedule
from ..schedules import BatchSizeSchedule, SchedulePreview, cyclical, one_cycle, preview
from .live_plot import LivePlot

WIDE = {"description_width": "150px"}


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
        self.policy = widgets.ToggleButtons(options=["1cycle", "CLR", "constant"], value=policy,
                                            description="policy", style=WIDE)
        self.cycle_style = widgets.Dropdown(options=["smith", "fastai"], value=style,
                                       description="1cycle style", style=WIDE)
        self.max_lr = widgets.FloatLogSlider(max_lr, min=-6, max=1, step=0.05,
                                             description="max LR", style=WIDE)
        self.div = widgets.FloatSlider(div, min=2, max=50, step=0.5, description="min = max /",
                                       style=WIDE)
        self.pct_start = widgets.FloatSlider(pct_start, min=0.05, max=0.49, step=0.01,
                                             description="rise (share)", style=WIDE)
        self.final_div = widgets.FloatLogSlider(final_div, min=0, max=5, step=0.25,
                                                description="end = min /", style=WIDE)
        self.cycle_momentum = widgets.Checkbox(momentum is not None, description="cyclical momentum")
        high, low = momentum or (0.95, 0.85)
        self.momentum = widgets.FloatRangeSlider(value=(low, high), min=0.5, max=0.99, step=0.01,
                                                 description="momentum", style=WIDE)
        self.epochs = widgets.BoundedIntText(epochs, min=1, max=10_000, description="epochs",
                                             style=WIDE)
        self.clr_mode = widgets.Dropdown(options=["triangular", "triangular2", "exp_range"],
                                         description="CLR mode", style=WIDE)
        self.clr_half_cycle = widgets.BoundedFloatText(2.0, min=0.1, max=1000, step=0.5,
                                                       description="half cycle (epochs)", style=WIDE)
        self.milestones = widgets.Text("", placeholder="e.g. 30, 60", description="batch x at epochs",
                                       style=WIDE)
        self.batch_factor = widgets.BoundedFloatText(5.0, min=1.01, max=100, description="by",
                                                     style=WIDE)
        self.max_batch = widgets.BoundedIntText(0, min=0, max=10**7,
                                                description="max batch (0: none)", style=WIDE)
        self.message = widgets.HTML()
        # nothing trains here: redraw as soon as the design changes
        self.plot = LivePlot(lambda p: plot_schedule(p), max_fps=5, budget=1.0)
        controls = [self.policy, self.cycle_style, self.max_lr, self.div, self.pct_start,
                    self.final_div, self.cycle_momentum, self.momentum, self.epochs,
                    self.clr_mode, self.clr_half_cycle, self.milestones, self.batch_factor,
                    self.max_batch]
        for control in controls:
            control.observe(lambda _: self.refresh(), "value")
        super().__init__([
            widgets.HBox([widgets.VBox(controls[:9]),
                          widgets.VBox([*controls[9:], self.message])]),
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
            milestones = tuple(int(p) for p in text.replace(";", ",").split(",") if p.strip())
        except ValueError:
            raise ValueError(f"batch x at epochs: expected epochs such as '30, 60', got {text!r}") from None
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
        """The schedulers for ``fit(schedulers=...)``, built on ``optimizer``.

        Under ``"constant"`` there is no scheduler: every param group's LR is set to the max LR
        slider's value here, at once, and stays so after training (the message line says so),
        as a scheduler would set it at its first step."""
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
        for group in optimizer.param_groups:  # constant: the max LR slider's value throughout
            group["lr"] = self.max_lr.value
        return []

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

    def refresh(self) -> None:
        """Recompute the preview (called on every change)."""
        fastai = self.cycle_style.value == "fastai"
        self.pct_start.max = 0.95 if fastai else 0.49
        try:
            shown = self.preview()
        except (ValueError, TypeError) as error:
            self.message.value = f"<span style='color:#c62828'>{error}</span>"
            return
        if self.policy.value == "constant":
            self.message.value = (f"{len(shown.step)} steps at a constant LR of "
                                  f"{self.max_lr.value:.3g}: building the schedule sets every "
                                  f"param group's LR to it (no scheduler)")
        else:
            self.message.value = (f"{len(shown.step)} steps; LR {min(shown.lr):.3g} to "
                                  f"{max(shown.lr):.3g}")
        if self.plot.renders:
            self.plot.update(shown)
        else:
            self.plot.flush(shown)  # the first preview at once

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
