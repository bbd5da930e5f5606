"""Reading a range-test curve: EMA smoothing, where the curve diverges, and the LR suggestion rules.

- ``ema``: exponential moving average with bias correction (as fastai):
  ``a_i = beta * a_(i-1) + (1 - beta) * x_i``, ``s_i = a_i / (1 - beta^(i+1))``.
- ``steepest``: the LR where the smoothed loss falls fastest per decade of LR
  (most negative d loss / d log10 lr), on the way down to its minimum.
- ``minimum``: the LR at the lowest smoothed loss, divided by 10 (fastai, Lightning).
- ``valley``: fastai's rule: the longest run over which the smoothed loss keeps falling (before
  its minimum); the LR about halfway down it.
- ``bounds``: ``(max_lr / div, max_lr)`` for CLR and 1cycle, Smith's "max/10" lower bound
  (1803.09820, section 4.1), with ``max_lr`` from one of the rules above: by default
  ``steepest``. The EMA lags the raw loss, so the smoothed curve falls fastest near where the
  raw loss stops improving: Smith's point for the upper bound.

Every rule skips the noisy start (the first ``skip_start`` points, 10% by default) and
everything from the first point where the smoothed curve ``s`` diverges or stops being finite.
At point ``i``, with the best ``B = min(s_0..s_i)`` reached at point ``b``:

- the drop ``D = max(s_0..s_b) - B``: how far the loss fell, from where it started to its best;
- the rise ``R = s_i - B``;
- the noise ``N``: the largest move of the curve up to point ``max(b, 5)`` (or ``i``, if
  sooner), a move being a step ``|s_j - s_(j-1)|`` or a rise ``s_j - min(s_0..s_j)``;

and the curve has diverged once ``R > max((diverge_factor - 1) / 3 * D, 10 * N)``.

Every term is a difference of two losses, so adding a constant to the losses or multiplying
them by a positive number changes none of the comparisons: a loss that goes below zero (a
Gaussian NLL with a learned variance, an ELBO) is cut where the same loss shifted up is.
``diverge_factor`` is how far the loss may climb back, in thirds of its drop per unit above 1:
with the default 4 the curve has diverged once it is back above where it started (``R > D``).
On a positive curve that falls to a quarter of its start (``max(s_0..s_b) = 4 B``) the
threshold ``B + (diverge_factor - 1) / 3 * D`` is ``diverge_factor * B``: the rule is then
"the loss passes ``diverge_factor`` times its best" of fastai and Lightning. The noise term
keeps a flat, noisy start from reading as divergence: there the drop is noise too, and a rise
must exceed 10 times the largest move the curve made on its way to its best. The first 5
points always count, because the bias-corrected EMA is nearly as noisy as the raw losses
there; none of them can diverge.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .checks import positive_float

RULES = ("steepest", "minimum", "valley")
MIN_POINTS = 5  # fewer usable points give no suggestion
CLIMB_PER_FACTOR = 1 / 3  # the rise allowed, in drops, per unit of diverge_factor above 1
NOISE_MULTIPLE = 10  # a rise must exceed this many times the curve's noise
NOISE_POINTS = 5  # the noise always counts the first points, up to this one


class EMA:
    """The bias-corrected EMA of the module docstring, one value at a time (``beta`` in [0, 1))."""

    def __init__(self, beta: float):
        if not 0 <= beta < 1:
            raise ValueError(f"smooth must be in [0, 1), got {beta!r}")
        self.beta, self.average, self.count = beta, 0.0, 0

    def update(self, value: float) -> float:
        """The smoothed value after ``value``."""
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * value
        return self.average / (1 - self.beta ** self.count)


def ema(values, beta: float) -> list[float]:
    """Bias-corrected exponential moving average of ``values`` (beta in [0, 1))."""
    average = EMA(beta)
    return [average.update(value) for value in values]


class Divergence:
    """The divergence rule of the module docstring, fed one smoothed loss at a time.

    ``update(value)`` is True from the first point where the curve has diverged (or is not
    finite) on. :func:`usable_window` and the live stop of ``lr_range_test`` both use it.
    """

    def __init__(self, diverge_factor: float = 4.0):
        if positive_float("diverge_factor", diverge_factor) <= 1:
            raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
        self.climb = (diverge_factor - 1) * CLIMB_PER_FACTOR  # the rise allowed, in drops
        self.points, self.diverged = 0, False
        self.previous = self.start = self.largest_move = self.noise = 0.0
        self.best, self.highest = math.inf, -math.inf

    def update(self, value: float) -> bool:
        """Add the next point; True once the curve has diverged."""
        if self.diverged or not math.isfinite(value):
            self.diverged = True
            return True
        self._track(value)
        rise, drop = value - self.best, self.start - self.best
        self.diverged = rise > max(self.climb * drop, NOISE_MULTIPLE * self.noise)
        return self.diverged

    def _track(self, value: float) -> None:
        """Update the best, the highest point before it, and the noise up to point max(b, 5)."""
        step = abs(value - self.previous) if self.points else 0.0
        self.previous, self.highest = value, max(self.highest, value)
        if value <= self.best:
            self.best, self.start = value, self.highest
        self.largest_move = max(self.largest_move, step, value - self.best)
        if value == self.best or self.points <= NOISE_POINTS:
            self.noise = self.largest_move
        self.points += 1


def usable_window(smoothed, skip_start: int | None = None,
                  diverge_factor: float = 4.0) -> tuple[int, int]:
    """``(start, end)``: the slice of points the rules may use, from ``skip_start`` (10% of the
    points by default) to the first point where the curve diverges (see the module docstring)."""
    n = len(smoothed)
    start = max(1, n // 10) if skip_start is None else skip_start
    divergence = Divergence(diverge_factor)
    end = next((i for i, value in enumerate(smoothed) if divergence.update(value)), n)
    return min(start, end), end


def valley_index(losses: np.ndarray) -> int:
    """fastai's valley: longest decreasing subsequence, then 1/3 + 1/6 of the way along it."""
    n = len(losses)
    run = np.ones(n, dtype=int)  # length of the longest falling run ending at i
    for i in range(1, n):
        higher = losses[:i] > losses[i]
        if higher.any():
            run[i] = run[:i][higher].max() + 1
    end = int(np.argmax(run))
    start = end - run[end] + 1
    sections = (end - start) / 3
    return start + int(sections) + int(sections / 2)


@dataclass(frozen=True)
class Suggestions:
    """Suggested learning rates; ``None`` where the curve has fewer than 5 usable points."""

    steepest: float | None
    minimum: float | None
    valley: float | None
    bounds: tuple[float, float] | None
    max_at: str = "steepest"
    div: float = 10.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["bounds"] = list(self.bounds) if self.bounds else None
        return data


def suggest(lrs, smoothed, *, skip_start: int | None = None, diverge_factor: float = 4.0,
            max_at: str = "steepest", div: float = 10.0) -> Suggestions:
    """Apply every rule to a smoothed curve (see the module docstring)."""
    if max_at not in RULES:
        raise ValueError(f"max_at must be one of {RULES}, got {max_at!r}")
    if not div > 1:
        raise ValueError(f"div must be > 1, got {div!r}")
    start, end = usable_window(smoothed, skip_start, diverge_factor)
    if end - start < MIN_POINTS:
        return Suggestions(None, None, None, None, max_at, div)
    lr = np.asarray(lrs[start:end], dtype=float)
    loss = np.asarray(smoothed[start:end], dtype=float)
    lowest = int(np.argmin(loss))
    down = slice(0, max(lowest + 1, 3))  # the descent, where steepest and valley are read
    slope = np.gradient(loss[down], np.log10(lr[down]))
    found = {
        "steepest": float(lr[down][int(np.argmin(slope))]),
        "minimum": float(lr[lowest] / 10),
        "valley": float(lr[down][valley_index(loss[down])]),
    }
    top = found[max_at]
    return Suggestions(**found, bounds=(top / div, top), max_at=max_at, div=div)
