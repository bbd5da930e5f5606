"""The batch-to-loss step on models users bring: Hugging Face-style dict batches and `.loss`
outputs, several inputs, a loss that goes negative, the user's own `loss_fn` and metrics,
streaming loaders, AdamW through the recipe and a search, clipping, skipped fp16 steps, and the
same batches as a plain loop."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from disciplined_widgets import TensorLoader, discipline, evaluate, fit, lr_range_test
from disciplined_widgets.search import Search
from disciplined_widgets.train import Training
from disciplined_widgets.widgets import TrainWidget


# ---- models of the kinds users bring -------------------------------------------------------

@dataclass
class ClassifierOutput:  # what a Hugging Face model returns: .loss and .logits
    loss: torch.Tensor | None
    logits: torch.Tensor


class TokenClassifier(nn.Module):
    """``forward(input_ids, attention_mask, labels=None)`` as a Hugging Face classifier."""

    def __init__(self, vocab=17, width=32, classes=10):
        super().__init__()
        self.embed, self.norm = nn.Embedding(vocab, width), nn.LayerNorm(width)
        self.position = nn.Parameter(torch.zeros(64, width))
        self.head = nn.Linear(64 * width, classes)

    def forward(self, input_ids, attention_mask, labels=None):
        hidden = self.norm(self.embed(input_ids) + self.position) * attention_mask[..., None]
        logits = self.head(hidden.flatten(1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ClassifierOutput(loss, logits)


class Tokens(Dataset):
    """Digits as 64 tokens (pixel intensities 0..16), in dict samples."""

    def __init__(self, x, y):
        self.ids, self.y = (x.flatten(1) * 16).round().long().clamp(0, 16), y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(64), "labels": self.y[i]}


class TwoInputs(nn.Module):
    """``forward(top, bottom)``: the upper and lower halves of a digit."""

    def __init__(self):
        super().__init__()
        self.top, self.bottom, self.head = nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(64, 10)

    def forward(self, top, bottom):
        return self.head(torch.relu(torch.cat([self.top(top), self.bottom(bottom)], 1)))


class Halves(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x.flatten(1), y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return (self.x[i, :32], self.x[i, 32:]), self.y[i]


class VAE(nn.Module):
    """A small VAE on digits with a Gaussian likelihood of learned scale: its loss (the
    negative ELBO per pixel) goes below zero as the reconstructions sharpen."""

    def __init__(self, latent=4):
        super().__init__()
        self.encoder, self.decoder = nn.Linear(64, 2 * latent), nn.Linear(latent, 64)
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        x = x.flatten(1)
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        residual = (x - self.decoder(z)) / self.log_scale.exp()
        nll = (0.5 * residual ** 2 + self.log_scale).mean()  # -log N(x; decoded, scale), less a constant
        kl = -0.5 * (1 + log_var - mean ** 2 - log_var.exp()).sum(1).mean() / 64
        return {"loss": nll + kl}


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_loaders(digits):
    return (DataLoader(Tokens(digits.x_train, digits.y_train), batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(0)),
            DataLoader(Tokens(digits.x_val, digits.y_val), batch_size=256))


def adam(model, lr=3e-3):
    return torch.optim.AdamW(model.parameters(), lr=lr)


# ---- a Hugging Face-style model: dict batches, .loss ---------------------------------------

def test_a_model_with_its_own_loss_trains_and_is_evaluated_with_accuracy(token_loaders):
    train, val = token_loaders
    torch.manual_seed(0)
    model = TokenClassifier()
    history = fit(model, adam(model), None, train, val, epochs=2)
    assert history.stop_reason == "completed" and len(history.val_loss) == 2
    assert history.val_accuracy[-1] > 0.8 and history.val_loss[-1] < history.val_loss[0]
    again = evaluate(model, None, val)
    assert again.loss == pytest.approx(history.val_loss[-1]) and again.accuracy == history.val_accuracy[-1]


def test_range_test_with_validation_on_a_model_with_its_own_loss(token_loaders):
    train, val = token_loaders
    torch.manual_seed(0)
    model = TokenClassifier()
    optimizer = adam(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_range_test(model, optimizer, None, train, val_loader=val, num_iter=40,
                           start_lr=1e-5, end_lr=1.0)
    assert len(result.val_losses) >= 3 and all(a is not None for a in result.val_accuracies)
    assert result.suggestions.bounds is not None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_train_widget_runs_a_model_with_its_own_loss(token_loaders):
    train, val = token_loaders
    torch.manual_seed(0)
    model = TokenClassifier()
    widget = TrainWidget(model, adam(model), None, train, val, epochs=1)
    widget.run()
    assert widget.history.stop_reason == "completed" and widget.history.val_accuracy[-1] > 0.6


def test_discipline_with_adamw_and_a_model_with_its_own_loss(token_loaders):
    train, val = token_loaders
    recipe = discipline(TokenClassifier, train, val, budget_steps=1200, criterion=None,
                        optimizer=torch.optim.AdamW, trial_steps=25, range_test_steps=50)
    assert recipe.final_accuracy > 0.8
    history = recipe.history
    assert max(history.momentum) == pytest.approx(0.95) or recipe.hyperparameters.momentum != "cyclical"
    assert all(0.8 <= m <= 0.95 for m in history.momentum)  # AdamW's beta1, cycled or constant


def test_a_model_that_returns_no_loss_without_a_criterion_is_refused_unchanged(digits_loaders):
    train, _ = digits_loaders
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"criterion is None.*a tensor of shape \(64, 10\)"):
        fit(model, optimizer, None, train, steps=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not optimizer.state
    with pytest.raises(ValueError, match="scalar tensor"):
        fit(model, optimizer, nn.CrossEntropyLoss(reduction="none"), train, steps=3)
    with pytest.raises(ValueError, match="criterion or loss_fn, not both"):
        fit(model, optimizer, nn.CrossEntropyLoss(), train, steps=3, loss_fn=lambda m, b: 0)
    with pytest.raises(TypeError, match="unknown training options \\['clip'\\]"):
        fit(model, optimizer, nn.CrossEntropyLoss(), train, steps=3, clip=1.0)


# ---- several inputs; the user's own step and metrics ---------------------------------------

def test_a_model_with_two_inputs(digits):
    train = DataLoader(Halves(digits.x_train, digits.y_train), batch_size=64, shuffle=True)
    val = DataLoader(Halves(digits.x_val, digits.y_val), batch_size=256)
    torch.manual_seed(0)
    model = TwoInputs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, optimizer, nn.CrossEntropyLoss(), train, val, epochs=3)
    assert history.val_accuracy[-1] > 0.9


def test_loss_fn_with_outputs_targets_and_a_custom_metric(digits_loaders):
    train, val = digits_loaders
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def loss_fn(model, batch):
        x, y = batch
        outputs = model(x)
        return nn.functional.cross_entropy(outputs, y, label_smoothing=0.1), outputs, y

    def top3(outputs, targets):
        return (outputs.topk(3, dim=1).indices == targets[:, None]).any(1).float().mean()

    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), None, train, val,
                  epochs=2, loss_fn=loss_fn, metrics={"top3": top3})
    assert len(history.val_metrics["top3"]) == 2
    assert all(t >= a for t, a in zip(history.val_metrics["top3"], history.val_accuracy))
    assert 0.9 < history.val_metrics["top3"][-1] <= 1.0
    assert history.to_dict()["val_metrics"] == {"top3": history.val_metrics["top3"]}


# ---- a loss below zero -------------------------------------------------------------------------

def test_a_vae_whose_loss_goes_negative_trains_and_is_not_cut_as_diverged(digits):
    batches = [{"x": x} for x in digits.x_train.split(64)]
    torch.manual_seed(0)
    model = VAE()
    history = fit(model, adam(model, 1e-2), None, batches, epochs=5)
    assert history.stop_reason == "completed" and min(history.train_loss) < -0.5

    torch.manual_seed(0)
    model = VAE()
    result = lr_range_test(model, adam(model), None, batches, num_iter=200, start_lr=1e-5,
                           end_lr=10.0, seed=0)
    lowest = min(range(len(result.smoothed_losses)), key=result.smoothed_losses.__getitem__)
    assert result.smoothed_losses[lowest] < 0
    assert result.usable[1] > lowest  # the fall below zero is read, not cut
    assert result.suggestions.bounds is not None


# ---- loaders without a length; batches as a plain loop draws them ----------------------------

class Stream(IterableDataset):
    def __init__(self, x, y, batch=64):
        self.x, self.y, self.batch = x, y, batch

    def __iter__(self):
        for start in range(0, len(self.y), self.batch):
            yield self.x[start:start + self.batch], self.y[start:start + self.batch]


def test_an_iterable_dataset_without_a_length(digits):
    stream = DataLoader(Stream(digits.x_train, digits.y_train), batch_size=None)
    with pytest.raises(TypeError):
        len(stream)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, optimizer, nn.CrossEntropyLoss(), stream, steps=50)
    assert history.steps_done == 50 and history.epoch[-1] == 2.0  # 23 batches a pass
    history = fit(model, optimizer, nn.CrossEntropyLoss(), stream, epochs=2)
    assert history.steps_done == 46 and history.total_steps is None


@pytest.mark.parametrize("dataset", ["tensors", "samples"])
def test_the_same_batches_as_a_plain_loop_over_a_shuffled_dataloader(digits, dataset):
    x, y = digits.x_train[:200], digits.y_train[:200]
    data = TensorDataset(x, y) if dataset == "tensors" else Halves(x, y)

    def loader():
        return DataLoader(data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(4))

    mine = []

    def loss_fn(model, batch):
        inputs, targets = batch
        mine.append(targets)
        return (model(*inputs) if isinstance(inputs, list) else model(inputs)).sum()

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)) if dataset == "tensors" else TwoInputs()
    fit(model, torch.optim.SGD(model.parameters(), lr=0.0), None, loader(), epochs=3, loss_fn=loss_fn)
    plain, plain_loader = [], loader()
    for _ in range(3):
        for _, targets in plain_loader:
            plain.append(targets)
    assert len(mine) == len(plain) == 3 * 7
    assert all(torch.equal(a, b) for a, b in zip(mine, plain))


# ---- clipping and skipped steps ---------------------------------------------------------------

def test_gradient_clipping_bounds_each_update(digits_loaders):
    train, _ = digits_loaders
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    fit(model, optimizer, nn.CrossEntropyLoss(), train, steps=1, clip_grad_norm=1e-3)
    moved = torch.cat([(p.detach() - s).flatten() for p, s in zip(model.parameters(), start)])
    assert moved.norm().item() == pytest.approx(0.5 * 1e-3, rel=1e-3)


def test_steps_skipped_by_the_grad_scaler_are_recorded_and_left_out_of_the_range_test(digits_loaders):
    train, _ = digits_loaders
    calls = []

    def loss_fn(model, batch):
        x, y = batch
        loss = nn.functional.cross_entropy(model(x), y)
        calls.append(1)
        if len(calls) == 3:  # a finite loss whose gradient is NaN: the scaler skips the update
            loss = loss + 0 * torch.sqrt(model[1].weight.sum() * 0)
        return loss

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, optimizer, None, train, steps=6, loss_fn=loss_fn,
                  grad_scaler=torch.amp.GradScaler("cpu"))
    assert history.skipped_steps == [3] and history.stop_reason == "completed"
    calls.clear()
    result = lr_range_test(model, optimizer, None, train, num_iter=10, loss_fn=loss_fn,
                           grad_scaler=torch.amp.GradScaler("cpu"))
    assert len(result.lrs) == len(result.losses) == 9


# ---- the step-wise form -------------------------------------------------------------------------

def test_training_one_step_at_a_time_gives_what_fit_gives(digits):
    def run(stepwise):
        train = TensorLoader(digits.x_train, digits.y_train, batch_size=64, seed=0)
        val = TensorLoader(digits.x_val, digits.y_val, batch_size=256, shuffle=False)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.2), nn.Linear(32, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if not stepwise:
            return fit(model, optimizer, nn.CrossEntropyLoss(), train, val, steps=30,
                       eval_every=10, seed=1)
        training = Training(model, optimizer, nn.CrossEntropyLoss(), train, val, steps=30,
                            eval_every=10, seed=1)
        while training.step():
            torch.rand(3)  # the caller's own work between steps draws from the global RNG
        return training.finish()

    a, b = run(False).to_dict(), run(True).to_dict()
    for timing in ("time", "eval_time"):
        a.pop(timing), b.pop(timing)
    assert a == b


# ---- AdamW through a search -----------------------------------------------------------------------

def test_a_search_with_adamw_stores_and_uses_its_optimizer():
    search = Search("mlp", "digits", {"max_lr": [0.003, 0.03]}, sampler="grid", steps=60,
                    optimizer=torch.optim.AdamW, clip_grad_norm=5.0, device="cpu")
    assert search.task["optimizer"] == "torch.optim.adamw:AdamW"
    assert search.task["options"] == {"clip_grad_norm": 5.0}
    histories = {}
    search.run(callback=histories.__setitem__)
    seen = [set(history.momentum) for history in histories.values()]
    assert search.progress().complete == 2 and search.best["val_accuracy"] > 0.5
    assert all(0.85 - 1e-9 <= beta1 <= 0.95 + 1e-9 for m in seen for beta1 in m)
    assert all(len(m) > 10 for m in seen)  # AdamW's beta1 cycled against the LR
    with pytest.raises(ValueError, match="optimizer must be one of|'module:function'"):
        Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, optimizer="lamb")
