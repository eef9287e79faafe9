"""The classroom kit: slides, the README figures, and the make targets that build them and the HTML site.

Everything here runs offline: nbconvert renders the committed (executed) notebooks, nothing is executed.
"""

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.course import course_notebooks, read_notebook  # noqa: E402
from tools.make_images import FIGURES, MAX_BYTES, make_images, rosenbrock_runs  # noqa: E402
from tools.make_slides import SLIDE_WIDTH, export_slides, slide_type, slides_exporter  # noqa: E402

NOTEBOOKS = course_notebooks()


class _Sections(HTMLParser):
    """Counts reveal.js <section> elements by nesting depth, and collects links."""

    def __init__(self):
        super().__init__()
        self.depth, self.by_depth, self.links = 0, {}, []

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.depth += 1
            self.by_depth[self.depth] = self.by_depth.get(self.depth, 0) + 1
        if tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag):
        if tag == "section":
            self.depth -= 1


def parse(html):
    parser = _Sections()
    parser.feed(html)
    return parser


# --- slides ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    exporter = slides_exporter()
    return {path: export_slides(path, out, exporter=exporter) for path in NOTEBOOKS}


def test_every_notebook_has_a_deck_with_one_section_per_slide_and_subslide(slides):
    for path, deck in slides.items():
        types = [slide_type(cell) for cell in read_notebook(path).cells]
        sections = parse(deck.read_text(encoding="utf-8"))
        assert sections.depth == 0, f"{deck.name}: unbalanced <section> tags"
        assert sections.by_depth.get(1) == types.count("slide"), deck.name
        assert sections.by_depth.get(2) == types.count("slide") + types.count("subslide"), deck.name


def test_deck_settings_and_the_default_cdn(slides):
    html = next(iter(slides.values())).read_text(encoding="utf-8")
    assert f"width: {SLIDE_WIDTH}" in html and "var scroll = true" in html
    assert "https://unpkg.com/reveal.js@4" in html  # viewing needs the network unless a prefix is given


def test_reveal_url_prefix_points_the_deck_at_a_local_copy(tmp_path):
    deck = export_slides(NOTEBOOKS[0], tmp_path, reveal_url_prefix="reveal.js")
    html = deck.read_text(encoding="utf-8")
    assert '"reveal.js/dist/reveal.js"' in html and "unpkg.com/reveal.js" not in html


def test_assets_folder_makes_the_deck_load_every_script_locally(tmp_path):
    deck = export_slides(NOTEBOOKS[0], tmp_path, exporter=slides_exporter(assets="vendor/"))
    html = deck.read_text(encoding="utf-8")
    for local in ('"vendor/reveal.js/dist/reveal.js"', 'src="vendor/require.js"', 'src="vendor/jquery.min.js"',
                  "vendor/MathJax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"):
        assert local in html, local
    for cdn in ("unpkg.com/reveal.js", "require.js/2", "jquery/2", "mathjax/2"):
        assert cdn not in html, cdn


# --- the HTML site: tests/test_site.py (a Sphinx build, checked in a browser with the network off) -----------------

# --- README figures --------------------------------------------------------------------------------------------

def test_make_images_draws_every_figure_within_budget(tmp_path):
    written = make_images(tmp_path)
    assert [path.name for path in written] == list(FIGURES)
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < MAX_BYTES


def test_committed_images_exist_and_are_small():
    for name in FIGURES:
        path = ROOT / "images" / name
        assert path.exists(), f"run `make images` and commit {path.name}"
        assert path.stat().st_size < MAX_BYTES


def test_rosenbrock_figure_runs_stay_finite_and_in_the_window():
    for name, run in rosenbrock_runs().items():
        assert run.points.shape == (2001, 2)
        assert abs(run.points).max() < 2.5, f"{name} leaves the plotted window"
        assert run.values[-1] < run.values[0], f"{name} does not make progress"


# --- the make targets, on a temporary copy of the repository ------------------------------------------------------

def _recipes(directory, *targets, **variables):
    """The commands ``make -n`` would run for ``targets`` in ``directory`` (the .venv stamp taken as up to date)."""
    stamp = "/venv-not-used/.installed"
    command = ["make", "-n", "-C", str(directory), "VENV=/venv-not-used", "-o", stamp, *targets]
    command += [f"{key}={value}" for key, value in variables.items()]
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("make")]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_student_slides_html_on_a_copy(tmp_path, monkeypatch, capsys):
    """Run exactly what `make student slides html` runs, on a copy holding the first notebook (the site's Sphinx build
    is checked further in tests/test_site.py).

    The tools run in this process (starting three interpreters that import nbconvert would take several seconds);
    one of them also runs as a script, the way make runs them.
    """
    for name in ("Makefile", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "tools", tmp_path / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "notebooks").mkdir()
    shutil.copy2(NOTEBOOKS[0], tmp_path / "notebooks" / NOTEBOOKS[0].name)
    recipes = _recipes(tmp_path, "student", "slides", "html", SLIDES_ASSETS="vendor")
    scripts = [next(arg for arg in command if arg.endswith(".py")) for command in recipes if "python" in command[0]]
    assert scripts == ["tools/make_student.py", "tools/make_slides.py", "tools/make_html.py"]
    monkeypatch.chdir(tmp_path)
    for command in recipes:
        script = command.index(next(arg for arg in command if arg.endswith(".py")))
        module = importlib.import_module("tools." + Path(command[script]).stem)
        assert module.main(command[script + 1:]) == 0, command
    stem = NOTEBOOKS[0].stem
    assert (tmp_path / "student" / f"{stem}.ipynb").exists()
    deck = (tmp_path / "slides" / f"{stem}.slides.html").read_text(encoding="utf-8")
    assert '"vendor/reveal.js/dist/reveal.js"' in deck and 'src="vendor/require.js"' in deck
    index = (tmp_path / "_build" / "html" / "index.html").read_text(encoding="utf-8")
    assert re.search(rf'href="notebooks/{stem}\.html"', index)
    capsys.readouterr()
    run = subprocess.run([sys.executable, "tools/make_student.py", "--output-dir", "student-script",
                          f"notebooks/{NOTEBOOKS[0].name}"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and (tmp_path / "student-script" / f"{stem}.ipynb").exists(), run.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_images_and_course_time_run_the_tools_on_every_notebook():
    recipes = _recipes(ROOT, "images", "course-time")
    images, timing = (" ".join(command) for command in recipes)
    assert "MPLBACKEND=Agg" in images and "tools/make_images.py --output-dir images" in images
    assert timing.startswith("env -u MPLBACKEND PYTHONHASHSEED=0") and "benchmarks/course_time.py" in timing
    assert all(str(path.relative_to(ROOT)) in timing for path in NOTEBOOKS)
