"""Bad input across the public API, the search and the command line: each call fails with the
error type expected, names the parameter, and leaves the model, optimizer and loader as they
were. Passwords never show, in any form a URL can hold them."""

import math

import pytest
import torch
from torch import nn

from optuna.distributions import CategoricalDistribution, IntDistribution

from disciplined_widgets import (BatchSizeSchedule, Hyperparameters, TensorLoader, cyclical,
                                 diagnose, discipline, evaluate, fit, load_dataset, lr_range_test,
                                 one_cycle, preview, range_tests, train_run)
from disciplined_widgets.__main__ import main
from disciplined_widgets.diagnose import read_range_test
from disciplined_widgets.search import Search, linear_range, log_range, masked


@pytest.fixture
def setup(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = TensorLoader(digits.x_train, digits.y_train, 64, seed=0)
    return model, optimizer, loader


def _state(model, optimizer, loader):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [dict(g) for g in optimizer.param_groups],
            loader.generator.get_state().clone(), model.training)


CE = nn.CrossEntropyLoss()
CASES = [
    # fit
    ("fit", lambda m, o, l: fit(m, o, CE, l), ValueError, "epochs"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, device="banana"), ValueError, "got 'banana'"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, amp="fp32"), ValueError, "amp must be"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, clip_grad_norm=0), ValueError, "clip_grad_norm"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, clip_grad_norm=math.nan), ValueError, "clip_grad_norm"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, sync_every=0), ValueError, "sync_every"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, metrics=[len]), TypeError, "metrics"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, metrics={"x": 3}), TypeError, "metrics"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, grad_scaler="yes"), TypeError, "grad_scaler"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, schedulers=3), TypeError, "schedulers"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, seed="1"), TypeError, "seed"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, eval_batches=0), ValueError, "eval_batches"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, optimiser=1), TypeError, "unknown training options"),
    ("fit", lambda m, o, l: fit(m, o, "ce", l, epochs=1), TypeError, "criterion"),
    ("fit", lambda m, o, l: fit(m, o, None, l, epochs=1), ValueError, "criterion is None"),
    ("fit", lambda m, o, l: fit(m, o, None, l, epochs=1, loss_fn="mine"), TypeError, "loss_fn"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, loss_fn=len), ValueError, "not both"),
    ("fit", lambda m, o, l: fit(m, o, CE, iter(l), epochs=1), TypeError, "train_loader"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, [], epochs=1), ValueError, "val_loader is empty"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=0), ValueError, "epochs must be positive"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1.5), TypeError, "epochs must be an int"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=-1), ValueError, "steps must be positive"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=True), TypeError, "steps must be an int"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=math.inf), TypeError, "steps must be an int"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, epochs=1, steps=3), ValueError, "exactly one of epochs and steps"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, l, steps=2, eval_every=0), ValueError, "eval_every"),
    ("fit", lambda m, o, l: fit("model", o, CE, l, epochs=1), TypeError, "model must be a torch.nn.Module"),
    ("fit", lambda m, o, l: fit(m, torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), CE, l, epochs=1),
     ValueError, "optimizer does not hold"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, callback=3), TypeError, "callback must be callable"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, accumulation_steps=0), ValueError, "accumulation_steps"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, accumulation_steps=1.5), TypeError, "accumulation_steps"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, stop_event="x"), TypeError, "stop_event"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, schedulers=[3]), TypeError, "schedulers"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, clip_grad_norm=-1), ValueError, "clip_grad_norm"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, amp=True), ValueError, "amp must be"),
    # evaluate
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, device="cuda:7"), ValueError, "device"),
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, amp="fp32"), ValueError, "amp"),
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, max_batches=0), ValueError, "max_batches"),
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, max_batches=1.5), TypeError, "max_batches"),
    ("evaluate", lambda m, o, l: evaluate(m, CE, []), ValueError, "the loader gave no batches"),
    ("evaluate", lambda m, o, l: evaluate(m, "ce", l), TypeError, "criterion must be callable"),
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, device="banana"), ValueError, "got 'banana'"),
    # the range test
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, start_lr=0), ValueError, "start_lr"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, start_lr=1, end_lr=0.1), ValueError, "end_lr"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, num_iter=1), ValueError, "num_iter"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, mode="log"), ValueError, "mode"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, smooth=1.0), ValueError, "smooth"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, diverge_factor=1), ValueError, "diverge_factor"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, val_every=5), ValueError, "val_every"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, snapshot="gpu"), ValueError, "snapshot"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, device="banana"), ValueError, "device"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, start_lr=math.nan), ValueError, "start_lr"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, start_lr="1e-5"), TypeError, "start_lr"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, end_lr=math.inf), ValueError, "end_lr"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, num_iter=10.5), TypeError, "num_iter"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, smooth=-0.1), ValueError, "smooth"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, diverge_factor=math.nan), ValueError,
     "diverge_factor"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, []), ValueError, "train_loader is empty"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, o, CE, l, nm_iter=5), TypeError, "nm_iter"),
    ("lr_range_test", lambda m, o, l: lr_range_test("model", o, CE, l), TypeError, "model must be"),
    ("lr_range_test", lambda m, o, l: lr_range_test(m, torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
                                                    CE, l), ValueError, "optimizer does not hold"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l), ValueError, "weight_decays"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l, weight_decays=[]), ValueError, "weight_decays is empty"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l, weight_decays="1e-3"), TypeError,
     "weight_decays must be a list"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l, weight_decays=[0.0], momentums=[0.9]), ValueError,
     "exactly one of weight_decays and momentums"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l, weight_decays=[-1]), ValueError, "weight_decays"),
    # schedules
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 4, style="fastai"), ValueError, "total_steps"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, momentum=0.9), TypeError, "momentum"),
    ("one_cycle", lambda m, o, l: one_cycle(o, -0.1, 100), ValueError, "max_lr"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, div=1), ValueError, "div"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, style="linear"), ValueError, "style"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, final_div=0.1), ValueError, "final_div"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 0), ValueError, "total_steps"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 10.5), TypeError, "total_steps"),
    ("one_cycle", lambda m, o, l: one_cycle(o, math.nan, 100), ValueError, "max_lr"),
    ("one_cycle", lambda m, o, l: one_cycle(o, "0.1", 100), TypeError, "max_lr"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, pct_start=0), ValueError, "pct_start"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, pct_start=1.5), ValueError, "pct_start"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, momentum=(0.85, 0.95)), ValueError, "min <= max"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, momentum=(1.2, 0.8)), ValueError, "momentum"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, div=math.nan), ValueError, "div"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.1, 0.01, 5), ValueError, "max_lr"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 0), ValueError, "step_size_up"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 2.5), TypeError, "step_size_up"),
    ("cyclical", lambda m, o, l: cyclical(o, 0, 0.1, 5), ValueError, "base_lr"),
    ("cyclical", lambda m, o, l: cyclical(o, math.nan, 0.1, 5), ValueError, "base_lr"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, gamma=math.nan), ValueError, "gamma"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, gamma="0.99"), TypeError, "gamma"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, momentum=0.9), TypeError, "momentum"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, gamma=2), ValueError, "gamma"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, mode="sine"), ValueError, "mode"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, 5), TypeError, "milestones"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, (5, 3)), ValueError, "milestones"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, (5,), factor=1), ValueError, "factor"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, (5,), factor=math.nan), ValueError, "factor"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(0, (5,)), ValueError, "batch_size"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule("16", (5,)), TypeError, "batch_size"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, (-1,)), ValueError, "milestones"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, (2.5,)), TypeError, "milestones"),
    ("preview", lambda m, o, l: preview(o, steps=0, train_loader=l), ValueError, "steps must be positive"),
    ("preview", lambda m, o, l: preview(o, steps=5, train_loader=[]), ValueError, "train_loader is empty"),
    ("preview", lambda m, o, l: preview(o, steps=5), ValueError, "steps_per_epoch"),
    # loaders
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, seed=None), TypeError, "seed"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, shuffle="no"), TypeError, "shuffle"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, 0), ValueError, "batch_size"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, device="banana"), ValueError, "device"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets[:5]), ValueError, "differ in length"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, 1.5), TypeError, "batch_size"),
    ("TensorLoader", lambda m, o, l: TensorLoader([1, 2], [1, 2]), TypeError, "inputs and targets must be tensors"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, None), TypeError, "inputs and targets must be tensors"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, drop_last="yes"), TypeError, "drop_last"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, augment=3), TypeError, "augment"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs[:0], l.targets[:0]), ValueError, "inputs is empty"),
    # reading a run
    ("diagnose", lambda m, o, l: diagnose({"train_loss": [1.0]}), TypeError, "history must be a History"),
    ("diagnose", lambda m, o, l: diagnose(None), TypeError, "history must be a History"),
    ("diagnose", lambda m, o, l: diagnose(fit(m, o, CE, l, steps=0)), ValueError, "steps"),
    ("diagnose", lambda m, o, l: diagnose(_history(), rise=-1), ValueError, "rise"),
    ("diagnose", lambda m, o, l: diagnose(_history(), grew=1), ValueError, "grew"),
    ("diagnose", lambda m, o, l: diagnose(_history(), learned=math.nan), ValueError, "learned"),
    ("read_range_test", lambda m, o, l: read_range_test({"lrs": []}), TypeError, "result must be a RangeTestResult"),
    # the recipe and one run
    ("discipline", lambda m, o, l: discipline(lambda: nn.Linear(64, 10), l, l, budget_steps=0), ValueError,
     "budget_steps"),
    ("discipline", lambda m, o, l: discipline(m, l, l, budget_steps=100), TypeError, "model_factory"),
    ("discipline", lambda m, o, l: discipline(lambda: nn.Linear(64, 10), l, l, budget_steps=100,
                                              memory_margin=-0.1), ValueError, "memory_margin"),
    ("discipline", lambda m, o, l: discipline(lambda: nn.Linear(64, 10), l, None, budget_steps=100), ValueError,
     "val_loader is None"),
    ("train_run", lambda m, o, l: train_run(lambda: m, l, l, {"max_lr": 0.1}, steps=5), TypeError,
     "hyperparameters must be Hyperparameters"),
    ("Hyperparameters", lambda m, o, l: Hyperparameters(max_lr=0), ValueError, "max_lr"),
    ("Hyperparameters", lambda m, o, l: Hyperparameters(div_factor=1), ValueError, "div_factor must be > 1"),
    ("Hyperparameters", lambda m, o, l: Hyperparameters(momentum=1), ValueError, "momentum"),
    ("Hyperparameters", lambda m, o, l: Hyperparameters(momentum="cyc"), ValueError, "momentum"),
    ("Hyperparameters", lambda m, o, l: Hyperparameters(batch_size=0), ValueError, "batch_size"),
    ("Hyperparameters", lambda m, o, l: Hyperparameters(weight_decay=-1), ValueError, "weight_decay"),
    # data
    ("load_dataset", lambda m, o, l: load_dataset("digits", seed="1"), TypeError, "seed must be an int"),
    ("load_dataset", lambda m, o, l: load_dataset("digits", seed=True), TypeError, "seed must be an int"),
    ("load_dataset", lambda m, o, l: load_dataset(3), ValueError, "name must be one of"),
    ("load_dataset", lambda m, o, l: load_dataset("digits", val_fraction=2), ValueError, "val_fraction"),
    ("load_dataset", lambda m, o, l: load_dataset("digits", val_size=1.5), ValueError, "val_size"),
    ("load_dataset", lambda m, o, l: load_dataset("digits", nosie=1), TypeError, r"unknown options \['nosie'\]"),
    ("load_dataset", lambda m, o, l: load_dataset("cifar10", root=123), TypeError, "root must be a path"),
    ("load_dataset", lambda m, o, l: load_dataset("cifar10", download="no"), TypeError, "download"),
]

# Still unclear or silently accepted; the checks belong in modules other sessions own
# (train.py, range_test.py, schedules.py): strict, so that a fix shows here as XPASS.
CASES += [
    ("one_cycle", lambda m, o, l: one_cycle("optimizer", 0.1, 100), TypeError, "optimizer must be"),
    ("cyclical", lambda m, o, l: cyclical(None, 0.01, 0.1, 10), TypeError, "optimizer must be"),
    ("preview", lambda m, o, l: preview("optimizer", steps=5, train_loader=l), TypeError, "optimizer must be"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, []), ValueError, "milestones"),
]
CASES += [
    ("fit", lambda m, o, l: fit(m, o, CE, l, l, steps=2, eval_each_epoch="no"), TypeError, "eval_each_epoch"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, progress_bar="yes"), TypeError, "progress_bar"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, hooks=3), TypeError, "hooks must be"),
    ("evaluate", lambda m, o, l: evaluate("model", CE, l), TypeError, "model must be"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l, weight_decays=[math.nan]), ValueError,
     "weight_decays"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l, momentums=[1.5]), ValueError, "momentums"),
    ("fit", lambda m, o, l: fit(m, o, CE, l, steps=2, hooks=[3]), TypeError, "hooks must be Hook objects"),
]


def _history():
    from disciplined_widgets import History
    return History()



def _case(case):
    return pytest.param(*case.values[1:], marks=case.marks) if hasattr(case, "values") else case[1:]


def _id(index, case):
    return f"{(case.values if hasattr(case, 'values') else case)[0]}-{index}"


@pytest.mark.parametrize("call,error,match", [_case(c) for c in CASES],
                         ids=[_id(i, c) for i, c in enumerate(CASES)])
def test_bad_input_is_refused_by_name_and_changes_nothing(setup, call, error, match):
    model, optimizer, loader = setup
    before = _state(model, optimizer, loader)
    with pytest.raises(error, match=match):
        call(model, optimizer, loader)
    after = _state(model, optimizer, loader)
    assert all(torch.equal(before[0][k], v) for k, v in after[0].items())
    assert before[1] == after[1] and torch.equal(before[2], after[2]) and before[3] == after[3]


SEARCH_CASES = [
    (dict(grace_period=-1), ValueError, "grace_period"),
    (dict(grace_period=math.nan), ValueError, "grace_period"),
    (dict(device="banana"), ValueError, "device"),
    (dict(optimizer="lamb"), ValueError, "optimizer"),
    (dict(unpack=lambda batch: batch), TypeError, "options"),
    (dict(sampler="bayes"), ValueError, "sampler"),
    (dict(metric="f1"), ValueError, "metric"),
    (dict(seed="1"), TypeError, "seed must be an int"),
    (dict(study=3), TypeError, "study must be a name"),
    (dict(storage=3), TypeError, "storage must be None or a URL"),
    (dict(model_kwargs=[1]), TypeError, "model_kwargs must be a dict"),
    (dict(data_kwargs="x"), TypeError, "data_kwargs must be a dict"),
    (dict(fixed=[("max_lr", 0.1)]), TypeError, "fixed must be a dict"),
    (dict(fixed={"momentum": 1.0}), ValueError, "momentum"),
    (dict(steps=None, epochs=1.5), TypeError, "epochs must be an int"),
    (dict(grace_period=math.inf), ValueError, "grace_period"),
    (dict(sampler="random", n_trials=1.5), TypeError, "n_trials must be an int"),
    (dict(model=3), TypeError, "model must be a name or a function"),
    # spaces that can draw a value no run accepts, found when the search is made
    (dict(space={"div_factor": IntDistribution(1, 3)}), ValueError, r"space\['div_factor'\].*can draw 1: div_factor must be > 1"),
    (dict(space={"max_lr": linear_range(-1, 1)}), ValueError, r"space\['max_lr'\].*can draw -1.0: max_lr"),
    (dict(space={"momentum": linear_range(0.5, 1.5)}), ValueError, r"space\['momentum'\].*can draw 1.5"),
    (dict(space={"momentum": linear_range(0.8, 1.0)}), ValueError, r"space\['momentum'\].*can draw 1.0"),
    (dict(space={"momentum": CategoricalDistribution([0.9, 1.5])}), ValueError, r"space\['momentum'\].*1.5"),
    (dict(space={"batch_size": IntDistribution(0, 64)}), ValueError, r"space\['batch_size'\].*can draw 0"),
    (dict(space={"weight_decay": linear_range(-1e-3, 1e-3)}), ValueError, r"space\['weight_decay'\].*weight_decay"),
    (dict(space={"batch_size": [32.5]}), TypeError, r"space\['batch_size'\] holds 32.5"),
    (dict(space={"momentum": [0.9, 1.5]}, sampler="grid"), ValueError, r"space\['momentum'\] holds 1.5"),
    (dict(space=[("max_lr", [0.1])]), ValueError, "space must be a non-empty dict"),
]


@pytest.mark.parametrize("kwargs,error,match", SEARCH_CASES, ids=[m[:40] for _, _, m in SEARCH_CASES])
def test_a_bad_search_is_refused_when_it_is_made_and_stores_nothing(tmp_path, kwargs, error, match):
    kwargs = {"sampler": "random", "n_trials": 2, "steps": 5, "space": {"max_lr": [0.1]},
              "storage": f"sqlite:///{tmp_path}/s.db", **kwargs}
    if kwargs["sampler"] == "grid":
        del kwargs["n_trials"]
    with pytest.raises(error, match=match):
        Search(kwargs.pop("model", "mlp"), "digits", kwargs.pop("space"), **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("call,error,match", [
    (lambda: linear_range(1, 0), ValueError, "low <= high"),
    (lambda: linear_range(math.nan, 1), ValueError, "low must be a finite number"),
    (lambda: linear_range("0", 1), TypeError, "low must be a number"),
    (lambda: linear_range(0, math.inf), ValueError, "high must be a finite number"),
    (lambda: log_range(1e-3, math.inf), ValueError, "high"),
    (lambda: Search.join(3), TypeError, "study must be a study's name"),
    (lambda: _search().plot_curves(0), ValueError, "top must be positive"),
    (lambda: _search().run(0), ValueError, "n_trials must be positive"),
    (lambda: _search().run(heartbeat=math.nan), ValueError, "heartbeat"),
], ids=lambda v: getattr(v, "__name__", str(v))[:30])
def test_bad_ranges_and_calls_on_a_search_are_refused_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _search():
    return Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(refresh_every=0), ValueError, "refresh_every must be a finite number > 0, got 0"),
    (dict(refresh_every=-1), ValueError, "refresh_every"),
    (dict(refresh_every=math.nan), ValueError, "refresh_every"),
    (dict(refresh_every=math.inf), ValueError, "refresh_every"),
    (dict(refresh_every="5"), TypeError, "refresh_every must be a number"),
    (dict(trials=-1), ValueError, "trials must be an int >= 0"),
    (dict(trials=1.5), ValueError, "trials must be an int >= 0"),
    (dict(follow="yes"), TypeError, "follow must be True or False"),
], ids=lambda v: str(v)[:30])
def test_a_bad_search_widget_is_refused_by_name(kwargs, error, match):
    from disciplined_widgets.widgets import SearchWidget

    search = _search()
    with pytest.raises(error, match=match):
        SearchWidget(search, **kwargs)
    assert search.progress().waiting == 1
    with pytest.raises(TypeError, match="search must be a Search"):
        SearchWidget(search.study)


def test_recipe_and_range_arguments_are_checked_before_any_work(digits):
    train = TensorLoader(digits.x_train, digits.y_train, 32)
    from disciplined_widgets import discipline
    with pytest.raises(ValueError, match=r"memory_margin must be in \[0, 1\), got 1.5"):
        discipline(lambda: nn.Linear(64, 10), train, train, budget_steps=100_000, memory_margin=1.5)
    with pytest.raises(ValueError, match="low must be a finite number > 0, got 0"):
        log_range(0, 1)
    with pytest.raises(ValueError, match="low <= high"):
        log_range(1, 0.1)


def test_heartbeat_and_grace_period_are_checked_together():
    search = Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, grace_period=1.0)
    with pytest.raises(ValueError, match="heartbeat=0.6 s must be under half of grace_period=1 s"):
        search.run(heartbeat=0.6)
    with pytest.raises(ValueError, match="heartbeat"):
        search.run(heartbeat=0)
    assert search.progress().waiting == 1  # nothing was claimed


@pytest.mark.parametrize("argv,shown", [
    (["--threads", "0"], "--threads: must be above zero"),
    (["--threads", "two"], "--threads: expected a int"),
    (["--heartbeat", "0"], "--heartbeat: must be above zero"),
    (["--grace-period", "-5"], "--grace-period: must be above zero"),
    (["--grace-period", "nan"], "--grace-period: must be above zero"),
    (["--heartbeat", "40"], "--heartbeat 40 must be under half of --grace-period 60"),
    (["--device", "banana"], "device must be 'cpu'"),
    (["--trials", "0"], "--trials: must be above zero"),
    (["--trials", "-1"], "--trials: must be above zero"),
    (["--heartbeat", "inf"], "--heartbeat: must be above zero"),
    (["--grace-period", "0"], "--grace-period: must be above zero"),
    (["--device", "cuda:99"], "device='cuda:99'"),
    (["--storage", "journal:/no/such/folder/j.log"], "folder '/no/such/folder' does not exist"),
    (["--storage", "postgresql:/u:hunter2@h/db"], "got 'postgresql:/u:***@h/db'"),
    (["--storage", "postgresql:u:hunter2@h/db?password=hunter2"], "postgresql:u:***@h/db"),
])
def test_the_worker_command_refuses_bad_arguments_without_a_traceback(argv, shown, capsys, tmp_path):
    try:
        code = main(["search", "worker", "--study", "s", "--storage", f"journal:{tmp_path}/j.log", *argv])
    except SystemExit as exit:  # argparse's own refusal
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and shown in err and "Traceback" not in err and "hunter2" not in err


@pytest.mark.parametrize("url,secret", [
    ("postgresql://u:hunter2@host/db", "hunter2"),
    ("postgresql://u@host/db?password=hunter2", "hunter2"),
    ("postgresql://u@host/db?sslmode=require&sslpassword=hunter2", "hunter2"),
    ("postgresql:/u:hunter2@h/db", "hunter2"),
    ("postgresql:u:hunter2@h/db", "hunter2"),
    ("postgresql://u:hun@ter2@h/db", "ter2"),
    ("mysql+pymysql://u:hunter2@h:3306/db?charset=utf8", "hunter2"),
    ("redis://:hunter2@h:6379/0", "hunter2"),
    ("postgresql://u@h/db?token=hunter2#frag", "hunter2"),
    ("postgresql://u:p%40ss%2Fhunter2@h/db", "hunter2"),
])
def test_every_form_of_password_is_masked(url, secret):
    shown = masked(url)
    assert secret not in shown and "***" in shown


@pytest.mark.parametrize("url", ["postgresql:/u:hunter2@h/db", "postgresql:u:hunter2@h/db",
                                 "u:hunter2@h/db?password=hunter2"])
def test_a_malformed_storage_url_is_refused_without_its_password(url):
    with pytest.raises(ValueError, match="storage must be a URL") as error:
        Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, storage=url)
    assert "hunter2" not in str(error.value) and "***" in str(error.value)
