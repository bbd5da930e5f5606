"""The Run button in a real Jupyter kernel, driven as a browser drives it (no browser): clicks
are comm messages to the buttons' models, the widget's state is read from IOPub. The work runs
on the kernel's event loop, so another cell runs at once while it trains, and Stop is served
between two steps."""

import importlib.util
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("widget_overhead",
                                               ROOT / "benchmarks" / "widget_overhead.py")
widget_overhead = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(widget_overhead)  # its Kernel: cells, clicks and IOPub as a frontend

SETUP = """
import threading
import torch
from torch import nn
from disciplined_widgets import TensorLoader, load_dataset
from disciplined_widgets.models import SmallCNN
from disciplined_widgets.widgets import TrainWidget

torch.manual_seed(0)
data = load_dataset("digits", seed=0)
model = SmallCNN()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
train = TensorLoader(data.x_train, data.y_train, 64, seed=0)
val = TensorLoader(data.x_val, data.y_val, 512, shuffle=False)
trainer = TrainWidget(model, optimizer, nn.CrossEntropyLoss(), train, val, epochs=10_000)
threads_before = threading.active_count()
"""


@pytest.fixture(scope="module")
def kernel():
    kernel = widget_overhead.Kernel()
    yield kernel
    kernel.close()


def test_run_button_trains_on_the_kernels_loop_while_cells_run_and_stop_is_prompt(kernel):
    ids = kernel.execute(SETUP, run="trainer.run_button.model_id",
                         stop="trainer.stop_button.model_id", status="trainer.status.model_id")
    kernel.click(ids["run"])
    deadline = time.monotonic() + 30
    while not kernel.execute("", steps="trainer.progress.value")["steps"]:
        assert time.monotonic() < deadline, "the Run button did not start training"
        time.sleep(0.05)

    started = time.perf_counter()
    cell = kernel.execute("answer = sum(range(1000))", answer="answer",
                          running="trainer.running", on_loop="trainer._thread is None",
                          steps="trainer.progress.value",
                          threads="threading.active_count() - threads_before")
    took = time.perf_counter() - started
    # served between two steps of a training that never ends by itself (a drawing holding the
    # GIL can delay it a few tenths of a second on a loaded 2-core machine)
    assert cell["answer"] == 499500 and took < 2.0
    assert cell["running"] and cell["on_loop"]
    assert cell["threads"] <= 1  # no training thread (the live plot's renderer at most)
    time.sleep(0.3)
    later = kernel.execute("", steps="trainer.progress.value")["steps"]
    assert later > cell["steps"]  # trained on between the cells

    kernel.drain_iopub()
    stopped = time.perf_counter()
    kernel.click(ids["stop"])
    kernel.wait_for_state(ids["status"], "stopped after", timeout=10)
    assert time.perf_counter() - stopped < 1.0
    done = kernel.execute("", reason="trainer.history.stop_reason",
                          steps="trainer.history.steps_done",
                          total="trainer.history.total_steps", running="trainer.running",
                          error="repr(trainer.error)", run_enabled="not trainer.run_button.disabled")
    assert done["reason"] == "stopped" and 0 < done["steps"] < done["total"]
    assert not done["running"] and done["error"] == "None" and done["run_enabled"]
