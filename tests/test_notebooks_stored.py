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


CHAPTERS = [p for p in NOTEBOOKS if p.name[:2].isdigit()]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_has_setup_badges_claim_check_and_exercise(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    source = ["".join(c["source"]) for c in code]
    assert 'find_spec("disciplined_widgets")' in source[0], "the first code cell is the set-up"
    title = "".join(cells[0]["source"])
    assert f"blob/main/notebooks/{path.name}" in title and f"lab/tree/notebooks/{path.name}" in title
    checks = [c for c, s in zip(code, source) if s.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checks and all(c["outputs"] for c in checks), "a claim check with its stored verdict"
    solutions = [i for i, c in enumerate(code) if "solution" in c["metadata"].get("tags", [])]
    assert len(solutions) >= 2, "two exercises or more, each with its solution cell tagged 'solution'"
    assert all(i + 1 < len(code) for i in solutions), "a self-check follows each solution"


TEMPLATE = ["## The setting", "## The idea", "## Exercise", "## What to take away",
            "## Questionnaire", "## Further research", "## References"]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_follows_the_template(path):
    """Title, learning goals, setting, idea, ..., exercises, take-aways, questionnaire, further
    research and references with arXiv links, in that order (fastbook's and d2l's endings)."""
    cells = json.loads(path.read_text())["cells"]
    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    assert markdown[0].startswith(f"# {path.name[:2]} · ") and "**Learning goals**" in markdown[0]
    headings = [line for text in markdown for line in text.splitlines() if line.startswith("## ")]
    found = [next((i for i, h in enumerate(headings) if h.startswith(part)), None) for part in TEMPLATE]
    assert None not in found, dict(zip(TEMPLATE, found))
    assert found == sorted(found), f"the template's sections in order: {TEMPLATE}"
    sections = {h: text for text in markdown for h in TEMPLATE if text.startswith(h)}
    questions = [line for line in sections["## Questionnaire"].splitlines() if line[:1].isdigit()]
    assert len(questions) >= 10, "a questionnaire of ten questions or more"
    assert "https://arxiv.org/abs/" in sections["## References"]
