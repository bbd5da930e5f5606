"""lr_range_test on real models: curves, suggestions, and a bitwise restore however it ends."""

import copy
import json
import math
import threading
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from disciplined_widgets import TensorLoader
from disciplined_widgets.models import MLP, SmallCNN
from disciplined_widgets.range_test import (RangeTestCollection, RangeTestResult, lr_range_test,
                                            range_tests, sweep_lrs)


def trained(optimizer_name, digits, steps=5):
    """A SmallCNN (BatchNorm) whose optimizer already has state, with gradients left over."""
    torch.manual_seed(0)
    model = SmallCNN()
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    loss = nn.CrossEntropyLoss()
    for i in range(steps):
        optimizer.zero_grad()
        loss(model(digits.x_train[i * 32:(i + 1) * 32]), digits.y_train[i * 32:(i + 1) * 32]).backward()
        optimizer.step()
    model.eval()  # the user left it in eval mode: that must survive too
    return model, optimizer, loss


def everything(model, optimizer, loader):
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None},
        "modes": [m.training for m in model.modules()],
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
        "rng": torch.get_rng_state(),
        "loader": loader.generator.get_state(),
    }


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for name in ("tensors", "grads"):
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert a[name][key].dtype == b[name][key].dtype
            assert torch.equal(a[name][key], b[name][key]), f"{name}: {key}"
    assert a["modes"] == b["modes"]
    assert a["groups"] == b["groups"]
    sa, sb = a["optimizer"], b["optimizer"]
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for index in sa["state"]:
        for key, value in sa["state"][index].items():
            other = sb["state"][index][key]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other
    assert torch.equal(a["rng"], b["rng"]) and torch.equal(a["loader"], b["loader"])


class PoisonedLoader:
    """Real batches, but batch ``at`` is corrupt: NaN inputs, or a read error."""

    def __init__(self, loader, at, kind):
        self.loader, self.at, self.kind = loader, at, kind
        self.generator = loader.generator

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for index, (x, y) in enumerate(self.loader):
            if index == self.at:
                if self.kind == "raise":
                    raise OSError("disk read failed")
                x = torch.full_like(x, math.nan)
            yield x, y


END_STATES = ["completed", "diverged", "non_finite", "stopped", "raised"]


@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
@pytest.mark.parametrize("end", END_STATES)
def test_everything_is_restored_bitwise_however_the_test_ends(digits, optimizer_name, end):
    model, optimizer, loss = trained(optimizer_name, digits)
    loader = TensorLoader(digits.x_train, digits.y_train, 32, seed=1)
    before = everything(model, optimizer, loader)
    stop = threading.Event()
    kwargs = dict(num_iter=30, start_lr=1e-5, end_lr=1e-2)
    if end == "diverged":
        kwargs.update(end_lr=1e4, num_iter=60, diverge_factor=2.0)
    elif end == "non_finite":
        loader = PoisonedLoader(loader, at=7, kind="nan")
    elif end == "stopped":
        kwargs["callback"] = lambda partial: len(partial.lrs) == 9 and stop.set()
    elif end == "raised":
        loader = PoisonedLoader(loader, at=7, kind="raise")

    during = []  # the run really trains: the first conv's weights move
    user_callback = kwargs.pop("callback", None)

    def callback(partial):
        during.append(next(model.parameters()).detach().clone())
        if user_callback:
            user_callback(partial)

    kwargs["callback"] = callback
    if end == "raised":
        with pytest.raises(OSError, match="disk read failed"):
            lr_range_test(model, optimizer, loss, loader, **kwargs)
    else:
        result = lr_range_test(model, optimizer, loss, loader, stop_event=stop, **kwargs)
        assert result.stop_reason == end
        expected_steps = {"completed": 30, "non_finite": 8, "stopped": 9}
        if end in expected_steps:
            assert len(result.lrs) == expected_steps[end]
        else:
            assert len(result.lrs) < 60
    assert not torch.equal(during[-1], before["tensors"]["features.0.0.weight"])
    assert_bitwise_equal(before, everything(model, optimizer, loader))


def test_disk_snapshot_restores_and_cleans_up(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    model, optimizer, loss = trained("sgd", digits)
    loader = TensorLoader(digits.x_train, digits.y_train, 32, seed=1)
    before = everything(model, optimizer, loader)
    lr_range_test(model, optimizer, loss, loader, num_iter=10, snapshot="disk")
    assert_bitwise_equal(before, everything(model, optimizer, loader))
    assert list(Path(tmp_path).iterdir()) == []


def test_grad_scaler_state_is_restored(digits):
    model, optimizer, loss = trained("sgd", digits)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
    before = scaler.state_dict()
    loader = TensorLoader(digits.x_train, digits.y_train, 32, seed=1)
    lr_range_test(model, optimizer, loss, loader, num_iter=10, amp="fp16", grad_scaler=scaler)
    assert scaler.state_dict() == before


@pytest.mark.parametrize("make_optimizer", [
    lambda p: torch.optim.SGD(p, lr=0.1),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: torch.optim.Adam(p, lr=1e-3),
    lambda p: torch.optim.AdamW(p, lr=1e-3),
    lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5),
], ids=["sgd", "nesterov", "adam", "adamw", "rmsprop"])
def test_common_optimizers_find_a_learning_rate(digits_loaders, make_optimizer):
    train, _ = digits_loaders
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = make_optimizer(model.parameters())
    before = copy.deepcopy(optimizer.state_dict())
    result = lr_range_test(model, optimizer, nn.CrossEntropyLoss(), train, num_iter=60, start_lr=1e-5)
    assert result.stop_reason in ("completed", "diverged")
    start, end = result.usable
    assert min(result.smoothed_losses[start:end]) < result.smoothed_losses[start] * 0.9
    assert 1e-5 < result.suggestions.steepest < 10
    low, high = result.suggestions.bounds
    assert high == pytest.approx(10 * low)
    assert optimizer.state_dict() == before


def test_lrs_follow_the_sweep_and_groups_keep_their_ratios(digits):
    torch.manual_seed(0)
    model = MLP(in_features=64)
    first, last = model.net[1], model.net[-1]
    optimizer = torch.optim.SGD([{"params": first.parameters(), "lr": 0.1},
                                 {"params": list(model.net[3].parameters()) + list(last.parameters()),
                                  "lr": 0.01}], momentum=0.9)
    ratios = []
    loader = [(digits.x_train[:32], digits.y_train[:32])] * 3  # shorter than num_iter: cycled
    result = lr_range_test(
        model, optimizer, nn.CrossEntropyLoss(), loader, num_iter=10, start_lr=1e-4, end_lr=1.0,
        callback=lambda _: ratios.append(optimizer.param_groups[1]["lr"] / optimizer.param_groups[0]["lr"]))
    assert result.lrs == pytest.approx(sweep_lrs(1e-4, 1.0, 10, "exp"))
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(1.0)
    assert ratios == pytest.approx([0.1] * 10)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.01]


def test_linear_mode(digits_loaders):
    train, _ = digits_loaders
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, opt, nn.CrossEntropyLoss(), train, num_iter=5, start_lr=0.1,
                           end_lr=0.5, mode="linear")
    assert result.lrs == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


class DictDigits(Dataset):
    def __init__(self, digits):
        self.x, self.y = digits.x_train, digits.y_train

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i], "id": i}


def test_dict_batches_and_a_counted_validation(digits):
    class CountingLoader(list):
        served = 0

        def __iter__(self):
            for batch in super().__iter__():
                CountingLoader.served += 1
                yield batch

    val = CountingLoader([(digits.x_val[i:i + 50], digits.y_val[i:i + 50]) for i in range(0, 350, 50)])
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = lr_range_test(model, opt, nn.CrossEntropyLoss(),
                           DataLoader(DictDigits(digits), batch_size=32, shuffle=True),
                           num_iter=20, val_loader=val, val_every=5, val_batches=2)
    assert result.val_steps == [5, 10, 15, 20]
    assert result.val_lrs == [result.lrs[s - 1] for s in result.val_steps]
    assert CountingLoader.served == 4 * 2  # a few batches each time, not the whole set
    assert all(0 <= a <= 1 for a in result.val_accuracies)


def test_resmooth_round_trip_and_figure(digits_loaders):
    train, _ = digits_loaders
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = lr_range_test(model, opt, nn.CrossEntropyLoss(), train, num_iter=40)
    other = result.resmooth(0.5)
    assert other.losses == result.losses and other.smooth == 0.5
    assert other.smoothed_losses != result.smoothed_losses
    with pytest.raises(ValueError, match="smooth"):
        result.resmooth(1.0)
    result.losses[-1] = math.nan  # a non-finite loss survives JSON
    copy_ = RangeTestResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert math.isnan(copy_.losses[-1]) and copy_.lrs == result.lrs
    assert not math.isnan(other.losses[-1])  # resmooth made its own copy
    figure = other.plot()
    assert figure.axes[0].get_xscale() == "log" and "steepest" in str(figure.axes[0].get_legend_handles_labels())


def test_range_tests_over_weight_decays_start_from_the_same_state(digits):
    train = TensorLoader(digits.x_train, digits.y_train, 32, seed=0)
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    collection = range_tests(model, opt, nn.CrossEntropyLoss(), train,
                             weight_decays=[1e-2, 1e-3, 0.0], num_iter=25)
    assert [r.settings for r in collection] == [{"weight_decay": w} for w in (1e-2, 1e-3, 0.0)]
    first_losses = {r.losses[0] for r in collection}
    assert len(first_losses) == 1  # same model, same first batch
    assert collection[0].losses != collection[2].losses  # the weight decay made a difference
    assert opt.param_groups[0]["weight_decay"] == 5e-4
    again = RangeTestCollection.from_dict(json.loads(json.dumps(collection.to_dict())))
    assert len(again) == 3 and again.parameter == "weight_decay"
    assert len(collection.plot().axes[0].get_lines()) == 3


def test_range_tests_over_adam_beta1(digits_loaders):
    train, _ = digits_loaders
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    collection = range_tests(model, opt, nn.CrossEntropyLoss(), train, momentums=[0.95, 0.85],
                             num_iter=10)
    assert [r.label for r in collection] == ["momentum=0.95", "momentum=0.85"]
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)


BAD = [
    (dict(start_lr=0), ValueError, "start_lr"),
    (dict(start_lr=-1e-3), ValueError, "start_lr"),
    (dict(end_lr=math.inf), ValueError, "end_lr"),
    (dict(start_lr=1.0, end_lr=0.1), ValueError, "end_lr must be greater"),
    (dict(num_iter=1), ValueError, "num_iter"),
    (dict(num_iter=10.0), TypeError, "num_iter"),
    (dict(mode="cosine"), ValueError, "mode"),
    (dict(smooth=1.0), ValueError, "smooth"),
    (dict(smooth=-0.1), ValueError, "smooth"),
    (dict(diverge_factor=1.0), ValueError, "diverge_factor"),
    (dict(val_every=5), ValueError, "val_loader"),
    (dict(snapshot="gpu"), ValueError, "snapshot"),
    (dict(train_loader=[]), ValueError, "train_loader is empty"),
    (dict(optimizer="other model"), ValueError, "optimizer does not hold"),
    (dict(amp="int8"), ValueError, "amp"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD, ids=[b[2] for b in BAD])
def test_bad_input_raises_and_changes_nothing(digits, kwargs, error, match):
    model, optimizer, loss = trained("sgd", digits)
    loader = TensorLoader(digits.x_train, digits.y_train, 32, seed=1)
    if kwargs.get("optimizer") == "other model":
        kwargs["optimizer"] = torch.optim.SGD(SmallCNN().parameters(), lr=0.1)
    before = everything(model, optimizer, loader)
    args = dict(model=model, optimizer=optimizer, criterion=loss, train_loader=loader)
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    with pytest.raises(error, match=match):
        lr_range_test(**args, **kwargs)
    assert_bitwise_equal(before, everything(model, optimizer, loader))


def test_range_tests_bad_input(digits_loaders):
    train, _ = digits_loaders
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        range_tests(model, opt, nn.CrossEntropyLoss(), train)
    with pytest.raises(ValueError, match="empty"):
        range_tests(model, opt, nn.CrossEntropyLoss(), train, weight_decays=[])
    with pytest.raises(ValueError, match=r"weight_decays must be in \[0, inf\]"):
        range_tests(model, opt, nn.CrossEntropyLoss(), train, weight_decays=[-1e-4])


def test_parallel_range_tests_with_disk_snapshots_do_not_collide(digits):
    models = [trained("sgd", digits), trained("adamw", digits)]
    loaders = [TensorLoader(digits.x_train, digits.y_train, 32, seed=s) for s in (1, 2)]
    before = [everything(m, o, l) for (m, o, _), l in zip(models, loaders)]
    results, errors = [None, None], []

    def work(i):
        try:
            model, optimizer, loss = models[i]
            results[i] = lr_range_test(model, optimizer, loss, loaders[i], num_iter=15,
                                       end_lr=1.0, snapshot="disk")  # no divergence in 15 steps
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(len(r.lrs) == 15 for r in results)
    for (model, optimizer, _), loader, saved in zip(models, loaders, before):
        after = everything(model, optimizer, loader)
        after["rng"] = saved["rng"]  # the global RNG is shared by the two threads
        assert_bitwise_equal(saved, after)


def shifted_cross_entropy(shift):
    """Cross-entropy plus a constant: the same gradients and training, another loss level."""
    loss = nn.CrossEntropyLoss()
    return lambda outputs, targets: loss(outputs, targets) + shift


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_below_zero_stops_where_the_same_loss_shifted_up_does(digits, seed):
    results = []
    for shift in (-5.0, 0.0, 5.0):
        torch.manual_seed(seed)
        model = MLP(in_features=64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loader = TensorLoader(digits.x_train, digits.y_train, 32, seed=seed)
        results.append(lr_range_test(model, optimizer, shifted_cross_entropy(shift), loader,
                                     num_iter=80, start_lr=1e-4, end_lr=1e3))
    below = results[0]
    start, end = below.usable
    assert max(below.smoothed_losses[:end]) < 0  # every point read is below zero
    for other in results[1:]:
        assert (len(other.lrs), other.stop_reason) == (len(below.lrs), "diverged")
        assert other.usable == below.usable and other.suggestions == below.suggestions
    # not cut on the way down: the test stops where its window ends, past the lowest loss,
    # once the raw loss has blown up above where it started
    assert len(below.lrs) == end + 1 < 80
    lowest = below.smoothed_losses.index(min(below.smoothed_losses))
    assert lowest < end and below.losses[-1] > below.losses[0]
