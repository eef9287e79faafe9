"""Sphinx configuration of the course site (``make html``; ``tools/make_html.py`` writes the sources it reads).

MyST-NB reads the committed, executed notebooks and runs nothing. Math is typeset by MathJax 2.7 from the
``jupyter-server-mathjax`` package (pinned in requirements.txt), copied into the site's ``_static/mathjax/``, so a
reader's browser loads nothing from the network: no CDN, no widget manager, no require.js.
"""

from __future__ import annotations

import shutil
from pathlib import Path

project = "Choosing an optimizer"
author = ""
html_show_copyright = False

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"

# --- notebooks: render what is committed, never execute ------------------------------------------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no require.js and widget manager from CDNs (the site shows each widget's static twin)
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]

# --- math: MathJax 2.7.9 from jupyter-server-mathjax, served from _static/mathjax --------------------------------
MATHJAX_DIR = "mathjax"
mathjax_path = f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    # MyST-NB marks each notebook "mathjax_ignore" and its math "math": MathJax 2 spells that choice in tex2jax
    "tex2jax": {"processClass": "tex2jax_process|mathjax_process|math|output_area",
                "ignoreClass": "tex2jax_ignore|mathjax_ignore"},
    "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
                 "imageFont": None},
    "messageStyle": "none",
    "menuSettings": {"zoom": "None"},
}

# --- the book theme -----------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "Choosing an optimizer"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": True,
}


def mathjax_source() -> Path:
    """The MathJax 2 folder that jupyter-server-mathjax ships (``MathJax.js``, ``config/``, ``jax/``, fonts)."""
    try:
        import jupyter_server_mathjax
    except ImportError as error:  # pragma: no cover - a clear message for a venv without the pinned package
        raise RuntimeError("the course site needs jupyter-server-mathjax (pip install -r requirements.txt)") from error
    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (folder / "MathJax.js").is_file():
        raise RuntimeError(f"{folder} holds no MathJax.js: reinstall jupyter-server-mathjax")
    return folder


def copy_mathjax(app, exception) -> None:
    """After a successful HTML build, copy MathJax into ``_static/mathjax`` (its LICENSE goes with it)."""
    if exception is None and app.builder.format == "html":
        shutil.copytree(mathjax_source(), Path(app.outdir) / "_static" / MATHJAX_DIR, dirs_exist_ok=True)


def setup(app):
    app.connect("build-finished", copy_mathjax)
