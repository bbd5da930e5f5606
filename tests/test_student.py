"""`make student`: the classroom copy without exercise solutions."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from disciplined_widgets.student import STUB, make_student_copy


def notebook_with_exercise():
    nb = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell("# Exercise: the best LR\nbest = 0.1\n",
                                         metadata={"tags": ["solution"]})
    check = nbformat.v4.new_code_cell("assert best > 0\nprint('well done')")
    nb.cells = [nbformat.v4.new_markdown_cell("Exercise"), solution, check]
    for cell in nb.cells[1:]:
        cell.outputs = [nbformat.v4.new_output("stream", text="x")]
        cell.execution_count = 1
    return nb


def test_solutions_become_stubs_and_outputs_are_cleared(tmp_path):
    (tmp_path / "course").mkdir()
    nbformat.write(notebook_with_exercise(), tmp_path / "course" / "ch.ipynb")
    counts = make_student_copy(tmp_path / "course", tmp_path / "student")
    assert counts == {"ch.ipynb": 1}
    copy = nbformat.read(tmp_path / "student" / "ch.ipynb", as_version=4)
    assert copy.cells[1].source == "# Exercise: the best LR\n" + STUB
    assert "best = 0.1" not in copy.cells[1].source and "assert best" in copy.cells[2].source
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells[1:])
    with pytest.raises(ValueError, match="another folder"):
        make_student_copy(tmp_path / "course", tmp_path / "course")


def test_the_course_has_an_exercise_in_every_chapter_and_the_copy_removes_them(tmp_path):
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "disciplined_widgets.student",
                           str(root / "notebooks"), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    chapters = sorted(p.name for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for name in chapters:
        assert f"{name}: 0 solution" not in done.stdout, name
        assert (tmp_path / name).exists()
