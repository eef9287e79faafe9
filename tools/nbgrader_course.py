"""An nbgrader course directory made from this repository: every notebook an assignment, ready to autograde.

``prepare(course_dir)`` writes what ``nbgrader`` expects (``nbgrader_config.py`` and ``source/<assignment>/``,
one assignment per course notebook, named after the notebook) and, with ``generate=True``, runs
``nbgrader generate_assignment`` for each, which writes the student version to ``release/<assignment>/``.
The lecturer's workflow from there (docs/lecturers.md):

1. hand out ``release/<assignment>/<assignment>.ipynb`` (or ``nbgrader release_assignment`` on a JupyterHub);
2. put each student's returned notebook at ``submitted/<student>/<assignment>/<assignment>.ipynb``
   (``nbgrader collect`` on a JupyterHub, ``nbgrader zip_collect`` for an LMS download);
3. ``nbgrader autograde <assignment>`` runs every submission in a fresh kernel and scores the check cells, each
   cell allowed :data:`CELL_TIMEOUT` seconds;
4. ``python tools/grading_report.py`` lists the submissions whose kernel died or whose cells timed out (nbgrader
   records them as 0, like an empty notebook): fix or grade them by hand, then autograde them again;
5. ``nbgrader generate_feedback <assignment>`` writes each student's feedback; ``nbgrader export`` writes
   ``grades.csv``; :func:`scores` reads the same numbers from the gradebook.

The notebooks import ``course_lib``, so nbgrader must run in this repository's environment (``make nbgrader``
does). Usage: ``python tools/nbgrader_course.py [--course-dir nbgrader_course] [--no-generate] [notebook ...]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, course_notebooks, read_notebook  # noqa: E402
from tools.self_paced import expand_solutions  # noqa: E402

COURSE_ID = "choosing-an-optimizer"
#: Seconds one cell of a submission may run before nbgrader interrupts it and goes on with the next cell.
#: Measured: the slowest cell of the course takes about 4 s on the idle 2-core course machine (course_time.py)
#: and at most 15.7 s in the committed notebooks, executed while that machine ran other work (a load of 10-15);
#: the slowest reference solution takes 4 s. 60 s is about 4 times the slowest loaded cell and 15 times the
#: slowest solution, so a slow laptop or a clumsy but correct answer passes, while an endless loop (or a stalled
#: kernel) costs a minute per cell instead of nbgrader's 600 s. tests/test_nbgrader.py keeps the margin 3x.
CELL_TIMEOUT = 60
CONFIG = f'''\
# nbgrader configuration written by tools/nbgrader_course.py ("Choosing an optimizer").
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "{COURSE_ID}"
c.CourseDirectory.root = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
# Seconds a cell may run: the slowest course cell takes 4-16 s (docs/lecturers.md); a cell that runs longer is
# interrupted and reported (CellTimeoutError in the autograded notebook, flagged by tools/grading_report.py).
c.ExecutePreprocessor.timeout = {CELL_TIMEOUT}
c.Execute.timeout = {CELL_TIMEOUT}
c.Execute.interrupt_on_timeout = True
# Each course notebook opens with its own set-up cell, so nbgrader's header and footer stay off.
c.IncludeHeaderFooter.header = ""
'''


def assignment_name(notebook: Path | str) -> str:
    """The assignment a notebook becomes: its file name without ``.ipynb``."""
    return Path(notebook).stem


def prepare(course_dir: Path | str, notebooks=None, *, generate: bool = True) -> list[str]:
    """Write the nbgrader course directory; return the assignment names (and generate them unless told not to)."""
    course_dir = Path(course_dir)
    course_dir.mkdir(parents=True, exist_ok=True)
    (course_dir / "nbgrader_config.py").write_text(CONFIG, encoding="utf-8")
    names = []
    for notebook in map(Path, notebooks or course_notebooks()):
        name = assignment_name(notebook)
        target = course_dir / "source" / name
        target.mkdir(parents=True, exist_ok=True)
        # the self-paced edition collapses each solution cell; a released stub must show, so none stays collapsed
        nbformat.write(expand_solutions(read_notebook(notebook)), str(target / notebook.name))
        names.append(name)
        if generate:
            nbgrader(course_dir, "generate_assignment", name, "--force")
    return names


def nbgrader(course_dir: Path | str, *args: str) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in the course directory with this interpreter; raise with its log if it fails."""
    # nbgrader runs the `alembic` command of its own environment: put this interpreter's scripts first on PATH.
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir, capture_output=True, text=True,
                         env=env)
    if run.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run


def submit(course_dir: Path | str, student: str, notebook: Path | str, assignment: str | None = None) -> Path:
    """Place ``notebook`` as ``student``'s submission of ``assignment`` (what ``nbgrader collect`` would do)."""
    assignment = assignment or assignment_name(notebook)
    target = Path(course_dir) / "submitted" / student / assignment
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target / f"{assignment}.ipynb")
    return target / f"{assignment}.ipynb"


def scores(course_dir: Path | str, assignment: str, student: str) -> dict[str, float]:
    """Points per graded cell (``grade_id`` → score) of one autograded submission, read from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(course_dir).resolve() / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(assignment, student)
        return {grade.name: float(grade.score) for notebook in submission.notebooks for grade in notebook.grades}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--course-dir", type=Path, default=ROOT / "nbgrader_course")
    parser.add_argument("--no-generate", action="store_true", help="only write the config and source/")
    args = parser.parse_args(argv)
    names = prepare(args.course_dir, args.notebooks or None, generate=not args.no_generate)
    done = "source/ and release/" if not args.no_generate else "source/"
    print(f"{args.course_dir}: {len(names)} assignment(s) in {done}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
