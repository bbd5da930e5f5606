"""RangeTest in a hand-written training loop against the same loop without it, side by side.

Both loops train the same model from the same weights on the same batches (one TensorLoader
seed) with the same LR at every step: the bare loop sets the sweep's LR itself and keeps its
losses as detached tensors, as any loop that plots its curve must; the other wraps the loop in
``with RangeTest(...) as test`` and calls ``test.record(loss)`` after every step, so it pays
for the snapshot and the bitwise restore, reading each loss, the EMA and the divergence rule.
The sweep (1e-7 -> 0.1) does not diverge, so both run every step. Runs alternate after a
warm-up and the fastest of several rounds is reported. Target: at most 1.03x.

    python benchmarks/range_test_loop.py [--steps 200] [--rounds 7] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from disciplined_widgets import RangeTest, TensorLoader, load_dataset, resolve_device
from disciplined_widgets.models import CNN1D, MLP
from disciplined_widgets.range_test import sweep_lrs

TARGET = 1.03
START_LR, END_LR = 1e-7, 0.1


def train_loop(model, optimizer, criterion, loader, steps, lrs=None, test=None) -> list:
    """The user's loop: ``lrs`` set by hand, or by ``test`` through ``record``."""
    losses = []
    model.train()
    while len(losses) < steps:
        for inputs, targets in loader:
            if lrs is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lrs[len(losses)]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            if test is not None and not test.record(loss):
                return losses
            if len(losses) == steps:
                break
    return losses


def timed(run, device) -> tuple[float, list]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def compare(name, make_model, data, args, device) -> float:
    torch.manual_seed(0)
    template = make_model().to(device)
    criterion = nn.CrossEntropyLoss()
    lrs = sweep_lrs(START_LR, END_LR, args.steps)

    def fresh():
        model = copy.deepcopy(template)
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def loader():
        return TensorLoader(data.x_train, data.y_train, args.batch_size, seed=0, device=device)

    def bare():
        return train_loop(*fresh(), criterion, loader(), args.steps, lrs=lrs)

    def with_range_test():
        model, optimizer = fresh()
        with RangeTest(model, optimizer, start_lr=START_LR, end_lr=END_LR,
                       num_iter=args.steps) as test:
            losses = train_loop(model, optimizer, criterion, loader(), args.steps, test=test)
        assert test.result.stop_reason == "completed", test.result.stop_reason
        return losses

    runs = {"bare": bare, "RangeTest": with_range_test}
    times = {label: [] for label in runs}
    losses = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up; the order alternates
        for label in runs if round_ % 2 else reversed(list(runs)):
            seconds, losses[label] = timed(runs[label], device)
            if round_:
                times[label].append(seconds)
    best = {label: min(t) for label, t in times.items()}
    same = torch.equal(torch.stack(losses["bare"]), torch.stack(losses["RangeTest"]))
    ratio = best["RangeTest"] / best["bare"]
    print(f"{name}: bare loop {best['bare'] * 1e3:.1f} ms | with RangeTest "
          f"{best['RangeTest'] * 1e3:.1f} ms -> {ratio:.3f}x (target <= {TARGET}x: "
          f"{'met' if ratio <= TARGET else 'not met'})   same losses: {same}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (a shared "
                        "machine gives steadier times with 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset("mnist1d")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"MNIST-1D, batch {args.batch_size}, {args.steps} steps {START_LR:g} -> {END_LR:g}, "
          f"best of {args.rounds} rounds")
    compare("1-D CNN (6.8k parameters)", CNN1D, data, args, device)
    compare("MLP 40-100-100-10 (15k parameters)", MLP, data, args, device)


if __name__ == "__main__":
    main()
