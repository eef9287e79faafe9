"""How long ``nbgrader autograde`` takes for one course notebook and a few students, end to end.

It builds a fresh nbgrader course directory in a temporary folder (``tools/nbgrader_course.py``: the course's
configuration, its per-cell timeout included), submits the instructor's notebook for ``--students`` students
(every exercise answered, so every cell runs, as for a student who did all the work), and times one
``nbgrader autograde`` run over all of them. It prints the seconds, the per-student average, the scores read back
from the gradebook and ``tools/grading_report.py``'s verdict (a stalled or dead kernel would be flagged there).

Usage: ``python benchmarks/autograde_time.py [--students 2] [--target 180] [notebook]`` (default: notebook 08).
Exit status 1 when a submission is flagged or, with ``--strict``, when the run takes longer than the target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import grading_report, nbgrader_course  # noqa: E402

DEFAULT_NOTEBOOK = ROOT / "notebooks" / "08_training_the_seed_classifier.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=DEFAULT_NOTEBOOK)
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--target", type=float, default=180.0, help="seconds for the whole autograde run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the run is over the target")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        course = Path(folder) / "course"
        (assignment,) = nbgrader_course.prepare(course, [args.notebook], generate=True)
        students = [f"student{number}" for number in range(1, args.students + 1)]
        for student in students:
            nbgrader_course.submit(course, student, args.notebook)
        start = time.perf_counter()
        nbgrader_course.nbgrader(course, "autograde", assignment, "--create")
        seconds = time.perf_counter() - start
        scores = [sum(nbgrader_course.scores(course, assignment, student).values()) for student in students]
        flags = grading_report.report(course)
    print(f"nbgrader autograde {assignment}, {args.students} student(s), {nbgrader_course.CELL_TIMEOUT} s per cell: "
          f"{seconds:.1f} s ({seconds / args.students:.1f} s per student; target {args.target:.0f} s)")
    print(f"scores: {scores}; flagged: {len(flags)}")
    for flag in flags:
        print(f"  {flag}")
    return 1 if flags or (args.strict and seconds > args.target) else 0


if __name__ == "__main__":
    sys.exit(main())
