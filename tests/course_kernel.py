"""Running the course's chapters in a real kernel for the tests: a tiny CIFAR-10 on disk and
the smoke setting (``DW_COURSE_SETTING=smoke``), which takes every chapter's paper branch."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = Path(__file__).resolve().parent / "course_solutions"


def write_tiny_cifar10(root: Path, per_batch: int = 2, n_test: int = 10) -> Path:
    """torchvision's CIFAR-10 layout (``cifar-10-batches-py``: five pickled training batches, a
    test batch and ``batches.meta``) with ``5 * per_batch`` training images of random pixels."""
    rng = np.random.default_rng(0)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        labels = np.arange(n) % 10  # every class in every batch
        # learnable: each class has its own brightness, so a few steps lower the loss
        pixels = rng.integers(0, 56, (n, 3072)) + 20 * labels[:, None]
        batch = {"data": pixels.astype(np.uint8), "labels": labels.tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return Path(root)


def smoke_environment(monkeypatch, data_root: Path) -> None:
    """The kernels started after this run the smoke setting on the tiny CIFAR-10."""
    monkeypatch.setenv("DW_COURSE_SETTING", "smoke")
    monkeypatch.setenv("DISCIPLINED_WIDGETS_DATA", str(data_root))
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def client_for(notebook, path: Path, timeout: int = 300):
    from nbclient import NotebookClient

    return NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                          resources={"metadata": {"path": str(path)}})


def solution_sources(chapter: str) -> list[str]:
    """The reference solutions of a chapter, in order: ``course_solutions/<chapter>.py``, one
    solution per ``# %% solution`` section."""
    text = (SOLUTIONS / f"{chapter}.py").read_text()
    parts = [part.strip("\n") for part in text.split("# %% solution")[1:]]
    return [part + "\n" for part in parts]


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
