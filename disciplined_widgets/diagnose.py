"""Read the train and validation curves of a run (Smith 1803.09820, section 3).

Early validation loss carries the clues: it falls and then flattens ("goes horizontal") for
a good setting; it rises again after a minimum when the model overfits; train and validation
loss both stay high, or keep falling slowly, when it underfits. :func:`diagnose` turns a
``History`` into one of those verdicts, with the numbers it read and the paper's advice.

:func:`read_range_test` reads an LR range test the same way: whether its loss fell at all
(a flat or stopped curve gives no suggestion, not a guess read from noise), where it diverged,
and the suggestions of :mod:`~disciplined_widgets.suggest` when the curve supports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .checks import instance_of, number_in
from .range_test import RangeTestResult
from .train import History

VERDICTS = ("underfitting", "overfitting", "good", "diverged", "too early to tell")

ADVICE = {
    "underfitting": (
        "Train and validation loss are still high or still falling slowly: the model "
        "underfits. Reduce regularisation (smaller weight decay, less dropout), raise the "
        "learning rate (run a range test and use 1cycle), or train longer."),
    "overfitting": (
        "The validation loss rose again after its minimum while the training loss kept "
        "falling: the model overfits. Add regularisation: larger learning rates (1cycle), "
        "a larger weight decay, a smaller batch, or more data; or stop at the minimum."),
    "good": (
        "The validation loss fell fast and then flattened: a good balance. Settings that look "
        "this good early on stay good for a full run, so short runs are enough to tune."),
    "diverged": (
        "The loss grew, became NaN/inf, or the validation loss exploded while the training loss "
        "never fell far: the learning rate is too large for this setting (this is not "
        "underfitting: do not raise it). Go back to the range test and take a maximum LR below "
        "the point where its loss diverged, or warm up more slowly."),
    "too early to tell": (
        "Fewer than three evaluations: evaluate more often (fit(eval_every=...)) or train "
        "longer."),
}


@dataclass(frozen=True)
class Diagnosis:
    """A verdict, the numbers it rests on, and what to do."""

    verdict: str
    evidence: dict
    advice: str

    def __str__(self) -> str:
        numbers = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in self.evidence.items())
        return f"{self.verdict}: {self.advice} ({numbers})"

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "evidence": dict(self.evidence), "advice": self.advice}


def _mean(values) -> float:
    return sum(values) / len(values)


def _ratio(part: float, whole: float) -> float:
    """``part / whole``; with a zero ``whole`` (a loss of exactly 0), 0 or infinity."""
    if whole:
        return part / whole
    return 0.0 if part == 0 else math.copysign(math.inf, part)


def diagnose(history, *, rise: float = 0.10, still_falling: float = 0.20,
             learned: float = 0.5, grew: float = 2.0) -> Diagnosis:
    """Verdict on a run's curves.

    Validation losses are read relative to the drop they made, from the first evaluation to
    the best one, so that noise on a small loss does not count:

    - ``diverged``: a non-finite loss, a training loss that ended above ``grew`` (2) times
      the first step's, or a validation loss that went above ``grew`` times the first training
      loss (the untrained model's) while the training loss kept more than ``learned`` (half)
      of its initial value (a spike the run recovered from, and learned, does not count);
    - ``too early to tell``: fewer than 3 evaluations;
    - ``overfitting``: after its minimum the validation loss rose by more than ``rise`` (10%)
      and gave back more than ``rise`` of its drop, while the training loss went below it;
    - ``underfitting``: the training loss kept more than ``learned`` (half) of its initial
      value, or the last third of the evaluations made more than ``still_falling`` (20%) of
      the validation drop (still falling steadily);
    - ``good``: otherwise: it fell, then flattened.
    """
    instance_of("history", history, History, "what fit returns")
    number_in("rise", rise, 0, math.inf)
    number_in("still_falling", still_falling, 0, 1)
    number_in("learned", learned, 0, 1)
    number_in("grew", grew, 1, math.inf, include_low=False)
    train = list(history.train_loss)
    val = list(history.val_loss)
    evidence: dict = {"evaluations": len(val), "steps": len(train)}
    if not train or not val:
        return Diagnosis("too early to tell", evidence, ADVICE["too early to tell"])
    start_train = train[0]
    end_train = _mean(train[-max(1, len(train) // 10):])
    evidence.update(initial_train_loss=start_train, final_train_loss=end_train)
    finite = all(math.isfinite(x) for x in train + val)
    if not finite or history.stop_reason == "non_finite" or end_train > grew * start_train:
        return Diagnosis("diverged", evidence, ADVICE["diverged"])
    worst = max(range(len(val)), key=val.__getitem__)
    if start_train > 0 and val[worst] > grew * start_train and end_train > learned * start_train:
        evidence.update(worst_val_loss=val[worst], worst_at_step=history.eval_step[worst],
                        final_val_loss=val[-1], train_loss_kept=end_train / start_train)
        accuracy = list(history.val_accuracy)
        if accuracy and accuracy[-1] is not None:
            evidence["final_val_accuracy"] = accuracy[-1]
        return Diagnosis("diverged", evidence, ADVICE["diverged"])
    if len(val) < 3:
        return Diagnosis("too early to tell", evidence, ADVICE["too early to tell"])

    best = min(range(len(val)), key=val.__getitem__)
    third = max(2, len(val) // 3)
    drop = val[0] - val[best]
    evidence.update(
        first_val_loss=val[0], best_val_loss=val[best], best_at_step=history.eval_step[best],
        final_val_loss=val[-1],
        val_rise_from_best=_ratio(val[-1] - val[best], val[best]),
        val_drop_given_back=(val[-1] - val[best]) / drop if drop > 0 else 0.0,
        val_drop_in_last_third=(val[-third] - val[-1]) / drop if drop > 0 else 0.0,
        train_loss_kept=_ratio(end_train, start_train),
    )
    if (evidence["val_rise_from_best"] > rise and evidence["val_drop_given_back"] > rise
            and end_train < val[best]):
        verdict = "overfitting"
    elif evidence["train_loss_kept"] > learned or evidence["val_drop_in_last_third"] > still_falling:
        verdict = "underfitting"
    else:
        verdict = "good"
    return Diagnosis(verdict, evidence, ADVICE[verdict])


# ---- reading a range test ----

FELL_BY = 4.0  # the loss fell when its drop exceeds this many standard errors of the noise


def _noise(values) -> float:
    """Robust standard deviation of the noise around a trend: the median absolute difference of
    successive values divided by 0.954 (``|x_i - x_(i-1)|`` of Gaussian noise of deviation s
    has median ``0.6745 * sqrt(2) * s``)."""
    steps = sorted(abs(b - a) for a, b in zip(values, values[1:]))
    return steps[len(steps) // 2] / 0.954 if steps else 0.0


@dataclass(frozen=True)
class RangeTestReading:
    """What a range test supports: ``suggestions`` (None when it gives none, with ``reason``),
    a ``note`` on suggestions to take with care, the LR where the loss diverged
    (``diverged_at``, None if it did not) and the LR range the test ran (``tested``)."""

    suggestions: object | None
    reason: str
    note: str
    fell: bool
    diverged_at: float | None
    tested: tuple[float, float] | None
    evidence: dict

    @property
    def bounds(self) -> tuple[float, float] | None:
        return self.suggestions.bounds if self.suggestions is not None else None

    def __str__(self) -> str:
        if self.suggestions is None:
            return f"no suggestion: {self.reason}"
        s = self.suggestions
        text = (f"steepest {s.steepest:.3g}, minimum/10 {s.minimum:.3g}, valley {s.valley:.3g}: "
                f"bounds {s.bounds[0]:.3g} to {s.bounds[1]:.3g}")
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict:
        return {"suggestions": self.suggestions.to_dict() if self.suggestions is not None else None,
                "reason": self.reason, "note": self.note, "fell": self.fell,
                "diverged_at": self.diverged_at,
                "tested": list(self.tested) if self.tested else None,
                "evidence": dict(self.evidence)}


def read_range_test(result, *, fell_by: float = FELL_BY) -> RangeTestReading:
    """Read a :class:`~disciplined_widgets.RangeTestResult`: suggestions only where they mean
    something.

    Within the usable window (after the noisy start, before the divergence; see
    :func:`~disciplined_widgets.suggest.usable_window`) of ``n`` raw losses, with ``m =
    max(3, n // 10)``, the loss *fell* when the mean of its first ``m`` losses exceeds the
    lowest mean of ``m`` successive losses by more than ``fell_by`` (4) standard errors
    ``sigma * sqrt(2 / m)``, ``sigma`` the noise of :func:`_noise`: pure noise does not pass
    (the lowest of the windows of a flat curve sits about 2.5 standard errors below the
    first). There is no suggestion when the loss never fell, when fewer than 5 points are
    usable, or when the test was stopped while the smoothed loss was still falling (its
    maximum LR not reached). ``diverged_at`` is the LR of the first point where the smoothed
    loss diverged (or became NaN/inf).
    """
    instance_of("result", result, RangeTestResult, "what lr_range_test returns")
    number_in("fell_by", fell_by, 0, math.inf, include_low=False)
    lrs, losses = list(result.lrs), list(result.losses)
    start, end = result.usable
    diverged_at = lrs[end] if end < len(lrs) else None
    tested = (lrs[0], lrs[-1]) if lrs else None
    evidence: dict = {"steps": len(lrs), "of": result.num_iter, "usable_points": end - start}
    stopped = result.stop_reason == "stopped"
    where = (f"stopped after {len(lrs)} of {result.num_iter} steps, at LR {lrs[-1]:.3g}"
             if stopped and lrs else f"LR {tested[0]:.3g} to {tested[1]:.3g}" if lrs else "")

    def none(reason: str, fell: bool = False) -> RangeTestReading:
        return RangeTestReading(None, reason, "", fell, diverged_at, tested, evidence)

    window = losses[start:end]
    if len(window) < 5 or result.suggestions.bounds is None:
        if diverged_at is not None and end <= max(5, len(lrs) // 10):
            return none(f"the loss diverged from the start (at LR {diverged_at:.3g}): lower the "
                        f"start LR")
        return none(f"too few usable points ({len(window)}; {where or 'no steps'}): "
                    f"run more iterations" + ("" if stopped else " or lower the start LR"))
    m = max(3, len(window) // 10)
    means = [sum(window[i:i + m]) / m for i in range(len(window) - m + 1)]
    sigma = _noise(window)
    drop = means[0] - min(means)
    error = sigma * math.sqrt(2 / m)
    evidence.update(drop=drop, noise=sigma, drop_in_errors=drop / error if error > 0 else math.inf)
    fell = drop > fell_by * error if error > 0 else drop > 0
    if not fell:
        advice = (" before it fell: let it run on" if stopped
                  else ": raise the end LR; if it does not fall at 10 either, check the model, "
                       "the data and the loss")
        if diverged_at is not None:
            advice = f" before it diverged at LR {diverged_at:.3g}: lower the start LR"
        return none(f"the loss never fell ({where}){advice}")
    smoothed = result.smoothed_losses[start:end]
    still_falling = min(range(len(smoothed)), key=smoothed.__getitem__) == len(smoothed) - 1
    if stopped and still_falling:
        return none(f"the test was {where}, while the loss was still falling: its maximum "
                    f"LR is not reached yet; let it run to the end", fell=True)
    note = ""
    if still_falling and diverged_at is None:
        note = (f"the loss was still falling at the end LR {lrs[-1]:.3g}: a larger end LR may "
                f"allow a larger maximum")
    elif stopped:
        note = f"{where}"
    return RangeTestReading(result.suggestions, "", note, True, diverged_at, tested, evidence)
