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

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from nbgrader.utils import is_solution

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import course_notebooks, read_notebook  # noqa: E402

HIDDEN = {"source_hidden": True, "outputs_hidden": True}


def is_collapsed(cell) -> bool:
    """Whether JupyterLab shows ``cell`` collapsed, code and output."""
    shown = cell.get("metadata", {}).get("jupyter", {})
    return all(shown.get(key) is True for key in HIDDEN)


def collapse_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose solution cells are collapsed; every other cell is shown (no stale flag is kept)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        shown = {k: v for k, v in cell.metadata.get("jupyter", {}).items() if k not in HIDDEN}
        if is_solution(cell):
            shown.update(HIDDEN)
        if shown:
            cell.metadata["jupyter"] = shown
        else:
            cell.metadata.pop("jupyter", None)
    return nb


def expand_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with no cell collapsed (for versions whose solution cells hold a stub to fill in)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        shown = {k: v for k, v in cell.metadata.get("jupyter", {}).items() if k not in HIDDEN}
        if shown:
            cell.metadata["jupyter"] = shown
        else:
            cell.metadata.pop("jupyter", None)
    return nb


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--check", action="store_true", help="report what is not collapsed instead of writing it")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.notebooks or course_notebooks():
        nb = read_notebook(path)
        if args.check:
            for line in problems(nb):
                print(f"{path}: {line}")
                stale += 1
        elif problems(nb):
            nbformat.write(collapse_solutions(nb), str(path))
            print(f"{path}: solution cells collapsed")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
