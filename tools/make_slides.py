"""reveal.js slides for the notebooks, through nbconvert's slides exporter.

Each cell's ``metadata.slideshow.slide_type`` decides where it goes: ``slide`` starts a new slide, ``subslide`` a
slide below the current one, ``fragment`` appears on the next click, ``-`` stays on the current slide, ``skip`` and
``notes`` are left out of the deck. The deck is 1280 × 800 (a 16:10 projector), so the course's figures (at most
1100 px wide) show at full size; a slide taller than the screen scrolls. Where a notebook shows an interactive
playground the deck shows a note, and the next slide its static twin (a deck has no kernel to drive a widget).

Building needs no network. Two ways to view:

* ``make slides``: the page loads reveal.js 4, require.js, jQuery and MathJax 2 from public CDNs.
* ``make slides-offline`` (``--offline``): every script and style sheet is copied into ``<output-dir>/vendor/``
  and loaded from there, so presenting fetches nothing::

      vendor/reveal.js/        reveal.js 4.0.2 (dist/ and plugin/, from npm, pinned in the Makefile)
      vendor/require.js        require.js 2.3.7 (npm ``requirejs``)
      vendor/jquery.min.js     jQuery 3.7.1 (npm ``jquery``)
      vendor/MathJax/          MathJax 2.7.9 (PyPI ``jupyter-server-mathjax``, pinned in requirements.txt)

  The npm packages come from ``--npm-dir`` (a ``node_modules`` folder; the Makefile installs them into
  ``_build/slides-npm`` with ``npm install``, once). ``--assets DIR`` only points the deck at such a folder
  (relative to the slides) without copying anything, and ``--reveal-url-prefix`` moves reveal.js alone.

Usage: ``python tools/make_slides.py [--output-dir slides] [--offline --npm-dir DIR | --assets DIR]
[--reveal-url-prefix URL] [notebook ...]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, course_notebooks, read_notebook  # noqa: E402
from tools.make_html import static_notebook  # noqa: E402

SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 800
TEMPLATE_DIR = Path(__file__).resolve().parent / "slides_template"
TEMPLATE_NAME = "course_reveal"  # nbconvert's reveal template less its mermaid and widget-manager scripts
VENDOR = "vendor"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configurations jupyter-server-mathjax ships
# npm package -> what the deck needs from it (a folder or file inside the package), and where it goes in vendor/
NPM_ASSETS = {
    "reveal.js": [("dist", "reveal.js/dist"), ("plugin", "reveal.js/plugin"), ("LICENSE", "reveal.js/LICENSE")],
    "requirejs": [("require.js", "require.js")],
    "jquery": [("dist/jquery.min.js", "jquery.min.js"), ("LICENSE.txt", "jquery.LICENSE.txt")],
}


def offline_asset_urls(assets: str) -> dict[str, str]:
    """SlidesExporter settings that load every script from ``assets`` (a folder relative to the slides)."""
    assets = assets.rstrip("/")
    return {
        "reveal_url_prefix": f"{assets}/reveal.js",
        "require_js_url": f"{assets}/require.js",
        "jquery_url": f"{assets}/jquery.min.js",
        "mathjax_url": f"{assets}/MathJax/MathJax.js?config={MATHJAX_CONFIG}",
    }


def slides_exporter(reveal_url_prefix: str | None = None, assets: str | None = None):
    """nbconvert's SlidesExporter with the course's deck settings (scripts from ``assets`` when given)."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.SlidesExporter.extra_template_basedirs = [str(TEMPLATE_DIR)]
    config.SlidesExporter.template_name = TEMPLATE_NAME
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
    nb = static_notebook(read_notebook(notebook))
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{notebook.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def copy_offline_assets(output_dir: Path | str, npm_dir: Path | str) -> Path:
    """Copy reveal.js, require.js, jQuery (from ``npm_dir``, a node_modules folder) and MathJax into
    ``<output_dir>/vendor``; return that folder. Raises FileNotFoundError naming what is missing and how to get it."""
    npm_dir, vendor = Path(npm_dir), Path(output_dir) / VENDOR
    missing = [str(npm_dir / package / inside) for package, items in NPM_ASSETS.items() for inside, _ in items
               if not (npm_dir / package / inside).exists()]
    if missing:
        raise FileNotFoundError(f"npm_dir: {npm_dir} lacks {', '.join(missing)}; `make slides-npm` installs the "
                                "pinned reveal.js, requirejs and jquery there (it needs npm, from Node.js)")
    vendor.mkdir(parents=True, exist_ok=True)
    for package, items in NPM_ASSETS.items():
        for inside, target in items:
            source, target = npm_dir / package / inside, vendor / target
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
    import jupyter_server_mathjax

    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", vendor / "MathJax", dirs_exist_ok=True)
    return vendor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "slides")
    parser.add_argument("--offline", action="store_true",
                        help=f"copy every script into <output-dir>/{VENDOR}/ and load it from there (needs --npm-dir)")
    parser.add_argument("--npm-dir", type=Path, default=ROOT / "_build" / "slides-npm" / "node_modules",
                        help="node_modules folder holding reveal.js, requirejs and jquery (for --offline)")
    parser.add_argument("--assets", default=None,
                        help="folder (relative to the slides) with reveal.js/, require.js, jquery.min.js and "
                             "MathJax/ to present offline; default: public CDNs")
    parser.add_argument("--reveal-url-prefix", default=None,
                        help="where reveal.js 4 is (a URL, or a path relative to the slides); default: a CDN")
    args = parser.parse_args(argv)
    if args.offline and args.assets:
        parser.error("--offline copies the scripts into <output-dir>/vendor itself; give --assets only without it")
    if args.offline:
        print(copy_offline_assets(args.output_dir, args.npm_dir))
    exporter = slides_exporter(args.reveal_url_prefix, VENDOR if args.offline else args.assets)
    for notebook in args.notebooks or course_notebooks():
        problems = slide_metadata_problems(read_notebook(notebook))
        if problems:
            print(f"{notebook.name}: " + "; ".join(problems), file=sys.stderr)
            return 1
        print(export_slides(notebook, args.output_dir, exporter=exporter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
