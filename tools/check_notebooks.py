"""Course-wide checks of a notebook's structure and committed outputs (docs/course_guide.md, "Shape of a notebook").

Each check takes a notebook (an ``nbformat`` node) and returns a list of problems, empty when it passes.
``tests/test_notebooks.py`` runs every check on every course notebook, so a new notebook is checked as soon as it
exists. Usage: ``python tools/check_notebooks.py [notebook ...]`` prints the problems (exit status 1 if any).
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import cell_source, course_notebooks, read_notebook  # noqa: E402
from tools.make_slides import slide_metadata_problems  # noqa: E402
from tools.make_student import student_notebook  # noqa: E402
from tools.nbgrader_cells import exercise_cells  # noqa: E402
from tools.nbgrader_cells import problems as nbgrader_problems

MACHINE_PATHS = ("/work/", "/home/", "/root/", "/tmp/", "/Users/", ".venv", "site-packages")
MEMORY_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")
WARNING = re.compile(r"\b[A-Z]\w*Warning\b")
PLAYGROUND = re.compile(r"\binteract(?:ive|_manual)?\s*\(|@interact\b|_playground\s*\(")
IGNORE_OUTPUT = "# NBVAL_IGNORE_OUTPUT"
TEXT_MIMETYPES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")


def _headings(nb) -> list[str]:
    """Every markdown heading's text, in order."""
    return [match.group(1).strip()
            for cell in nb.cells if cell.cell_type == "markdown"
            for match in re.finditer(r"^#{1,6}\s+(.+)$", cell_source(cell), flags=re.MULTILINE)]


def _code_cells(nb):
    return [(index, cell) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def _as_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(map(str, value))
    return json.dumps(value)


def output_texts(nb):
    """(cell index, text) for every text an output shows: streams, text mimetypes, tracebacks; images excluded."""
    for index, cell in _code_cells(nb):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                yield index, _as_text(output.get("text", ""))
            elif output.get("output_type") == "error":
                yield index, "\n".join([output.get("ename", ""), output.get("evalue", "")]
                                       + list(output.get("traceback", [])))
            for mimetype, value in output.get("data", {}).items():
                if mimetype in TEXT_MIMETYPES:
                    yield index, _as_text(value)


def _widget_state_text(nb) -> str:
    """The saved widget state (it holds the outputs a playground showed), without image data."""
    state = nb.metadata.get("widgets", {})

    def strip_images(value):
        if isinstance(value, dict):
            return {k: strip_images(v) for k, v in value.items() if not k.startswith("image/")}
        if isinstance(value, list):
            return [strip_images(v) for v in value]
        return value

    return json.dumps(strip_images(state), ensure_ascii=False)


def check_title(nb) -> list[str]:
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return ["the first cell must be a markdown cell with the title"]
    first_line = next((line for line in cell_source(nb.cells[0]).splitlines() if line.strip()), "")
    if not re.match(r"^#\s+\S", first_line):
        return [f"the first cell must start with an H1 title ('# …'), got {first_line[:60]!r}"]
    return []


def check_sections(nb) -> list[str]:
    headings = [heading.lower() for heading in _headings(nb)]
    wanted = ("What you will learn", "Before you start", "Summary")
    return [f"no {name!r} section" for name in wanted if not any(h.startswith(name.lower()) for h in headings)]


def _title_number(nb) -> str:
    """"01" from the title "# 01 · …" (the notebook's number, which prefixes its nbgrader ids)."""
    found = re.match(r"#\s+(\d+)", cell_source(nb.cells[0]).strip()) if nb.cells else None
    return found.group(1) if found else "00"


def check_exercises(nb) -> list[str]:
    """At least one exercise; each solution cell followed by a check cell with an assert; nbgrader can read it all.

    nbgrader's ``ClearSolutions`` must accept the notebook (no marker outside a solution cell, prose included; no
    unclosed region), and every cell must carry the nbgrader metadata ``tools/nbgrader_cells.py`` derives.
    """
    try:
        pairs = exercise_cells(nb)
    except ValueError as error:
        return [str(error)]
    problems = [] if pairs else ["no exercise: no code cell with a '### BEGIN SOLUTION' … '### END SOLUTION' region"]
    for solution, check in pairs:
        if "assert" not in cell_source(nb.cells[check]):
            problems.append(f"cell {solution}: a solution cell must be followed by a check cell (code with an assert)")
    problems += nbgrader_problems(nb, _title_number(nb))
    try:
        student_notebook(nb)
    except ValueError as error:
        problems.append(f"nbgrader: {error}")
    return problems


def check_cells(nb) -> list[int]:
    """Indices of nbgrader's "autograder test" cells (``grade`` true, not a ``solution``): the exercises' checks."""
    return [index for index, cell in _code_cells(nb)
            if cell.metadata.get("nbgrader", {}).get("grade") and not cell.metadata["nbgrader"].get("solution")]


GENERAL_MODULES = {"np", "numpy", "torch", "math"}  # np.median, torch.allclose: words, not the answer's recipe


def _called_names(node) -> set[str]:
    """The functions an expression calls, by their last name (``speed.bytes_per_parameter(rule)``: that name).

    Python's builtins and the functions of NumPy, torch and math are left out: a message may say "median".
    """
    names = set()
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        general = isinstance(func, ast.Attribute) and getattr(func.value, "id", None) in GENERAL_MODULES
        if isinstance(func, ast.Attribute) and not general:
            names.add(func.attr)
        elif isinstance(func, ast.Name) and func.id not in dir(builtins):
            names.add(func.id)
    return names


def _constant_number(node):
    """The number an expression of literals and arithmetic stands for (``8 * 32 + 1``: 257), else None."""
    if not all(isinstance(part, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop))
               for part in ast.walk(node)):
        return None
    try:
        value = eval(compile(ast.Expression(node), "<check>", "eval"), {"__builtins__": {}})  # literals only
    except Exception:
        return None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _spellings(number) -> set[str]:
    """How a message could write ``number``: ``1313``, ``1,313``, ``0.5``, ``0`` for ``0.0``."""
    spellings = {repr(number), f"{number:,}"}
    if float(number).is_integer():
        spellings |= {str(int(number)), f"{int(number):,}"}
    return spellings


def _message_text(message) -> str:
    """The literal text of an assert's message (an f-string's fixed parts; its fields are the learner's values)."""
    return " ".join(part.value for part in ast.walk(message)
                    if isinstance(part, ast.Constant) and isinstance(part.value, str))


def assert_message_problems(source: str) -> list[str]:
    """What is wrong with the asserts of one check cell's source (COURSE_GUIDE.md, "Exercises").

    Every assert carries a message. The message must not hand over the answer: it may not name a function the
    assert calls (the check's way of computing the answer) nor write a number the assert compares a value with
    by ``==`` (the expected value). A learner sees only the message, so ``AssertionError`` alone says nothing.
    """
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        line = ast.get_source_segment(source, node.test) or ""
        where = f"line {node.lineno} `{line[:60]}`"
        if node.msg is None:
            problems.append(f"{where}: an assert without a message (say what is wrong, not the answer)")
            continue
        text = _message_text(node.msg)
        named = sorted(name for name in _called_names(node.test) if re.search(rf"\b{re.escape(name)}\b", text))
        if named:
            problems.append(f"{where}: the message names {', '.join(named)}, which the check calls")
        expected = [value for compare in ast.walk(node.test) if isinstance(compare, ast.Compare)
                    and any(isinstance(op, ast.Eq) for op in compare.ops)
                    for value in map(_constant_number, [compare.left, *compare.comparators]) if value is not None]
        shown = sorted({spelling for value in expected for spelling in _spellings(value)
                        if re.search(rf"(?<![\w.,]){re.escape(spelling)}(?![\w]|[.,]\d)", text)})
        if shown:
            problems.append(f"{where}: the message writes {', '.join(shown)}, a value the check expects")
    return problems


def check_assert_messages(nb) -> list[str]:
    """Every check cell's asserts say what is wrong without the answer (:func:`assert_message_problems`)."""
    return [f"cell {index}: {problem}" for index in check_cells(nb)
            for problem in assert_message_problems(cell_source(nb.cells[index]))]


def check_no_errors(nb) -> list[str]:
    """No error outputs, and no warnings or tracebacks on stderr."""
    problems = []
    for index, cell in _code_cells(nb):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index}: error output {output.get('ename')}: {output.get('evalue', '')[:80]}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = _as_text(output.get("text", ""))
                found = WARNING.search(text) or re.search(r"Traceback", text)
                if found:
                    problems.append(f"cell {index}: stderr shows {found.group(0)!r}")
    return problems


def check_execution_order(nb) -> list[str]:
    """Every code cell executed, in order, in one fresh kernel (counts 1, then strictly increasing)."""
    problems, previous = [], 0
    for index, cell in _code_cells(nb):
        count = cell.get("execution_count")
        if count is None:
            if cell_source(cell).strip():
                problems.append(f"cell {index} was not executed")
            continue
        if previous == 0 and count != 1:
            problems.append(f"cell {index}: the first execution count is {count}, not 1 (run it in a fresh kernel)")
        elif count <= previous:
            problems.append(f"cell {index}: execution count {count} after {previous} (cells run out of order)")
        previous = count
    return problems


def check_portable_outputs(nb) -> list[str]:
    """No machine-specific paths and no memory addresses in outputs (or in the saved widget state)."""
    problems = []
    texts = list(output_texts(nb)) + [("widget state", _widget_state_text(nb))]
    for where, text in texts:
        where = f"cell {where}" if isinstance(where, int) else where
        for path in MACHINE_PATHS:
            if path in text:
                problems.append(f"{where}: output shows a machine-specific path ({path!r})")
        address = MEMORY_ADDRESS.search(text)
        if address:
            problems.append(f"{where}: output shows a memory address ({address.group(0)})")
    return problems


def _has_image(cell) -> bool:
    return any(key.startswith("image/") for output in cell.get("outputs", []) for key in output.get("data", {}))


def check_playgrounds(nb) -> list[str]:
    """Every interact/playground cell is marked NBVAL_IGNORE_OUTPUT and the next code cell draws a static figure."""
    problems = []
    code_cells = _code_cells(nb)
    for position, (index, cell) in enumerate(code_cells):
        source = cell_source(cell)
        if not PLAYGROUND.search(source):
            continue
        if not any(line.strip() == IGNORE_OUTPUT for line in source.splitlines()):
            problems.append(f"cell {index}: a playground cell must carry '{IGNORE_OUTPUT}'")
        following = code_cells[position + 1][1] if position + 1 < len(code_cells) else None
        if following is None or not _has_image(following) or PLAYGROUND.search(cell_source(following)):
            problems.append(f"cell {index}: a playground must be followed by a code cell that draws its default "
                            "view as a plain figure")
    return problems


def check_slides(nb) -> list[str]:
    return slide_metadata_problems(nb)


CHECKS = {
    "title": check_title,
    "sections": check_sections,
    "exercises": check_exercises,
    "assert_messages": check_assert_messages,
    "no_errors": check_no_errors,
    "execution_order": check_execution_order,
    "portable_outputs": check_portable_outputs,
    "playgrounds": check_playgrounds,
    "slides": check_slides,
}


def notebook_problems(nb) -> dict[str, list[str]]:
    """Every check's problems for one notebook (only the checks that found some)."""
    return {name: problems for name, check in CHECKS.items() if (problems := check(nb))}


def main(argv: list[str] | None = None) -> int:
    paths = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])] or course_notebooks()
    failed = 0
    for path in paths:
        problems = notebook_problems(read_notebook(path))
        failed += bool(problems)
        for name, found in problems.items():
            for problem in found:
                print(f"{path.name}: {name}: {problem}")
    print(f"{len(paths) - failed} of {len(paths)} notebooks pass every check")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
