"""The Lightning and Hugging Face integrations against Lightning's own ``Tuner.lr_find``, side by
side in one run: the same network (a copy of the same initial weights), the same MNIST-1D
training set, the same plain ``torch.optim.SGD`` (momentum 0.9), ``--num-iter`` iterations from
1e-7 to 10, the same device and thread count.

- ``Tuner.lr_find``: ``Tuner(Trainer(...)).lr_find(module, train_dataloaders=loader, min_lr=1e-7,
  max_lr=10, num_training=N, early_stop_threshold=4.0, update_attr=False)``; its suggestion is
  ``suggestion()`` (the steepest point of its EMA-smoothed curve).
- ``integrations.lightning.lr_range_test(module, loader, ...)``: the same LightningModule (its
  ``training_step`` and ``configure_optimizers``) through a Trainer of its own.
- ``integrations.transformers.lr_range_test(trainer, ...)``: a ``transformers.Trainer`` around
  the same network (its batches are dicts, ``model(**batch).loss``; the optimizer is given as
  ``optimizers=(SGD, None)`` so that ``create_optimizer()`` returns it; ``max_grad_norm=0`` as
  the others do not clip). Its shuffling is the Trainer's own (seed 0), so its batches come in
  another order; the time is the call alone (the user has the Trainer already).
- ``lr_range_test`` (the core function on the same DataLoader), for reference.

A time is the whole call as a user makes it (building the Trainer included for Lightning;
importing the libraries not); the fastest of ``--rounds`` rounds after a warm-up. Each line
also gives the steps taken and the suggestions.

    pip install -e ".[lightning,transformers]"
    python benchmarks/range_test_integrations.py [--num-iter 100] [--rounds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
from types import SimpleNamespace

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from disciplined_widgets import load_dataset, lr_range_test, resolve_device
from disciplined_widgets.models import CNN1D
from range_test import best_of, quiet  # the sibling benchmark's helpers

START_LR, END_LR = 1e-7, 10.0


class DictBatches(Dataset):
    """The training tensors as Hugging Face style examples."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"inputs": self.x[i], "labels": self.y[i]}


class WithLoss(nn.Module):
    """``model(inputs=..., labels=...).loss``, as a transformers model answers."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs, labels):
        return SimpleNamespace(loss=nn.functional.cross_entropy(self.model(inputs), labels))


def suggestions_of(result) -> str:
    s = result.suggestions
    if s.bounds is None:
        return "no suggestion"
    return (f"steepest {s.steepest:.3g}, minimum/10 {s.minimum:.3g}, valley {s.valley:.3g}, "
            f"bounds {s.bounds[0]:.3g}-{s.bounds[1]:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-iter", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    for name in ("pytorch_lightning", "lightning_fabric", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with quiet():
        import pytorch_lightning as pl
        import transformers
        from pytorch_lightning.tuner import Tuner
    from disciplined_widgets.integrations import lightning as dw_lightning
    from disciplined_widgets.integrations import transformers as dw_transformers

    device = resolve_device(args.device)
    data = load_dataset("mnist1d")
    torch.manual_seed(0)
    template = CNN1D()
    n = args.num_iter

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = copy.deepcopy(template)

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return nn.functional.cross_entropy(self.model(inputs), targets)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    def loader():
        return DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=args.batch_size,
                          shuffle=True, generator=torch.Generator().manual_seed(0))

    accelerator = {"cuda": "gpu"}.get(device.type, device.type)
    devices = [device.index or 0] if device.type == "cuda" else 1
    workdir = tempfile.mkdtemp(prefix="range-test-integrations-")
    trainer_kwargs = dict(accelerator=accelerator, devices=devices, default_root_dir=workdir)

    def tuner():
        trainer = pl.Trainer(**dw_lightning.QUIET, **trainer_kwargs)
        finder = Tuner(trainer).lr_find(Module(), train_dataloaders=loader(), min_lr=START_LR,
                                        max_lr=END_LR, num_training=n, early_stop_threshold=4.0,
                                        update_attr=False)
        return len(finder.results["lr"]), f"steepest {finder.suggestion():.3g}"

    def ours_lightning():
        result = dw_lightning.lr_range_test(Module(), loader(), start_lr=START_LR, end_lr=END_LR,
                                            num_iter=n, **trainer_kwargs)
        return len(result.lrs), suggestions_of(result)

    model = WithLoss(copy.deepcopy(template))
    hf = transformers.Trainer(
        model=model, train_dataset=DictBatches(data.x_train, data.y_train),
        optimizers=(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), None),
        args=transformers.TrainingArguments(
            output_dir=workdir, per_device_train_batch_size=args.batch_size, max_grad_norm=0.0,
            use_cpu=device.type == "cpu", report_to="none", save_strategy="no",
            disable_tqdm=True, seed=0, dataloader_num_workers=0))

    def ours_transformers():
        result = dw_transformers.lr_range_test(hf, start_lr=START_LR, end_lr=END_LR, num_iter=n)
        return len(result.lrs), suggestions_of(result)

    def ours_core():
        module = Module().to(device)
        result = lr_range_test(module.model, module.configure_optimizers(), nn.CrossEntropyLoss(),
                               loader(), start_lr=START_LR, end_lr=END_LR, num_iter=n,
                               device=device)
        return len(result.lrs), suggestions_of(result)

    runs = {"Lightning Tuner.lr_find": tuner,
            "integrations.lightning.lr_range_test": ours_lightning,
            "integrations.transformers.lr_range_test": ours_transformers,
            "lr_range_test (core, for reference)": ours_core}
    print(f"device {device}, torch {torch.__version__}, pytorch-lightning {pl.__version__}, "
          f"transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"MNIST-1D, 1-D CNN, SGD momentum 0.9, batch {args.batch_size}, {n} iterations "
          f"{START_LR:g} -> {END_LR:g}, best of {args.rounds} rounds")
    with quiet():
        best, out = best_of(args.rounds, runs, device)
    reference = best["Lightning Tuner.lr_find"]
    for label, seconds in best.items():
        steps, suggested = out[label]
        print(f"  {label:<42} {seconds * 1e3:8.1f} ms  {seconds / reference:5.2f}x  "
              f"{steps:4d} steps  suggested: {suggested}")


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
