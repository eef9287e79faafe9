"""nbgrader metadata for the course's exercises, written from the notebooks' own structure.

Every exercise of the course is a markdown prompt, a code cell whose answer sits between the solution markers,
and the check cell right after it. This module finds those pairs and gives them nbgrader's cell metadata
(schema version 3), so that ``nbgrader generate_assignment`` and ``nbgrader autograde`` work on every notebook:

* the solution cell: ``solution: true`` (an "autograded answer" cell), ``grade_id`` ``NN-exercise-K``;
* the check cell: ``grade: true, locked: true, points: 1`` (an "autograder tests" cell, read-only for students),
  ``grade_id`` ``NN-exercise-K-check``.

NN is the notebook's number and K counts the exercises in order, as the learner sees them. Every other cell gets
no nbgrader metadata (an old ``nbgrader`` entry on it is removed), so the instructor's notebook stays exactly the
notebook learners read. The ids are derived, not stored by hand: run the tool again after editing a notebook and
they stay the same unless exercises were added, removed or reordered.

Usage: ``python tools/nbgrader_cells.py [--check] [notebook ...]`` (default: every course notebook). Without
``--check`` it writes the metadata in place; with it, it only reports what is missing or stale (exit status 1).
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import cell_source, write_or_check  # noqa: E402

SCHEMA_VERSION = 3
POINTS_PER_EXERCISE = 1
_BEGIN = re.compile(r"^\s*###\s*BEGIN SOLUTION\s*$", flags=re.MULTILINE)


def notebook_number(path: Path | str) -> str:
    """"01" for ``notebooks/01_gradient_descent_x2.ipynb``."""
    found = re.match(r"\d+", Path(path).stem)
    if not found:
        raise ValueError(f"{Path(path).name}: a course notebook's name starts with its number")
    return found.group(0)


def exercise_cells(nb: nbformat.NotebookNode) -> list[tuple[int, int]]:
    """``(solution cell index, check cell index)`` for every exercise, in order.

    A solution cell is a code cell with a ``### BEGIN SOLUTION`` line; its check is the next cell, which must be a
    code cell without a solution of its own.
    """
    pairs = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not _BEGIN.search(cell_source(cell)):
            continue
        check = index + 1
        if check >= len(nb.cells) or nb.cells[check].cell_type != "code" \
                or _BEGIN.search(cell_source(nb.cells[check])):
            raise ValueError(f"cell {index}: an exercise's solution cell must be followed by its check (a code cell)")
        pairs.append((index, check))
    return pairs


def solution_metadata(number: str, exercise: int) -> dict:
    return {"grade": False, "grade_id": f"{number}-exercise-{exercise}", "locked": False,
            "schema_version": SCHEMA_VERSION, "solution": True, "task": False}


def check_metadata(number: str, exercise: int) -> dict:
    return {"grade": True, "grade_id": f"{number}-exercise-{exercise}-check", "locked": True,
            "points": POINTS_PER_EXERCISE, "schema_version": SCHEMA_VERSION, "solution": False, "task": False}


def expected_metadata(nb: nbformat.NotebookNode, number: str) -> list[dict | None]:
    """The nbgrader metadata every cell should carry (``None``: none)."""
    wanted: list[dict | None] = [None] * len(nb.cells)
    for exercise, (solution, check) in enumerate(exercise_cells(nb), start=1):
        wanted[solution] = solution_metadata(number, exercise)
        wanted[check] = check_metadata(number, exercise)
    return wanted


def tagged(nb: nbformat.NotebookNode, number: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose cells carry exactly the nbgrader metadata :func:`expected_metadata` gives."""
    nb = copy.deepcopy(nb)
    for cell, wanted in zip(nb.cells, expected_metadata(nb, number)):
        if wanted is None:
            cell.metadata.pop("nbgrader", None)
        else:
            cell.metadata["nbgrader"] = wanted
    return nb


def problems(nb: nbformat.NotebookNode, number: str) -> list[str]:
    """What differs from the expected metadata, one line per cell (empty when the notebook is up to date)."""
    found = []
    for index, (cell, wanted) in enumerate(zip(nb.cells, expected_metadata(nb, number))):
        have = cell.metadata.get("nbgrader")
        if have != wanted:
            found.append(f"cell {index}: nbgrader metadata {have!r}, expected {wanted!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    return write_or_check(argv, __doc__.split("\n\n")[0],
                          problems=lambda path, nb: problems(nb, notebook_number(path)),
                          fixed=lambda path, nb: tagged(nb, notebook_number(path)), done="exercises tagged")


if __name__ == "__main__":
    sys.exit(main())
