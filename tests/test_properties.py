"""Properties that must hold for every input, checked with hypothesis: schedules stay within
their bounds, suggestions do not depend on an offset or a scale of the losses, TensorLoader
gives every sample once per epoch, and results survive strict JSON."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from disciplined_widgets import History, RangeTestResult, TensorLoader
from disciplined_widgets.schedules import cyclical, one_cycle
from disciplined_widgets.suggest import suggest, usable_window

FAST = settings(max_examples=60, deadline=None)
lrs_ = st.floats(1e-5, 10.0)


def _optimizer(lr=0.01):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


@FAST
@given(max_lr=lrs_, total=st.integers(3, 300), div=st.floats(1.5, 100), style=st.sampled_from(["smith", "fastai"]),
       high=st.floats(0.5, 0.99), gap=st.floats(0, 0.4))
def test_one_cycle_stays_within_its_bounds(max_lr, total, div, style, high, gap):
    optimizer = _optimizer()
    momentum = (high, max(0.0, high - gap))
    try:
        schedule = one_cycle(optimizer, max_lr, total, div=div, style=style, momentum=momentum)
    except ValueError as error:  # too short for its rise: refused with the reason
        assert "too short" in str(error) and {"smith": 0.45, "fastai": 0.25}[style] * total <= 1
        return
    for _ in range(total):
        group = optimizer.param_groups[0]
        assert math.isfinite(group["lr"]) and 0 < group["lr"] <= max_lr * (1 + 1e-9)
        assert momentum[1] - 1e-9 <= group["momentum"] <= momentum[0] + 1e-9
        optimizer.step()
        schedule.step()


@FAST
@given(base=st.floats(1e-5, 1.0), ratio=st.floats(1.1, 100), up=st.integers(1, 20),
       mode=st.sampled_from(["triangular", "triangular2", "exp_range"]), gamma=st.floats(0.5, 1.0))
def test_clr_stays_between_its_bounds(base, ratio, up, mode, gamma):
    optimizer = _optimizer()
    schedule = cyclical(optimizer, base, base * ratio, up, mode=mode, gamma=gamma)
    for _ in range(5 * up):
        lr = optimizer.param_groups[0]["lr"]
        assert math.isfinite(lr) and base * (1 - 1e-9) <= lr <= base * ratio * (1 + 1e-9)
        optimizer.step()
        schedule.step()


curves = st.lists(st.floats(-5, 5), min_size=10, max_size=80)


@FAST
@given(curve=curves, offset=st.floats(-100, 100), scale=st.floats(0.01, 100))
def test_suggestions_ignore_an_offset_and_a_scale_of_the_losses(curve, offset, scale):
    lrs = [10 ** (-6 + 7 * i / len(curve)) for i in range(len(curve))]
    moved = [offset + scale * x for x in curve]
    window = usable_window(curve)
    moved_window = usable_window(moved)
    # equal up to the rounding of the shifted floats: at most a point apart
    assert abs(window[1] - moved_window[1]) <= 1
    if window == moved_window:
        a, b = suggest(lrs, curve), suggest(lrs, moved)
        assert (a.bounds is None) == (b.bounds is None)


@FAST
@given(n=st.integers(1, 200), batch=st.integers(1, 64), seed=st.integers(0, 2**31), drop_last=st.booleans())
def test_tensor_loader_gives_each_sample_once_per_epoch(n, batch, seed, drop_last):
    loader = TensorLoader(torch.arange(n).float()[:, None], torch.arange(n), batch, seed=seed,
                          drop_last=drop_last)
    seen = torch.cat([y for _, y in loader]) if len(loader) else torch.empty(0, dtype=torch.long)
    assert len(seen) == (n // batch * batch if drop_last else n) == len(set(seen.tolist()))
    assert all(len(y) == batch for _, y in list(loader)[:-1])


numbers = st.floats(allow_nan=True, allow_infinity=True)


@FAST
@given(losses=st.lists(numbers, min_size=1, max_size=30))
def test_history_survives_strict_json(losses):
    n = len(losses)
    history = History(step=list(range(1, n + 1)), epoch=[i / n for i in range(1, n + 1)],
                      _train_loss=list(losses), lr=[0.1] * n, momentum=[None] * n,
                      batch_size=[8] * n, time=[0.0] * n, eval_step=[n], eval_epoch=[1.0],
                      val_loss=[losses[-1]], val_accuracy=[None], eval_time=[0.0],
                      val_metrics={"top3": [losses[0]]}, stop_reason="completed", total_steps=n)
    text = json.dumps(history.to_dict(), allow_nan=False)
    again = History.from_dict(json.loads(text))
    for a, b in zip(again.train_loss, losses):
        assert a == b or (not math.isfinite(b) and math.isnan(a))


@FAST
@given(losses=st.lists(numbers, min_size=2, max_size=30))
def test_range_test_result_survives_strict_json(losses):
    result = RangeTestResult(lrs=[10 ** (-3 + i / 10) for i in range(len(losses))], losses=losses,
                             stop_reason="completed", val_steps=[1], val_lrs=[1e-3],
                             val_losses=[math.inf], val_accuracies=[None])
    again = RangeTestResult.from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert again.lrs == result.lrs and math.isnan(again.val_losses[0])


@pytest.mark.parametrize("change,match", [
    (lambda d: d.pop("lr"), r"missing keys \['lr'\]"),
    (lambda d: d.update(colour="red"), r"unknown keys \['colour'\]"),
    (lambda d: d.update(version=2), "reads version 1, got version 2"),
    (lambda d: d["lr"].append(0.1), "lists of different lengths"),
])
def test_a_history_dict_that_is_not_one_is_refused(change, match):
    history = History(step=[1], epoch=[1.0], _train_loss=[2.3], lr=[0.1], momentum=[0.9],
                      batch_size=[8], time=[0.0], stop_reason="completed", total_steps=1)
    data = history.to_dict()
    change(data)
    with pytest.raises(ValueError, match=match):
        History.from_dict(data)
