"""The recipe against a grid and a random search at the same total number of training steps.

All three train the same model on the same data (MNIST-1D, a 1-D CNN; the same 1cycle runs).
The grid and the random search (Optuna, in memory) run ``trials`` trials of ``trial-steps``
steps each over max LR and weight decay (the grid: ``sqrt(trials)`` values of each, on the
same log box the random search draws from); ``discipline`` gets their total as its budget.
Printed side by side per seed: the best final validation accuracy reached, the steps used, the runs
and the wall time, then the means.

    python benchmarks/search.py [--trials 16] [--trial-steps 300] [--seeds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from disciplined_widgets import TensorLoader, load_dataset, resolve_device
from disciplined_widgets.models import CNN1D
from disciplined_widgets.recipe import discipline
from disciplined_widgets.search import Search, log_range

LR_BOX = (0.01, 3.0)
WD_BOX = (1e-6, 1e-2)


def grid_values(low: float, high: float, n: int) -> list[float]:
    return [float(f"{v:.2g}") for v in np.geomspace(low, high, n)]


def run_search(sampler: str, trials: int, trial_steps: int, seed: int) -> dict:
    side = math.isqrt(trials)
    space = ({"max_lr": grid_values(*LR_BOX, side), "weight_decay": grid_values(*WD_BOX, side)}
             if sampler == "grid" else
             {"max_lr": log_range(*LR_BOX), "weight_decay": log_range(*WD_BOX)})
    search = Search("cnn1d", "mnist1d", space, sampler=sampler,
                    n_trials=None if sampler == "grid" else trials, steps=trial_steps, seed=seed)
    started = time.perf_counter()
    search.run()
    return {"accuracy": search.best["val_accuracy"], "steps": search.total_steps,
            "runs": len(search.completed()), "seconds": time.perf_counter() - started}


def run_recipe(budget: int, seed: int) -> dict:
    data = load_dataset("mnist1d")
    device = resolve_device()
    train = TensorLoader(data.x_train, data.y_train, 128, seed=seed, device=device)
    val = TensorLoader(data.x_val, data.y_val, 1000, shuffle=False, device=device)
    started = time.perf_counter()
    recipe = discipline(CNN1D, train, val, budget_steps=budget, seed=seed)
    return {"accuracy": recipe.final_accuracy, "steps": recipe.steps_used, "runs": recipe.runs,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per search (a square)")
    parser.add_argument("--trial-steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if math.isqrt(args.trials) ** 2 != args.trials:
        parser.error("--trials must be a square (the grid is sqrt x sqrt)")
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = args.trials * args.trial_steps
    print(f"device {resolve_device()}, {torch.get_num_threads()} threads; MNIST-1D, CNN1D, "
          f"batch 128; budget {budget} steps ({args.trials} trials x {args.trial_steps})")
    results = {"grid": [], "random": [], "recipe": []}
    header = f"{'seed':>4}  {'method':<7} {'best val acc':>12} {'steps':>7} {'runs':>5} {'seconds':>8}"
    print(header)
    for seed in range(args.seeds):
        for method in results:
            result = (run_recipe(budget, seed) if method == "recipe"
                      else run_search(method, args.trials, args.trial_steps, seed))
            results[method].append(result)
            print(f"{seed:>4}  {method:<7} {result['accuracy']:>12.4f} {result['steps']:>7} "
                  f"{result['runs']:>5} {result['seconds']:>8.1f}", flush=True)
    print("mean over seeds:")
    for method, rows in results.items():
        print(f"      {method:<7} {statistics.mean(r['accuracy'] for r in rows):>12.4f} "
              f"{statistics.mean(r['steps'] for r in rows):>7.0f} "
              f"{statistics.mean(r['runs'] for r in rows):>5.1f} "
              f"{statistics.mean(r['seconds'] for r in rows):>8.1f}")
    grid, random, recipe = (statistics.mean(r["accuracy"] for r in results[m]) for m in results)
    print(f"random - grid: {random - grid:+.4f}; recipe - best search: "
          f"{recipe - max(grid, random):+.4f} with "
          f"{statistics.mean(r['runs'] for r in results['recipe']):.0f} runs against {args.trials}")


if __name__ == "__main__":
    main()
