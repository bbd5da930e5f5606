"""discipline(): every decision follows from its recorded evidence; the report shows it; memory probing."""

import math

import pytest
import torch
from torch import nn

from disciplined_widgets import TensorLoader, load_dataset
from disciplined_widgets.memory import largest_batch_size, step_bytes
from disciplined_widgets.step import BatchLoss
from disciplined_widgets.models import MLP
from disciplined_widgets.recipe import CONSTANT_MOMENTUMS, WEIGHT_DECAYS, discipline


def make_model():
    return MLP(in_features=64, hidden=(64,))


@pytest.fixture(scope="module")
def loaders():
    data = load_dataset("digits")
    return (TensorLoader(data.x_train, data.y_train, 32, seed=3),
            TensorLoader(data.x_val, data.y_val, 500, shuffle=False))


@pytest.fixture(scope="module")
def recipe(loaders):
    train, val = loaders
    state = train.generator.get_state()
    result = discipline(make_model, train, val, budget_steps=1500)
    assert train.batch_size == 32 and torch.equal(train.generator.get_state(), state)
    return result


def score(row):
    return row["final val accuracy"]


def test_decisions_come_in_order_with_their_evidence(recipe):
    assert [d.name for d in recipe.decisions] == ["learning rate", "weight decay", "momentum",
                                                   "batch size"]
    low, high = recipe.decisions[0].value
    assert math.isclose(high / low, 10.0)
    assert recipe.decisions[0].table[0]["rule"] == "steepest"
    assert math.isclose(recipe.decisions[0].table[0]["lr"], high)


def test_weight_decay_grid_then_bisection_picks_the_best_run(recipe):
    decision = recipe.decisions[1]
    tried = [row["value"] for row in decision.table]
    assert set(WEIGHT_DECAYS) <= set(tried)
    coarse = max((r for r in decision.table if r["value"] in WEIGHT_DECAYS), key=score)["value"]
    if coarse > 0:
        assert len(tried) == 6 and {float(f"{coarse * 3:.0e}"), float(f"{coarse / 3:.0e}")} <= set(tried)
    best_accuracy = max(score(r) for r in decision.table)
    assert score(next(r for r in decision.table if r["value"] == decision.value)) == best_accuracy
    assert recipe.hyperparameters.weight_decay == decision.value
    assert len(decision.comparison.histories) == len(tried)


def test_momentum_keeps_cyclical_unless_a_constant_clearly_wins(recipe):
    decision = recipe.decisions[2]
    rows = {row["value"]: row for row in decision.table}
    assert set(rows) == {"cyclical", *CONSTANT_MOMENTUMS}
    best_constant = max(CONSTANT_MOMENTUMS, key=lambda m: score(rows[m]))
    gain = score(rows[best_constant]) - score(rows["cyclical"])
    assert decision.value == (best_constant if gain > 0.005 else "cyclical")
    assert recipe.hyperparameters.momentum == decision.value


def test_batch_size_is_the_largest_within_tolerance_with_the_lr_scaled(recipe):
    decision = recipe.decisions[3]
    rows = {row["value"]: row for row in decision.table}
    assert min(rows) == 32 and all(b & (b - 1) == 0 for b in rows)  # doubled from 32
    fitting = max(p.batch_size for p in recipe.memory_probes if p.fits)
    assert max(rows) <= fitting <= 143  # a tenth of the 1438 training samples
    top = max(score(r) for r in rows.values())
    assert decision.value == max(b for b, r in rows.items() if score(r) >= top - 0.005)
    for b, row in rows.items():  # the same number of samples per short run
        assert row["steps"] * b == rows[32]["steps"] * 32
    _, max_lr = recipe.decisions[0].value
    assert math.isclose(recipe.hyperparameters.max_lr, max_lr * decision.value / 32)
    assert recipe.hyperparameters.batch_size == decision.value


def test_budget_is_spent_and_the_final_model_trains(recipe, loaders):
    assert recipe.samples_used <= recipe.budget_steps * recipe.base_batch_size
    assert recipe.samples_used > 0.95 * recipe.budget_steps * recipe.base_batch_size
    assert recipe.runs == 1 + 6 * (len(recipe.decisions[1].table) == 6) + \
        4 * (len(recipe.decisions[1].table) == 4) + 3 + (len(recipe.decisions[3].table) - 1) + 1
    assert recipe.final_accuracy > 0.9
    model = recipe.model.eval()
    _, val = loaders
    with torch.no_grad():
        accuracy = (model(val.inputs).argmax(1) == val.targets).float().mean().item()
    assert math.isclose(accuracy, recipe.final_accuracy, abs_tol=1e-6)


def test_report_shows_values_reasons_and_figures(recipe, tmp_path):
    report = recipe.report()
    page = report.to_html()
    for decision in recipe.decisions:
        assert decision.reason[1:40] in page
    assert page.count("<img") == 5
    assert f"{recipe.hyperparameters.weight_decay:g}" in page
    assert "budget spent" in page and f"of {recipe.budget_steps} steps" in page
    saved = report.save(tmp_path / "r.html").read_text()
    assert saved.startswith("<!DOCTYPE html>") and "<meta charset='utf-8'>" in saved and page in saved
    markdown = report.save(tmp_path / "r.md").read_text()
    figures = sorted(p.name for p in (tmp_path / "r_figures").iterdir())
    assert figures == ["batch_size.png", "final_training.png", "learning_rate.png",
                       "momentum.png", "weight_decay.png"]
    for name in figures:
        assert f"](r_figures/{name})" in markdown
        assert (tmp_path / "r_figures" / name).read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=".html or .md"):
        report.save(tmp_path / "r.pdf")
    assert "batch size:" in repr(report) and "text/html" not in repr(report)


def test_bad_input_fails_before_training(loaders):
    train, val = loaders
    with pytest.raises(ValueError, match="budget_steps=100 is too small"):
        discipline(make_model, train, val, budget_steps=100)
    with pytest.raises(ValueError, match="budget_steps must be positive"):
        discipline(make_model, train, val, budget_steps=0)
    with pytest.raises(TypeError, match="model_factory"):
        discipline(make_model(), train, val, budget_steps=1500)
    with pytest.raises(TypeError, match="batch_size"):
        discipline(make_model, [(train.inputs, train.targets)], val, budget_steps=1500)
    with pytest.raises(ValueError, match="tolerance"):
        discipline(make_model, train, val, budget_steps=1500, tolerance=2)


def test_step_bytes_grows_with_the_batch_and_the_search_stops_at_the_limit(loaders):
    train, _ = loaders
    model, criterion, cpu = make_model(), nn.CrossEntropyLoss(), torch.device("cpu")
    small = step_bytes(model, BatchLoss(criterion), (train.inputs[:32], train.targets[:32]), cpu)
    large = step_bytes(model, BatchLoss(criterion), (train.inputs[:512], train.targets[:512]), cpu)
    assert large > 4 * (small - 4 * sum(p.numel() * 4 for p in model.parameters()))
    best, probes = largest_batch_size(make_model, train, start=16, cap=100)
    assert best == 100 and [p.batch_size for p in probes] == [16, 32, 64, 100]
    assert all(p.fits for p in probes) and all(a.bytes < b.bytes for a, b in zip(probes, probes[1:]))
    with pytest.raises(ValueError, match="does not fit in memory"):
        largest_batch_size(make_model, train, start=16, cap=100, margin=1 - 1e-12)
