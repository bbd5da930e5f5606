"""RangeTest around the user's own loop: the same curve as lr_range_test, a bitwise restore on
every way out of the block, clear errors for misuse, and no optional library imported."""

import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from torch import nn

from disciplined_widgets import RangeTest, TensorLoader, lr_range_test
from disciplined_widgets.models import SmallCNN
from test_range_test import assert_bitwise_equal, everything, trained

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    # these small models gain nothing from a second thread, and lose much on a busy machine
    torch.set_num_threads(1)


def own_loop(model, optimizer, criterion, loader, test, *, as_float=False, stop_after=None,
             raise_at=None, trace=None):
    """A plain training loop over the cycled loader, until ``record`` says the test is over
    (or ``stop_after`` steps, or ``raise_at=(step, error)``); ``trace`` gets the first weights."""
    steps = 0
    model.train()
    while True:
        for inputs, targets in loader:
            steps += 1
            if raise_at is not None and steps == raise_at[0]:
                raise raise_at[1]
            optimizer.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            if trace is not None:
                trace.append(next(model.parameters()).detach().clone())
            if not test.record(loss.item() if as_float else loss) or steps == stop_after:
                return steps


def test_the_same_curve_and_suggestions_as_lr_range_test(digits):
    kwargs = dict(start_lr=1e-5, end_lr=10.0, num_iter=80)
    model, optimizer, loss = trained("sgd", digits)
    expected = lr_range_test(model, optimizer, loss,
                             TensorLoader(digits.x_train, digits.y_train, 32, seed=1), **kwargs)
    results = []
    for as_float in (False, True):
        with RangeTest(model, optimizer, **kwargs) as test:
            own_loop(model, optimizer, loss, TensorLoader(digits.x_train, digits.y_train, 32, seed=1),
                     test, as_float=as_float)
        results.append(test.result)
    assert expected.stop_reason == "diverged" and len(expected.lrs) < 80
    for result in results:  # a tensor or a float: the same numbers
        assert (result.lrs, result.losses, result.stop_reason) == (
            expected.lrs, expected.losses, expected.stop_reason)
        assert result.suggestions == expected.suggestions


EXITS = ["completed", "diverged", "break", "exception", "keyboard_interrupt"]


@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
@pytest.mark.parametrize("end", EXITS)
def test_every_way_out_of_the_block_restores_bitwise(digits, optimizer_name, end):
    model, optimizer, loss = trained(optimizer_name, digits)
    loader = TensorLoader(digits.x_train, digits.y_train, 32, seed=1)
    before = everything(model, optimizer, loader)
    kwargs = dict(start_lr=1e-5, end_lr=1e-2, num_iter=12)
    if end == "diverged":
        kwargs.update(end_lr=1e4, num_iter=60, diverge_factor=2.0)
    error = {"exception": OSError("disk read failed"), "keyboard_interrupt": KeyboardInterrupt()}.get(end)
    test = RangeTest(model, optimizer, generators=[loader.generator], **kwargs)
    trace = []
    with pytest.raises(type(error)) if error else nullcontext():
        with test:
            own_loop(model, optimizer, loss, loader, test, trace=trace,
                     stop_after=5 if end == "break" else None,
                     raise_at=(7, error) if error else None)
    assert not torch.equal(trace[-1], before["tensors"]["features.0.0.weight"])  # it trained
    reasons = {"break": "stopped", "exception": "failed", "keyboard_interrupt": "interrupted"}
    assert test.result.stop_reason == reasons.get(end, end)
    expected = {"completed": 12, "break": 5, "exception": 6, "keyboard_interrupt": 6}
    assert len(test.result.lrs) == expected.get(end, len(trace)) < 60
    assert_bitwise_equal(before, everything(model, optimizer, loader))


def test_validation_points_and_skipped_steps(digits):
    model, optimizer, loss = trained("sgd", digits)
    with RangeTest(model, optimizer, start_lr=1e-4, end_lr=1e-1, num_iter=6) as test:
        for step in range(1, 7):
            test.record(torch.tensor(2.0 - step / 10), skipped=step == 3)
            if step % 2 == 0:
                test.record_validation(torch.tensor(1.5), accuracy=0.5)
    result = test.result
    assert result.stop_reason == "completed"
    assert result.lrs == [test.lrs[i] for i in (0, 1, 3, 4, 5)]  # the skipped step left out
    assert result.val_steps == [2, 4, 6] and result.val_lrs == [test.lrs[i] for i in (1, 3, 5)]
    assert result.val_losses == [1.5] * 3 and result.val_accuracies == [0.5] * 3


def test_a_non_finite_loss_ends_the_curve_there(digits):
    model, optimizer, _ = trained("sgd", digits)
    with RangeTest(model, optimizer, num_iter=10) as test:
        assert test.record(1.0) and test.record(float("nan")) is False
    assert test.result.stop_reason == "non_finite" and len(test.result.losses) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: device losses are read late")
def test_device_losses_are_read_every_sync_every_steps_with_the_same_curve():
    torch.manual_seed(0)
    model = nn.Linear(4, 1).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = [1.0 - i / 100 for i in range(30)] + [1e3] * 20  # diverges at point 30
    results = []
    for sync_every in (1, 8):
        with RangeTest(model, optimizer, num_iter=50, sync_every=sync_every) as test:
            for step, value in enumerate(losses, 1):
                if not test.record(torch.tensor(value, device="cuda")):
                    break
        results.append((test.result, step))
    (eager, eager_steps), (late, late_steps) = results
    assert eager.stop_reason == late.stop_reason == "diverged"
    assert late.losses == eager.losses and late.lrs == eager.lrs
    assert eager_steps == len(eager.losses) < late_steps <= eager_steps + 7
    assert late_steps % 8 == 0  # seen at a read


def test_misuse_gives_clear_errors(digits):
    model, optimizer, loss = trained("sgd", digits)
    test = RangeTest(model, optimizer, num_iter=3)
    with pytest.raises(RuntimeError, match="inside `with RangeTest"):
        test.record(1.0)
    with test:
        with pytest.raises(RuntimeError, match="already running"):
            test.__enter__()  # nested use of the same test
        with pytest.raises(RuntimeError, match="already running on this model"):
            with RangeTest(model, optimizer):
                pass
        with pytest.raises(RuntimeError, match="already running on this model"):
            lr_range_test(model, optimizer, loss, [(digits.x_train[:8], digits.y_train[:8])])
        with pytest.raises(RuntimeError, match="record a training loss first"):
            test.record_validation(1.0)
        with pytest.raises(TypeError, match="float or a one-element tensor"):
            test.record("0.5")
        with pytest.raises(ValueError, match="one number"):
            test.record(torch.ones(2))
        assert test.record(1.0) and test.record(0.9) and not test.record(0.8)
        with pytest.raises(RuntimeError, match=r"has ended \(completed"):
            test.record(0.7)
    with pytest.raises(RuntimeError, match="has ended"):
        test.record(0.7)
    with pytest.raises(RuntimeError, match="already run"):
        test.__enter__()
    with RangeTest(model, optimizer, num_iter=3):  # the model is free again
        pass


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(start_lr=0), ValueError, "start_lr"),
    (dict(start_lr=1.0, end_lr=0.5), ValueError, "end_lr must be greater"),
    (dict(num_iter=1), ValueError, "num_iter"),
    (dict(mode="cosine"), ValueError, "mode"),
    (dict(smooth=1.0), ValueError, "smooth"),
    (dict(sync_every=0), ValueError, "sync_every"),
    (dict(snapshot="gpu"), ValueError, "snapshot"),
    (dict(generators=[0]), TypeError, "generators"),
    (dict(grad_scaler="fp16"), TypeError, "grad_scaler"),
    (dict(optimizer="other model"), ValueError, "optimizer does not hold"),
])
def test_bad_arguments_are_refused_by_name_and_change_nothing(digits, kwargs, error, match):
    model, optimizer, loss = trained("sgd", digits)
    loader = TensorLoader(digits.x_train, digits.y_train, 32, seed=1)
    before = everything(model, optimizer, loader)
    if kwargs.pop("optimizer", None):
        optimizer = torch.optim.SGD(SmallCNN().parameters(), lr=0.1)
    with pytest.raises(error, match=match):
        RangeTest(model, optimizer, **kwargs)
    if optimizer is not None and optimizer.param_groups[0]["params"][0] is next(model.parameters()):
        assert_bitwise_equal(before, everything(model, optimizer, loader))


def test_importing_the_package_imports_no_optional_library():
    code = ("import sys, disciplined_widgets, disciplined_widgets.integrations; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'lightning', 'pytorch_lightning', 'transformers', 'accelerate'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_loop_benchmark_runs_and_prints_the_ratio():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "range_test_loop.py"),
                           "--steps", "20", "--rounds", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("with RangeTest") == 2 and "target <= 1.03x" in done.stdout
    assert "same losses: True" in done.stdout and "same losses: False" not in done.stdout
