"""The range test against a bare loop, and against torch-lr-finder, side by side in one run.

1. ``lr_range_test`` against a hand-written loop doing the same steps: set the LR, train on
   the batch, read the loss back (a range test must, to stop on divergence). Same model,
   same batches.
2. ``lr_range_test`` against torch-lr-finder's ``LRFinder.range_test`` (0.2.x): same model,
   same ``DataLoader``, same number of iterations; wall time, peak extra memory (RSS on the
   CPU, allocated memory on CUDA) and both libraries' suggested LRs.

    pip install -e ".[bench]" && python benchmarks/range_test.py [--num-iter 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import threading
import time

import numpy as np
import psutil
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from disciplined_widgets import TensorLoader, load_dataset, lr_range_test, resolve_device
from disciplined_widgets.models import CNN1D, MLP
from disciplined_widgets.range_test import sweep_lrs


class PeakMemory:
    """Peak memory above the starting level while the block runs (bytes)."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        process, self.start, self.running = psutil.Process(), psutil.Process().memory_info().rss, True

        def sample():
            while self.running:
                self.peak = max(self.peak, process.memory_info().rss - self.start)
                time.sleep(0.001)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.running = False
            self.thread.join()


def bare_range_test(model, optimizer, criterion, loader, lrs, device):
    losses = []
    model.train()
    while len(losses) < len(lrs):
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            for group in optimizer.param_groups:
                group["lr"] = lrs[len(losses)]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if len(losses) == len(lrs):
                break
    return losses


def timed(run, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def best_of(rounds, runs: dict, device):
    """Alternate the runs for ``rounds`` rounds after a warm-up; fastest time of each."""
    times = {name: [] for name in runs}
    outputs = {}
    for round_ in range(rounds + 1):
        order = list(runs) if round_ % 2 else list(reversed(runs))
        for name in order:
            seconds, outputs[name] = timed(runs[name], device)
            if round_:
                times[name].append(seconds)
    return {name: min(t) for name, t in times.items()}, outputs


def lr_finder_steepest(history, skip_start=10, skip_end=5):
    """torch-lr-finder's own suggestion (LRFinder.plot(suggest_lr=True)) without plotting."""
    lrs = np.array(history["lr"][skip_start:-skip_end])
    losses = np.array(history["loss"][skip_start:-skip_end])
    return float(lrs[np.gradient(losses).argmin()])


def compare(name, make_model, data, args, device, LRFinder, rounds=None) -> None:
    """Both comparisons for one model, each the best of ``rounds`` (default ``args.rounds``)."""
    rounds = rounds or args.rounds
    torch.manual_seed(0)
    template = make_model().to(device)
    criterion = nn.CrossEntropyLoss()
    n, start_lr, end_lr = args.num_iter, 1e-7, 10.0

    def fresh():
        model = copy.deepcopy(template)
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def tensor_loader():
        return TensorLoader(data.x_train, data.y_train, args.batch_size, seed=0, device=device)

    lrs = sweep_lrs(start_lr, end_lr, n)
    runs = {
        "bare": lambda: bare_range_test(*fresh(), criterion, tensor_loader(), lrs, device),
        "ours": lambda: lr_range_test(*fresh(), criterion, tensor_loader(), start_lr=start_lr,
                                      end_lr=end_lr, num_iter=n, device=device,
                                      diverge_factor=1e9).losses,
    }
    best, out = best_of(rounds, runs, device)
    steps = len(out["ours"])  # fewer when the loss became NaN (the bare loop goes on regardless)
    same = np.allclose(out["bare"][:steps], out["ours"], rtol=1e-5, equal_nan=True)
    print(f"\n{name}\n  vs a bare loop (TensorLoader): bare {best['bare'] * 1e3:.1f} ms, "
          f"lr_range_test {best['ours'] * 1e3:.1f} ms -> {best['ours'] / best['bare']:.3f}x"
          f"   same losses: {same}")

    dataset = TensorDataset(data.x_train, data.y_train)

    def data_loader():
        return DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(0))

    def theirs():
        model, optimizer = fresh()
        finder = LRFinder(model, optimizer, criterion, device=device)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            finder.range_test(data_loader(), start_lr=start_lr, end_lr=end_lr, num_iter=n)
        finder.reset()
        return finder.history

    def ours():
        model, optimizer = fresh()
        return lr_range_test(model, optimizer, criterion, data_loader(), start_lr=start_lr,
                             end_lr=end_lr, num_iter=n, device=device)

    best, out = best_of(rounds, {"torch-lr-finder": theirs, "ours": ours}, device)
    memory = {}
    for label, run in (("torch-lr-finder", theirs), ("ours", ours)):
        with PeakMemory(device) as peak:
            run()
        memory[label] = peak.peak / 2**20
    result, history = out["ours"], out["torch-lr-finder"]
    s = result.suggestions
    print(f"  vs torch-lr-finder (DataLoader): torch-lr-finder {best['torch-lr-finder'] * 1e3:.1f} ms"
          f" ({len(history['lr'])} steps, peak +{memory['torch-lr-finder']:.1f} MiB), "
          f"lr_range_test {best['ours'] * 1e3:.1f} ms ({len(result.lrs)} steps, peak "
          f"+{memory['ours']:.1f} MiB) -> {best['ours'] / best['torch-lr-finder']:.3f}x")
    print(f"  suggested LR: torch-lr-finder steepest {lr_finder_steepest(history):.3g} | "
          f"lr_range_test steepest {s.steepest:.3g}, minimum/10 {s.minimum:.3g}, valley "
          f"{s.valley:.3g}, bounds {s.bounds[0]:.3g}-{s.bounds[1]:.3g} ({result.stop_reason})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-iter", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    from torch_lr_finder import LRFinder

    device = resolve_device(args.device)
    data = load_dataset("mnist1d")
    print(f"device {device}, torch {torch.__version__}, torch-lr-finder "
          f"{_version('torch-lr-finder')}, {torch.get_num_threads()} threads, MNIST-1D, batch "
          f"{args.batch_size}, {args.num_iter} iterations 1e-7 -> 10, best of {args.rounds} rounds")
    compare("1-D CNN (6.8k parameters)", CNN1D, data, args, device, LRFinder)
    compare("MLP 40-100-100-10 (15k parameters)", MLP, data, args, device, LRFinder)
    # Large enough for the state copies to show in the process's memory; one round is enough.
    compare("MLP 40-2048-2048-10 (4.3M parameters, for memory; 1 round)",
            lambda: MLP(hidden=(2048, 2048)), data, args, device, LRFinder, rounds=1)


def _version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
