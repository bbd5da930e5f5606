"""1cycle, CLR, batch-size schedules, and previews that match what fit applies."""

import copy

import pytest
import torch
from torch import nn

from disciplined_widgets import TensorLoader, fit
from disciplined_widgets.models import MLP, SmallCNN
from disciplined_widgets.schedules import BatchSizeSchedule, cyclical, one_cycle, preview


def sgd(lr=0.1, momentum=0.9):
    return torch.optim.SGD(MLP(in_features=64).parameters(), lr=lr, momentum=momentum)


def run(optimizer, scheduler, steps):
    lrs, momenta = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group.get("momentum", group.get("betas", (None,))[0]))
        optimizer.step()
        scheduler.step()
    return lrs, momenta


def test_smith_one_cycle_is_linear_with_a_final_annihilation():
    opt = sgd()
    lrs, momenta = run(opt, one_cycle(opt, max_lr=1.0, total_steps=200), 200)
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0)
    peak = lrs.index(max(lrs))
    assert peak == pytest.approx(0.45 * 200, abs=1)
    assert lrs[peak // 2] == pytest.approx(0.1 + 0.9 * (peak // 2) / peak, rel=1e-6)  # linear
    assert lrs[2 * peak] == pytest.approx(0.1, rel=1e-3)  # back to the minimum at 90%
    assert lrs[-1] == pytest.approx(0.1 / 100)  # annihilated to 1/100 of the minimum
    assert momenta[0] == 0.95 and momenta[peak] == pytest.approx(0.85) and momenta[-1] == 0.95


def test_fastai_style_is_cosine_in_two_phases():
    opt = sgd()
    lrs, _ = run(opt, one_cycle(opt, max_lr=1.0, total_steps=100, style="fastai"), 100)
    peak = lrs.index(max(lrs))
    assert peak == pytest.approx(25, abs=1)
    quarter = peak // 4
    assert lrs[quarter] < 0.1 + 0.9 * quarter / peak  # a cosine starts slower than a line
    assert lrs[-1] == pytest.approx(0.1 / 1e4)


def test_adam_beta1_cycles_and_no_momentum_leaves_it():
    adam = torch.optim.Adam(MLP(in_features=64).parameters(), lr=1e-3, betas=(0.9, 0.999))
    _, betas = run(adam, one_cycle(adam, max_lr=1e-2, total_steps=50), 50)
    assert betas[0] == 0.95 and min(betas) == pytest.approx(0.85, abs=0.005)
    assert adam.param_groups[0]["betas"][1] == 0.999
    opt = sgd()
    _, momenta = run(opt, one_cycle(opt, 1.0, 50, momentum=None), 50)
    assert set(momenta) == {0.9}


def test_stepping_past_the_end_explains_itself_and_holds_the_last_lr():
    opt = sgd()
    schedule = one_cycle(opt, max_lr=1.0, total_steps=10)
    run(opt, schedule, 10)  # fit steps the scheduler after every one of the 10 steps
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)  # torch would extrapolate below 0
    with pytest.raises(RuntimeError, match="total_steps=10"):
        schedule.step()


@pytest.mark.parametrize("kwargs,match", [
    (dict(max_lr=0), "max_lr"), (dict(total_steps=0), "total_steps"), (dict(div=1), "div"),
    (dict(pct_start=0.6), "pct_start"), (dict(style="cosine"), "style"),
    (dict(momentum=(0.85, 1.0)), "momentum"), (dict(final_div=-1), "final_div"),
])
def test_one_cycle_bad_input(kwargs, match):
    opt = sgd()
    args = dict(max_lr=1.0, total_steps=10) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        one_cycle(opt, **args)
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]


def test_one_cycle_needs_momentum_to_cycle_it():
    opt = torch.optim.Adagrad(MLP().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="momentum=None"):
        one_cycle(opt, 1.0, 10)
    one_cycle(opt, 1.0, 10, momentum=None)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclical_modes(mode):
    opt = sgd()
    lrs, _ = run(opt, cyclical(opt, 0.1, 1.0, step_size_up=10, mode=mode, gamma=0.99), 40)
    assert lrs[0] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.1)
    if mode == "triangular":
        assert lrs[10] == lrs[30] == pytest.approx(1.0)
    else:
        assert lrs[30] < lrs[10]
    with pytest.raises(ValueError, match="max_lr"):
        cyclical(opt, 1.0, 0.1, 10)


def test_batch_size_schedule_grow_hybrid_and_decay():
    grow = BatchSizeSchedule(128, milestones=(2, 4), factor=5)
    assert [grow(e) for e in range(6)] == [128, 128, 640, 640, 3200, 3200]
    assert {grow.lr_factor(e) for e in range(6)} == {1.0}
    hybrid = BatchSizeSchedule(128, milestones=(2, 4, 6), factor=5, max_batch_size=1000)
    assert [hybrid(e) for e in range(8)] == [128, 128, 640, 640, 640, 640, 640, 640]
    assert [hybrid.lr_factor(e) for e in range(8)] == pytest.approx([1, 1, 1, 1, 0.2, 0.2, 0.04, 0.04])
    decay = BatchSizeSchedule(128, milestones=(2,), factor=10, max_batch_size=128)
    assert decay(3) == 128 and decay.lr_factor(3) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="milestones"):
        BatchSizeSchedule(128, milestones=(4, 2))
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchSizeSchedule(128, milestones=(2,), max_batch_size=64)


def test_preview_leaves_the_optimizer_alone():
    opt = sgd()
    before = copy.deepcopy(opt.state_dict())
    p = preview(opt, lambda probe: one_cycle(probe, 1.0, 50), steps=50, steps_per_epoch=10)
    assert len(p.lr) == 50 and 0.95 < max(p.lr) <= 1.0 and p.epoch[-1] == 5.0
    assert opt.state_dict() == before and p.batch_size == [None] * 50
    with pytest.raises(ValueError, match="exactly one"):
        preview(opt, steps=5)


def _fit_and_preview(digits, schedulers, batch_size_schedule=None, epochs=3):
    loader = TensorLoader(digits.x_train, digits.y_train, 64, drop_last=True)
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    expected = preview(opt, schedulers, epochs=epochs, train_loader=loader,
                       batch_size_schedule=batch_size_schedule)
    made = schedulers(opt) if schedulers else []
    history = fit(model, opt, nn.CrossEntropyLoss(), loader, epochs=epochs,
                  schedulers=[made] if made else [], batch_size_schedule=batch_size_schedule)
    return expected, history


def test_preview_equals_what_fit_applies_with_one_cycle(digits):
    total = 3 * (len(digits.x_train) // 64)
    expected, history = _fit_and_preview(digits, lambda opt: one_cycle(opt, 0.5, total))
    assert history.lr == pytest.approx(expected.lr, rel=1e-12)
    assert history.momentum == pytest.approx(expected.momentum, rel=1e-12)
    assert history.batch_size == expected.batch_size and history.epoch == pytest.approx(expected.epoch)


def test_preview_equals_what_fit_applies_with_a_hybrid_batch_schedule(digits):
    schedule = BatchSizeSchedule(64, milestones=(1, 2), factor=2, max_batch_size=128)
    expected, history = _fit_and_preview(digits, None, schedule)
    assert history.batch_size == expected.batch_size
    assert sorted(set(expected.batch_size)) == [64, 128]
    assert history.lr == pytest.approx(expected.lr) and min(history.lr) == pytest.approx(0.025)


def _two_groups():
    torch.manual_seed(0)
    body, head = nn.Linear(4, 4), nn.Linear(4, 2)
    return torch.optim.SGD([{"params": body.parameters(), "lr": 0.01},
                            {"params": head.parameters(), "lr": 0.1}], lr=0.01, momentum=0.9)


def test_discriminative_lrs_keep_their_ratios_under_one_cycle_and_clr():
    for build in (lambda opt: one_cycle(opt, 1.0, 50),
                  lambda opt: cyclical(opt, 0.1, 1.0, step_size_up=5)):
        opt = _two_groups()
        schedule = build(opt)
        for _ in range(30):
            body, head = (g["lr"] for g in opt.param_groups)
            assert head == pytest.approx(10 * body)
            opt.step()
            schedule.step()
        assert max(g["lr"] for g in opt.param_groups) <= 10.0 + 1e-9


@pytest.mark.parametrize("call,error,match", [
    (lambda opt: one_cycle(opt, 0.1, 4, style="fastai"), ValueError, "total_steps=4 is too short"),
    (lambda opt: one_cycle(opt, 0.1, 2), ValueError, "too short for pct_start"),
    (lambda opt: one_cycle(opt, 0.1, 100, final_div=0.5), ValueError, "final_div must be >= 1"),
    (lambda opt: one_cycle(opt, 0.1, 100, momentum=0.9), TypeError, r"momentum must be a pair"),
    (lambda opt: cyclical(opt, 0.01, 0.1, 5, momentum=(0.85, 0.95)), ValueError, "min <= max"),
    (lambda opt: one_cycle(opt, 0.1, 100, momentum=(1.2, 0.85)), ValueError, r"momentum must be in \[0, 1\)"),
    (lambda opt: one_cycle(opt, 0.1, 100, pct_start="0.3"), TypeError, "pct_start must be a number"),
    (lambda opt: cyclical(opt, 0.01, 0.1, 5, gamma=-1), ValueError, r"gamma must be in \(0, 1\]"),
    (lambda opt: cyclical(opt, 0.01, 0.1, 5, gamma=float("nan")), ValueError, "gamma"),
    (lambda opt: cyclical(opt, 0.01, 0.1, 5, gamma="0.99"), TypeError, "gamma must be a number"),
    (lambda opt: BatchSizeSchedule(16, 5), TypeError, "milestones must be a list of epochs"),
])
def test_bad_schedules_fail_clearly_and_leave_the_optimizer_alone(call, error, match):
    opt = _two_groups()
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(error, match=match):
        call(opt)
    assert [dict(g) for g in opt.param_groups] == before


def test_preview_of_adamw_uses_its_own_settings():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.85, 0.99), weight_decay=0.05)
    plan = preview(optimizer, lambda probe: one_cycle(probe, 1e-2, 20), steps=20, steps_per_epoch=10)
    assert len(plan.lr) == 20 and max(plan.lr) == pytest.approx(1e-2)
    assert optimizer.param_groups[0]["lr"] == 1e-3  # the user's optimizer untouched


class CountingSGD(torch.optim.SGD):
    """SGD that counts its steps, to see how much work a preview does."""

    steps = 0

    def step(self, closure=None):
        CountingSGD.steps += 1
        return super().step(closure)


def test_preview_of_a_constant_run_takes_no_optimizer_steps():
    """Without schedulers the settings cannot change, so a long plan costs no step of the probe."""
    optimizer = CountingSGD(nn.Linear(3, 2).parameters(), lr=0.05, momentum=0.8)
    plan = preview(optimizer, epochs=50, steps_per_epoch=200)
    assert CountingSGD.steps == 0
    assert len(plan.lr) == 10_000 and set(plan.lr) == {0.05} and set(plan.momentum) == {0.8}
    preview(optimizer, lambda probe: one_cycle(probe, 0.5, 30), steps=30, steps_per_epoch=10)
    assert CountingSGD.steps == 30  # a schedule is stepped as fit steps it


def test_one_cycle_reverse_momentum_rises_with_the_lr():
    """momentum=(at the lowest LR, at the peak) in either order: (0.85, 0.95) is the reverse cycle."""
    optimizer = sgd()
    lrs, momenta = run(optimizer, one_cycle(optimizer, 1.0, 100, momentum=(0.85, 0.95)), 100)
    peak = lrs.index(max(lrs))
    assert momenta[0] == pytest.approx(0.85) and momenta[peak] == pytest.approx(0.95)
    assert all(a <= b for a, b in zip(momenta[:peak], momenta[1:peak + 1]))  # up with the LR
    with pytest.raises(ValueError, match="momentum"):
        one_cycle(sgd(), 1.0, 100, momentum=(0.85, 1.0))


def test_compare_runs_the_cyclical_and_the_reverse_momentum_cycle(digits):
    from disciplined_widgets.comparisons import compare

    torch.manual_seed(0)
    model = MLP(in_features=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    train = TensorLoader(digits.x_train[:256], digits.y_train[:256], 32, seed=0)
    runs = compare(model, optimizer, nn.CrossEntropyLoss(), train, parameter="momentum",
                   values=["cyclical", "reverse"], epochs=2, max_lr=0.3)
    cyclic, reverse = runs.histories
    peak = cyclic.lr.index(max(cyclic.lr))
    assert cyclic.momentum[0] == pytest.approx(0.95) and cyclic.momentum[peak] == min(cyclic.momentum)
    assert reverse.momentum[0] == pytest.approx(0.85) and reverse.momentum[peak] == max(reverse.momentum)
    assert max(reverse.momentum) > 0.94  # up to 0.95 with the LR
    assert runs.labels == ["cyclical", "reverse"] and optimizer.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ValueError, match="reverse momentum needs max_lr"):
        compare(model, optimizer, nn.CrossEntropyLoss(), train, parameter="momentum",
                values=["reverse"], epochs=1)


def test_compare_on_a_plain_dataloader_with_a_dict_model_and_its_own_loss():
    """A user's DataLoader (its batch size cannot be set), a two-input model returning a dict
    with its own loss (below zero), AdamW: compared, and the loader left as it was."""
    from torch.utils.data import DataLoader

    from disciplined_widgets.comparisons import compare

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.left, self.right = nn.Linear(8, 1), nn.Linear(4, 1)

        def forward(self, left, right, target):
            out = (self.left(left) + self.right(right)).squeeze(-1)
            return {"loss": ((out - target) ** 2).mean() - 5.0}

    g = torch.Generator().manual_seed(0)
    rows = [{"left": torch.randn(8, generator=g), "right": torch.randn(4, generator=g),
             "target": torch.randn((), generator=g)} for _ in range(64)]
    loader = DataLoader(rows, batch_size=16)
    model = TwoInputs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    runs = compare(model, optimizer, None, loader, loader, parameter="momentum",
                   values=[0.9, "reverse"], epochs=2, max_lr=1e-2)
    assert [h.steps_done for h in runs.histories] == [8, 8] and loader.batch_size == 16
    assert all(h.val_loss[-1] < 0 for h in runs.histories)
