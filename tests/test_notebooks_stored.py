"""Notebooks are committed as a clean run: in order, without error outputs, ready for any kernel."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_was_run_in_order_without_errors(path):
    notebook = json.loads(path.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert [cell["execution_count"] for cell in code] == list(range(1, len(code) + 1)), \
        "run the notebook top to bottom in a fresh kernel before committing it"
    for index, cell in enumerate(code):
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"code cell {index + 1} stores an error"
            assert output.get("name") != "stderr" or "Traceback" not in "".join(output["text"])
