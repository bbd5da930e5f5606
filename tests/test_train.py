"""fit: the one training loop, on real models and small real data."""

import json
import threading

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from disciplined_widgets import History, TensorLoader, evaluate, fit, resolve_device
from disciplined_widgets.models import MLP, SmallCNN


def make(seed=0, model_cls=SmallCNN, lr=0.05, optimizer="sgd"):
    torch.manual_seed(seed)
    model = model_cls() if model_cls is not MLP else MLP(in_features=64)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
    return model, opt, nn.CrossEntropyLoss()


def test_fit_learns_digits_and_records_every_step(digits_loaders):
    train, val = digits_loaders
    model, opt, loss = make()
    history = fit(model, opt, loss, train, val, epochs=3, seed=0)
    n = 3 * len(train)
    assert history.stop_reason == "completed" and history.steps_done == history.total_steps == n
    for field in History.STEP_FIELDS:
        assert len(getattr(history, field)) == n, field
    assert history.step == list(range(1, n + 1))
    assert history.epoch[len(train) - 1] == 1.0 and history.epoch[-1] == 3.0
    assert history.time == sorted(history.time)
    assert history.eval_epoch == [1.0, 2.0, 3.0] and history.eval_step == [len(train) * k for k in (1, 2, 3)]
    assert history.val_accuracy[-1] > 0.85
    assert history.val_loss[-1] < history.val_loss[0]
    early, late = sum(history.train_loss[:5]), sum(history.train_loss[-5:])
    assert late < early / 3
    assert set(history.lr) == {0.05} and set(history.momentum) == {0.9}
    assert sum(history.batch_size[:len(train)]) == len(train.inputs)


def test_same_seed_gives_the_same_history(digits):
    def run():
        train = TensorLoader(digits.x_train, digits.y_train, 64, seed=0)
        val = TensorLoader(digits.x_val, digits.y_val, 256, shuffle=False)
        model, opt, loss = make(seed=0, model_cls=lambda: nn.Sequential(
            nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10)))
        torch.seed()  # a random global state: fit(seed=...) must not depend on it
        return fit(model, opt, loss, train, val, steps=40, eval_every=10, seed=5).to_dict()

    a, b = run(), run()
    for timing in ("time", "eval_time"):
        a.pop(timing), b.pop(timing)
    assert a == b


def test_seed_leaves_the_global_rng_as_it_was(digits_loaders):
    train, _ = digits_loaders
    model, opt, loss = make()
    state = torch.get_rng_state()
    fit(model, opt, loss, train, steps=3, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_steps_cycle_the_loader_and_eval_every(digits_loaders):
    train, val = digits_loaders
    model, opt, loss = make()
    history = fit(model, opt, loss, train, val, steps=30, eval_every=7, eval_each_epoch=False)
    assert history.steps_done == 30 and len(train) < 30
    assert history.eval_step == [7, 14, 21, 28, 30]  # and once more at the end
    assert 1 < history.epoch[-1] < 2


def test_stop_event_ends_after_a_whole_step_like_a_shorter_run(digits):
    def loaders():
        return (TensorLoader(digits.x_train, digits.y_train, 64, seed=0),
                TensorLoader(digits.x_val, digits.y_val, 256, shuffle=False))

    stop = threading.Event()

    def stop_after_five(history):
        if history.steps_done == 5:
            stop.set()

    model, opt, loss = make()
    train, val = loaders()
    stopped = fit(model, opt, loss, train, val, epochs=5, stop_event=stop, callback=stop_after_five)
    assert stopped.stop_reason == "stopped" and stopped.steps_done == 5
    assert len(stopped.train_loss) == 5 and stopped.eval_step == [5]  # history kept, evaluated

    reference, ref_opt, _ = make()
    fit(reference, ref_opt, loss, loaders()[0], steps=5)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


def test_a_non_finite_loss_stops_the_run(digits_loaders):
    train, _ = digits_loaders
    model, opt, loss = make(model_cls=MLP, lr=1e6)
    history = fit(model, opt, loss, train, epochs=20, sync_every=1)
    assert history.stop_reason == "non_finite"
    assert history.steps_done < 20 * len(train)
    assert not torch.isfinite(torch.tensor(history.train_loss[-1]))
    assert all(torch.isfinite(torch.tensor(history.train_loss[:-1])))


def test_gradient_accumulation_matches_a_big_batch(digits):
    x, y = digits.x_train[:64], digits.y_train[:64]
    small = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    big = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 64, 32)]
    model_a, opt_a, loss = make(model_cls=MLP, lr=0.1)
    model_b, opt_b, _ = make(model_cls=MLP, lr=0.1)
    ha = fit(model_a, opt_a, loss, small, epochs=2, accumulation_steps=2)
    hb = fit(model_b, opt_b, loss, big, epochs=2)
    assert ha.steps_done == hb.steps_done == 4 and ha.batch_size == [32] * 4
    assert ha.train_loss == pytest.approx(hb.train_loss, rel=1e-5)
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_one_cycle_scheduler_sets_lr_and_momentum_every_step(digits_loaders):
    train, _ = digits_loaders
    model, opt, loss = make()
    total = 2 * len(train)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=total)
    history = fit(model, opt, loss, train, epochs=2, schedulers=[scheduler])

    probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.05, momentum=0.9)
    expected = torch.optim.lr_scheduler.OneCycleLR(probe, max_lr=0.3, total_steps=total)
    lrs, momenta = [], []
    for _ in range(total):
        lrs.append(probe.param_groups[0]["lr"])
        momenta.append(probe.param_groups[0]["momentum"])
        probe.step()
        expected.step()
    assert history.lr == pytest.approx(lrs) and history.momentum == pytest.approx(momenta)
    assert max(history.lr) == pytest.approx(0.3, rel=1e-3) and history.momentum[0] == 0.95


def test_batch_size_schedule_changes_the_batch_each_epoch(digits):
    train = TensorLoader(digits.x_train, digits.y_train, 32, drop_last=True)
    model, opt, loss = make()
    history = fit(model, opt, loss, train, epochs=3, batch_size_schedule=lambda epoch: 32 * 2 ** epoch)
    per_epoch = [len(digits.x_train) // b for b in (32, 64, 128)]
    assert history.total_steps == history.steps_done == sum(per_epoch)
    assert history.batch_size == [32] * per_epoch[0] + [64] * per_epoch[1] + [128] * per_epoch[2]
    assert train.batch_size == 128


class DictBatches(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i], "id": i}


def test_plain_dataloaders_with_dict_and_extra_item_batches(digits):
    dict_loader = DataLoader(DictBatches(digits.x_train, digits.y_train), batch_size=64, shuffle=True)
    index = torch.arange(len(digits.x_val))
    extra_loader = DataLoader(TensorDataset(digits.x_val, digits.y_val, index), batch_size=100)
    model, opt, loss = make()
    history = fit(model, opt, loss, dict_loader, extra_loader, epochs=2, seed=0)
    assert history.val_accuracy[-1] > 0.7

    custom = [((x, "note"), y) for x, y in zip(digits.x_train.split(64), digits.y_train.split(64))]
    history = fit(model, opt, loss, custom, steps=3, unpack=lambda b: (b[0][0], b[1]))
    assert history.steps_done == 3


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains(digits_loaders, amp):
    train, val = digits_loaders
    model, opt, loss = make()
    history = fit(model, opt, loss, train, val, epochs=2, amp=amp, seed=0)
    assert history.stop_reason == "completed" and history.val_accuracy[-1] > 0.5
    assert next(model.parameters()).dtype == torch.float32


def test_regression_targets_have_no_accuracy():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, opt, nn.MSELoss(), TensorLoader(x, y, 16), [(x, y)], epochs=20)
    assert history.val_accuracy[-1] is None and history.val_loss[-1] < 0.01
    assert evaluate(model, nn.MSELoss(), [(x, y)])[0] == pytest.approx(history.val_loss[-1])


def test_callback_progress_bar_and_mode_restored(digits_loaders, capsys):
    train, val = digits_loaders
    model, opt, loss = make()
    model.eval()
    seen = []
    fit(model, opt, loss, train, val, steps=4, callback=lambda h: seen.append(h.steps_done),
        progress_bar=True)
    assert seen[:4] == [1, 2, 3, 4] and not model.training
    assert "4/4" in capsys.readouterr().err


def test_history_round_trips_through_json(digits_loaders):
    train, val = digits_loaders
    model, opt, loss = make()
    history = fit(model, opt, loss, train, val, steps=5)
    copy = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert copy.to_dict() == history.to_dict() and copy.train_loss == history.train_loss


def test_device_is_automatic_and_explicit(digits_loaders):
    assert resolve_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, _ = digits_loaders
    model, opt, loss = make()
    fit(model, opt, loss, train, steps=2, device="cpu")
    assert next(model.parameters()).device.type == "cpu"


# ---- bad input: a clear error naming the parameter, nothing changed ----

BAD = [
    (dict(), ValueError, "epochs"),
    (dict(epochs=1, steps=1), ValueError, "exactly one"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(steps=-3), ValueError, "steps"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(epochs=1, accumulation_steps=0), ValueError, "accumulation_steps"),
    (dict(epochs=1, eval_every=5), ValueError, "val_loader"),
    (dict(epochs=1, eval_each_epoch=True), ValueError, "val_loader"),
    (dict(epochs=1, amp="fp8"), ValueError, "amp"),
    (dict(epochs=1, schedulers=[object()]), TypeError, "schedulers"),
    (dict(epochs=1, stop_event=True), TypeError, "stop_event"),
    (dict(epochs=1, callback="print"), TypeError, "callback"),
    (dict(epochs=1, batch_size_schedule=lambda e: 8, train_loader="dataloader"), TypeError,
     "batch_size_schedule"),
    (dict(epochs=1, train_loader=[]), ValueError, "train_loader is empty"),
    (dict(epochs=1, val_loader=[]), ValueError, "val_loader is empty"),
    (dict(epochs=1, train_loader=iter([1, 2])), TypeError, "train_loader"),
    (dict(epochs=1, device="tpu"), ValueError, "device must be 'cpu', 'cuda'.*got 'tpu'"),
    (dict(epochs=1, device="banana"), ValueError, "got 'banana'"),
    *([(dict(epochs=1, device="cuda"), ValueError, "no CUDA device")]
      if not torch.cuda.is_available() else []),
    (dict(epochs=1, schedulers=object()), TypeError, "schedulers"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD, ids=[b[2] for b in BAD])
def test_bad_input_fails_before_training_and_changes_nothing(digits, kwargs, error, match):
    model, opt, loss = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = opt.state_dict()
    loaders = dict(train_loader=TensorLoader(digits.x_train, digits.y_train, 64))
    if kwargs.get("train_loader") == "dataloader":
        kwargs["train_loader"] = DataLoader(TensorDataset(digits.x_train, digits.y_train), batch_size=8)
    loaders.update({k: kwargs.pop(k) for k in ("train_loader", "val_loader") if k in kwargs})
    with pytest.raises(error, match=match):
        fit(model, opt, loss, **loaders, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.state_dict() == opt_before and not opt.state


def test_an_optimizer_for_another_model_is_refused(digits_loaders):
    train, _ = digits_loaders
    model, _, loss = make()
    other = torch.optim.SGD(SmallCNN().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer does not hold"):
        fit(model, other, loss, train, epochs=1)
    with pytest.raises(TypeError, match="optimizer"):
        fit(model, "sgd", loss, train, epochs=1)


def test_eval_every_alone_does_not_add_epoch_evaluations(digits_loaders):
    train, val = digits_loaders
    model, opt, loss = make()
    history = fit(model, opt, loss, train, val, steps=2 * len(train), eval_every=10)
    assert history.eval_step == [s for s in range(10, 2 * len(train) + 1, 10)] + (
        [2 * len(train)] if (2 * len(train)) % 10 else [])


def test_an_interrupt_ends_the_run_after_the_step_and_keeps_the_history(digits_loaders):
    import signal
    train, val = digits_loaders
    model, opt, loss = make()
    # Python's own handler, as in a plain script (fit leaves a host's handler alone, and an
    # earlier test of the full suite can leave another one installed)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt_at_step_5(history):
        if history.steps_done == 5 and len(history.eval_step) == 0:
            # what Ctrl-C or a notebook's interrupt sends; raised in this (the main) thread, as
            # os.kill may hand it to another thread of the test process first
            signal.raise_signal(signal.SIGINT)

    history = fit(model, opt, loss, train, val, epochs=2, callback=interrupt_at_step_5)
    assert history.stop_reason == "interrupted" and history.steps_done in (5, 6)
    assert history.eval_step == [history.steps_done]  # the last step is still evaluated
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def interrupt_twice(history):
        if history.steps_done == 3:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt) as raised:
        fit(model, opt, loss, train, epochs=1, callback=interrupt_twice)
    assert raised.value.history.steps_done == 3
    signal.signal(signal.SIGINT, previous)


def test_an_error_mid_run_carries_the_partial_history(digits_loaders):
    train, _ = digits_loaders
    model, opt, loss = make()

    def fail_at_step_4(history):
        if history.steps_done == 4:
            raise RuntimeError("the user's callback failed")

    with pytest.raises(RuntimeError, match="callback failed") as raised:
        fit(model, opt, loss, train, epochs=1, callback=fail_at_step_4)
    assert raised.value.history.steps_done == 4 and len(raised.value.history.train_loss) == 4


def test_a_schedule_shorter_than_the_run_is_refused_before_training(digits_loaders):
    from disciplined_widgets import one_cycle
    train, _ = digits_loaders
    model, opt, loss = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    short = one_cycle(opt, 0.1, total_steps=len(train) * 2 - 1)
    with pytest.raises(ValueError, match=r"schedulers: OneCycle was built for total_steps=\d+, but the run has"):
        fit(model, opt, loss, train, epochs=2, schedulers=[short])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
