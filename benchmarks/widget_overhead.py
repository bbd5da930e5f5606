"""A TrainWidget run against the same headless fit, side by side in one run.

Both train the same model from the same weights on the same batches for the same epochs; the
widget also draws its live plot (throttled), updates its progress bar and verdict, and draws
the final state before ``run()`` returns. ``run()`` works in the calling thread; the Run button
in a background thread, where PyTorch's CPU ops can be much slower: libgomp (PyTorch's OpenMP)
throttles its spin-waiting once two threads own thread pools on a machine with few cores. On a
GPU the difference vanishes. Runs rotate after a warm-up; the fastest of each is reported.

    python benchmarks/widget_overhead.py [--epochs 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from disciplined_widgets import TensorLoader, fit, load_dataset, resolve_device
from disciplined_widgets.models import CNN1D
from disciplined_widgets.widgets import TrainWidget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("mnist1d")
    torch.manual_seed(0)
    template = CNN1D()
    criterion = nn.CrossEntropyLoss()

    def parts():
        model = copy.deepcopy(template)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        train = TensorLoader(data.x_train, data.y_train, 128, seed=0, device=device)
        val = TensorLoader(data.x_val, data.y_val, 1000, shuffle=False, device=device)
        return model, optimizer, criterion, train, val

    def headless():
        return fit(*parts(), epochs=args.epochs, device=device)

    renders = {}

    def blocking():
        trainer = TrainWidget(*parts(), epochs=args.epochs, device=device)
        history = trainer.run()
        renders["run()"] = trainer.plot.renders
        return history

    def button():
        trainer = TrainWidget(*parts(), epochs=args.epochs, device=device)
        trainer.run_button.click()
        trainer.wait()
        renders["Run button"] = trainer.plot.renders
        return trainer.history

    runs = {"fit": headless, "run()": blocking, "Run button": button}
    times = {name: [] for name in runs}
    losses = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up; the order rotates
        order = list(runs)[round_ % 3:] + list(runs)[:round_ % 3]
        for name in order:
            start = time.perf_counter()
            losses[name] = runs[name]().train_loss
            if round_:
                times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    steps = len(losses["fit"])
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"MNIST-1D, 1-D CNN, {args.epochs} epochs ({steps} steps), best of {args.rounds} rounds")
    print(f"headless fit                    {best['fit']:.2f} s")
    for name in ("run()", "Run button"):
        print(f"TrainWidget {name:<20}{best[name]:.2f} s -> {best[name] / best['fit']:.3f}x"
              f"   ({renders[name]} plot drawings, same losses: {losses[name] == losses['fit']})")


if __name__ == "__main__":
    main()
