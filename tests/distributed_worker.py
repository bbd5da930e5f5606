"""One rank of tests/test_distributed.py, started by ``torchrun --standalone --nproc_per_node 2``
(gloo, CPU): the range test, RangeTest and fit on a DistributedDataParallel MLP with a
DistributedSampler, one stop caused by rank 1's data only. Writes ``rank<r>.json`` into the
folder given."""

import copy
import json
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from disciplined_widgets import RangeTest, evaluate, fit, load_dataset, lr_range_test
from disciplined_widgets.models import MLP


class OnRankOne:
    """The loader's batches, but on rank 1 batch ``at`` of every epoch has its inputs times
    ``factor`` (NaN with ``factor=nan``): a stop that only rank 1's data causes."""

    def __init__(self, loader, at, factor):
        self.loader, self.at, self.factor = loader, at, factor
        self.sampler = loader.sampler

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for index, (x, y) in enumerate(self.loader):
            if index == self.at and dist.get_rank() == 1:
                x = x * self.factor
            yield x, y


def ddp_model():
    torch.manual_seed(0)
    return DistributedDataParallel(MLP(in_features=64))


def train_loader(dataset, batch_size=16):
    return DataLoader(dataset, batch_size=batch_size, sampler=DistributedSampler(dataset, seed=0))


def state(model, optimizer):
    return copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())


def same(a, b) -> bool:
    (tensors_a, opt_a), (tensors_b, opt_b) = a, b
    tensors = all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)
    states = all(torch.equal(v, opt_b["state"][i][k])
                 for i, values in opt_a["state"].items() for k, v in values.items())
    return tensors and states and opt_a["param_groups"] == opt_b["param_groups"]


def used_optimizer(model, dataset):
    """SGD with momentum that has taken one step already (it has state to restore)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = dataset[:16]
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    return optimizer


def range_test_stopped_by_rank_one(dataset, factor, at, **kwargs):
    model = ddp_model()
    optimizer = used_optimizer(model, dataset)
    before = state(model, optimizer)
    result = lr_range_test(model, optimizer, nn.CrossEntropyLoss(),
                           OnRankOne(train_loader(dataset), at, factor), **kwargs)
    return {"result": result.to_dict(), "restored": same(before, state(model, optimizer))}


def own_loop(dataset):
    model = ddp_model()
    optimizer = used_optimizer(model, dataset)
    before = state(model, optimizer)
    local = []
    with RangeTest(model, optimizer, start_lr=1e-4, end_lr=1e-1, num_iter=20) as test:
        for x, y in train_loader(dataset):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            local.append(loss.item())
            if not test.record(loss):
                break
    gathered = [None, None]
    dist.all_gather_object(gathered, local)
    return {"result": test.result.to_dict(), "restored": same(before, state(model, optimizer)),
            "local": gathered}


def fit_two_epochs(dataset, val):
    model = ddp_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = train_loader(dataset)
    val_loader = DataLoader(val, batch_size=64, sampler=DistributedSampler(val, shuffle=False))
    history = fit(model, optimizer, nn.CrossEntropyLoss(), loader, val_loader, epochs=2)
    whole = evaluate(model, nn.CrossEntropyLoss(), DataLoader(val, batch_size=64),
                     across_ranks=False)
    return {"val_loss": history.val_loss, "val_accuracy": history.val_accuracy,
            "sampler_epoch": loader.sampler.epoch, "whole_val_loss": whole.loss,
            "whole_val_accuracy": whole.accuracy}


def main(out: Path) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    dataset = TensorDataset(data.x_train[:640], data.y_train[:640])
    val = TensorDataset(data.x_val[:200], data.y_val[:200])
    report = {
        "non_finite": range_test_stopped_by_rank_one(dataset, float("nan"), at=6, num_iter=30,
                                                     start_lr=1e-4, end_lr=1e-2),
        "diverged": range_test_stopped_by_rank_one(dataset, 1e3, at=14, num_iter=30,
                                                   start_lr=1e-4, end_lr=1e-2),
        "own_loop": own_loop(dataset),
        "fit": fit_two_epochs(dataset, val),
    }
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(report))
    # every rank done before any closes its connections: without it, gloo aborted at exit
    # ("terminate called without an active exception") in about 1 run in 9 on 2 cores
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
