"""Hyperparameters and train_run (one short 1cycle run), and with_batch_size, on real data."""

import math

import pytest
import torch
from torch.utils.data import (BatchSampler, DataLoader, RandomSampler, SequentialSampler,
                              SubsetRandomSampler, TensorDataset)

from disciplined_widgets import Hyperparameters, TensorLoader, train_run
from disciplined_widgets.loader import with_batch_size
from disciplined_widgets.models import MLP
from disciplined_widgets.runs import CYCLICAL_MOMENTUM, HYPERPARAMETERS


@pytest.fixture(autouse=True)
def _one_thread():
    # Short runs on tiny data: one thread is fastest, and does not fight other processes.
    torch.set_num_threads(1)


def small_mlp():
    return MLP(in_features=64, hidden=(32,))


def run(loaders, hp=Hyperparameters(batch_size=64), **kwargs):
    kwargs.setdefault("steps", 30)
    return train_run(small_mlp, *loaders, hp, device="cpu", **kwargs)


# ---- Hyperparameters ----

BAD_VALUES = [
    (dict(momentum=1.0), ValueError, "momentum"),
    (dict(momentum=-0.1), ValueError, "momentum"),
    (dict(momentum="constant"), ValueError, "momentum"),
    (dict(momentum=True), ValueError, "momentum"),
    (dict(weight_decay=-1e-4), ValueError, "weight_decay"),
    (dict(weight_decay=math.nan), ValueError, "weight_decay"),
    (dict(weight_decay="0"), ValueError, "weight_decay"),
    (dict(div_factor=1), ValueError, "div_factor must be > 1"),
    (dict(div_factor=0.5), ValueError, "div_factor must be > 1"),
    (dict(div_factor=0), ValueError, "div_factor"),
    (dict(max_lr=0.0), ValueError, "max_lr"),
    (dict(max_lr=math.inf), ValueError, "max_lr"),
    (dict(max_lr="0.1"), TypeError, "max_lr"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=32.0), TypeError, "batch_size"),
]


@pytest.mark.parametrize("values,error,match", BAD_VALUES,
                         ids=[f"{k}={v!r}" for (d, _, _) in BAD_VALUES for k, v in d.items()])
def test_bad_values_are_refused_by_the_constructor_and_by_replace(values, error, match):
    with pytest.raises(error, match=match):
        Hyperparameters(**values)
    base = Hyperparameters(max_lr=0.3, momentum=0.9)
    with pytest.raises(error, match=match):
        base.replace(**values)
    assert base == Hyperparameters(max_lr=0.3, momentum=0.9)


def test_replace_refuses_unknown_names_and_changes_nothing():
    base = Hyperparameters()
    with pytest.raises(ValueError, match=r"unknown hyper-parameters \['lr'\]"):
        base.replace(lr=0.5)
    with pytest.raises(ValueError, match=r"\['epochs', 'mom'\]"):
        base.replace(max_lr=0.5, mom=0.9, epochs=3)
    assert base == Hyperparameters() and base.max_lr == 0.1


def test_replace_gives_a_validated_copy_and_the_fields_are_the_search_names():
    base = Hyperparameters()
    changed = base.replace(max_lr=0.4, div_factor=20, momentum=0.0, weight_decay=0)
    assert changed.max_lr == 0.4 and changed.min_lr == pytest.approx(0.02)
    assert base.max_lr == 0.1 and base.momentum == "cyclical"
    assert tuple(changed.to_dict()) == HYPERPARAMETERS
    assert changed.to_dict() == dict(max_lr=0.4, div_factor=20, momentum=0.0, weight_decay=0,
                                     batch_size=128)


# ---- train_run ----

def test_same_seed_same_run_and_other_values_another(digits_loaders):
    hp = Hyperparameters(max_lr=0.2, batch_size=64)
    a, b = run(digits_loaders, hp, seed=3), run(digits_loaders, hp, seed=3)
    assert a.train_loss == b.train_loss and a.val_loss == b.val_loss
    assert a.stop_reason == "completed" and a.val_accuracy[-1] > 0.5  # it learned something

    for other in (hp.replace(max_lr=0.05), hp.replace(weight_decay=0.05),
                  hp.replace(batch_size=32), hp.replace(momentum=0.5)):
        c = run(digits_loaders, other, seed=3)
        assert c.train_loss != a.train_loss, other
    assert run(digits_loaders, hp, seed=4).train_loss != a.train_loss


def test_the_users_loader_is_left_as_it_was(digits_loaders):
    train, val = digits_loaders
    state = train.generator.get_state().clone()
    history = run(digits_loaders, Hyperparameters(batch_size=100))
    assert set(history.batch_size[:10]) == {100}
    assert train.batch_size == 64 and torch.equal(train.generator.get_state(), state)


def test_one_cycle_of_lr_with_cyclical_or_constant_momentum(digits_loaders):
    steps = 40
    cyclical = run(digits_loaders, Hyperparameters(max_lr=0.2, div_factor=20), steps=steps)
    constant = run(digits_loaders, Hyperparameters(max_lr=0.2, div_factor=20, momentum=0.9),
                   steps=steps)
    for history in (cyclical, constant):  # the same 1cycle LR for both
        assert len(history.lr) == steps
        assert history.lr[0] == pytest.approx(0.01)
        assert max(history.lr) == pytest.approx(0.2, rel=0.05)
        assert history.lr[-1] < history.lr[0]  # the final annihilation phase
    assert constant.lr == pytest.approx(cyclical.lr)

    high, low = CYCLICAL_MOMENTUM
    assert cyclical.momentum[0] == pytest.approx(high)
    assert min(cyclical.momentum) == pytest.approx(low, abs=0.005)
    peak = cyclical.lr.index(max(cyclical.lr))
    assert cyclical.momentum[peak] == min(cyclical.momentum)  # momentum is lowest at the LR peak
    assert cyclical.momentum[-1] == pytest.approx(high, abs=0.005)
    assert set(constant.momentum) == {0.9}
    assert constant.train_loss != cyclical.train_loss


def test_the_budget_is_respected(digits_loaders):
    train, _ = digits_loaders
    history = run(digits_loaders, Hyperparameters(batch_size=100), steps=37)
    assert history.steps_done == history.total_steps == 37
    assert history.stop_reason == "completed" and len(history.train_loss) == 37
    assert history.eval_step[-1] == 37  # evaluated at the end
    assert len(history.eval_step) == 10  # evaluations=10, not one more
    assert run(digits_loaders, steps=40).eval_step == list(range(4, 41, 4))  # evaluations=10

    n = len(train.inputs)
    epochs = run(digits_loaders, Hyperparameters(batch_size=100), epochs=2, evaluations=4,
                 steps=None)
    assert epochs.steps_done == 2 * math.ceil(n / 100)
    assert sum(epochs.batch_size) == 2 * n and epochs.epoch[-1] == 2.0
    assert len(epochs.eval_step) == 4  # every ceil(steps / 4) steps, the last at the end

    with pytest.raises(ValueError, match="exactly one"):
        run(digits_loaders, steps=None)
    with pytest.raises(ValueError, match="exactly one"):
        run(digits_loaders, steps=10, epochs=1)
    with pytest.raises(ValueError, match="steps"):
        run(digits_loaders, steps=0)


def test_train_run_refuses_a_model_instead_of_a_factory(digits_loaders):
    with pytest.raises(TypeError, match="model_factory"):
        train_run(small_mlp(), *digits_loaders, Hyperparameters(), steps=3)
    with pytest.raises(TypeError, match="hyperparameters"):
        train_run(small_mlp, *digits_loaders, {"max_lr": 0.1}, steps=3)


# ---- with_batch_size ----

N = 50
INPUTS = torch.arange(float(N)).unsqueeze(1)
TARGETS = torch.arange(N)


def order(batches):
    return torch.cat([y for _, y in batches]).tolist()


def test_a_resized_tensor_loader_continues_the_shuffling_and_leaves_the_original():
    loader = TensorLoader(INPUTS, TARGETS, 8, seed=3, drop_last=True)
    list(loader)  # one epoch: the generator is no longer at its seed
    state = loader.generator.get_state().clone()

    copy = with_batch_size(loader, 20)
    batches = list(copy)
    assert [len(y) for _, y in batches] == [20, 20]  # drop_last kept
    assert copy.inputs is loader.inputs and copy.targets is loader.targets
    assert loader.batch_size == 8 and len(loader) == 6
    assert torch.equal(loader.generator.get_state(), state)  # drawing from the copy: untouched

    # the copy drew the permutation that the original's next epoch draws
    assert order(batches) == order(loader)[:40]


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_resized_dataloader_gives_the_new_size_and_leaves_the_original(shuffle):
    generator = torch.Generator().manual_seed(11)
    loader = DataLoader(TensorDataset(INPUTS, TARGETS), batch_size=8, shuffle=shuffle,
                        generator=generator)
    list(loader)
    state = generator.get_state().clone()

    copy = with_batch_size(loader, 20)
    batches = list(copy)
    assert [len(y) for _, y in batches] == [20, 20, 10]
    assert copy.dataset is loader.dataset
    assert loader.batch_size == 8 and len(loader) == 7
    assert torch.equal(generator.get_state(), state)
    assert loader.generator is generator
    assert order(batches) == order(loader)  # same shuffling as the original's next epoch
    assert (order(batches) == list(range(N))) == (not shuffle)


def test_train_run_on_a_dataloader_does_not_reseed_the_users_generator(digits):
    generator = torch.Generator().manual_seed(5)
    train = DataLoader(TensorDataset(digits.x_train, digits.y_train), batch_size=64,
                       shuffle=True, generator=generator)
    val = DataLoader(TensorDataset(digits.x_val, digits.y_val), batch_size=500)
    state = generator.get_state().clone()
    a = run((train, val), Hyperparameters(batch_size=100), steps=10, seed=1)
    assert torch.equal(generator.get_state(), state) and train.batch_size == 64
    assert a.batch_size == [100] * 10
    assert run((train, val), Hyperparameters(batch_size=100), steps=10, seed=1).train_loss == \
        a.train_loss


def test_loaders_that_cannot_be_resized_are_refused():
    dataset = TensorDataset(INPUTS, TARGETS)
    custom = DataLoader(dataset, batch_sampler=BatchSampler(SequentialSampler(dataset), 7, False))
    with pytest.raises(TypeError, match="batch_sampler"):
        with_batch_size(custom, 16)
    assert [len(y) for _, y in custom][:2] == [7, 7]

    # a sampler that picks some samples: a plain rebuild would silently use all of them
    subset = DataLoader(dataset, batch_size=4, sampler=SubsetRandomSampler(range(10)))
    with pytest.raises(TypeError, match="SubsetRandomSampler"):
        with_batch_size(subset, 16)
    drawn = DataLoader(dataset, batch_size=4, sampler=RandomSampler(dataset, replacement=True))
    with pytest.raises(TypeError, match="RandomSampler"):
        with_batch_size(drawn, 16)

    with pytest.raises(TypeError, match="list"):
        with_batch_size([(INPUTS, TARGETS)], 16)
    with pytest.raises(ValueError, match="batch_size"):
        with_batch_size(TensorLoader(INPUTS, TARGETS), 0)
