"""The students' copy works: every chapter's self-checks pass with reference solutions written
apart from the notebooks' own (``course_solutions/``), and with the stubs left each self-check
fails with its own message (an AssertionError saying what to define), never a NameError.

One kernel per chapter, in the smoke setting (the paper branch on a tiny CIFAR-10, a few steps):
each stub runs, then its self-check, which must fail; then the reference solution and the same
self-check, which must pass; then the course's own solution and self-check, and the rest of the
chapter. So this one run per chapter is also the smoke run of the course's paper branch (the
students' copy differs from the course only in its solution cells and cleared outputs)."""

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from course_kernel import (CHAPTERS, client_for, smoke_environment, solution_sources,
                           write_tiny_cifar10)
from disciplined_widgets.student import STUB, make_student_copy

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    make_student_copy(CHAPTERS[0].parent, folder)
    return folder


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    return write_tiny_cifar10(tmp_path_factory.mktemp("data"))


def test_every_chapter_has_reference_solutions():
    for path in CHAPTERS:
        stubs = [c for c in nbformat.read(path, as_version=4).cells
                 if "solution" in c.metadata.get("tags", [])]
        assert len(solution_sources(path.stem)) == len(stubs), path.name


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_self_checks_fail_clearly_on_stubs_and_pass_with_reference_solutions_in_the_paper_branch(
        path, student_copy, tiny_cifar, monkeypatch, tmp_path):
    smoke_environment(monkeypatch, tiny_cifar)
    notebook = nbformat.read(student_copy / path.name, as_version=4)
    cells = notebook.cells
    stubs = [i for i, c in enumerate(cells) if c.cell_type == "code" and STUB.strip() in c.source]
    assert stubs, f"{path.name}: no stub in the students' copy"
    checks = [next(j for j in range(i + 1, len(cells)) if cells[j].cell_type == "code") for i in stubs]
    solutions = dict(zip(stubs, solution_sources(path.stem)))
    client = client_for(notebook, tmp_path)
    course = nbformat.read(path, as_version=4).cells
    with client.setup_kernel():
        for index in range(len(cells)):
            cell = cells[index]
            if cell.cell_type != "code" or index in checks:
                continue
            client.execute_cell(cell, index)
            if index not in solutions:
                continue
            check = cells[index + 1 if index + 1 in checks else checks[stubs.index(index)]]
            with pytest.raises(CellExecutionError) as failed:
                client.execute_cell(check, checks[stubs.index(index)])
            assert failed.value.ename == "AssertionError", \
                f"{path.name}: with the stub left, the self-check raised {failed.value.ename}: {failed.value.evalue}"
            assert "define" in failed.value.evalue, \
                f"{path.name}: the self-check's message does not say what to define: {failed.value.evalue!r}"
            cell.source = solutions[index]
            client.execute_cell(cell, index)
            client.execute_cell(check, checks[stubs.index(index)])  # raises if a self-check fails
            cell.source = course[index].source  # the course's own solution, in the smoke setting
            client.execute_cell(cell, index)
            client.execute_cell(check, checks[stubs.index(index)])
    printed = "".join(out.get("text", "") for cell in cells if cell.cell_type == "code"
                      for out in cell.outputs if out.output_type == "stream")
    assert "Smoke setting: the paper branch ran" in printed, "the chapter did not take the smoke setting"
