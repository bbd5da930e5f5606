"""The range test through Lightning's Trainer and Hugging Face's Trainer, on real tiny models
(built from code and from a config, nothing downloaded): the curve, the bitwise restore, and
1cycle set from the bounds. One module, because importing the two libraries is slow."""

import copy
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from disciplined_widgets import lr_range_test
from disciplined_widgets.range_test import sweep_lrs
from disciplined_widgets.schedules import OneCycle

pl = pytest.importorskip("pytorch_lightning")
transformers = pytest.importorskip("transformers")

from disciplined_widgets.integrations import lightning as dw_lightning  # noqa: E402
from disciplined_widgets.integrations import transformers as dw_transformers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for name in ("pytorch_lightning", "lightning_fabric", "transformers"):
    logging.getLogger(name).setLevel(logging.ERROR)


@pytest.fixture(autouse=True)
def _one_thread():
    # models this small gain nothing from a second thread, and lose much on a busy machine
    torch.set_num_threads(1)


def state_of(model, optimizer):
    """Every tensor of the model's state_dict and of the optimizer's state, and its groups."""
    saved = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
    return {k: v.clone() for k, v in model.state_dict().items()}, saved, [
        m.training for m in model.modules()]


def assert_same_state(a, b):
    (tensors_a, opt_a, modes_a), (tensors_b, opt_b, modes_b) = a, b
    assert tensors_a.keys() == tensors_b.keys() and modes_a == modes_b
    for key in tensors_a:
        assert torch.equal(tensors_a[key], tensors_b[key]), key
    if opt_a is not None:
        assert opt_a["param_groups"] == opt_b["param_groups"]
        assert opt_a["state"].keys() == opt_b["state"].keys()
        for index, values in opt_a["state"].items():
            for key, value in values.items():
                other = opt_b["state"][index][key]
                assert torch.equal(value, other) if torch.is_tensor(value) else value == other


# ---- Lightning ----

class Classifier(pl.LightningModule):
    """An MLP with BatchNorm on the 8x8 digits and AdamW: the one kept on the module (so its
    state is the user's), or with ``scheduler`` a new one each fit under a per-step scheduler;
    ``fail_at``: training_step raises at that batch."""

    def __init__(self, scheduler=False, fail_at=None):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                 nn.Linear(64, 10))
        self.optimizer = self.new_optimizer()
        self.scheduler, self.fail_at, self.losses = scheduler, fail_at, []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if batch_idx == self.fail_at:
            raise OSError("disk read failed")
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.losses.append(loss.item())
        return loss

    def new_optimizer(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=1e-2)

    def configure_optimizers(self):
        if not self.scheduler:
            return self.optimizer
        optimizer = self.new_optimizer()
        decay = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def used(module, digits, steps=3):
    """The module after a few steps of its own: AdamW has state, BatchNorm statistics moved."""
    for i in range(steps):
        module.optimizer.zero_grad()
        F.cross_entropy(module(digits.x_train[i * 32:(i + 1) * 32]),
                        digits.y_train[i * 32:(i + 1) * 32]).backward()
        module.optimizer.step()
    return module


def digits_loader(digits, seed=0):
    return DataLoader(TensorDataset(digits.x_train, digits.y_train), batch_size=32, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scheduler", [False, True], ids=["no scheduler", "step scheduler"])
def test_lightning_range_test_is_the_core_test_and_restores(digits, scheduler):
    module = used(Classifier(scheduler=scheduler), digits)
    before = state_of(module, module.optimizer)
    kwargs = dict(start_lr=1e-4, end_lr=10.0, num_iter=40)
    result = dw_lightning.lr_range_test(module, digits_loader(digits), accelerator="cpu", **kwargs)
    assert_same_state(before, state_of(module, module.optimizer))
    assert len(module.losses) == len(result.losses)
    # the module's own training_step and optimizer, the sweep's LRs (the scheduler sat out)
    assert result.lrs == pytest.approx(sweep_lrs(1e-4, 10.0, 40)[:len(result.lrs)])
    assert result.stop_reason in ("completed", "diverged") and result.suggestions.steepest
    # the same curve as the core test on the same network, optimizer and batches
    optimizer = module.new_optimizer() if scheduler else module.optimizer
    core = lr_range_test(module.net, optimizer, nn.CrossEntropyLoss(), digits_loader(digits), **kwargs)
    assert core.losses == pytest.approx(result.losses, rel=1e-5)
    assert core.stop_reason == result.stop_reason


def test_lightning_range_test_restores_when_training_step_fails(digits):
    module = used(Classifier(fail_at=7), digits)
    module.net[2].eval()  # a frozen BatchNorm: Lightning keeps the user's modes, and so does the test
    before = state_of(module, module.optimizer)
    with pytest.raises(OSError, match="disk read failed"):
        dw_lightning.lr_range_test(module, digits_loader(digits), accelerator="cpu",
                                   num_iter=20, start_lr=1e-4, end_lr=1.0)
    assert len(module.losses) == 7  # it trained before it failed
    assert_same_state(before, state_of(module, module.optimizer))


def test_lightning_callback_runs_the_test_then_1cycle_from_its_bounds(digits):
    module = Classifier(scheduler=True)  # its own schedule is replaced
    first = copy.deepcopy(module.state_dict())
    callback = dw_lightning.OneCycleFromRangeTest(num_iter=30, start_lr=1e-4, end_lr=10.0)
    trainer = pl.Trainer(callbacks=[callback], max_epochs=1, accelerator="cpu",
                         **dw_lightning.QUIET)
    trainer.fit(module, digits_loader(digits))
    result = callback.result
    low, high = result.bounds()
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    steps = len(digits_loader(digits))
    assert isinstance(scheduler, OneCycle) and scheduler.total_steps == steps
    assert scheduler.last_epoch == steps  # stepped after every optimizer step of the fit
    assert [g["max_lr"] for g in scheduler.optimizer.param_groups] == pytest.approx([high])
    assert high / low == pytest.approx(10)
    # the fit started from the weights the test restored: its first loss is the test's first
    assert module.losses[len(result.losses)] == result.losses[0]
    assert not torch.equal(module.net[1].weight, first["net.1.weight"])  # and then it trained


def test_lightning_refuses_what_is_not_a_module(digits):
    with pytest.raises(TypeError, match="LightningModule"):
        dw_lightning.lr_range_test(nn.Linear(2, 2), digits_loader(digits))
    with pytest.raises(ValueError, match="start_lr"):
        dw_lightning.lr_range_test(Classifier(), digits_loader(digits), start_lr=0)


# ---- Hugging Face ----

class Tokens(Dataset):
    """Sequences of 8 tokens whose label is the parity of the first: learnable at once."""

    def __init__(self, n=512):
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 50, (n, 8), generator=generator)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": int(ids[0]) % 2}


def hf_trainer(tmp_path, max_steps=20):
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=32, max_steps=max_steps,
        learning_rate=1e-3, weight_decay=0.01, use_cpu=True, report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    return transformers.Trainer(model=model, args=args, train_dataset=Tokens())


def test_transformers_range_test_then_1cycle(tmp_path):
    trainer = hf_trainer(tmp_path)
    before = state_of(trainer.model, None)
    result = dw_transformers.lr_range_test(trainer, start_lr=1e-5, end_lr=10.0, num_iter=40)
    assert_same_state(before, state_of(trainer.model, None))
    assert trainer.optimizer is None  # train() builds its own, as without the test
    assert result.stop_reason in ("completed", "diverged")
    start, end = result.usable
    assert min(result.smoothed_losses[start:end]) < 0.9 * result.smoothed_losses[start]
    low, high = result.bounds()

    scheduler = dw_transformers.set_one_cycle(trainer, (low, high))
    assert trainer.args.learning_rate == high and scheduler.total_steps == 20
    trainer.train()
    assert trainer.lr_scheduler is scheduler and scheduler.last_epoch == 20
    lrs = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert max(lrs) == pytest.approx(high, rel=0.05) and lrs[0] < high / 5
    assert type(trainer.optimizer.optimizer).__name__ == "AdamW"  # accelerate wraps it
    betas = scheduler.optimizer.param_groups[0]["betas"]
    assert betas[0] == pytest.approx(0.95, abs=0.01)  # beta1 cycled back up at the end


def test_transformers_keeps_an_optimizer_it_was_given_and_restores_its_state(tmp_path):
    trainer = hf_trainer(tmp_path)
    optimizer = trainer.create_optimizer()  # the user's, already there
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model(**batch).loss.backward()
    optimizer.step()
    before = state_of(trainer.model, optimizer)
    dw_transformers.lr_range_test(trainer, num_iter=10, start_lr=1e-4, end_lr=1e-2)
    assert trainer.optimizer is optimizer
    assert_same_state(before, state_of(trainer.model, optimizer))
    with pytest.raises(TypeError, match="transformers.Trainer"):
        dw_transformers.lr_range_test(object())
    with pytest.raises(ValueError, match="min_lr < max_lr"):
        dw_transformers.set_one_cycle(trainer, (1e-2, 1e-3))


@pytest.mark.slow
def test_integrations_benchmark_runs_and_prints_side_by_side():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "range_test_integrations.py"),
                           "--num-iter", "20", "--rounds", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for label in ("Tuner.lr_find", "integrations.lightning", "integrations.transformers"):
        assert label in done.stdout
    assert "suggested" in done.stdout
