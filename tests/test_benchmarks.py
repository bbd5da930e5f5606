"""The benchmarks run end to end and print their ratios (tiny settings; the figures are not checked)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# range_test.py compares against the peers that are installed and names the others in one line.
PEERS = {"torch-lr-finder": "torch_lr_finder", "fastai": "fastai", "Lightning": "pytorch_lightning"}
INSTALLED = [name for name, module in PEERS.items() if importlib.util.find_spec(module)]
MISSING = [name for name in PEERS if name not in INSTALLED]
RANGE_TEST_LINES = ["vs a bare loop", "suggested LR",
                    *(f"vs {name} (DataLoader)" for name in INSTALLED),
                    *(f"{name} is not installed: skipped" for name in MISSING)]
if INSTALLED:
    RANGE_TEST_LINES += ["vs the fastest peer", "in every peer the same: True"]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,expected", [
    ("loop_overhead.py", ["--steps", "8", "--rounds", "1"], ["fit/bare", "speed-up"]),
    ("range_test.py", ["--num-iter", "20", "--rounds", "1"], RANGE_TEST_LINES),
    ("widget_overhead.py", ["--epochs", "2", "--rounds", "1"], ["TrainWidget run()", "Run button", "CompareWidget run()"]),
])
def test_benchmark_runs_and_prints_ratios(script, args, expected):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for text in expected:
        assert text in done.stdout
    assert "same losses: True" in done.stdout and "same losses: False" not in done.stdout


@pytest.mark.slow
def test_search_benchmark_prints_the_three_methods_side_by_side():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search.py"), "--trials", "4",
                           "--trial-steps", "200", "--seeds", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("   0  ")]
    assert [row[1] for row in rows] == ["grid", "random", "recipe"]
    assert [int(row[3]) for row in rows[:2]] == [800, 800] and int(rows[2][3]) <= 800
    assert "recipe - best search" in done.stdout
