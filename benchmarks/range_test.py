"""The range test against a bare loop and against three peers, side by side in one run.

1. ``lr_range_test`` against a hand-written loop doing the same steps: set the LR, train on
   the batch, read the loss back (a range test must, to stop on divergence). Same model,
   same batches.
2. ``lr_range_test`` against the peers' range tests, each on the same model (a copy of the same
   initial weights), the same ``DataLoader`` (same seed, so the same batches), the same number of
   iterations, 1e-7 -> 10, plain ``torch.optim.SGD`` with momentum 0.9, float32, on the same
   device and thread count (checked after every run): wall time, peak extra memory (RSS on the
   CPU, allocated memory on CUDA), the number of steps each took and each one's suggested LRs.
   The time of a peer is its whole call as a user makes it (building the finder, ``Learner`` or
   ``Trainer`` included; importing the library not); the fastest of them is the target: the
   project aims at ``lr_range_test`` taking at most 0.8x its time.

   - torch-lr-finder 0.2.x: ``LRFinder(model, optimizer, criterion).range_test(loader, ...)``
     then ``reset()``; its defaults otherwise: ``smooth_f=0.05``, stop at 5x the best loss, the
     suggestion is the steepest point of ``plot(suggest_lr=True)``.
   - fastai 2.8: ``Learner(DataLoaders(train_dl, valid_dl), model, loss_func=criterion,
     opt_func=partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9))`` over the plain torch
     ``DataLoader`` (the validation loader is never iterated: ``lr_find`` cancels validation);
     ``lr_find(start_lr=1e-7, end_lr=10, num_it=N, show_plot=False)`` with its defaults
     otherwise: EMA 0.98 with bias correction, stop at 4x the best, model saved to and loaded
     from a file in a temporary ``path``; the suggestions asked for are its ``minimum`` (min/10),
     ``steep`` and ``valley``. Its progress bar is switched off with ``Learner.no_bar()``
     (fastai's own switch), so fastprogress neither draws nor costs time.
   - Lightning (the ``pytorch-lightning`` 2.6 package; ``lightning.pytorch`` is the same code):
     a minimal ``LightningModule`` (``training_step`` returns the loss, ``configure_optimizers``
     returns the SGD) and ``Tuner(Trainer(accelerator=<device>, devices=1, logger=False,
     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
     default_root_dir=<temporary>)).lr_find(module, train_dataloaders=loader, min_lr=1e-7,
     max_lr=10, num_training=N, early_stop_threshold=4.0, update_attr=False)``; its defaults
     otherwise: ``precision="32-true"``, EMA 0.98, a checkpoint written and restored, the
     suggestion is the steepest point of ``suggestion()``. Its finder opens a tqdm bar of its own
     whatever the Trainer says; ``TQDM_DISABLE=1`` (set below, as for torch-lr-finder) turns it
     off. Its log lines and warnings are silenced.
   - ``lr_range_test(..., start_lr=1e-7, end_lr=10, num_iter=N)``: stop once the EMA climbs
     back as far as it fell.

   A peer that is not installed is reported in one line and skipped; ``pip install -e
   ".[bench]"`` installs all three. The runs alternate after a warm-up, and the fastest of
   ``--rounds`` rounds is reported (the least noisy estimate on a shared machine).

    pip install -e ".[bench]" && python benchmarks/range_test.py [--num-iter 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import logging
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import psutil
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from disciplined_widgets import TensorLoader, load_dataset, lr_range_test, resolve_device
from disciplined_widgets.models import CNN1D, MLP
from disciplined_widgets.range_test import sweep_lrs

# The peers: the name printed, the distribution, the module imported.
PEERS = {"torch-lr-finder": ("torch-lr-finder", "torch_lr_finder"),
         "fastai": ("fastai", "fastai"),
         "Lightning": ("pytorch-lightning", "pytorch_lightning")}
TARGET = 0.8  # lr_range_test's time / the fastest peer's


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


def same_footing(name: str, threads: int, dtype: torch.dtype) -> None:
    """Every run must leave the thread count and default dtype as it found them."""
    if torch.get_num_threads() != threads or torch.get_default_dtype() != dtype:
        raise RuntimeError(f"{name} changed the thread count or default dtype "
                           f"({torch.get_num_threads()} threads, {torch.get_default_dtype()})")


def best_of(rounds, runs: dict, device):
    """Alternate the runs for ``rounds`` rounds after a warm-up; fastest time of each."""
    times = {name: [] for name in runs}
    outputs = {}
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    for round_ in range(rounds + 1):
        order = list(runs) if round_ % 2 else list(reversed(runs))
        for name in order:
            seconds, outputs[name] = timed(runs[name], device)
            same_footing(name, threads, dtype)
            if round_:
                times[name].append(seconds)
    return {name: min(t) for name, t in times.items()}, outputs


@contextlib.contextmanager
def quiet():
    """No progress text, log lines or warnings from a peer while it runs."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class Setup:
    """What every range test of one comparison shares."""

    fresh: Callable  # -> (model, optimizer): a copy of the same initial weights, SGD momentum 0.9
    criterion: nn.Module
    data_loader: Callable  # -> the same seeded DataLoader over the training tensors
    valid_loader: Callable
    num_iter: int
    start_lr: float
    end_lr: float
    device: torch.device
    workdir: str  # for the checkpoint files fastai and Lightning write


@dataclass
class Outcome:
    """What is printed of one library's range test."""

    steps: int
    first_loss: float  # the loss of the first batch, before any step: same model, same batch
    suggested: str


def lr_finder_steepest(history, skip_start=10, skip_end=5):
    """torch-lr-finder's own suggestion (LRFinder.plot(suggest_lr=True)) without plotting."""
    lrs = np.array(history["lr"][skip_start:-skip_end])
    losses = np.array(history["loss"][skip_start:-skip_end])
    return float(lrs[np.gradient(losses).argmin()])


def torch_lr_finder_peer(s: Setup):
    from torch_lr_finder import LRFinder

    def run():
        model, optimizer = s.fresh()
        finder = LRFinder(model, optimizer, s.criterion, device=s.device)
        with quiet():
            finder.range_test(s.data_loader(), start_lr=s.start_lr, end_lr=s.end_lr,
                              num_iter=s.num_iter)
        finder.reset()
        return finder.history

    def outcome(history):
        # its smoothing starts at the second point: the first is the raw loss
        return Outcome(len(history["lr"]), history["loss"][0],
                       f"steepest {lr_finder_steepest(history):.3g}")

    return run, outcome


def fastai_peer(s: Setup):
    import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)
    from fastai.callback.schedule import minimum, steep, valley
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper

    def run():
        model, _ = s.fresh()
        dls = DataLoaders(s.data_loader(), s.valid_loader())
        # What DataLoaders(device=...) sets for fastai's own loaders; plain torch loaders have no
        # .to(), and without it fastai would pick its default device rather than the benchmark's.
        dls._device = s.device
        learn = Learner(dls, model, loss_func=s.criterion, path=s.workdir,
                        opt_func=partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9))
        with quiet(), learn.no_bar():
            suggested = learn.lr_find(start_lr=s.start_lr, end_lr=s.end_lr, num_it=s.num_iter,
                                      show_plot=False, suggest_funcs=(minimum, steep, valley))
        return suggested, [float(x) for x in learn.recorder.losses]

    def outcome(out):
        suggested, losses = out
        # the first point of its bias-corrected EMA is the raw loss
        return Outcome(len(losses), losses[0],
                       f"minimum/10 {suggested.minimum:.3g}, steep {suggested.steep:.3g}, "
                       f"valley {suggested.valley:.3g}")

    return run, outcome


def lightning_peer(s: Setup):
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class RangeTestModule(pl.LightningModule):
        def __init__(self, model, criterion):
            super().__init__()
            self.model, self.criterion, self.first_loss = model, criterion, None

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            loss = self.criterion(self.model(inputs), targets)
            if self.first_loss is None:  # its curve is smoothed from the first point
                self.first_loss = loss.detach()
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    accelerator = {"cuda": "gpu"}.get(s.device.type, s.device.type)
    devices = [s.device.index or 0] if s.device.type == "cuda" else 1

    def run():
        model, _ = s.fresh()
        module = RangeTestModule(model, s.criterion)
        with quiet():
            trainer = pl.Trainer(accelerator=accelerator, devices=devices, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, default_root_dir=s.workdir)
            finder = Tuner(trainer).lr_find(module, train_dataloaders=s.data_loader(),
                                            min_lr=s.start_lr, max_lr=s.end_lr,
                                            num_training=s.num_iter, early_stop_threshold=4.0,
                                            update_attr=False)
        return finder, float(module.first_loss)

    def outcome(out):
        finder, first_loss = out
        with quiet():
            suggestion = finder.suggestion()
        shown = "none" if suggestion is None else f"{suggestion:.3g}"
        return Outcome(len(finder.results["lr"]), first_loss, f"steepest {shown}")

    return run, outcome


PEER_RUNS = {"torch-lr-finder": torch_lr_finder_peer, "fastai": fastai_peer,
             "Lightning": lightning_peer}


def installed_peers() -> list[str]:
    """The peers that can be imported; one line for each that cannot."""
    found = []
    for name, (distribution, module) in PEERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"{name} is not installed: skipped (pip install {distribution}, or "
                  f"pip install -e \".[bench]\")")
        else:
            found.append(name)
    return found


def compare(name, make_model, data, args, device, peers, rounds=None) -> None:
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

    def valid_loader():
        return DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=args.batch_size)

    def ours():
        model, optimizer = fresh()
        return lr_range_test(model, optimizer, criterion, data_loader(), start_lr=start_lr,
                             end_lr=end_lr, num_iter=n, device=device)

    with tempfile.TemporaryDirectory(prefix="range-test-bench-") as workdir:
        setup = Setup(fresh, criterion, data_loader, valid_loader, n, start_lr, end_lr, device,
                      workdir)
        with quiet():  # importing fastai warns about torch.jit.script
            made = {peer: PEER_RUNS[peer](setup) for peer in peers}
        runs = {peer: run for peer, (run, _) in made.items()} | {"ours": ours}
        best, out = best_of(rounds, runs, device)
        memory = {}
        for label, run in runs.items():
            with PeakMemory(device) as peak:
                run()
            memory[label] = peak.peak / 2**20
    result = out["ours"]
    outcomes = {peer: made[peer][1](out[peer]) for peer in peers}
    ours_text = (f"lr_range_test {best['ours'] * 1e3:.1f} ms ({len(result.lrs)} steps, peak "
                 f"+{memory['ours']:.1f} MiB)")
    for peer, outcome in outcomes.items():
        print(f"  vs {peer} (DataLoader): {peer} {best[peer] * 1e3:.1f} ms ({outcome.steps} steps, "
              f"peak +{memory[peer]:.1f} MiB), {ours_text} -> {best['ours'] / best[peer]:.3f}x")
    if peers:
        fastest = min(peers, key=best.get)
        ratio = best["ours"] / best[fastest]
        print(f"  vs the fastest peer ({fastest}, {best[fastest] * 1e3:.1f} ms): "
              f"lr_range_test {ratio:.3f}x (target <= {TARGET}x: "
              f"{'met' if ratio <= TARGET else 'not met'})")
    s = result.suggestions
    print("  suggested LR: " + " | ".join(f"{peer} {o.suggested}" for peer, o in outcomes.items())
          + f"{' | ' if outcomes else ''}lr_range_test steepest {s.steepest:.3g}, minimum/10 "
          f"{s.minimum:.3g}, valley {s.valley:.3g}, bounds {s.bounds[0]:.3g}-{s.bounds[1]:.3g} "
          f"({result.stop_reason})")
    if outcomes:
        first = [o.first_loss for o in outcomes.values()]
        print(f"  first-batch loss: {result.losses[0]:.6g} in lr_range_test, in every peer the "
              f"same: {bool(np.allclose(first, result.losses[0], rtol=1e-5))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-iter", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = load_dataset("mnist1d")
    peers = installed_peers()
    versions = "".join(f", {peer} {_version(PEERS[peer][0])}" for peer in peers)
    print(f"device {device}, torch {torch.__version__}{versions}, {torch.get_num_threads()} "
          f"threads, float32, MNIST-1D, batch {args.batch_size}, {args.num_iter} iterations "
          f"1e-7 -> 10, best of {args.rounds} rounds")
    compare("1-D CNN (6.8k parameters)", CNN1D, data, args, device, peers)
    compare("MLP 40-100-100-10 (15k parameters)", MLP, data, args, device, peers)
    # Large enough for the state copies to show in the process's memory; one round is enough.
    compare("MLP 40-2048-2048-10 (4.3M parameters, for memory; 1 round)",
            lambda: MLP(hidden=(2048, 2048)), data, args, device, peers, rounds=1)


def _version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
