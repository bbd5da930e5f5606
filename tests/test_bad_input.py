"""Bad input across the public API, the search and the command line: each call fails with the
error type expected, names the parameter, and leaves the model, optimizer and loader as they
were. Passwords never show, in any form a URL can hold them."""

import math

import pytest
import torch
from torch import nn

from disciplined_widgets import (BatchSizeSchedule, TensorLoader, cyclical, evaluate, fit,
                                 lr_range_test, one_cycle, preview, range_tests)
from disciplined_widgets.__main__ import main
from disciplined_widgets.search import Search, log_range, masked


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
    # evaluate
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, device="cuda:7"), ValueError, "device"),
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, amp="fp32"), ValueError, "amp"),
    ("evaluate", lambda m, o, l: evaluate(m, CE, l, max_batches=0), ValueError, "max_batches"),
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
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l), ValueError, "weight_decays"),
    ("range_tests", lambda m, o, l: range_tests(m, o, CE, l, weight_decays=[-1]), ValueError, "weight_decays"),
    # schedules
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 4, style="fastai"), ValueError, "total_steps"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, momentum=0.9), TypeError, "momentum"),
    ("one_cycle", lambda m, o, l: one_cycle(o, -0.1, 100), ValueError, "max_lr"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, div=1), ValueError, "div"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, style="linear"), ValueError, "style"),
    ("one_cycle", lambda m, o, l: one_cycle(o, 0.1, 100, final_div=0.1), ValueError, "final_div"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.1, 0.01, 5), ValueError, "max_lr"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, gamma=2), ValueError, "gamma"),
    ("cyclical", lambda m, o, l: cyclical(o, 0.01, 0.1, 5, mode="sine"), ValueError, "mode"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, 5), TypeError, "milestones"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, (5, 3)), ValueError, "milestones"),
    ("BatchSizeSchedule", lambda m, o, l: BatchSizeSchedule(16, (5,), factor=1), ValueError, "factor"),
    ("preview", lambda m, o, l: preview(o, steps=5, train_loader=[]), ValueError, "train_loader is empty"),
    ("preview", lambda m, o, l: preview(o, steps=5), ValueError, "steps_per_epoch"),
    # loaders
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, seed=None), TypeError, "seed"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, shuffle="no"), TypeError, "shuffle"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, 0), ValueError, "batch_size"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets, device="banana"), ValueError, "device"),
    ("TensorLoader", lambda m, o, l: TensorLoader(l.inputs, l.targets[:5]), ValueError, "differ in length"),
]


@pytest.mark.parametrize("call,error,match", [c[1:] for c in CASES], ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
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
]


@pytest.mark.parametrize("kwargs,error,match", SEARCH_CASES, ids=[m for _, _, m in SEARCH_CASES])
def test_a_bad_search_is_refused_when_it_is_made(kwargs, error, match):
    with pytest.raises(error, match=match):
        Search("mlp", "digits", {"max_lr": [0.1]}, **{"sampler": "grid", "steps": 5, **kwargs})


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
])
def test_the_worker_command_refuses_bad_arguments_without_a_traceback(argv, shown, capsys, tmp_path):
    try:
        code = main(["search", "worker", "--study", "s", "--storage", f"journal:{tmp_path}/j.log", *argv])
    except SystemExit as exit:  # argparse's own refusal
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and shown in err and "Traceback" not in err


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
