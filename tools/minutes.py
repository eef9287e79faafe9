"""How long a notebook takes to study, estimated from its content with one stated formula.

Every notebook states its length ("About N minutes" under "Before you start"). The number should come from what
the notebook holds, not from hope, so the whole course uses one formula for a careful learner::

    minutes = words / 100        prose: every word of the markdown cells, at 100 words a minute
            + lines / 10         code: every non-blank line outside the solution markers, read, run and compared
                                 with the text at 10 lines a minute (a line that holds only a string, the rest of
                                 an assert's message or of a long label, is read with its statement: not counted)
            + 2 × figures        each image the committed notebook shows (a plot is read, not glanced at)
            + 8 × exercises      each solution cell (the learner writes it: 8 minutes for a short exercise)
            + 5 × playgrounds    each cell that opens an interactive playground (``…playground(`` in its source)

The rates are those of a careful first read (100 words a minute is half a fluent reader's speed on technical prose;
ten lines of code a minute includes running the cell and reading its output against the sentence beside it). The
estimate is rounded to 5 minutes; above :data:`ONE_SITTING` minutes the notebook says "two sittings".

Usage: ``python tools/minutes.py [notebook ...]`` (default: every course notebook) prints each notebook's counts,
its estimate and the minutes it states, then the course's total.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import cell_source, course_notebooks, notebook_info, read_notebook  # noqa: E402

WORDS_PER_MINUTE = 100
LINES_PER_MINUTE = 10
MINUTES_PER_FIGURE = 2
MINUTES_PER_EXERCISE = 8
MINUTES_PER_PLAYGROUND = 5
ONE_SITTING = 90  # longer than this: "two sittings"

_PLAYGROUND = re.compile(r"\w*playground\(")
_STRING_ONLY = re.compile(r"""^[rRfFbBuU]{0,2}(["']).*\1[),\s]*$""")


@dataclass(frozen=True)
class Content:
    words: int        # markdown words
    lines: int        # non-blank code lines outside the solution markers, string-only lines not counted
    figures: int      # image outputs
    exercises: int    # solution cells
    playgrounds: int  # cells that open a playground

    @property
    def minutes(self) -> float:
        """The unrounded estimate: words/100 + lines/10 + 2·figures + 8·exercises + 5·playgrounds."""
        return (self.words / WORDS_PER_MINUTE + self.lines / LINES_PER_MINUTE + MINUTES_PER_FIGURE * self.figures
                + MINUTES_PER_EXERCISE * self.exercises + MINUTES_PER_PLAYGROUND * self.playgrounds)


def _code_lines(source: str) -> int:
    """Non-blank lines of a code cell, not counting those between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
    nor those that hold only a string literal (the continuation of a message)."""
    count, in_solution = 0, False
    for line in source.splitlines():
        if "BEGIN SOLUTION" in line:
            in_solution = True
        elif "END SOLUTION" in line:
            in_solution = False
        elif line.strip() and not in_solution and not _STRING_ONLY.match(line.strip()):
            count += 1
    return count


def content(nb) -> Content:
    """What a notebook holds, counted as the formula needs it."""
    words = lines = figures = exercises = playgrounds = 0
    for cell in nb.cells:
        source = cell_source(cell)
        if cell.cell_type == "markdown":
            words += len(source.split())
        elif cell.cell_type == "code":
            lines += _code_lines(source)
            figures += sum("image/png" in output.get("data", {}) or "image/svg+xml" in output.get("data", {})
                           for output in cell.get("outputs", []))
            exercises += "BEGIN SOLUTION" in source
            playgrounds += bool(_PLAYGROUND.search(source))
    return Content(words=words, lines=lines, figures=figures, exercises=exercises, playgrounds=playgrounds)


def rounded(minutes: float, step: int = 5) -> int:
    """``minutes`` to the nearest multiple of ``step`` (halves round up), at least ``step``."""
    if step <= 0:
        raise ValueError(f"step must be a positive number of minutes, got {step!r}")
    return max(step, int((minutes + step / 2) // step) * step)


def estimate(nb) -> int:
    """A notebook's study time in minutes: :func:`content`'s formula, rounded to 5 minutes."""
    return rounded(content(nb).minutes)


def sittings(minutes: int) -> str:
    """How the header says it: "About N minutes", with "in two sittings" above :data:`ONE_SITTING`."""
    return f"About {minutes} minutes" + (", in two sittings" if minutes > ONE_SITTING else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Estimate each notebook's study time from its content.")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    args = parser.parse_args(argv)
    total = 0
    print(f"{'notebook':40} {'words':>6} {'lines':>6} {'figs':>5} {'exer':>5} {'play':>5} {'exact':>6} "
          f"{'est.':>5} {'stated':>6}")
    for path in args.notebooks or course_notebooks():
        nb = read_notebook(path)
        counted = content(nb)
        minutes = estimate(nb)
        total += minutes
        stated = notebook_info(path, nb).minutes
        print(f"{path.name[:40]:40} {counted.words:6} {counted.lines:6} {counted.figures:5} {counted.exercises:5} "
              f"{counted.playgrounds:5} {counted.minutes:6.1f} {minutes:5} {stated if stated else '-':>6}")
    print(f"total: {total} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
