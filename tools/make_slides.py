"""reveal.js slides for the notebooks, through nbconvert's slides exporter.

Each cell's ``metadata.slideshow.slide_type`` decides where it goes: ``slide`` starts a new slide, ``subslide`` a
slide below the current one, ``fragment`` appears on the next click, ``-`` stays on the current slide, ``skip`` and
``notes`` are left out of the deck. The deck is 1280 × 800 (a 16:10 projector), so the course's figures (at most
1100 px wide) show at full size; a slide taller than the screen scrolls.

Building needs no network. Viewing does, by default: the page loads reveal.js 4, require.js, jQuery and MathJax 2
(and the widget manager, for the playgrounds' saved state) from public CDNs. To present offline, give
``--assets DIR`` (``make slides SLIDES_ASSETS=DIR``), a folder, relative to the slides, holding::

    DIR/reveal.js/          reveal.js 4.0.2 (its dist/ and plugin/ folders)
    DIR/require.js          require.js 2
    DIR/jquery.min.js       jQuery 2
    DIR/MathJax/MathJax.js  MathJax 2.7 (the whole package)

for example from npm: ``npm pack reveal.js@4.0.2 requirejs@2.1.10 jquery@2.1.4 mathjax@2.7.7`` and unpack each
tarball's ``package/``. ``--reveal-url-prefix`` moves reveal.js alone.

Usage: ``python tools/make_slides.py [--output-dir slides] [--assets DIR] [--reveal-url-prefix URL] [notebook ...]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, course_notebooks, read_notebook  # noqa: E402

SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 800


def offline_asset_urls(assets: str) -> dict[str, str]:
    """SlidesExporter settings that load every script from ``assets`` (a folder relative to the slides)."""
    assets = assets.rstrip("/")
    return {
        "reveal_url_prefix": f"{assets}/reveal.js",
        "require_js_url": f"{assets}/require.js",
        "jquery_url": f"{assets}/jquery.min.js",
        "mathjax_url": f"{assets}/MathJax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
    }


def slides_exporter(reveal_url_prefix: str | None = None, assets: str | None = None):
    """nbconvert's SlidesExporter with the course's deck settings (scripts from ``assets`` when given)."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.SlidesExporter.reveal_scroll = True
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_width = str(SLIDE_WIDTH)
    config.SlidesExporter.reveal_height = str(SLIDE_HEIGHT)
    for name, url in (offline_asset_urls(assets) if assets else {}).items():
        config.SlidesExporter[name] = url
    if reveal_url_prefix:
        config.SlidesExporter.reveal_url_prefix = reveal_url_prefix
    return SlidesExporter(config=config)


def slide_type(cell) -> str | None:
    """A cell's ``slide_type``, or None when it has no slideshow metadata."""
    return cell.get("metadata", {}).get("slideshow", {}).get("slide_type")


def slide_metadata_problems(nb) -> list[str]:
    """What is wrong with a notebook's slide metadata.

    Empty when every cell has a valid ``slide_type`` and the first cell starts a slide.
    """
    problems = []
    for index, cell in enumerate(nb.cells):
        kind = slide_type(cell)
        if kind is None:
            problems.append(f"cell {index} has no slideshow.slide_type")
        elif kind not in SLIDE_TYPES:
            problems.append(f"cell {index} has slide_type {kind!r}, not one of {SLIDE_TYPES}")
    if nb.cells and slide_type(nb.cells[0]) != "slide":
        problems.append(f"the first cell must start a slide, its slide_type is {slide_type(nb.cells[0])!r}")
    return problems


def export_slides(notebook: Path | str, output_dir: Path | str, reveal_url_prefix: str | None = None,
                  exporter=None) -> Path:
    """Write ``<output_dir>/<name>.slides.html`` for one notebook; return its path."""
    notebook, output_dir = Path(notebook), Path(output_dir)
    exporter = exporter or slides_exporter(reveal_url_prefix)
    body, _ = exporter.from_notebook_node(read_notebook(notebook), resources={"metadata": {"name": notebook.stem}})
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{notebook.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "slides")
    parser.add_argument("--assets", default=None,
                        help="folder (relative to the slides) with reveal.js/, require.js, jquery.min.js and "
                             "MathJax/ to present offline; default: public CDNs")
    parser.add_argument("--reveal-url-prefix", default=None,
                        help="where reveal.js 4 is (a URL, or a path relative to the slides); default: a CDN")
    args = parser.parse_args(argv)
    exporter = slides_exporter(args.reveal_url_prefix, args.assets)
    for notebook in args.notebooks or course_notebooks():
        problems = slide_metadata_problems(read_notebook(notebook))
        if problems:
            print(f"{notebook.name}: " + "; ".join(problems), file=sys.stderr)
            return 1
        print(export_slides(notebook, args.output_dir, exporter=exporter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
