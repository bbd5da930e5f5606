"""The benchmarks run end to end and print their ratios (tiny settings; the figures are not checked)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,expected", [
    ("loop_overhead.py", ["--steps", "8", "--rounds", "1"], ["fit/bare", "speed-up"]),
    ("range_test.py", ["--num-iter", "20", "--rounds", "1"], ["vs a bare loop", "vs torch-lr-finder",
                                                            "suggested LR"]),
    ("widget_overhead.py", ["--epochs", "2", "--rounds", "1"], ["TrainWidget run()", "Run button"]),
])
def test_benchmark_runs_and_prints_ratios(script, args, expected):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for text in expected:
        assert text in done.stdout
    assert "same losses: True" in done.stdout and "same losses: False" not in done.stdout
