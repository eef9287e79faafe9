"""The self-paced edition: each exercise's solution collapsed, one deliberate click away.

The notebooks in ``notebooks/`` are the complete course: every exercise has its worked solution. A learner on their
own should meet the exercise before its answer, so every solution cell (nbgrader's ``solution`` metadata, which
``tools/nbgrader_cells.py`` writes) carries nbformat's standard display metadata::

    "jupyter": {"source_hidden": true, "outputs_hidden": true}

JupyterLab and Notebook 7 then show the cell collapsed, code and output alike, as a thin bar to click; running the
notebook runs the solution all the same, so every later cell still works. (GitHub's notebook viewer ignores the
metadata and shows everything; the student version, ``make student``, holds no solutions at all.)

:func:`expand_solutions` removes the metadata again: the student version and the nbgrader release, whose solution
cells hold the stub the learner must fill in, must not hide it.

Usage: ``python tools/self_paced.py [--check] [notebook ...]`` (default: every course notebook). Without ``--check``
it writes the metadata in place; with it, it reports each solution cell that is not collapsed (exit status 1).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat
from nbgrader.utils import is_solution

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import write_or_check  # noqa: E402

HIDDEN = {"source_hidden": True, "outputs_hidden": True}


def is_collapsed(cell) -> bool:
    """Whether JupyterLab shows ``cell`` collapsed, code and output."""
    shown = cell.get("metadata", {}).get("jupyter", {})
    return all(shown.get(key) is True for key in HIDDEN)


def _displayed(nb: nbformat.NotebookNode, collapse: bool) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose solution cells are collapsed (``collapse``) or shown, and every other cell shown."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        shown = {k: v for k, v in cell.metadata.get("jupyter", {}).items() if k not in HIDDEN}
        if collapse and is_solution(cell):
            shown.update(HIDDEN)
        if shown:
            cell.metadata["jupyter"] = shown
        else:
            cell.metadata.pop("jupyter", None)
    return nb


def collapse_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose solution cells are collapsed; every other cell is shown (no stale flag is kept)."""
    return _displayed(nb, collapse=True)


def expand_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with no cell collapsed (for versions whose solution cells hold a stub to fill in)."""
    return _displayed(nb, collapse=False)


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """One line per cell whose display differs from the self-paced edition's (empty when it is current)."""
    found = []
    for index, cell in enumerate(nb.cells):
        if is_solution(cell) and not is_collapsed(cell):
            found.append(f"cell {index}: a solution cell that is not collapsed")
        if not is_solution(cell) and any(k in cell.metadata.get("jupyter", {}) for k in HIDDEN):
            found.append(f"cell {index}: a collapsed cell that holds no solution")
    return found


def main(argv: list[str] | None = None) -> int:
    return write_or_check(argv, __doc__.split("\n\n")[0], problems=lambda path, nb: problems(nb),
                          fixed=lambda path, nb: collapse_solutions(nb), done="solution cells collapsed")


if __name__ == "__main__":
    sys.exit(main())
