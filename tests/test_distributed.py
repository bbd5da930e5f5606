"""lr_range_test, RangeTest and fit under torchrun: 2 processes with the gloo backend on the CPU,
started as the README says (tests/distributed_worker.py is one rank)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "tests" / "distributed_worker.py"), str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.parametrize("case,steps", [("non_finite", 7), ("diverged", 15)])
def test_a_stop_on_one_ranks_data_is_agreed_by_every_rank(ranks, case, steps):
    first, second = (r[case] for r in ranks)
    assert first["result"] == second["result"]  # the same result on every rank
    assert first["result"]["stop_reason"] == case
    assert len(first["result"]["lrs"]) == steps  # where rank 1's batch was, on both ranks
    assert first["restored"] and second["restored"]


def test_range_test_in_own_loop_records_the_mean_over_ranks(ranks):
    first, second = (r["own_loop"] for r in ranks)
    assert first["result"] == second["result"] and first["result"]["stop_reason"] == "completed"
    local0, local1 = first["local"]
    assert local0 != local1  # each rank trained on its own shard...
    mean = [(a + b) / 2 for a, b in zip(local0, local1)]
    assert first["result"]["losses"] == pytest.approx(mean, rel=1e-6)  # ...the curve is their mean
    assert first["restored"] and second["restored"]


def test_fit_sets_the_epoch_and_averages_evaluation_over_ranks(ranks):
    first, second = (r["fit"] for r in ranks)
    assert first["sampler_epoch"] == second["sampler_epoch"] == 1  # set_epoch(1) for the 2nd epoch
    assert first["val_loss"] == second["val_loss"] and len(first["val_loss"]) == 2
    assert first["val_accuracy"] == second["val_accuracy"]
    # the mean over both ranks' halves of the validation set is the mean over all of it
    assert math.isclose(first["val_loss"][-1], first["whole_val_loss"], rel_tol=1e-6)
    assert math.isclose(first["val_accuracy"][-1], first["whole_val_accuracy"], rel_tol=1e-9)
