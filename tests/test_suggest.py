"""Suggestion rules on curves with known answers."""

import math

import numpy as np
import pytest

from disciplined_widgets.suggest import ema, suggest, usable_window, valley_index

LRS = list(np.logspace(-6, 1, 141))  # 20 points per decade


def curve(drop_at=1e-2, width=0.3, blow_up_at=1.0):
    """Loss 2.3 falling to 0.3 around ``drop_at`` (a logistic in log10 lr), then rising fast."""
    out = []
    for lr in LRS:
        x = (math.log10(lr) - math.log10(drop_at)) / width
        loss = 0.3 + 2.0 / (1 + math.exp(x))
        if lr > blow_up_at:
            loss += 5 * math.log10(lr / blow_up_at) ** 2
        out.append(loss)
    return out


def test_ema_is_bias_corrected():
    assert ema([2.0, 2.0, 2.0], 0.98) == pytest.approx([2.0, 2.0, 2.0])
    assert ema([1.0, 3.0], 0.5) == pytest.approx([1.0, (0.25 * 1 + 0.5 * 3) / 0.75])
    assert ema([1.0, 3.0], 0.0) == [1.0, 3.0]
    with pytest.raises(ValueError, match="smooth"):
        ema([1.0], 1.0)


def test_rules_on_a_clean_curve():
    s = suggest(LRS, curve(drop_at=1e-2), diverge_factor=4.0)
    assert s.steepest == pytest.approx(1e-2, rel=0.13)  # the inflection of the logistic
    lowest = LRS[int(np.argmin(curve()))]
    assert 0.1 < lowest <= 1.0 and s.minimum == pytest.approx(lowest / 10)
    assert 1e-3 < s.valley < 1e-1  # on the way down
    assert s.bounds == pytest.approx((s.steepest / 10, s.steepest))


def test_bounds_from_another_rule_and_divisor():
    s = suggest(LRS, curve(), max_at="valley", div=4)
    assert s.bounds == pytest.approx((s.valley / 4, s.valley))
    with pytest.raises(ValueError, match="max_at"):
        suggest(LRS, curve(), max_at="median")
    with pytest.raises(ValueError, match="div"):
        suggest(LRS, curve(), div=1)


def test_the_steepest_point_after_a_blow_up_is_ignored():
    losses = curve(drop_at=1e-3, blow_up_at=0.1)
    # past lr = 3 the broken run's loss falls back steeply, but stays above the true minimum
    for i, lr in enumerate(LRS):
        if lr > 3:
            losses[i] = max(2.0, losses[i - 1] - 3.0)
    s = suggest(LRS, losses, diverge_factor=100.0)
    assert s.steepest == pytest.approx(1e-3, rel=0.13)


def test_divergence_and_non_finite_values_end_the_window():
    losses = curve()
    start, end = usable_window(losses, diverge_factor=4.0)
    assert start == 14 and losses[end] > 4 * min(losses[:end]) and end < len(losses)
    broken = losses[:60] + [math.nan] + losses[61:]
    assert usable_window(broken, diverge_factor=1e9) == (14, 60)
    assert suggest(LRS, broken).steepest < LRS[60]


def test_too_few_points_give_no_suggestion():
    s = suggest(LRS[:5], curve()[:5])
    assert s.steepest is s.minimum is s.valley is s.bounds is None


def test_valley_matches_fastais_rule_on_a_small_example():
    # longest falling run: indices 1..5 (5 points); 1 + int(4/3) + int(4/3/2) = 1 + 1 + 0 = 2
    assert valley_index(np.array([3.0, 5.0, 4.0, 3.0, 2.0, 1.0, 6.0])) == 2
