"""diagnose on real runs made to overfit, underfit, go well or diverge."""

import math

import torch
from torch import nn

from disciplined_widgets import History, TensorLoader, fit, load_dataset
from disciplined_widgets.diagnose import diagnose
from disciplined_widgets.models import MLP, SmallCNN


def run(model, make_optimizer, steps, eval_every, **data):
    digits = load_dataset("digits", **data)
    train = TensorLoader(digits.x_train, digits.y_train, 32, seed=0)
    val = TensorLoader(digits.x_val, digits.y_val, 512, shuffle=False)
    torch.manual_seed(0)
    model = model()
    history = fit(model, make_optimizer(model), nn.CrossEntropyLoss(), train, val, steps=steps,
                  eval_every=eval_every, eval_each_epoch=False, seed=0)
    return diagnose(history)


def test_a_tiny_training_set_without_weight_decay_overfits():
    d = run(lambda: MLP(64, (256, 256)), lambda m: torch.optim.Adam(m.parameters(), lr=3e-3),
            300, 15, train_size=60)
    assert d.verdict == "overfitting", d
    assert d.evidence["val_rise_from_best"] > 0.1 and d.evidence["final_train_loss"] < 0.01
    assert "regularisation" in d.advice


def test_a_huge_weight_decay_underfits():
    d = run(lambda: MLP(64, (64,)),
            lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1.0),
            200, 10)
    assert d.verdict == "underfitting", d
    assert d.evidence["train_loss_kept"] > 0.9


def test_a_tiny_learning_rate_underfits():
    d = run(lambda: MLP(64, (64,)), lambda m: torch.optim.SGD(m.parameters(), lr=3e-3, momentum=0.9),
            200, 10)
    assert d.verdict == "underfitting", d
    assert d.evidence["val_drop_in_last_third"] > 0.2  # still falling steadily


def test_a_well_set_run_is_good():
    d = run(SmallCNN, lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9,
                                                   weight_decay=5e-4), 300, 15)
    assert d.verdict == "good", d
    assert d.evidence["final_val_loss"] < 0.1


def test_a_far_too_large_learning_rate_diverges():
    d = run(lambda: MLP(64, (64,)), lambda m: torch.optim.SGD(m.parameters(), lr=50, momentum=0.9),
            100, 10)
    assert d.verdict == "diverged", d
    assert "too large" in d.advice


def test_too_early_and_non_finite_histories():
    history = History()
    assert diagnose(history).verdict == "too early to tell"
    history._train_loss = [2.3, 2.0, 1.8]
    history.step = [1, 2, 3]
    history.eval_step, history.val_loss = [3], [1.9]
    assert diagnose(history).verdict == "too early to tell"
    history.val_loss = [math.nan]
    assert diagnose(history).verdict == "diverged"
    assert "diverged" in str(diagnose(history))
    assert diagnose(history).to_dict()["verdict"] == "diverged"


def test_one_cycle_up_to_lr_10_on_the_tours_data_diverged_and_is_not_underfitting(mnist1d):
    """The widgets tour's setting with 1cycle up to LR 10: the validation loss explodes to
    about 190 in the first epoch and the accuracy stays near 26%; it was read "underfitting,
    raise the learning rate"."""
    from disciplined_widgets import one_cycle
    from disciplined_widgets.models import CNN1D

    train = TensorLoader(mnist1d.x_train, mnist1d.y_train, 128, seed=0)
    val = TensorLoader(mnist1d.x_val, mnist1d.y_val, 1000, shuffle=False)
    torch.manual_seed(0)
    model = CNN1D()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    history = fit(model, optimizer, nn.CrossEntropyLoss(), train, val, epochs=8,
                  schedulers=[one_cycle(optimizer, 10.0, 8 * len(train))], seed=0)
    assert max(history.val_loss) > 50 and history.val_accuracy[-1] < 0.5
    d = diagnose(history)
    assert d.verdict == "diverged", d
    assert "range test" in d.advice and "not underfitting" in d.advice
    assert d.evidence["worst_val_loss"] > 50


def test_a_run_whose_losses_are_exactly_zero_is_read_without_dividing_by_zero(digits):
    # a loss that is exactly zero from the first step (the model already fits, or a loss that
    # ignores the outputs): every ratio of diagnose has a zero denominator
    train = TensorLoader(digits.x_train, digits.y_train, 64, seed=0)
    val = TensorLoader(digits.x_val, digits.y_val, 512, shuffle=False)
    model = MLP(64, (16,))
    zero = lambda outputs, targets: outputs.sum() * 0.0  # noqa: E731
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), zero, train, val, steps=20,
                  eval_every=5, eval_each_epoch=False, seed=0)
    assert set(history.train_loss) == {0.0} and set(history.val_loss) == {0.0}
    d = diagnose(history)
    assert d.verdict == "good", d
    assert d.evidence["train_loss_kept"] == 0.0 and d.evidence["val_rise_from_best"] == 0.0
