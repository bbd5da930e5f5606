"""A TrainWidget's run() and its Run button against the same headless fit, side by side in one run;
a CompareWidget's run() against the same headless compare.

All three train the same model from the same weights on the same batches for the same epochs,
in one real Jupyter kernel (started by jupyter_client, as JupyterLab starts one). ``fit`` and
``run()`` are timed in the kernel. The Run button is clicked as a browser clicks it, by a comm
message to the button's model, and timed from the click to the moment the widget's status line
says "done" (after the final drawing), while a cell awaits ``trainer.finished()``. On the kernel's event loop the
button trains in the kernel's main thread, one step at a time; in a second thread PyTorch's CPU
ops can be several times slower (libgomp throttles its spin-waiting once two threads own thread
pools on a machine with few cores). Each widget is displayed before it runs, as in a notebook
(which lays out its empty axes); while it runs it draws its live plot (throttled), updates
its progress bar and verdict, and draws the final state. Runs rotate after a warm-up; the
fastest of each is reported. The comparison runs four weight decays for a quarter of the epochs
each.

    python benchmarks/widget_overhead.py [--epochs 30] [--rounds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import ast
import queue
import sys
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parents[1]

SETUP = """
import copy, sys, time
import torch
from torch import nn
from disciplined_widgets import TensorLoader, fit, load_dataset, resolve_device
from disciplined_widgets.models import CNN1D
from disciplined_widgets.comparisons import compare
from disciplined_widgets.widgets import CompareWidget, TrainWidget

device = resolve_device({device!r})
data = load_dataset("mnist1d")
torch.manual_seed(0)
template = CNN1D()
criterion = nn.CrossEntropyLoss()
EPOCHS = {epochs}
DECAYS = "1e-3, 1e-4, 1e-5, 0"  # the comparison's values, EPOCHS // 4 epochs each


def parts():
    model = copy.deepcopy(template)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train = TensorLoader(data.x_train, data.y_train, 128, seed=0, device=device)
    val = TensorLoader(data.x_val, data.y_val, 1000, shuffle=False, device=device)
    return model, optimizer, criterion, train, val


def drawn(widget):  # the widget's drawings so far, by kind, and the seconds they took
    return dict(widget.plot.drawings, seconds=widget.plot.render_seconds,
                live=widget.plot.live_seconds)  # live: the updates' drawings while training


def since(before, widget):
    return dict((kind, value - before[kind]) for kind, value in drawn(widget).items())


def timed(work):
    start = time.perf_counter()
    history = work()
    return time.perf_counter() - start, history


COMPARE = dict(parameter="weight_decay", epochs=max(1, EPOCHS // 4), device=device)
reference = fit(*parts(), epochs=1, device=device).train_loss  # warms up torch
"""


DURING_THE_RUN = {"drawings": "since(before, trainer)"}  # not the empty axes drawn before


class Kernel:
    """A kernel driven as a frontend drives it: cells on the shell channel, clicks as comm
    messages, widget state read from IOPub."""

    def __init__(self):
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(ROOT))

    def execute(self, code: str, **expressions) -> dict:
        """Run a cell; the ``expressions`` evaluated after it, as Python values."""
        msg_id = self.client.execute(code, user_expressions=expressions)
        while True:
            reply = self.client.get_shell_msg(timeout=600)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"the kernel failed: {content.get('ename')}: "
                               f"{content.get('evalue')}\n" + "\n".join(content.get("traceback", [])))
        out = {}
        for name, value in content["user_expressions"].items():
            if value["status"] != "ok":
                raise RuntimeError(f"{name}: {value.get('ename')}: {value.get('evalue')}")
            out[name] = ast.literal_eval(value["data"]["text/plain"])
        return out

    def click(self, model_id: str) -> None:
        """What a browser sends when the button is clicked."""
        self.client.shell_channel.send(self.client.session.msg("comm_msg", {
            "comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}))

    def drain_iopub(self) -> None:
        while True:
            try:
                self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                return

    def wait_for_state(self, model_id: str, text: str, timeout: float = 600) -> float:
        """The time when a state update of ``model_id`` whose value holds ``text`` arrives."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                msg = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["msg_type"] != "comm_msg" or msg["content"].get("comm_id") != model_id:
                continue
            value = msg["content"]["data"].get("state", {}).get("value")
            if isinstance(value, str) and text in value:
                return time.perf_counter()
        raise TimeoutError(f"no {text!r} from the widget within {timeout} s")

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    kernel = Kernel()
    try:
        info = kernel.execute(SETUP.format(device=args.device, epochs=args.epochs),
                              device="str(device)", torch="torch.__version__",
                              threads="torch.get_num_threads()", python="sys.executable")
        if info["python"] != sys.executable:
            print(f"note: the kernel runs {info['python']}, not {sys.executable}")

        def headless():
            return kernel.execute("t, history = timed(lambda: fit(*parts(), epochs=EPOCHS, "
                                  "device=device)); fit_losses = history.train_loss",
                                  t="t", steps="history.steps_done")

        def blocking():
            return kernel.execute(
                "trainer = TrainWidget(*parts(), epochs=EPOCHS, device=device)\n"
                "display(trainer)  # as in a notebook: its empty axes are drawn\n"
                "before = drawn(trainer)\n"
                "t, history = timed(trainer.run)",
                t="t", same="history.train_loss == fit_losses", **DURING_THE_RUN)

        def button():
            ids = kernel.execute(
                "trainer = TrainWidget(*parts(), epochs=EPOCHS, device=device)\n"
                "display(trainer)  # the student sees its empty axes, then clicks\n"
                "before = drawn(trainer)\n"
                "ended = []  # when the status line says done (after the final drawing)\n"
                "trainer.status.observe(lambda change: 'done in' in change['new'] and "
                "ended.append(time.perf_counter()), 'value')",
                run="trainer.run_button.model_id")
            start = time.perf_counter()  # the same clock as the kernel's (CLOCK_MONOTONIC)
            kernel.click(ids["run"])
            out = kernel.execute("await trainer.finished()  # waits without stopping the loop",
                                 end="ended[0]", same="trainer.history.train_loss == fit_losses",
                                 error="repr(trainer.error)", **DURING_THE_RUN)
            if out["error"] != "None":
                raise RuntimeError(f"the Run button's work failed: {out['error']}")
            return {**out, "t": out["end"] - start}

        def compared():
            return kernel.execute(
                "t, result = timed(lambda: compare(*parts(), values=[float(v) for v in "
                "DECAYS.split(',')], **COMPARE)); compare_losses = [h.val_loss for h in "
                "result.histories]", t="t")

        def compare_widget():
            return kernel.execute(
                "comparer = CompareWidget(*parts(), values=DECAYS, **COMPARE)\n"
                "display(comparer)  # its empty axes, a place for each value\n"
                "before = drawn(comparer)\n"
                "t, result = timed(comparer.run)",
                t="t", same="[h.val_loss for h in result.histories] == compare_losses",
                drawings="since(before, comparer)")

        runs = {"fit": headless, "run()": blocking, "Run button": button,
                "compare": compared, "CompareWidget run()": compare_widget}
        times = {name: [] for name in runs}
        last = {}
        for round_ in range(args.rounds + 1):  # round 0 warms up (fit first); the order rotates
            order = list(runs)[round_ % len(runs):] + list(runs)[:round_ % len(runs)]
            for name in order:
                last[name] = runs[name]()
                if round_:
                    times[name].append(last[name]["t"])
    finally:
        kernel.close()
    best = {name: min(t) for name, t in times.items()}

    def rounds_of(name):  # every round's time: how far this machine's noise reaches
        return "   rounds: " + ", ".join(f"{t:.2f}" for t in times[name])

    print(f"device {info['device']}, torch {info['torch']}, {info['threads']} threads, MNIST-1D, "
          f"1-D CNN, {args.epochs} epochs ({last['fit']['steps']} steps), best of {args.rounds} "
          f"rounds, in one Jupyter kernel")
    print(f"headless fit                    {best['fit']:.2f} s{rounds_of('fit')}")
    for name, headless_name in (("run()", "fit"), ("Run button", "fit"),
                                (None, "compare"), ("CompareWidget run()", "compare")):
        if name is None:
            print(f"headless compare (4 runs)       {best['compare']:.2f} s{rounds_of('compare')}")
            continue
        drawings = last[name]["drawings"]
        share = drawings.pop("seconds") / last[name]["t"]
        live_share = drawings.pop("live") / last[name]["t"]
        label = name if name.startswith("CompareWidget") else f"TrainWidget {name}"
        print(f"{label:<32}{best[name]:.2f} s -> {best[name] / best[headless_name]:.3f}x"
              f"   (drawings {drawings}, {share:.1%} of the time drawing, {live_share:.1%} "
              f"while training; same losses: {last[name]['same']}){rounds_of(name)}")


if __name__ == "__main__":
    main()
