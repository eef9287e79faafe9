"""The executed notebooks as a static site: one HTML page per notebook and an index page (the course map).

The notebooks are committed executed, so nothing is run: nbconvert's HTML exporter renders what is committed.
Layout of the site (``_build/html`` by default)::

    index.html               the course map: number, title (linked), what you learn, minutes
    notebooks/NN_*.html      one page per notebook; links to other notebooks (``*.ipynb``) point to their pages
    images/                  a copy of the repository's images/, so ``../images/...`` links keep working

The index takes each notebook's title from its first cell's H1. "What you learn" and "minutes" come from the
README's course map when it has a row linking the notebook, otherwise from the notebook itself (the paragraph
under the title, "About N minutes" in "Before you start"). Viewing needs no server; like Jupyter's own HTML, the
pages load MathJax, require.js and the widget manager from public CDNs.

Usage: ``python tools/make_html.py [--output-dir _build/html] [notebook ...]``.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, NotebookInfo, course_notebooks, notebook_info, read_notebook  # noqa: E402

COURSE_TITLE = "Choosing an optimizer"
_ROW = re.compile(r"^\|\s*\[(?P<label>[^\]]+)\]\((?P<link>[^)]+\.ipynb)\)\s*\|(?P<learn>[^|]*)\|(?P<minutes>[^|]*)\|")
_IPYNB_HREF = re.compile(r'href="(?![a-z]+://)([^"#]*?)\.ipynb(#[^"]*)?"')


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


def index_page(entries: list[tuple[NotebookInfo, str, str, str]]) -> str:
    """The index page for (info, href, what you learn, minutes) entries."""
    rows = "\n".join(
        f'<tr><td class="num">{html.escape(info.number)}</td>'
        f'<td><a href="{html.escape(href)}">{html.escape(info.title)}</a></td>'
        f"<td>{_inline_markdown(learn)}</td><td class=\"num\">{html.escape(minutes)}</td></tr>"
        for info, href, learn, minutes in entries
    )
    total = sum(int(m) for *_, m in entries if m.isdigit())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{COURSE_TITLE}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.5; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; vertical-align: top; padding: 0.45rem 0.6rem; border-bottom: 1px solid #ddd; }}
th {{ border-bottom: 2px solid #0072B2; }}
td.num {{ text-align: right; white-space: nowrap; }}
a {{ color: #0072B2; }}
code {{ background: #f4f4f4; padding: 0 0.2em; }}
</style>
</head>
<body>
<h1>{COURSE_TITLE}</h1>
<p>A hands-on course on how optimization algorithms train models, and how to choose one. Each page is a notebook
of the course, executed; every claim in it is checked by an <code>assert</code>.</p>
<h2>Course map</h2>
<table>
<thead><tr><th class="num">#</th><th>notebook</th><th>what you learn</th><th class="num">minutes</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p>{len(entries)} notebook{"" if len(entries) == 1 else "s"}, about {total} minutes of study.</p>
</body>
</html>
"""


def build_site(notebooks, output_dir: Path | str, readme: Path | str = ROOT / "README.md",
               images: Path | str = ROOT / "images") -> Path:
    """Render every notebook to ``<output_dir>/notebooks/`` and write ``<output_dir>/index.html``; return it."""
    from nbconvert import HTMLExporter

    output_dir = Path(output_dir)
    pages = output_dir / "notebooks"
    pages.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    course_map = readme_course_map(readme)
    entries = []
    for path in map(Path, notebooks):
        nb = read_notebook(path)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        body = _IPYNB_HREF.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
        (pages / f"{path.stem}.html").write_text(body, encoding="utf-8")
        info = notebook_info(path, nb)
        row = course_map.get(path.name, {})
        learn = row.get("learn") or info.promise
        minutes = row.get("minutes") or (str(info.minutes) if info.minutes else "")
        entries.append((info, f"notebooks/{path.stem}.html", learn, minutes))
    images = Path(images)
    if images.is_dir():
        shutil.copytree(images, output_dir / "images", dirs_exist_ok=True)
    index = output_dir / "index.html"
    index.write_text(index_page(entries), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "_build" / "html")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or course_notebooks()
    index = build_site(notebooks, args.output_dir)
    print(f"{index} ({len(notebooks)} notebook{'' if len(notebooks) == 1 else 's'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
