"""TensorLoader, CIFAR augmentation and the batch hook."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from disciplined_widgets import TensorLoader, cifar_augment, unpack_batch

X = torch.arange(10.0).unsqueeze(1)
Y = torch.arange(10)


def test_batches_cover_every_sample_once_per_epoch():
    loader = TensorLoader(X, Y, batch_size=3, seed=0)
    assert len(loader) == 4
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [3, 3, 3, 1]
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert seen.tolist() != list(range(10))  # shuffled
    for x, y in batches:  # inputs and targets stay paired
        assert torch.equal(x.squeeze(1).long(), y)


def test_drop_last_and_no_shuffle():
    loader = TensorLoader(X, Y, batch_size=3, shuffle=False, drop_last=True)
    assert len(loader) == 3
    assert [y.tolist() for _, y in loader] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_same_seed_same_batches_and_epochs_differ():
    a, b = TensorLoader(X, Y, 4, seed=7), TensorLoader(X, Y, 4, seed=7)
    first_a = [y.tolist() for _, y in a]
    assert first_a == [y.tolist() for _, y in b]
    assert first_a != [y.tolist() for _, y in a]  # the next epoch draws a new permutation


def test_batch_size_can_change_between_epochs():
    loader = TensorLoader(X, Y, batch_size=2)
    assert len(loader) == 5
    loader.batch_size = 5
    assert len(loader) == 2 and [len(y) for _, y in loader] == [5, 5]
    with pytest.raises(ValueError, match="batch_size"):
        loader.batch_size = 0
    with pytest.raises(TypeError, match="batch_size"):
        loader.batch_size = 2.5


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="length"):
        TensorLoader(X, Y[:5])
    with pytest.raises(ValueError, match="empty"):
        TensorLoader(X[:0], Y[:0])
    with pytest.raises(TypeError, match="tensors"):
        TensorLoader(X.numpy(), Y)


def test_it_works_like_a_dataloader_for_the_same_batches():
    tensor_batches = [y for _, y in TensorLoader(X, Y, 4, shuffle=False)]
    loader_batches = [y for _, y in DataLoader(TensorDataset(X, Y), batch_size=4)]
    assert all(torch.equal(a, b) for a, b in zip(tensor_batches, loader_batches, strict=True))


def test_cifar_augment_crops_and_flips_reproducibly():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32).repeat(32, 1, 1, 1)
    augment = cifar_augment(pad=4)
    out = augment(images, torch.Generator().manual_seed(0))
    again = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and torch.equal(out, again)
    assert not torch.equal(out, images)
    # every output image is a shifted (and maybe mirrored) window: its centre pixels exist in
    # the original image's rows, in order or reversed
    row = out[0, 0, 16, 8:24]
    original_rows = images[0, 0]
    found = any(all(v in r for v in row.tolist()) for r in original_rows.tolist())
    assert found
    flipped = sum(bool(out[i, 0, 16, 9] < out[i, 0, 16, 8]) for i in range(len(out)))
    assert 0 < flipped < len(out)  # some images mirrored, not all


def test_loader_applies_augmentation_with_its_generator():
    images = torch.randn(16, 3, 32, 32)
    loader = TensorLoader(images, torch.zeros(16, dtype=torch.long), 16, shuffle=False,
                          augment=cifar_augment(), seed=3)
    (x, _), = list(loader)
    (x2, _), = list(TensorLoader(images, torch.zeros(16, dtype=torch.long), 16, shuffle=False,
                                augment=cifar_augment(), seed=3))
    assert torch.equal(x, x2) and not torch.equal(x, images)


# ---- the batch hook ----

class DictData(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"image": torch.full((2,), float(i)), "label": i}


def test_unpack_batch_handles_tuples_with_extras_and_dicts():
    x, y = unpack_batch((torch.ones(2), torch.zeros(2), "index", "meta"))
    assert torch.equal(x, torch.ones(2)) and torch.equal(y, torch.zeros(2))
    batch = next(iter(DataLoader(DictData(), batch_size=4)))
    x, y = unpack_batch(batch)
    assert x.shape == (4, 2) and y.tolist() == [0, 1, 2, 3]


def test_unpack_batch_explains_what_it_cannot_read():
    with pytest.raises(ValueError, match="exactly one of"):
        unpack_batch({"pixels": 1, "label": 2})
    with pytest.raises(ValueError, match="inputs"):
        unpack_batch({"x": 1, "image": 2, "y": 3})
    with pytest.raises(TypeError, match="unpack="):
        unpack_batch(torch.ones(3))


# ---- the fast path for DataLoader(TensorDataset) ----

from disciplined_widgets.loader import iterate  # noqa: E402


@pytest.mark.parametrize("kwargs", [
    dict(batch_size=3, shuffle=True, generator=5),  # a seeded generator of its own
    dict(batch_size=4, shuffle=True),  # the global RNG
    dict(batch_size=4, shuffle=False, drop_last=True),
])
def test_iterate_gives_a_dataloaders_own_batches_and_rng_use(kwargs):
    data = TensorDataset(torch.randn(10, 2), torch.arange(10), torch.arange(10.0) * 2)

    def epochs(fast):
        torch.manual_seed(0)
        options = dict(kwargs)
        if "generator" in options:
            options["generator"] = torch.Generator().manual_seed(options["generator"])
        loader = DataLoader(data, **options)
        out = [list(iterate(loader) if fast else iter(loader)) for _ in range(3)]
        return out, torch.rand(1)  # what the global RNG gives next

    (fast, fast_next), (slow, slow_next) = epochs(True), epochs(False)
    assert torch.equal(fast_next, slow_next)
    for fast_epoch, slow_epoch in zip(fast, slow, strict=True):
        for a, b in zip(fast_epoch, slow_epoch, strict=True):
            assert type(a) is type(b) is list
            assert all(torch.equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b, strict=True))


def test_iterate_leaves_other_loaders_alone():
    custom = DataLoader(TensorDataset(X, Y), batch_size=2, collate_fn=lambda b: b)
    assert not isinstance(iterate(custom), type(iterate(DataLoader(TensorDataset(X, Y)))))
    assert len(list(iterate(custom))) == 5 and isinstance(next(iterate(custom)), list)
    assert [len(y) for _, y in iterate([(X, Y)])] == [10]
