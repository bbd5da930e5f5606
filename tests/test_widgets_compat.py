"""Colab's ipywidgets 7.7 and ipywidgets 8: the compatibility helpers, and the notebooks'
Colab cell that keeps Colab's torch, torchvision and ipywidgets.

`make test` runs this file and tests/test_widgets.py twice: with .venv's ipywidgets 8, and with
ipywidgets 7.7 put first on PYTHONPATH (``DW_EXPECT_IPYWIDGETS=7.7``).
"""

import base64
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import warnings
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import ipywidgets
import pytest
import torch
from torch import nn

from disciplined_widgets import TensorLoader
from disciplined_widgets.widgets import RangeTestWidget
from disciplined_widgets.widgets import compat
from disciplined_widgets.widgets.live_plot import figure_png

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_ipywidgets_asked_for_is_the_one_in_use():
    expected = os.environ.get("DW_EXPECT_IPYWIDGETS")
    if expected:  # the second run of `make test`: the overlay must win over .venv's ipywidgets 8
        assert ipywidgets.__version__.startswith(expected + "."), ipywidgets.__file__
    assert compat.IPYWIDGETS_7 == ipywidgets.__version__.startswith("7.")
    assert compat.IPYWIDGETS_VERSION >= (7, 7)


@pytest.mark.parametrize("make", [
    lambda: ipywidgets.Button(description="Run"),
    lambda: ipywidgets.Checkbox(True, description="follow"),
    lambda: ipywidgets.BoundedIntText(3, min=0, max=10, description="trials"),
    lambda: ipywidgets.FloatLogSlider(0.1, min=-5, max=1, description="max LR"),
], ids=["Button", "Checkbox", "BoundedIntText", "FloatLogSlider"])
def test_a_tooltip_reaches_every_kind_of_control_without_a_warning(make):
    with warnings.catch_warnings():
        # neither 8's deprecation of description_tooltip nor 7's unknown argument
        warnings.filterwarnings("error", ".*tooltip", DeprecationWarning)
        warnings.filterwarnings("error", "Passing unrecognized arguments", DeprecationWarning)
        widget = compat.tooltip(make(), "hover text")
    # 7.7 has `tooltip` on buttons only, `description_tooltip` (deprecated in 8) elsewhere
    on_7 = compat.IPYWIDGETS_7 and not isinstance(widget, ipywidgets.Button)
    name = "description_tooltip" if on_7 else "tooltip"
    assert getattr(widget, name) == "hover text" and widget.get_state()[name] == "hover text"


@pytest.fixture
def range_widget():
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return RangeTestWidget(model, optimizer, nn.CrossEntropyLoss(), TensorLoader(x, y, 8, seed=0))


def _png() -> bytes:
    from matplotlib.figure import Figure
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1])
    return figure_png(figure)


def test_a_running_widget_displays_as_a_widget_with_its_plot_as_png(range_widget, monkeypatch):
    range_widget.plot.image.value = png = _png()
    bundle = range_widget._repr_mimebundle_()
    assert bundle[compat.VIEW_MIMETYPE]["model_id"] == range_widget.model_id
    assert base64.b64decode(bundle["image/png"]) == png
    assert "RangeTestWidget" in bundle["text/plain"]
    # What IPython calls to show it: ipywidgets 7 goes through _ipython_display_, which must
    # carry the same bundle (8 has no _ipython_display_ and uses _repr_mimebundle_).
    shown = []
    monkeypatch.setattr(compat, "display", lambda data, raw: shown.append((data, raw)))
    display_method = getattr(range_widget, "_ipython_display_", None)
    assert callable(display_method) == compat.IPYWIDGETS_7
    if display_method is not None:
        display_method()
        assert shown == [(bundle, True)]


def test_a_plain_widget_bundle_is_the_widget_view():
    box = ipywidgets.VBox([ipywidgets.Label("x")])
    bundle = compat.widget_bundle(box)
    assert bundle[compat.VIEW_MIMETYPE]["model_id"] == box.model_id
    assert bundle[compat.VIEW_MIMETYPE]["version_major"] == 2 and "text/plain" in bundle


# ---- the notebooks' Colab cell ----

def _setup_cells() -> list[str]:
    cells = []
    for path in NOTEBOOKS:
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        cells.append("".join(code[0]["source"]))
    return cells


def test_every_notebook_has_the_same_setup_cell():
    cells = _setup_cells()
    assert cells and all(cell == cells[0] for cell in cells), "edit all first cells alike"


def test_the_colab_cell_pins_torch_torchvision_and_ipywidgets_as_installed(monkeypatch):
    calls = []

    def check_call(command):
        constraints = Path(command[command.index("-c") + 1])
        calls.append((command, constraints.read_text()))
        constraints.unlink()
        return 0

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "disciplined_widgets"
                        else real_find_spec(name, *a))  # as on Colab: not installed yet
    monkeypatch.setattr(subprocess, "check_call", check_call)
    exec(compile(_setup_cells()[0], "setup cell", "exec"), {})

    [(command, constraints)] = calls
    assert command[1:4] == ["-m", "pip", "install"] and "-U" not in command
    assert "--upgrade" not in command
    pins = constraints.split()
    assert pins == [f"{name}=={importlib.metadata.version(name)}"
                    for name in ("torch", "torchvision", "ipywidgets")]
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert command[-1] == "git+" + repository


def test_the_colab_cell_does_nothing_where_the_package_is_installed(monkeypatch):
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: pytest.fail("pip was run"))
    exec(compile(_setup_cells()[0], "setup cell", "exec"), {})
