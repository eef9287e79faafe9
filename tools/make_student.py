"""Student versions of the notebooks, made by nbgrader's own ``ClearSolutions`` preprocessor.

Every exercise's solution cell carries nbgrader's metadata (``tools/nbgrader_cells.py`` writes it), so the student
version is what ``nbgrader generate_assignment`` would hand out, minus what a self-paced learner does not want:
in each solution cell the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become nbgrader's stub,
indented like the ``BEGIN`` line::

    # YOUR CODE HERE
    raise NotImplementedError()

(``YOUR ANSWER HERE`` in a markdown cell), and that cell loses its outputs and execution count. Every other cell,
its outputs (figures included) and the notebook's metadata are copied unchanged, except that no cell stays
collapsed (the self-paced edition collapses each solution cell: ``tools/self_paced.py``). ``generate_assignment``
would also clear every output and lock cells, which suits a graded class (``make nbgrader``) but not a learner on
their own.
``ClearSolutions`` runs with ``enforce_metadata=True``: a solution region outside a solution cell is an error, as
it is for nbgrader.

Usage: ``python tools/make_student.py [--output-dir student] [notebook ...]`` (default: every course notebook).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearSolutions
from nbgrader.utils import is_solution

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, course_notebooks, read_notebook  # noqa: E402
from tools.self_paced import expand_solutions  # noqa: E402

CODE_STUB = ClearSolutions().code_stub["python"]  # "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = ClearSolutions().text_stub            # "YOUR ANSWER HERE"


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every solution region stubbed by nbgrader and the outputs of those cells cleared.

    Raises ``ValueError`` (naming the cell) where nbgrader refuses the notebook: a solution region in a cell
    without solution metadata, a ``BEGIN`` without ``END``, nested regions.
    """
    student = expand_solutions(nb)  # the stub must show: the self-paced edition's collapsed cells are expanded
    student.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    clear = ClearSolutions(enforce_metadata=True)
    resources = {"language": student.metadata["kernelspec"].get("language", "python")}
    for index, cell in enumerate(student.cells):
        try:
            clear.preprocess_cell(cell, resources, index)
        except RuntimeError as error:
            raise ValueError(f"cell {index}: {error}") from None
        if is_solution(cell) and cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    if "kernelspec" not in nb.metadata:
        del student.metadata["kernelspec"]
    return student


def solution_cell_indices(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells nbgrader treats as solution cells (``nbgrader.solution`` metadata)."""
    return [index for index, cell in enumerate(nb.cells) if is_solution(cell)]


def write_student_versions(notebooks, output_dir: Path | str) -> list[Path]:
    """Write the student version of each notebook into ``output_dir`` (same file name); return the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, notebooks):
        try:
            student = student_notebook(read_notebook(path))
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None
        target = output_dir / path.name
        nbformat.write(student, str(target))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "student")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or course_notebooks()
    for source, target in zip(notebooks, write_student_versions(notebooks, args.output_dir)):
        stubs = len(solution_cell_indices(read_notebook(source)))
        print(f"{target}: {stubs} solution cell(s) stubbed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
