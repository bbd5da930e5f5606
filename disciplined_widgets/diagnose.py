"""Read the train and validation curves of a run (Smith 1803.09820, section 3).

Early validation loss carries the clues: it falls and then flattens ("goes horizontal") for
a good setting; it rises again after a minimum when the model overfits; train and validation
loss both stay high, or keep falling slowly, when it underfits. :func:`diagnose` turns a
``History`` into one of those verdicts, with the numbers it read and the paper's advice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        "The loss grew or became NaN/inf: the learning rate is too large for this setting. "
        "Lower the maximum LR (run a range test) or warm up more slowly."),
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


def diagnose(history, *, rise: float = 0.10, still_falling: float = 0.20,
             learned: float = 0.5, grew: float = 2.0) -> Diagnosis:
    """Verdict on a run's curves.

    Validation losses are read relative to the drop they made, from the first evaluation to
    the best one, so that noise on a small loss does not count:

    - ``diverged``: a non-finite loss, or a training loss that ended above ``grew`` (2) times
      the first step's;
    - ``too early to tell``: fewer than 3 evaluations;
    - ``overfitting``: after its minimum the validation loss rose by more than ``rise`` (10%)
      and gave back more than ``rise`` of its drop, while the training loss went below it;
    - ``underfitting``: the training loss kept more than ``learned`` (half) of its initial
      value, or the last third of the evaluations made more than ``still_falling`` (20%) of
      the validation drop (still falling steadily);
    - ``good``: otherwise: it fell, then flattened.
    """
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
    if len(val) < 3:
        return Diagnosis("too early to tell", evidence, ADVICE["too early to tell"])

    best = min(range(len(val)), key=val.__getitem__)
    third = max(2, len(val) // 3)
    drop = val[0] - val[best]
    evidence.update(
        first_val_loss=val[0], best_val_loss=val[best], best_at_step=history.eval_step[best],
        final_val_loss=val[-1],
        val_rise_from_best=(val[-1] - val[best]) / val[best],
        val_drop_given_back=(val[-1] - val[best]) / drop if drop > 0 else 0.0,
        val_drop_in_last_third=(val[-third] - val[-1]) / drop if drop > 0 else 0.0,
        train_loss_kept=end_train / start_train,
    )
    if (evidence["val_rise_from_best"] > rise and evidence["val_drop_given_back"] > rise
            and end_train < val[best]):
        verdict = "overfitting"
    elif evidence["train_loss_kept"] > learned or evidence["val_drop_in_last_third"] > still_falling:
        verdict = "underfitting"
    else:
        verdict = "good"
    return Diagnosis(verdict, evidence, ADVICE[verdict])
