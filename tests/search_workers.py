"""Helpers shared by the search tests: worker processes and the grid points of a study."""

import itertools
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def grid_points(space):
    names = sorted(space)
    return sorted(itertools.product(*(space[n] for n in names)), key=repr)


def points(table, space, state="complete"):
    rows = table if state is None else table[table.state == state]
    return sorted((tuple(r) for r in rows[sorted(space)].itertuples(index=False)), key=repr)


def worker(study, storage, *options, env=None):
    """A worker process started through the command line, one torch thread."""
    command = [sys.executable, "-m", "disciplined_widgets", "search", "worker", "--study", study,
               "--storage", storage, "--threads", "1", "--device", "cpu", *options]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def finish(process, timeout=120):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"worker still running after {timeout} s\n{out}\n{err}")
    return process.returncode, out, err


def reported_trials(out):
    """The trial numbers a worker printed as done ("trial N: val_accuracy V")."""
    return [int(line.split()[1].rstrip(":")) for line in out.splitlines()
            if line.startswith("trial ")]


def worker_name(process):
    return f"{socket.gethostname()}:{process.pid}"


def broken_model(**kwargs):
    """A model builder with a bug: every trial that uses it fails."""
    raise ValueError("no such layer")
