"""Student versions of the notebooks: each solution replaced by a stub (nbgrader's marker convention).

In a code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become nbgrader's stub, indented
like the ``BEGIN`` line::

    # YOUR CODE HERE
    raise NotImplementedError()

In a markdown cell they become ``YOUR ANSWER HERE``. A cell that had a solution loses its outputs and execution
count; every other cell, and the notebook's metadata, are copied unchanged.

This does what nbgrader's ``ClearSolutions(enforce_metadata=False)`` does, with one difference: a marker must be
the whole line (apart from indentation). ClearSolutions matches the marker text anywhere in a line, so the prose
"between ``### BEGIN SOLUTION`` and ``### END SOLUTION``" in a notebook's exercise introduction makes it fail
("no end solution statement found"). nbgrader also brings a database layer and a JupyterLab extension, which a
learner's environment does not need.

Usage: ``python tools/make_student.py [--output-dir student] [notebook ...]`` (default: every course notebook).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, cell_source, course_notebooks, read_notebook  # noqa: E402

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"

_BEGIN = re.compile(r"^(?P<indent>\s*)###\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*###\s*END SOLUTION\s*$")


def clear_solution_regions(source: str, cell_type: str = "code") -> tuple[str, int]:
    """Replace every solution region of a cell's source by the stub; return the new source and the region count.

    Raises ValueError for a nested ``BEGIN``, an ``END`` without ``BEGIN``, a ``BEGIN`` without ``END``, and, in a
    code cell, a line that mentions a marker without being one (a solution that would otherwise leak).
    """
    if cell_type not in ("code", "markdown", "raw"):
        raise ValueError(f"cell_type must be 'code', 'markdown' or 'raw', got {cell_type!r}")
    stub = (CODE_STUB if cell_type == "code" else TEXT_STUB).split("\n")
    kept: list[str] = []
    in_solution = False
    regions = 0
    for number, line in enumerate(source.split("\n"), start=1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if in_solution:
                raise ValueError(f"line {number}: nested {BEGIN_MARKER!r} (the previous region is not closed)")
            in_solution, regions = True, regions + 1
            kept.extend(begin.group("indent") + stub_line for stub_line in stub)
        elif end:
            if not in_solution:
                raise ValueError(f"line {number}: {END_MARKER!r} without a {BEGIN_MARKER!r} before it")
            in_solution = False
        elif cell_type == "code" and ("BEGIN SOLUTION" in line or "END SOLUTION" in line):
            raise ValueError(f"line {number}: a solution marker must be a line of its own, got {line.strip()!r}")
        elif not in_solution:
            kept.append(line)
    if in_solution:
        raise ValueError(f"{BEGIN_MARKER!r} without a matching {END_MARKER!r}")
    return "\n".join(kept), regions


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every solution region stubbed and the outputs of those cells cleared."""
    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        try:
            source, regions = clear_solution_regions(cell_source(cell), cell.cell_type)
        except ValueError as error:
            raise ValueError(f"cell {index}: {error}") from None
        if not regions:
            continue
        cell.source = source
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return student


def solution_cell_indices(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells that hold at least one solution region."""
    return [i for i, cell in enumerate(nb.cells) if clear_solution_regions(cell_source(cell), cell.cell_type)[1]]


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
