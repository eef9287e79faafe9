"""How often executing a playground cell under nbclient stalls: a kernel and the client both idle, each waiting.

The stall seen by ``benchmarks/course_time.py`` and ``nbgrader autograde`` after notebook 08's playground cell:
the kernel has answered the cell (its ``execute_reply`` is sent, its status is idle) and nbclient waits for that
reply until the cell's timeout. This script builds a small notebook (notebook 08's set-up, then the playground
cell and a trivial cell, repeated ``--repeats`` times), executes it ``--runs`` times in fresh kernels with a short
per-cell ``--timeout``, and counts the cells that timed out. The playground's first figure is drawn for the seed's
setting without its history, so every playground cell trains the seed network once (about a second).

Usage: ``python benchmarks/playground_stall.py [--runs 10] [--repeats 20] [--timeout 20] [--playground NAME]``;
``--playground interactive`` runs a bare ``ipywidgets.interactive`` with the same view instead of the course's.
``--notebook PATH`` executes that notebook as it is instead (``--runs`` times, each in a fresh kernel).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]

SETUP = """\
import ipywidgets as ipw
import torch
from course_lib import data, plotting, training
from course_lib.labs import seed_classifier
plotting.use_course_style()
training.seed_everything(0)
torch.set_num_threads(1)
cancer = data.breast_cancer()
"""
PLAYGROUNDS = {
    "course": "seed_classifier.training_playground(cancer, device='cpu');",
    "interactive": """\
from course_lib.widgets import show_figure
w = ipw.interactive(show_figure(lambda method, lr, epochs: seed_classifier.show_training_run(
    method, lr, epochs, dataset=cancer, device='cpu')), method='adam', lr=1e-3, epochs=50)
display(w)""",
}


def notebook(repeats: int, playground: str) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_code_cell(SETUP)]
    for _ in range(repeats):
        cells += [nbformat.v4.new_code_cell(PLAYGROUNDS[playground]), nbformat.v4.new_code_cell("1 + 1")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run_once(repeats: int, timeout: int, playground: str, path: Path | None = None) -> tuple[int, int, str | None]:
    """Execute the notebook once; return (cells executed, index of the stalled cell or -1, what stopped it)."""
    nb = nbformat.read(str(path), as_version=4) if path else notebook(repeats, playground)
    folder = path.parent if path else ROOT
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError) as error:
        stalled = max(index for index, cell in enumerate(nb.cells) if cell.get("execution_count"))
        done = sum(1 for cell in nb.cells if cell.get("execution_count"))
        return done, stalled, type(error).__name__
    return len(nb.cells), -1, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20, help="playground cells per run")
    parser.add_argument("--timeout", type=int, default=20, help="seconds a cell may run")
    parser.add_argument("--playground", choices=sorted(PLAYGROUNDS), default="course")
    parser.add_argument("--notebook", type=Path, default=None, help="execute this notebook instead")
    args = parser.parse_args(argv)
    os.environ.pop("MPLBACKEND", None)
    os.environ["PYTHONHASHSEED"] = "0"
    stalls, cells, start = 0, 0, time.perf_counter()
    for run in range(1, args.runs + 1):
        done, stalled, reason = run_once(args.repeats, args.timeout, args.playground,
                                         args.notebook.resolve() if args.notebook else None)
        cells += done
        stalls += reason is not None
        print(f"run {run}: {done} cells executed" + (f", stalled at cell {stalled} ({reason})" if reason else ""),
              flush=True)
    what = args.notebook.name if args.notebook else f"playground {args.playground!r}"
    print(f"{stalls} stall(s) in {args.runs} runs ({cells} cells, {what}, "
          f"{args.timeout} s per cell) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
