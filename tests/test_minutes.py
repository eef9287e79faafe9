"""The study-time estimate (tools/minutes.py), on a tiny notebook whose answer is worked out by hand."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tools import minutes
from tools.course import course_notebooks, notebook_info, read_notebook


def _figure():
    return new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})


def _tiny() -> nbformat.NotebookNode:
    """250 words, 24 lines of code to read (3 more inside the solution), 3 figures, 1 exercise, 1 playground."""
    return new_notebook(cells=[
        new_markdown_cell("# Title\n\n" + " ".join(["word"] * 198)),                   # 200 words ("#" is one)
        new_markdown_cell(" ".join(["more"] * 50)),                                      # 50 words
        new_code_cell("\n".join(f"x{i} = {i}" for i in range(20)) + "\n\n   \n",         # 20 lines, blanks not counted
                      outputs=[_figure(), _figure()]),
        new_code_cell("# NBVAL_IGNORE_OUTPUT\nwidgets.learning_rate_playground();"),     # 2 lines, a playground
        new_code_cell('assert x0 == 0, (\n    "x0 is not 0: "\n    f"found {x0}")'),  # 1 line: a message is not code
        new_code_cell("### BEGIN SOLUTION\na = 1\nb = 2\nc = a + b\n### END SOLUTION\nprint(c)",  # 1 line, 1 exercise
                      outputs=[_figure()]),
    ])


def test_the_tiny_notebook_by_hand():
    counted = minutes.content(_tiny())
    assert counted == minutes.Content(words=250, lines=24, figures=3, exercises=1, playgrounds=1)
    # 250/100 + 24/10 + 2·3 + 8·1 + 5·1 = 2.5 + 2.4 + 6 + 8 + 5 = 23.9 minutes, which rounds to 25
    assert counted.minutes == pytest.approx(23.9)
    assert minutes.estimate(_tiny()) == 25


@pytest.mark.parametrize(("exact", "expected"), [(0.4, 5), (62.4, 60), (62.5, 65), (67.4, 65), (90, 90)])
def test_rounding_to_five_minutes(exact, expected):
    assert minutes.rounded(exact) == expected


def test_rounding_needs_a_positive_step():
    with pytest.raises(ValueError, match="step"):
        minutes.rounded(10, step=0)


def test_two_sittings_only_above_ninety_minutes():
    assert minutes.sittings(90) == "About 90 minutes"
    assert minutes.sittings(95) == "About 95 minutes, in two sittings"


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.name[:2])
def test_each_notebook_states_its_estimate(path):
    nb = read_notebook(path)
    assert notebook_info(path, nb).minutes == minutes.estimate(nb), (
        f"{path.name} states {notebook_info(path, nb).minutes} minutes; its content gives {minutes.estimate(nb)} "
        "(python tools/minutes.py shows the counts)")
