"""Reading a range-test curve: EMA smoothing and the learning-rate suggestion rules.

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
everything from the first point where the smoothed loss exceeds ``diverge_factor`` times its
best so far or stops being finite.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

RULES = ("steepest", "minimum", "valley")
MIN_POINTS = 5  # fewer usable points give no suggestion


def ema(values, beta: float) -> list[float]:
    """Bias-corrected exponential moving average of ``values`` (beta in [0, 1))."""
    if not 0 <= beta < 1:
        raise ValueError(f"smooth must be in [0, 1), got {beta!r}")
    average, out = 0.0, []
    for i, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** (i + 1)))
    return out


def usable_window(smoothed, skip_start: int | None = None,
                  diverge_factor: float = 4.0) -> tuple[int, int]:
    """``(start, end)``: the slice of points the rules may use."""
    n = len(smoothed)
    start = max(1, n // 10) if skip_start is None else skip_start
    best, end = math.inf, n
    for i, value in enumerate(smoothed):
        if not math.isfinite(value) or (i > 0 and value > diverge_factor * best):
            end = i
            break
        best = min(best, value)
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
