"""Which autograded submissions did not run to the end: flag them instead of letting them pass as zeros.

``nbgrader autograde`` records a submission whose kernel died like an empty one: the gradebook holds a total of 0,
``nbgrader export`` writes 0 to ``grades.csv``, and only a line in autograde's log says why. A cell that runs past
the per-cell timeout is interrupted and the notebook goes on, so its later checks may fail for a reason that is
not the student's answer. This report finds both, from what nbgrader leaves behind in the course directory:

* **kernel died** (or nbgrader could not execute the notebook at all): the gradebook has the submission, but none
  of its autograder-test cells has a score (``auto_score`` is empty), and ``autograded/`` holds no notebook for it;
* **timed out**: the autograded notebook has an error output ``CellTimeoutError`` (nbgrader's note on a cell it
  interrupted) or ``DeadKernelError``: the cell and its ``grade_id`` (or the exercise before it) are named;
* **not autograded**: a notebook under ``submitted/`` with no submission in the gradebook (autograde not yet run,
  or it stopped before this student).

An untouched or wrong submission is not flagged: its checks ran and scored 0, which is a grade. The lecturer's
workflow (docs/lecturers.md): autograde, run this report, look at each flagged notebook, fix the cause or grade it
by hand, autograde that student again with ``--force``, then ``nbgrader generate_feedback``.

Usage: ``python tools/grading_report.py [--course-dir nbgrader_course] [assignment ...]`` (default: every
assignment with submissions). Exit status 1 when a submission is flagged, 0 when every one ran to the end.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT  # noqa: E402

#: Error outputs that say the grader, not the student's answer, stopped a cell.
STOPPED = {"CellTimeoutError": "timed out", "DeadKernelError": "kernel died"}


@dataclass(frozen=True)
class Flag:
    assignment: str
    student: str
    notebook: str
    problem: str   # "kernel died", "timed out", "not autograded"
    detail: str

    def __str__(self) -> str:
        return f"{self.assignment} / {self.student} / {self.notebook}: {self.problem}: {self.detail}"


def stopped_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    """``(cell index, problem, where)`` for each cell the grader stopped (a timeout or a dead kernel).

    ``where`` names the cell's ``grade_id``, or that of the exercise cell above it, so the lecturer knows which
    exercise's checks ran after an interrupted cell.
    """
    found, last_id = [], None
    for index, cell in enumerate(nb.cells):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        last_id = grade_id or last_id
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") in STOPPED:
                where = f"cell {index}" + (f" ({grade_id})" if grade_id else f" (after {last_id})" if last_id else "")
                found.append((index, STOPPED[output["ename"]], where))
                break
    return found


def _gradebook_flags(course_dir: Path, assignments: set[str] | None) -> tuple[list[Flag], set[tuple[str, str]]]:
    """Flags for submissions whose autograder tests never got a score; and every (assignment, student) graded."""
    from nbgrader.api import Gradebook

    flags, seen = [], set()
    database = course_dir / "gradebook.db"
    if not database.exists():
        return flags, seen
    with Gradebook(f"sqlite:///{database.resolve()}") as gradebook:
        for assignment in gradebook.assignments:
            if assignments is not None and assignment.name not in assignments:
                continue
            for submission in assignment.submissions:
                seen.add((assignment.name, submission.student.id))
                for notebook in submission.notebooks:
                    tests = [grade for grade in notebook.grades if grade.cell.cell_type == "code"
                             and grade.auto_score is None and grade.manual_score is None]
                    autograded = (course_dir / "autograded" / submission.student.id / assignment.name
                                  / f"{notebook.name}.ipynb")
                    if tests and not autograded.exists():
                        flags.append(Flag(assignment.name, submission.student.id, notebook.name, "kernel died",
                                          f"{len(tests)} check(s) never ran and nbgrader wrote no autograded "
                                          "notebook: the kernel died or the notebook could not be executed "
                                          "(autograde's log says which); the gradebook's 0 is not a grade"))
    return flags, seen


def report(course_dir: Path | str, assignments=None) -> list[Flag]:
    """Every flagged submission of ``assignments`` (default: all) in an nbgrader course directory."""
    course_dir = Path(course_dir)
    wanted = set(assignments) if assignments else None
    flags, graded = _gradebook_flags(course_dir, wanted)
    for path in sorted((course_dir / "autograded").glob("*/*/*.ipynb")):
        student, assignment = path.parent.parent.name, path.parent.name
        if wanted is None or assignment in wanted:
            for _, problem, where in stopped_cells(nbformat.read(str(path), as_version=4)):
                flags.append(Flag(assignment, student, path.stem, problem,
                                  f"{where} was stopped by the grader; the checks after it may have failed for "
                                  "that reason, not for the answer"))
    for path in sorted((course_dir / "submitted").glob("*/*/*.ipynb")):
        student, assignment = path.parent.parent.name, path.parent.name
        if (wanted is None or assignment in wanted) and (assignment, student) not in graded:
            flags.append(Flag(assignment, student, path.stem, "not autograded",
                              f"no submission in the gradebook: run nbgrader autograde {assignment}"))
    return sorted(flags, key=lambda flag: (flag.assignment, flag.student, flag.notebook, flag.problem))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="assignments (default: every one with submissions)")
    parser.add_argument("--course-dir", type=Path, default=ROOT / "nbgrader_course")
    args = parser.parse_args(argv)
    flags = report(args.course_dir, args.assignments)
    for flag in flags:
        print(flag)
    submissions = len({path.parent for path in (args.course_dir / "submitted").glob("*/*/*.ipynb")
                       if not args.assignments or path.parent.name in args.assignments})
    students = len({(flag.assignment, flag.student) for flag in flags})
    print(f"{students} of {submissions} submission(s) flagged" + (": see docs/lecturers.md" if flags else ""))
    return 1 if flags else 0


if __name__ == "__main__":
    sys.exit(main())
