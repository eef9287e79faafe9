"""What the tools know about the course: where the notebooks are, and each notebook's title, promise and length."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_GLOB = "[0-9]*.ipynb"  # the same notebooks as the Makefile's NOTEBOOKS


def course_notebooks(root: Path | str = ROOT) -> list[Path]:
    """The course notebooks, in course order (``notebooks/NN_*.ipynb``)."""
    return sorted(Path(root, "notebooks").glob(NOTEBOOK_GLOB))


def read_notebook(path: Path | str) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def cell_source(cell) -> str:
    """A cell's source as one string (nbformat allows a list of lines on disk)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


@dataclass(frozen=True)
class NotebookInfo:
    path: Path
    number: str    # "01"
    title: str     # "01 · Gradient descent on f(x) = x²"
    promise: str   # the paragraph under the title
    minutes: int | None

    @property
    def stem(self) -> str:
        return self.path.stem


def notebook_info(path: Path | str, nb=None) -> NotebookInfo:
    """Title (the first cell's H1), promise (the paragraph under it) and minutes ("About N minutes")."""
    path = Path(path)
    nb = nb if nb is not None else read_notebook(path)
    first = cell_source(nb.cells[0]) if nb.cells else ""
    title_match = re.search(r"^#\s+(.+)$", first, flags=re.MULTILINE)
    title = title_match.group(1).strip() if title_match else path.stem
    after_title = first[title_match.end():] if title_match else first
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", after_title) if p.strip()]
    promise = " ".join(paragraphs[0].split()) if paragraphs else ""
    minutes = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = re.search(r"About (\d+) minutes", cell_source(cell))
            if found:
                minutes = int(found.group(1))
                break
    number = re.match(r"\d+", path.stem)
    return NotebookInfo(path=path, number=number.group(0) if number else "", title=title, promise=promise,
                        minutes=minutes)


def write_or_check(argv: list[str] | None, description: str, problems: Callable[[Path, nbformat.NotebookNode], list],
                   fixed: Callable[[Path, nbformat.NotebookNode], nbformat.NotebookNode], done: str) -> int:
    """The command line of a tool that keeps some metadata of the course notebooks current.

    ``NOTEBOOK ...`` (default: every course notebook); without ``--check`` each notebook with problems is
    rewritten as ``fixed`` returns it (and ``done`` printed after its path); with ``--check`` each problem is
    printed and the exit status is 1 when there is any.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--check", action="store_true", help="report what is stale instead of writing it")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.notebooks or course_notebooks():
        nb = read_notebook(path)
        found = problems(path, nb)
        if args.check:
            stale += bool(found)
            for line in found:
                print(f"{path}: {line}")
        elif found:
            nbformat.write(fixed(path, nb), str(path))
            print(f"{path}: {done}")
    return 1 if stale else 0
