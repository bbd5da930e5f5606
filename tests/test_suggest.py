"""Suggestion rules on curves with known answers."""

import math

import numpy as np
import pytest

from disciplined_widgets.suggest import Divergence, ema, suggest, usable_window, valley_index

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


def exploding(bottom=0.3, seed=0, noise=0.1):
    """Minibatch-like losses: flat at 2.3, falling to ``bottom`` around lr 1e-4, then growing
    e-fold every 0.1 decade past lr 0.1, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    out = []
    for lr in LRS:
        loss = bottom + (2.3 - bottom) / (1 + math.exp((math.log10(lr) + 4) / 0.3))
        if lr > 0.1:
            loss += math.expm1(10 * math.log10(lr / 0.1))
        out.append(loss + noise * rng.standard_normal())
    return out


def ratio_rule_end(smoothed, factor=4.0):
    """Where "the smoothed loss passes ``factor`` times its best" (fastai, Lightning) cuts."""
    best = math.inf
    for i, value in enumerate(smoothed):
        if value > factor * best:
            return i
        best = min(best, value)
    return len(smoothed)


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
    # a clean curve: the window ends where the loss has climbed back above where it started
    assert start == 14 and losses[end - 1] <= losses[0] < losses[end] and end < len(losses)
    broken = losses[:60] + [math.nan] + losses[61:]
    assert usable_window(broken, diverge_factor=1e9) == (14, 60)
    assert suggest(LRS, broken).steepest < LRS[60]


@pytest.mark.parametrize("seed", range(5))
def test_a_constant_or_a_positive_scale_changes_nothing(seed):
    raw = [x - 1.5 for x in exploding(seed=seed)]  # from 0.8 down to -1.2, then blowing up
    smoothed = ema(raw, 0.98)
    window, found = usable_window(smoothed), suggest(LRS, smoothed)
    lowest = int(np.argmin(smoothed))
    assert smoothed[lowest] < 0 and lowest < window[1] < len(LRS)  # read below zero, cut after
    assert smoothed[window[1]] > max(smoothed[:lowest + 1])  # back above where it started
    for changed in ([x + 10 for x in raw], [3 * x for x in raw], [0.5 * x - 7 for x in raw]):
        again = ema(changed, 0.98)
        assert usable_window(again) == window
        assert suggest(LRS, again) == found


@pytest.mark.parametrize("smooth", [0.0, 0.9, 0.98])
@pytest.mark.parametrize("diverge_factor", [1.5, 4.0])
def test_a_flat_noisy_curve_never_diverges(smooth, diverge_factor):
    rng = np.random.default_rng(0)
    for _ in range(20):
        raw = 2.3 + 0.1 * rng.standard_normal(len(LRS))
        assert usable_window(ema(raw, smooth), diverge_factor=diverge_factor)[1] == len(LRS)


@pytest.mark.parametrize("smooth", [0.9, 0.98])
@pytest.mark.parametrize("bottom", [0.1, 0.3, 0.5])
def test_an_ordinary_curve_is_cut_near_four_times_its_best(smooth, bottom):
    for seed in range(5):
        smoothed = ema(exploding(bottom, seed), smooth)
        end = usable_window(smoothed)[1]
        assert LRS[end] > 0.1  # not in the flat noisy start, nor on the way down
        assert abs(end - ratio_rule_end(smoothed)) <= 5  # a quarter of a decade of LR


@pytest.mark.parametrize("diverge_factor", [1.5, 2.0, 4.0, 8.0, 20.0])
def test_on_a_curve_falling_to_a_quarter_the_rule_is_a_ratio_to_the_best(diverge_factor):
    fall = [1.2 - 0.015 * i for i in range(61)]  # 1.2 down to 0.3, a quarter
    losses = [1.2] * 20 + fall + [0.3] * 20 + [0.3 + 0.01 * i ** 2 for i in range(1, 41)]
    end = usable_window(losses, diverge_factor=diverge_factor)[1]
    assert end == ratio_rule_end(losses, diverge_factor) < len(losses)


def test_the_rule_fed_one_point_at_a_time_ends_where_the_window_does():
    smoothed = ema(exploding(), 0.98)
    divergence = Divergence(4.0)
    verdicts = [divergence.update(value) for value in smoothed]
    end = usable_window(smoothed)[1]
    assert verdicts == [False] * end + [True] * (len(smoothed) - end)


@pytest.mark.parametrize("value,error", [(1.0, ValueError), (0.5, ValueError),
                                         (math.inf, ValueError), ("4", TypeError)])
def test_a_bad_diverge_factor_is_named(value, error):
    with pytest.raises(error, match="diverge_factor"):
        usable_window(curve(), diverge_factor=value)
    with pytest.raises(error, match="diverge_factor"):
        suggest(LRS, curve(), diverge_factor=value)


def test_too_few_points_give_no_suggestion():
    s = suggest(LRS[:5], curve()[:5])
    assert s.steepest is s.minimum is s.valley is s.bounds is None


def test_valley_matches_fastais_rule_on_a_small_example():
    # longest falling run: indices 1..5 (5 points); 1 + int(4/3) + int(4/3/2) = 1 + 1 + 0 = 2
    assert valley_index(np.array([3.0, 5.0, 4.0, 3.0, 2.0, 1.0, 6.0])) == 2
