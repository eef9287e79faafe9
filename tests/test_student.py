"""The student versions (tools/make_student.py, nbgrader's ClearSolutions): solutions gone, stubs that raise,
everything else identical."""

import re
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.course import cell_source, course_notebooks, read_notebook  # noqa: E402
from tools.make_student import CODE_STUB, TEXT_STUB, main, solution_cell_indices, student_notebook  # noqa: E402
from tools.nbgrader_cells import tagged  # noqa: E402
from tools.self_paced import expand_solutions  # noqa: E402

NOTEBOOKS = course_notebooks()

# An independent statement of the convention (nbgrader's): a region is a BEGIN line, anything, an END line.
REGION = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*\n.*?^[ \t]*### END SOLUTION[ \t]*$",
                    flags=re.MULTILINE | re.DOTALL)


def expected_student_source(source, stub):
    return REGION.sub(lambda m: "\n".join(m.group("indent") + line for line in stub.split("\n")), source)


def solution_lines(source):
    """The lines inside the solution regions of a source."""
    return [line for m in REGION.finditer(source) for line in m.group(0).split("\n")[1:-1]]


def one_exercise(source, cell_type="code", check="assert True"):
    """A tagged notebook: a prompt, one solution cell with ``source``, its check."""
    cell = new_code_cell(source) if cell_type == "code" else new_markdown_cell(source)
    nb = new_notebook(cells=[new_markdown_cell("**Exercise 1.**"), cell, new_code_cell(check)])
    if cell_type == "markdown":  # tools/nbgrader_cells tags code solutions; tag a written answer by hand
        nb.cells[1].metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False,
                                            "grade_id": "written", "schema_version": 3, "task": False}
        return nb
    return tagged(nb, "99")


def stubbed(source, cell_type="code"):
    return cell_source(student_notebook(one_exercise(source, cell_type)).cells[1])


# --- the stub itself -------------------------------------------------------------------------------------------

def test_stubs_are_nbgraders():
    assert CODE_STUB == "# YOUR CODE HERE\nraise NotImplementedError()" and TEXT_STUB == "YOUR ANSWER HERE"


def test_top_level_region_becomes_a_stub_that_raises_and_keeps_the_code_around_it():
    student = stubbed("a = 1\n### BEGIN SOLUTION\nb = a + 1\n### END SOLUTION\nc = 3")
    assert student == "a = 1\n# YOUR CODE HERE\nraise NotImplementedError()\nc = 3"
    namespace = {}
    with pytest.raises(NotImplementedError):
        exec(compile(student, "<cell>", "exec"), namespace)
    assert namespace["a"] == 1 and "b" not in namespace


def test_indented_region_keeps_the_indentation_and_the_function_raises_when_called():
    source = textwrap.dedent("""\
        def double(x):
            \"\"\"Twice x.\"\"\"
            ### BEGIN SOLUTION
            return 2 * x
            ### END SOLUTION

        answer = 21""")
    student = stubbed(source)
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()\n" in student
    namespace = {}
    exec(compile(student, "<cell>", "exec"), namespace)  # defining the function works
    assert namespace["answer"] == 21
    with pytest.raises(NotImplementedError):
        namespace["double"](3)


def test_several_regions_in_one_cell_and_a_written_answer():
    source = ("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n"
              "z = 3\n  ### BEGIN SOLUTION\n  w = 4\n  ### END SOLUTION")
    assert stubbed(source) == expected_student_source(source, CODE_STUB)
    text = "Why?\n### BEGIN SOLUTION\nBecause the factor is 1 − 2η.\n### END SOLUTION\nNext."
    assert stubbed(text, "markdown") == f"Why?\n{TEXT_STUB}\nNext."


def test_a_marker_outside_a_solution_cell_is_refused_prose_included():
    nb = one_exercise("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION")
    nb.cells[0].source = "Each solution sits between `### BEGIN SOLUTION` and `### END SOLUTION`."
    with pytest.raises(ValueError, match="cell 0: no end solution statement found"):  # one line: BEGIN wins
        student_notebook(nb)
    nb.cells[0].source = "A solution starts at `### BEGIN SOLUTION`\nand stops at `### END SOLUTION`."
    with pytest.raises(ValueError, match="cell 0: Solution region detected in a non-solution cell"):
        student_notebook(nb)


def test_an_unclosed_region_is_refused():
    with pytest.raises(ValueError, match="cell 1: no end solution statement found"):
        student_notebook(one_exercise("### BEGIN SOLUTION\nx = 1"))


def test_whole_notebook_on_a_synthetic_notebook():
    nb = one_exercise("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\nprint(answer)", check="assert answer == 42")
    nb.cells[1].execution_count, nb.cells[2].execution_count = 1, 2
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    student = student_notebook(nb)
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.cells[0] == nb.cells[0] and student.cells[2] == nb.cells[2]
    assert nb.cells[1].outputs, "the original must not be modified"
    assert student.metadata == nb.metadata


# --- every course notebook -------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def versions(request):
    original = read_notebook(request.param)
    return original, student_notebook(original)


def test_course_has_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


def test_no_solution_text_remains(versions):
    original, student = versions
    solutions = solution_cell_indices(original)
    assert solutions, "a course notebook has at least one exercise with a solution"
    outside = {line.strip() for cell in original.cells
               for line in REGION.sub("", cell_source(cell)).split("\n")}
    student_text = "\n".join(cell_source(cell) for cell in student.cells)
    for index in solutions:
        for line in solution_lines(cell_source(original.cells[index])):
            if line.strip() and line.strip() not in outside:  # a line that only a solution has
                assert line not in student_text, f"cell {index}: solution line {line!r} is in the student version"
    assert not re.search(r"^\s*### (BEGIN|END) SOLUTION\s*$", student_text, flags=re.MULTILINE)


def test_solution_cells_are_stubbed_and_their_outputs_cleared(versions):
    original, student = versions
    for index in solution_cell_indices(original):
        before, after = original.cells[index], student.cells[index]
        stub = CODE_STUB if before.cell_type == "code" else TEXT_STUB
        assert cell_source(after) == expected_student_source(cell_source(before), stub)
        assert after.metadata == expand_solutions(original).cells[index].metadata   # shown, not collapsed
        if after.cell_type == "code":
            assert after.outputs == [] and after.execution_count is None


def test_every_other_cell_and_the_metadata_are_identical(versions):
    original, student = versions
    assert len(student.cells) == len(original.cells)
    assert student.metadata == original.metadata
    assert (student.nbformat, student.nbformat_minor) == (original.nbformat, original.nbformat_minor)
    solutions = set(solution_cell_indices(original))
    for index, (before, after) in enumerate(zip(original.cells, student.cells)):
        if index not in solutions:
            assert after == before, f"cell {index} changed"


def test_stubs_parse_and_raise_not_implemented_error(versions):
    original, student = versions
    for index in solution_cell_indices(original):
        if student.cells[index].cell_type != "code":
            continue
        source = cell_source(student.cells[index])
        compile(source, f"cell {index}", "exec")  # the stubbed cell is valid Python
        lines = source.split("\n")
        starts = [i for i, line in enumerate(lines) if line.strip() == CODE_STUB.split("\n")[0]]
        assert starts
        for start in starts:
            stub = textwrap.dedent("\n".join(lines[start:start + 2]))
            with pytest.raises(NotImplementedError):
                exec(compile(stub, f"cell {index} stub", "exec"), {})


def test_student_notebook_of_the_first_notebook_stops_at_each_stub(tmp_path):
    """Run the real student version of notebook 01 in a kernel: each stub cell, and only those, fails first."""
    from nbclient import NotebookClient

    first = NOTEBOOKS[0]
    student = student_notebook(read_notebook(first))
    solutions = [i for i in solution_cell_indices(read_notebook(first)) if student.cells[i].cell_type == "code"]
    client = NotebookClient(student, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(first.parent)}})
    client.execute()
    errors = {i: out.ename for i, cell in enumerate(student.cells) if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"}
    for index in solutions:
        assert errors.get(index) == "NotImplementedError", f"cell {index}: {errors.get(index)}"
    assert min(errors) == solutions[0], "nothing before the first exercise may fail"


def test_main_writes_every_course_notebook(tmp_path, capsys):
    assert main(["--output-dir", str(tmp_path)]) == 0
    written = sorted(tmp_path.glob("*.ipynb"))
    assert [path.name for path in written] == [path.name for path in NOTEBOOKS]
    for path in written:
        nbformat.validate(nbformat.read(str(path), as_version=4))
    assert "solution cell(s) stubbed" in capsys.readouterr().out
