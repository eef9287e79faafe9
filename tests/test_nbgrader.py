"""nbgrader end to end: every notebook's exercise metadata, and generate → submit → autograde on two notebooks.

The flow is what a lecturer runs (tools/nbgrader_course.py, docs/lecturers.md): ``generate_assignment``, then
three submissions autograded in one ``nbgrader autograde`` run: the instructor's notebook (full score), the released
student version untouched (zero on every exercise, and the grader does not crash), and the instructor's notebook
with one exercise answered wrongly (that exercise, and only it, loses its points). Then what keeps a semester's
grading safe: ``make clean`` spares ``nbgrader_course/``, the per-cell timeout is sized to the course, and
tools/grading_report.py flags a submission whose kernel died or timed out instead of letting it pass as a zero.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import nbgrader_course  # noqa: E402
from tools.course import cell_source, course_notebooks, read_notebook  # noqa: E402
from tools.nbgrader_cells import POINTS_PER_EXERCISE, exercise_cells, notebook_number  # noqa: E402

NOTEBOOKS = course_notebooks()
# The two fastest notebooks run the whole flow (each submission executes the notebook in a fresh kernel).
FLOW_NOTEBOOKS = [path for path in NOTEBOOKS if path.name.startswith(("01_", "05_"))]


def metadata(cell):
    return cell.metadata.get("nbgrader", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_every_exercise_has_a_solution_cell_and_a_locked_graded_check(path):
    nb = read_notebook(path)
    pairs = exercise_cells(nb)
    assert pairs, "every notebook has exercises"
    graded = [cell for cell in nb.cells if metadata(cell).get("grade")]
    solutions = [cell for cell in nb.cells if metadata(cell).get("solution")]
    assert len(graded) == len(solutions) == len(pairs)
    for exercise, (solution, check) in enumerate(pairs, start=1):
        answer, test = metadata(nb.cells[solution]), metadata(nb.cells[check])
        assert answer["solution"] and not answer["grade"] and not answer["locked"]
        assert test["grade"] and test["locked"] and not test["solution"] and test["points"] > 0
        number = notebook_number(path)
        assert (answer["grade_id"], test["grade_id"]) == (f"{number}-exercise-{exercise}",
                                                          f"{number}-exercise-{exercise}-check")
    assert sum(metadata(cell).get("points", 0) for cell in nb.cells) == POINTS_PER_EXERCISE * len(pairs)
    assert all(metadata(cell) == {} for index, cell in enumerate(nb.cells)
               if index not in {i for pair in pairs for i in pair}), "only exercise cells carry nbgrader metadata"


def test_grade_ids_are_unique_across_the_course():
    ids = [metadata(cell)["grade_id"] for path in NOTEBOOKS for cell in read_notebook(path).cells if metadata(cell)]
    assert ids and len(ids) == len(set(ids))


def wrong_answer(nb, exercise):
    """``nb`` with exercise ``exercise`` answered wrongly: every name its solution assigns is set to ``None``."""
    nb = nbformat.from_dict(nb)
    solution, _ = exercise_cells(nb)[exercise - 1]
    cell = nb.cells[solution]
    names = [target.id for node in ast.parse(cell_source(cell)).body if isinstance(node, ast.Assign)
             for target in node.targets for target in ast.walk(target) if isinstance(target, ast.Name)]
    assert names, "the solution assigns at least one name"
    cell.source = cell_source(cell) + "\n" + "\n".join(f"{name} = None" for name in dict.fromkeys(names))
    return nb


@pytest.mark.parametrize("path", FLOW_NOTEBOOKS, ids=[path.name for path in FLOW_NOTEBOOKS])
def test_generate_submit_and_autograde(path, tmp_path):
    course = tmp_path / "course"
    (assignment,) = nbgrader_course.prepare(course, [path])
    released = course / "release" / assignment / path.name
    assert released.exists(), "generate_assignment wrote the student version"
    assert "### BEGIN SOLUTION" not in released.read_text(encoding="utf-8")

    instructor = read_notebook(path)
    checks = [nb_cell.metadata["nbgrader"]["grade_id"] for nb_cell in instructor.cells
              if nb_cell.metadata.get("nbgrader", {}).get("grade")]
    wrong = tmp_path / "wrong.ipynb"
    nbformat.write(wrong_answer(instructor, 2), str(wrong))
    nbgrader_course.submit(course, "instructor", path)
    nbgrader_course.submit(course, "untouched", released)
    nbgrader_course.submit(course, "wrong", wrong, assignment)
    nbgrader_course.nbgrader(course, "autograde", assignment, "--create")

    full = nbgrader_course.scores(course, assignment, "instructor")
    assert full == {grade_id: POINTS_PER_EXERCISE for grade_id in checks}, full
    assert nbgrader_course.scores(course, assignment, "untouched") == {grade_id: 0 for grade_id in checks}
    lost = nbgrader_course.scores(course, assignment, "wrong")
    assert lost == {**full, checks[1]: 0}, lost


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_spares_grading_data_and_clean_grading_asks_first(tmp_path):
    """``make clean`` in a copy of the repository's Makefile: the generated files go, a graded course stays."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    kept = ["nbgrader_course/gradebook.db", "nbgrader_course/submitted/ada/01_x/01_x.ipynb",
            "nbgrader_course/autograded/ada/01_x/01_x.ipynb", "slides/vendor/reveal.js/dist/reveal.js",
            "slides/my_notes.md", "notebooks/01_x.ipynb"]
    removed = [".venv/bin/python", "student/01_x.ipynb", "slides/01_x.slides.html", "_build/html/index.html",
               ".pytest_cache/README.md", ".ruff_cache/x"]
    for name in kept + removed:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    def make(*args):
        return subprocess.run(["make", "--no-print-directory", *args], cwd=tmp_path, capture_output=True, text=True)

    clean = make("clean")
    assert clean.returncode == 0, clean.stderr
    assert [name for name in kept if not (tmp_path / name).exists()] == []
    assert [name for name in removed if (tmp_path / name).exists()] == []
    assert "kept nbgrader_course/" in clean.stdout

    refused = make("clean-grading")
    assert refused.returncode != 0 and "CONFIRM=yes" in refused.stdout
    assert (tmp_path / "nbgrader_course/gradebook.db").exists()
    assert make("clean-grading", "CONFIRM=yes").returncode == 0
    assert not (tmp_path / "nbgrader_course").exists()
    assert (tmp_path / "slides/vendor/reveal.js/dist/reveal.js").exists()


def tiny_assignment(path):
    """A two-exercise notebook in the course's shape, quick to autograde (each cell a few milliseconds)."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    from tools.nbgrader_cells import tagged

    nb = new_notebook(cells=[
        new_markdown_cell("# 99 · A tiny assignment"), new_code_cell("import os"),
        new_markdown_cell("**Exercise 1.** Compute 6 × 7."),
        new_code_cell("### BEGIN SOLUTION\nanswer = 6 * 7\n### END SOLUTION"),
        new_code_cell('assert answer == 42, "answer is not the product"'),
        new_markdown_cell("**Exercise 2.** Store two."),
        new_code_cell("### BEGIN SOLUTION\nsecond = 2\n### END SOLUTION"),
        new_code_cell('assert second == 2, "second is not two"'),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(tagged(nb, "99"), str(path))
    return path


def test_grading_report_flags_a_dead_kernel_a_timeout_and_an_unmarked_submission_but_not_zeros(tmp_path, capsys):
    from tools import grading_report

    source = tiny_assignment(tmp_path / "99_tiny.ipynb")
    course = tmp_path / "course"
    (assignment,) = nbgrader_course.prepare(course, [source])
    instructor = read_notebook(source)
    solution, _ = exercise_cells(instructor)[0]

    def variant(student, extra):
        nb = nbformat.from_dict(instructor)
        nb.cells[solution].source = cell_source(nb.cells[solution]) + "\n" + extra
        nbformat.write(nb, str(tmp_path / f"{student}.ipynb"))
        nbgrader_course.submit(course, student, tmp_path / f"{student}.ipynb", assignment)

    nbgrader_course.submit(course, "good", source)
    nbgrader_course.submit(course, "untouched", course / "release" / assignment / source.name)
    variant("dies", "os._exit(1)")
    variant("loops", "while True:\n    pass")
    with pytest.raises(RuntimeError, match="error processing assignment '99_tiny' for student 'dies'"):
        nbgrader_course.nbgrader(course, "autograde", assignment, "--create", "--Execute.timeout=5")
    nbgrader_course.submit(course, "late", source)  # collected after autograde ran

    # What nbgrader alone tells the lecturer: the dead kernel scores exactly like the untouched notebook.
    assert nbgrader_course.scores(course, assignment, "untouched") == {"99-exercise-1-check": 0,
                                                                       "99-exercise-2-check": 0}
    assert sum(nbgrader_course.scores(course, assignment, "dies").values()) == 0

    flags = grading_report.report(course)
    assert [(flag.student, flag.problem) for flag in flags] == [
        ("dies", "kernel died"), ("late", "not autograded"), ("loops", "timed out")]
    assert f"cell {solution} (99-exercise-1)" in flags[2].detail
    assert grading_report.report(course, ["another_assignment"]) == []

    assert grading_report.main(["--course-dir", str(course)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "3 of 5 submission(s) flagged: see docs/lecturers.md"


def recorded_seconds(cell):
    """A cell's execution time as nbclient recorded it in the committed notebook (None when not recorded)."""
    from datetime import datetime

    stamps = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in stamps or "shell.execute_reply" not in stamps:
        return None
    start, end = (datetime.fromisoformat(stamps[key].replace("Z", "+00:00"))
                  for key in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def test_the_cell_timeout_is_sized_to_the_course_not_to_nbgrader_default():
    from traitlets.config import Config

    config = Config()
    exec(nbgrader_course.CONFIG, {"get_config": lambda: config, "__file__": "nbgrader_course/nbgrader_config.py"})
    assert config.Execute.timeout == config.ExecutePreprocessor.timeout == nbgrader_course.CELL_TIMEOUT
    assert config.Execute.interrupt_on_timeout is True, "a timed-out cell is interrupted and the notebook goes on"
    times = [seconds for path in NOTEBOOKS for cell in read_notebook(path).cells
             if cell.cell_type == "code" and (seconds := recorded_seconds(cell)) is not None]
    assert len(times) > 300, "the committed notebooks record each cell's execution time"
    assert 3 * max(times) <= nbgrader_course.CELL_TIMEOUT <= 120, (max(times), nbgrader_course.CELL_TIMEOUT)
