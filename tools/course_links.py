"""The course's one address and what is written from it: every notebook's "is course_lib installed?" lines, and the
Colab/Binder links of docs/install.md (and of README.md, where it holds the same two marker lines).

The address is ``[project.urls] Repository`` in pyproject.toml (a placeholder until the course is published). Each
notebook's set-up cell (its first code cell) starts with a few lines that, when ``course_lib`` cannot be imported,
stop with the exact command to run (on Colab, one that keeps Colab's own torch); when it can, they print nothing, so
the committed outputs do not change. docs/install.md holds the badges and install lines between two marker comments.

    python tools/course_links.py            # check: exit status 1 and the stale files if any disagree
    python tools/course_links.py --write    # rewrite them from pyproject.toml and requirements.txt

``tests/test_course_links.py`` runs the check. The notebooks are edited as JSON text in nbformat's own layout
(indent 1, keys sorted), only the set-up cell's source changing: nothing is re-executed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import tomllib

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.course import ROOT, course_notebooks  # noqa: E402

FIRST_NOTEBOOK = "notebooks/01_gradient_descent_x2.ipynb"
BRANCH = "main"  # the branch Colab opens notebooks from
COLAB_PACKAGES = ("mnist1d", "lion-pytorch", "schedulefree")  # the [course] packages Colab lacks (pinned as tested)
SNIPPET_FIRST_LINE = "# Opened without installing the course (Colab, a fresh Python)? Then stop here with what to run."
DOCS = "docs/install.md"
README = "README.md"  # gets the same block where it holds the two marker lines (optional there)
DOCS_BEGIN = "<!-- course-links: begin (written by tools/course_links.py from pyproject.toml; do not edit) -->"
DOCS_END = "<!-- course-links: end -->"
_GITHUB = re.compile(r"^https://github\.com/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)/?$")


def course_url(root: Path = ROOT) -> str:
    """``[project.urls] Repository`` of pyproject.toml: the one place the course's address is set."""
    with open(Path(root, "pyproject.toml"), "rb") as file:
        url = tomllib.load(file)["project"]["urls"]["Repository"]
    if not _GITHUB.match(url):
        raise ValueError(f"pyproject.toml's [project.urls] Repository must be https://github.com/OWNER/REPO "
                         f"(Colab and Binder open GitHub repositories); got {url!r}")
    return url


def pins(root: Path = ROOT) -> dict[str, str]:
    """requirements.txt's ``name==version`` pins, names lower-cased."""
    found = {}
    for line in Path(root, "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip().lower()] = version.strip()
    return found


def colab_command(url: str, root: Path = ROOT) -> str:
    """One pip line for Colab: course_lib and the course packages Colab lacks, none of their dependencies, so that
    Colab's own torch (and NumPy, matplotlib, ...) stay as they are."""
    tested = pins(root)
    extras = " ".join(f"{name}=={tested[name]}" for name in COLAB_PACKAGES)
    return f'pip install --no-deps "course_lib @ git+{url}" {extras}'


def install_command(url: str) -> str:
    """The pip line that installs the course with its tested dependencies."""
    return f'pip install "course_lib[course] @ git+{url}"'


def setup_snippet(url: str, root: Path = ROOT) -> list[str]:
    """The lines that open every set-up cell (each ending in a newline)."""
    lines = [
        SNIPPET_FIRST_LINE,
        "import importlib.util",
        "",
        'if importlib.util.find_spec("course_lib") is None:',
        "    raise ModuleNotFoundError(",
        '        "course_lib is not installed in this kernel. Run one line in a new cell, then this cell again:\\n"',
        f"        \"  on Colab (keeps Colab's torch):  %{_quoted(colab_command(url, root))}\\n\"",
        f'        "  anywhere else:  %{_quoted(install_command(url))}\\n"',
        '        "or, in a clone of the course, `make lab` (docs/install.md).")',
        "",
    ]
    return [line + "\n" for line in lines]


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _without_snippet(source: list[str]) -> tuple[list[str], list[str]]:
    """(leading marker comments such as ``# NBVAL_IGNORE_OUTPUT``, the rest without any old snippet)."""
    head = []
    while source and source[0].startswith("# NBVAL"):
        head.append(source[0])
        source = source[1:]
    if source and source[0].rstrip("\n") == SNIPPET_FIRST_LINE:  # the old snippet: up to the blank line after its if
        start = next(i for i, line in enumerate(source) if line.startswith("if "))
        blank = next((i for i, line in enumerate(source) if i > start and not line.strip()), len(source) - 1)
        source = source[blank + 1:]
    return head, source


def setup_cell_index(nb: dict) -> int:
    return next(i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code")


def notebook_with_snippet(nb: dict, url: str, root: Path = ROOT) -> dict:
    """``nb`` (a notebook's JSON) with the set-up cell's source opening with :func:`setup_snippet`."""
    cell = nb["cells"][setup_cell_index(nb)]
    source = cell["source"]
    source = source.splitlines(keepends=True) if isinstance(source, str) else list(source)
    head, rest = _without_snippet(source)
    cell["source"] = head + setup_snippet(url, root) + rest
    return nb


def _notebook_text(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"  # nbformat's layout on disk


def badges(url: str) -> str:
    """The Markdown of the Colab and Binder badges for the first notebook."""
    owner, repo = _GITHUB.match(url).group("owner", "repo")
    colab = f"https://colab.research.google.com/github/{owner}/{repo}/blob/{BRANCH}/{FIRST_NOTEBOOK}"
    binder = f"https://mybinder.org/v2/gh/{owner}/{repo}/HEAD?urlpath=lab/tree/{FIRST_NOTEBOOK}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})")


def docs_block(url: str, root: Path = ROOT) -> str:
    return "\n".join([
        DOCS_BEGIN,
        badges(url),
        "",
        f"- The course's repository: <{url}>",
        "- Install the course with its tested dependencies (see \"The CPU build of torch\" first):",
        "",
        "  ```bash",
        f"  {install_command(url)}",
        "  ```",
        "",
        "- On Colab, in a new cell (Colab's own torch, NumPy and matplotlib stay as they are):",
        "",
        "  ```",
        f"  %{colab_command(url, root)}",
        "  ```",
        DOCS_END,
    ])


def docs_with_block(text: str, url: str, root: Path = ROOT) -> str:
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"{DOCS} lacks the marker lines {DOCS_BEGIN!r} … {DOCS_END!r} (in this order)")
    return text[:start] + docs_block(url, root) + text[end + len(DOCS_END):]


def stale_files(root: Path = ROOT, write: bool = False) -> list[Path]:
    """The files whose generated part differs from what pyproject.toml and requirements.txt give (rewritten when
    ``write``)."""
    url = course_url(root)
    stale = []
    for path in course_notebooks(root):
        text = path.read_text(encoding="utf-8")
        wanted = _notebook_text(notebook_with_snippet(json.loads(text), url, root))
        if wanted != text:
            stale.append(path)
            if write:
                path.write_text(wanted, encoding="utf-8")
    for docs in (Path(root, DOCS), Path(root, README)):
        if docs.name == README and (not docs.exists() or DOCS_BEGIN not in docs.read_text(encoding="utf-8")):
            continue
        text = docs.read_text(encoding="utf-8")
        wanted = docs_with_block(text, url, root)
        if wanted != text:
            stale.append(docs)
            if write:
                docs.write_text(wanted, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the stale files")
    args = parser.parse_args(argv)
    stale = stale_files(write=args.write)
    for path in stale:
        print(f"{'rewrote' if args.write else 'stale'}: {path.relative_to(ROOT)}")
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
