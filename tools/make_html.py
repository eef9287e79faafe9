"""The course site: the executed notebooks as a Sphinx book (MyST-NB + sphinx-book-theme) that works offline.

The notebooks are committed executed, so nothing is run: MyST-NB renders what is committed. The site has a
sidebar with every notebook, previous/next links, Sphinx's own search and a course-map index page. Math is typeset
by a MathJax copied into the site from an installed package (``jupyter-server-mathjax``), so reading it needs no
network and no server: open ``index.html`` in a browser. The Sphinx configuration is ``tools/site/conf.py``.

Where a notebook shows an interactive widget (a playground), the site shows a short note instead: widgets need a
running kernel, and the next cell of every playground draws its static twin. A progress-bar widget is dropped.

Layout of the site (``_build/html`` by default)::

    index.html               the course map: number, title (linked), what you learn, minutes
    notebooks/NN_*.html      one page per notebook
    search.html              Sphinx's search page (the index is searchindex.js, no server needed)
    _static/mathjax/         MathJax 2.7 (Apache-2.0, its LICENSE beside it)

The index takes each notebook's title from its first cell's H1. "What you learn" and "minutes" come from the
README's course map when it has a row linking the notebook, otherwise from the notebook itself (the paragraph
under the title, "About N minutes" in "Before you start").

Usage: ``python tools/make_html.py [--output-dir _build/html] [notebook ...]`` (default: every course notebook).
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, NotebookInfo, course_notebooks, notebook_info, read_notebook  # noqa: E402

COURSE_TITLE = "Choosing an optimizer"
CONF_DIR = Path(__file__).resolve().parent / "site"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: How a playground's saved output starts: ipywidgets' ``interactive`` (notebooks executed before course_lib's
#: ``widgets.Playground`` subclass) or ``Playground`` itself.
PLAYGROUND_REPRS = ("interactive(", "Playground(")
WIDGET_NOTE = ('<p class="widget-note">An interactive playground runs here when you open the notebook in Jupyter; '
               "the next cell draws its static twin.</p>")
_ROW = re.compile(r"^\|\s*\[(?P<label>[^\]]+)\]\((?P<link>[^)]+\.ipynb)\)\s*\|(?P<learn>[^|]*)\|(?P<minutes>[^|]*)\|")


def readme_course_map(readme: Path | str = ROOT / "README.md") -> dict[str, dict[str, str]]:
    """The README's course map rows, keyed by notebook file name: {'learn': ..., 'minutes': ...}."""
    readme = Path(readme)
    if not readme.exists():
        return {}
    rows = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        row = _ROW.match(line.strip())
        if row:
            rows[Path(row.group("link")).name] = {"learn": row.group("learn").strip(),
                                                  "minutes": row.group("minutes").strip()}
    return rows


def _inline_markdown(text: str) -> str:
    """Escape text for HTML, keeping `code` spans (the only markdown the course map uses)."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def static_notebook(nb):
    """A copy of ``nb`` for a static page: no saved widget state, each widget output replaced by what reads offline.

    A playground (an ``interactive(...)`` widget) becomes a note pointing at the static twin in the next cell; any
    other widget (a progress bar) is dropped, since its saved text would show it at its start.
    """
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                outputs.append(output)
            elif str(data.get("text/plain", "")).startswith(PLAYGROUND_REPRS):
                outputs.append(nbformat.v4.new_output("display_data", data={"text/html": WIDGET_NOTE}))
        cell.outputs = outputs
    return nb


def index_page(entries: list[tuple[NotebookInfo, str, str, str]]) -> str:
    """The index page (MyST markdown) for (info, document name, what you learn, minutes) entries.

    The course map is an HTML table; a hidden toctree puts the notebooks in the sidebar and the previous/next
    links, in course order.
    """
    rows = "\n".join(
        f'<tr><td class="num">{html.escape(info.number)}</td>'
        f'<td><a href="{html.escape(doc)}.html">{html.escape(info.title)}</a></td>'
        f"<td>{_inline_markdown(learn)}</td><td class=\"num\">{html.escape(minutes)}</td></tr>"
        for info, doc, learn, minutes in entries
    )
    total = sum(int(m) for *_, m in entries if m.isdigit())
    toctree = "\n".join(doc for _, doc, _, _ in entries)
    plural = "" if len(entries) == 1 else "s"
    return f"""# {COURSE_TITLE}

A hands-on course on how optimization algorithms train models, and how to choose one. Each page is a notebook
of the course, executed; every claim in it is checked by an `assert`. The site works offline: math, search and
navigation load nothing from the network.

## Course map

<table class="course-map">
<thead><tr><th class="num">#</th><th>notebook</th><th>what you learn</th><th class="num">minutes</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>

{len(entries)} notebook{plural}, about {total} minutes of study.

```{{toctree}}
:hidden:
:maxdepth: 1
:caption: Notebooks

{toctree}
```
"""


def write_sources(notebooks, source_dir: Path | str, readme: Path | str = ROOT / "README.md",
                  images: Path | str = ROOT / "images") -> Path:
    """Write the Sphinx sources: ``index.md``, ``notebooks/*.ipynb`` (static copies) and ``images/``."""
    import nbformat

    source_dir = Path(source_dir)
    (source_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    course_map = readme_course_map(readme)
    entries = []
    for path in map(Path, notebooks):
        nb = read_notebook(path)
        nbformat.write(static_notebook(nb), str(source_dir / "notebooks" / path.name))
        info = notebook_info(path, nb)
        row = course_map.get(path.name, {})
        learn = row.get("learn") or info.promise
        minutes = row.get("minutes") or (str(info.minutes) if info.minutes else "")
        entries.append((info, f"notebooks/{path.stem}", learn, minutes))
    images = Path(images)
    if images.is_dir():
        shutil.copytree(images, source_dir / "images", dirs_exist_ok=True)
    (source_dir / "index.md").write_text(index_page(entries), encoding="utf-8")
    return source_dir


def build_site(notebooks, output_dir: Path | str, readme: Path | str = ROOT / "README.md",
               images: Path | str = ROOT / "images", quiet: bool = True) -> Path:
    """Build the site for ``notebooks`` into ``output_dir`` (emptied first); return its ``index.html``.

    Sphinx warnings are errors (a broken link or unknown output fails the build instead of vanishing).
    """
    from sphinx.cmd.build import build_main

    notebooks = [Path(path) for path in notebooks]
    if not notebooks:
        raise ValueError("notebooks: expected at least one notebook to build the site from")
    missing = [str(path) for path in notebooks if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks: no such file(s): {', '.join(missing)}")
    output_dir = Path(output_dir)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    with tempfile.TemporaryDirectory(prefix="course-site-") as work:
        source = write_sources(notebooks, Path(work) / "src", readme=readme, images=images)
        args = ["-b", "html", "-c", str(CONF_DIR), "-d", str(Path(work) / "doctrees"), "-W", "--keep-going",
                "-j", "1", str(source), str(output_dir)]
        status = build_main(args + (["-q"] if quiet else []))
    if status != 0:
        raise RuntimeError(f"sphinx-build failed (exit status {status}); its warnings are printed above")
    return output_dir / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--verbose", action="store_true", help="print Sphinx's progress")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or course_notebooks()
    start = time.perf_counter()
    index = build_site(notebooks, args.output_dir, quiet=not args.verbose)
    plural = "" if len(notebooks) == 1 else "s"
    print(f"{index} ({len(notebooks)} notebook{plural}, {time.perf_counter() - start:.0f} s); open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
