"""fit against a bare PyTorch loop, and TensorLoader against DataLoader(TensorDataset).

Both loops train the same model from the same weights on the same batches (one TensorLoader
seed); the bare loop keeps its per-step losses as detached tensors, as any loop that plots a
loss curve must. Runs alternate after a warm-up and the fastest of several rounds is reported (the least
noisy estimate on a shared machine).

    python benchmarks/loop_overhead.py [--steps 300] [--rounds 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from disciplined_widgets import TensorLoader, fit, load_dataset, resolve_device
from disciplined_widgets.models import CNN1D, MLP


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model, optimizer, criterion, loader, steps: int, device) -> list[float]:
    losses = []
    model.train()
    while len(losses) < steps:
        for inputs, targets in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            if len(losses) == steps:
                break
    return torch.stack(losses).tolist()


def timed(run, device) -> float:
    """Seconds for run(), waiting for the device."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def compare_loops(name, make_model, data, steps, rounds, batch_size, device) -> float:
    template = make_model().to(device)
    criterion = nn.CrossEntropyLoss()

    def fresh():
        model = copy.deepcopy(template)
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def loader():
        return TensorLoader(data.x_train, data.y_train, batch_size, seed=0, device=device)

    runs = {
        "bare": lambda model, opt: bare_loop(model, opt, criterion, loader(), steps, device),
        "fit": lambda model, opt: fit(model, opt, criterion, loader(), steps=steps,
                                      device=device).train_loss,
    }
    times = {"bare": [], "fit": []}
    losses = {}
    for round_ in range(rounds + 1):  # round 0 warms up; the order alternates
        for kind in ("bare", "fit") if round_ % 2 else ("fit", "bare"):
            model, opt = fresh()
            start = time.perf_counter()
            losses[kind] = runs[kind](model, opt)
            synchronize(device)
            if round_:
                times[kind].append(time.perf_counter() - start)
    same = torch.allclose(torch.tensor(losses["bare"]), torch.tensor(losses["fit"]))
    bare, ours = min(times["bare"]), min(times["fit"])
    print(f"{name:<26} bare {bare * 1e3 / steps:7.3f} ms/step   fit {ours * 1e3 / steps:7.3f} ms/step"
          f"   fit/bare {ours / bare:5.3f}x   (+{(ours - bare) * 1e6 / steps:5.1f} us/step)"
          f"   same losses: {same}")
    return ours / bare


def compare_loaders(data, epochs, rounds, batch_size, device) -> float:
    def epochs_of(loader):
        def run():
            for _ in range(epochs):
                for x, y in loader:
                    if device.type != "cpu":
                        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return run

    ours = TensorLoader(data.x_train, data.y_train, batch_size, seed=0, device=device)
    theirs = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size,
                        shuffle=True)
    t_ours = min(timed(epochs_of(ours), device) for _ in range(rounds))
    t_theirs = min(timed(epochs_of(theirs), device) for _ in range(rounds))
    batches = epochs * len(ours)
    print(f"{'TensorLoader vs DataLoader':<26} DataLoader {t_theirs * 1e6 / batches:7.1f} us/batch"
          f"   TensorLoader {t_ours * 1e6 / batches:7.1f} us/batch   speed-up {t_theirs / t_ours:5.1f}x")
    return t_theirs / t_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    data = load_dataset("mnist1d")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"MNIST-1D, batch {args.batch_size}, {args.steps} steps, best of {args.rounds} rounds")
    compare_loops("1-D CNN (6.8k params)", CNN1D, data, args.steps, args.rounds, args.batch_size, device)
    compare_loops("MLP 40-100-100-10", MLP, data, args.steps, args.rounds, args.batch_size, device)
    # The smallest model shows the loop's own per-step cost most clearly.
    compare_loops("linear 40-10 (worst case)", lambda: nn.Linear(40, 10), data, args.steps * 4,
                  args.rounds, args.batch_size // 4, device)
    compare_loaders(data, 5, args.rounds, args.batch_size, device)


if __name__ == "__main__":
    main()
