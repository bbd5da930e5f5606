"""Make the students' copy of the course: exercise solutions removed, outputs cleared.

A code cell tagged ``solution`` (cell metadata ``"tags": ["solution"]``) becomes a stub that
keeps its comment lines and asks for the student's code; the self-check cell after it then
fails until the exercise is done. Every output is cleared, so students run the notebooks
themselves.

    python -m disciplined_widgets.student notebooks/ student/
"""

from __future__ import annotations

import argparse
from pathlib import Path

STUB = "# Your code here: write the solution, then run the self-check below.\n"


def strip_solutions(notebook) -> int:
    """Replace solution cells with stubs and clear outputs, in place; returns the count."""
    removed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if "solution" in cell.metadata.get("tags", []):
            comments = [line for line in cell.source.splitlines() if line.lstrip().startswith("#")]
            cell.source = "\n".join(comments + [STUB.rstrip()]) + "\n"
            removed += 1
    return removed


def make_student_copy(source: Path, destination: Path) -> dict[str, int]:
    """Write the students' copy of every notebook in ``source`` into ``destination``."""
    import nbformat

    source, destination = Path(source), Path(destination)
    if source.resolve() == destination.resolve():
        raise ValueError("the students' copy must go to another folder than the course")
    destination.mkdir(parents=True, exist_ok=True)
    counts = {}
    for path in sorted(source.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        counts[path.name] = strip_solutions(notebook)
        nbformat.write(notebook, destination / path.name)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the course's notebooks folder")
    parser.add_argument("destination", type=Path, help="where the students' copy goes")
    args = parser.parse_args()
    for name, count in make_student_copy(args.source, args.destination).items():
        print(f"{name}: {count} solution(s) removed")


if __name__ == "__main__":
    main()
