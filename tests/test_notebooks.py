"""Course-wide quality: every notebook in notebooks/ passes every check of tools/check_notebooks.py.

The checks (docs/course_guide.md, "Shape of a notebook"): an H1 title; "What you will learn", "Before you start" and
"Summary" sections; at least one exercise with a solution region, each followed by a check cell; no error outputs
or warnings; every code cell executed in order in one fresh kernel; no machine-specific paths or memory addresses
in outputs; every playground marked NBVAL_IGNORE_OUTPUT and followed by a static figure; slide metadata on every
cell, the first cell a slide. A new notebook is checked as soon as it is in notebooks/.

The second half shows that each check catches what it is for, on small notebooks built here.
"""

import sys
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import check_notebooks as checks  # noqa: E402
from tools.course import course_notebooks, read_notebook  # noqa: E402
from tools.nbgrader_cells import tagged  # noqa: E402

NOTEBOOKS = course_notebooks()
_READ = {}


def notebook(path):
    if path not in _READ:
        _READ[path] = read_notebook(path)
    return _READ[path]


def test_course_has_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("01_")


@pytest.mark.parametrize("check", list(checks.CHECKS))
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook(path, check):
    problems = checks.CHECKS[check](notebook(path))
    assert not problems, f"{path.name}: " + "; ".join(problems)


# --- each check catches what it is for ------------------------------------------------------------------------

def md(text, slide="slide"):
    cell = new_markdown_cell(text)
    cell.metadata["slideshow"] = {"slide_type": slide}
    return cell


def code(text, count, outputs=(), slide="-"):
    cell = new_code_cell(text, execution_count=count, outputs=list(outputs))
    cell.metadata["slideshow"] = {"slide_type": slide}
    return cell


def stdout(text):
    return new_output("stream", name="stdout", text=text)


def figure():
    data = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x400 with 1 Axes>"}
    return new_output("display_data", data=data)


def good_notebook():
    return tagged(new_notebook(cells=[
        md("# 99 · A tiny notebook\n\nAfter it you can check notebooks."),
        md("## What you will learn\n- checks\n\n## Before you start\nNotebook 01. About 5 minutes.", "subslide"),
        code("import numpy as np", 1),
        code("# NBVAL_IGNORE_OUTPUT\nwidgets.learning_rate_playground();", 2),
        code("plotting.show_x_squared_descent();", 3, [figure()]),
        md("**Exercise 1.** Compute 6 × 7."),
        code("### BEGIN SOLUTION\nanswer = 6 * 7\n### END SOLUTION\nprint(answer)", 4, [stdout("42\n")]),
        code('assert answer == 42, "answer is not the product"\nprint("correct")', 5, [stdout("correct\n")]),
        md("## Summary\n- done"),
    ]), "99")


def test_the_good_notebook_passes_every_check():
    assert checks.notebook_problems(good_notebook()) == {}


def broken(change):
    nb = good_notebook()
    change(nb)
    return checks.notebook_problems(nb)


def test_title_must_be_an_h1_in_a_markdown_first_cell():
    def h2(nb):
        nb.cells[0].source = "## 99 · not a title"
    assert "title" in broken(h2)


@pytest.mark.parametrize("heading", ["What you will learn", "Before you start", "Summary"])
def test_each_section_is_required(heading):
    def drop(nb):
        for cell in nb.cells:
            cell.source = cell.source.replace(heading, "Something else")
    assert any(heading in problem for problem in broken(drop)["sections"])


def test_an_exercise_with_a_solution_and_a_check_is_required():
    def no_solution(nb):
        nb.cells[6].source = "answer = 42\nprint(answer)"
    def no_check(nb):
        nb.cells[7].source = 'print("correct")'
    def unclosed(nb):
        nb.cells[6].source = "### BEGIN SOLUTION\nanswer = 42"
    def prose_quotes_a_marker(nb):  # nbgrader reads the markers anywhere in a line, prose included
        nb.cells[5].source = "**Exercise 1.** Start after `### BEGIN SOLUTION`,\nstop at `### END SOLUTION`."
    def stale_metadata(nb):
        nb.cells[7].metadata["nbgrader"]["points"] = 5
    assert "no exercise" in broken(no_solution)["exercises"][0]
    assert "check cell" in broken(no_check)["exercises"][0]
    assert "no end solution statement" in " ".join(broken(unclosed)["exercises"])
    assert "Solution region detected in a non-solution cell" in " ".join(broken(prose_quotes_a_marker)["exercises"])
    assert "cell 7: nbgrader metadata" in " ".join(broken(stale_metadata)["exercises"])


def test_every_check_cell_assert_needs_a_message_that_keeps_the_answer():
    def check(source):
        return lambda nb: setattr(nb.cells[7], "source", source + '\nprint("correct")')
    bare = broken(check("assert answer == 42"))["assert_messages"]
    assert bare == ["cell 7: line 1 `answer == 42`: an assert without a message (say what is wrong, not the answer)"]
    second_bare = broken(check('assert answer > 0, "answer is not positive"\nassert answer == 42'))["assert_messages"]
    assert len(second_bare) == 1 and "line 2" in second_bare[0]
    for tells in ('"answer should be 42"', 'f"got {answer}, expected 42"', '"expected 4" "2"[:0] + "42"'):
        problems = broken(check(f"assert answer == 6 * 7, {tells}"))["assert_messages"]
        assert problems and "writes 42" in problems[0], tells
    assert "writes 1,313" in broken(check('assert answer == 1313, "not 1,313"'))["assert_messages"][0]
    names = broken(check('assert answer == lab.product(6, 7), "compare with lab.product"'))["assert_messages"]
    assert "names product, which the check calls" in names[0]
    # words and the learner's own values are fine: 420 is not 42, np.isclose is no recipe
    fine = 'assert np.isclose(answer, 6 * 7), f"answer {answer} is not the product: close to 420? check the factors"'
    assert "assert_messages" not in broken(check(fine))


def test_error_outputs_and_warnings_are_refused():
    def error(nb):
        nb.cells[2].outputs = [new_output("error", ename="ValueError", evalue="bad", traceback=[])]
    def warning(nb):
        nb.cells[2].outputs = [new_output("stream", name="stderr", text="x.py:3: RuntimeWarning: overflow\n")]
    assert broken(error)["no_errors"]
    assert "RuntimeWarning" in broken(warning)["no_errors"][0]


def test_cells_must_be_executed_in_order_in_a_fresh_kernel():
    def unexecuted(nb):
        nb.cells[2].execution_count = None
    def out_of_order(nb):
        nb.cells[4].execution_count = 9
    def not_fresh(nb):
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.execution_count += 10
    assert "not executed" in broken(unexecuted)["execution_order"][0]
    assert "out of order" in broken(out_of_order)["execution_order"][0]
    assert "fresh kernel" in broken(not_fresh)["execution_order"][0]


@pytest.mark.parametrize("text", [
    "saved to /work/course/figure.png", "/home/ada/.venv/lib/python3.11/site-packages/x.py", "see /tmp/run",
    "<course_lib.descent.Trajectory object at 0x7f3a2b4c5d60>",
])
def test_machine_paths_and_memory_addresses_in_outputs_are_refused(text):
    def leak(nb):
        nb.cells[7].outputs = [stdout(text)]
    assert broken(leak)["portable_outputs"]


def test_figure_sizes_are_not_memory_addresses():
    def sized(nb):
        nb.cells[4].outputs[0]["data"]["text/plain"] = "<Figure size 1000x380 with 2 Axes>"
    assert "portable_outputs" not in broken(sized)


def test_playground_needs_the_nbval_marker_and_a_static_figure_after_it():
    def unmarked(nb):
        nb.cells[3].source = "widgets.learning_rate_playground();"
    def no_figure(nb):
        nb.cells[4].outputs = []
    def interact(nb):
        nb.cells[3].source = "interact(show, lr=(0.01, 1.0));"
    assert "NBVAL_IGNORE_OUTPUT" in broken(unmarked)["playgrounds"][0]
    assert "plain figure" in broken(no_figure)["playgrounds"][0]
    assert "NBVAL_IGNORE_OUTPUT" in broken(interact)["playgrounds"][0]


def test_slide_metadata_on_every_cell_and_a_slide_first():
    def missing(nb):
        del nb.cells[3].metadata["slideshow"]
    def first_not_slide(nb):
        nb.cells[0].metadata["slideshow"]["slide_type"] = "subslide"
    def unknown(nb):
        nb.cells[2].metadata["slideshow"]["slide_type"] = "page"
    assert "no slideshow" in broken(missing)["slides"][0]
    assert "first cell" in broken(first_not_slide)["slides"][0]
    assert "not one of" in broken(unknown)["slides"][0]
