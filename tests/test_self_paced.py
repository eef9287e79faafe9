"""The self-paced edition (tools/self_paced.py): every solution cell of the course collapsed, nothing else."""

from __future__ import annotations

import nbformat
import pytest

from tools import self_paced
from tools.course import course_notebooks, read_notebook


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    prompt = nbformat.v4.new_markdown_cell("**Exercise 1.** Find x.")
    solution = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    solution.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "x", "locked": False,
                                     "schema_version": 3, "task": False}
    check = nbformat.v4.new_code_cell("assert x == 1, 'x is not right'")
    check.metadata["jupyter"] = {"source_hidden": True}  # a stale flag on a cell that holds no solution
    nb.cells = [prompt, solution, check]
    return nb


def test_collapse_hides_the_solution_cells_only():
    nb = self_paced.collapse_solutions(_notebook())
    assert [self_paced.is_collapsed(cell) for cell in nb.cells] == [False, True, False]
    assert "jupyter" not in nb.cells[2].metadata
    assert self_paced.problems(nb) == []


def test_problems_name_each_cell_that_differs():
    found = self_paced.problems(_notebook())
    assert found == ["cell 1: a solution cell that is not collapsed", "cell 2: a collapsed cell that holds no solution"]


def test_expand_shows_every_cell_and_keeps_other_display_settings():
    nb = self_paced.collapse_solutions(_notebook())
    nb.cells[0].metadata["jupyter"] = {"outputs_hidden": True, "other": 1}
    expanded = self_paced.expand_solutions(nb)
    assert not any(self_paced.is_collapsed(cell) for cell in expanded.cells)
    assert expanded.cells[0].metadata["jupyter"] == {"other": 1} and "jupyter" not in expanded.cells[1].metadata


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.stem)
def test_every_course_solution_is_collapsed(path):
    nb = read_notebook(path)
    assert any(self_paced.is_collapsed(cell) for cell in nb.cells), f"{path.name} has no collapsed solution"
    assert self_paced.problems(nb) == [], "run: python tools/self_paced.py"


def test_the_check_fails_on_a_notebook_with_a_visible_solution(tmp_path, capsys):
    path = tmp_path / "01_x.ipynb"
    nbformat.write(_notebook(), str(path))
    assert self_paced.main(["--check", str(path)]) == 1
    assert "not collapsed" in capsys.readouterr().out
    assert self_paced.main([str(path)]) == 0            # writes the edition
    assert self_paced.main(["--check", str(path)]) == 0


def test_the_student_version_collapses_nothing():
    from tools.make_student import student_notebook

    path = course_notebooks()[0]
    student = student_notebook(read_notebook(path))
    assert not any(self_paced.is_collapsed(cell) for cell in student.cells), "a stub the learner cannot see"


def test_the_nbgrader_source_collapses_nothing(tmp_path):
    from tools.nbgrader_course import prepare

    path = course_notebooks()[0]
    (name,) = prepare(tmp_path, [path], generate=False)
    source = read_notebook(tmp_path / "source" / name / path.name)
    assert any(self_paced.is_collapsed(cell) for cell in read_notebook(path).cells)
    assert not any(self_paced.is_collapsed(cell) for cell in source.cells), "a released stub the student cannot see"
