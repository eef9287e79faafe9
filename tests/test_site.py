"""The course site (tools/make_html.py) and the offline slides (tools/make_slides.py --offline).

The site is built here for two notebooks (the builder takes any list), with the same Sphinx configuration as
`make html`. Nothing in these tests reaches the network: the browser checks run Chromium with every host name
unresolvable and a dead proxy, so a page that still needed a CDN would show raw TeX and fail.

Chromium is a Debian package (`make browser-install` installs it as root when missing). Without it the browser
checks skip on a learner's machine and fail under CI=true. The offline slides copy reveal.js, require.js and jQuery
from `_build/slides-npm` (`make slides-npm`, which `make test` runs): without them the deck-copy checks skip
outside CI and fail under CI=true.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.course import cell_source, course_notebooks, notebook_info, read_notebook  # noqa: E402
from tools.make_html import PLAYGROUND_REPRS, WIDGET_VIEW, build_site, readme_course_map, static_notebook  # noqa: E402
from tools.make_slides import NPM_ASSETS, VENDOR, export_slides, slides_exporter  # noqa: E402
from tools.make_slides import main as make_slides_main  # noqa: E402

NOTEBOOKS = course_notebooks()[:2]
NPM_DIR = ROOT / "_build" / "slides-npm" / "node_modules"
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason):
    """Fail under CI (a check that silently skips there is a hole), skip with the reason elsewhere."""
    if IN_CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


class _Page(HTMLParser):
    """What a page loads (script src, link href, img src, ...), its links, and its visible text."""

    LOADS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src", "video": "src",
             "audio": "src", "embed": "src", "object": "data"}

    def __init__(self):
        super().__init__()
        self.loads, self.links, self.text, self.module_scripts, self._in_script = [], [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.LOADS and attrs.get(self.LOADS[tag]) and not attrs[self.LOADS[tag]].startswith("data:"):
            if not (tag == "link" and attrs.get("rel") in ("canonical", "author", "license")):
                self.loads.append(attrs[self.LOADS[tag]])
        if tag == "a" and attrs.get("href"):
            self.links.append((attrs.get("class", ""), attrs["href"]))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.module_scripts.append(data)
        else:
            self.text.append(data)


def page(path):
    parser = _Page()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


def remote(url):
    return re.match(r"^(https?:)?//", url.strip()) is not None


def network_references(html):
    """Every http(s) address a page would load: script/link/img sources, imports and url()s inside its scripts
    and styles (a text link a reader may click is not a load)."""
    parsed = _Page()
    parsed.feed(html)
    found = [url for url in parsed.loads if remote(url)]
    for code in parsed.module_scripts:
        found += re.findall(r"""(?:import\s[^'"]*|import\(|url\(\s*|@import\s+)['"]?((?:https?:)?//[^'")\s]+)""", code)
        found += re.findall(r"""\.src\s*=\s*['"]((?:https?:)?//[^'"]+)""", code)
    return found


# --- the site ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "html"
    build_site(NOTEBOOKS, out)
    return out


def test_index_is_the_course_map_linking_every_notebook_page_with_its_title(site):
    index = page(site / "index.html")
    course_map = readme_course_map()
    body = (site / "index.html").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        info = notebook_info(path)
        assert ("", f"notebooks/{path.stem}.html") in index.links, f"the course map does not link {path.name}"
        assert (site / "notebooks" / f"{path.stem}.html").is_file()
        assert info.title.split(" · ")[-1] in "".join(page(site / "notebooks" / f"{path.stem}.html").text)
        if path.name in course_map:
            assert f'<td class="num">{course_map[path.name]["minutes"]}</td>' in body


def test_every_page_has_the_sidebar_previous_next_and_search(site):
    stems = [path.stem for path in NOTEBOOKS]
    for number, stem in enumerate(stems):
        parsed = page(site / "notebooks" / f"{stem}.html")
        hrefs = [href for _, href in parsed.links]
        for other in stems:  # the sidebar lists every notebook, and the index
            assert f"{other}.html" in hrefs or other == stem, f"{stem}: no sidebar link to {other}"
        assert "../index.html" in hrefs, f"{stem}: no link back to the course map"
        previous = "../index.html" if number == 0 else f"{stems[number - 1]}.html"
        assert ("left-prev", previous) in parsed.links, f"{stem}: previous should be {previous}"
        if number + 1 < len(stems):
            assert ("right-next", f"{stems[number + 1]}.html") in parsed.links, f"{stem}: no next link"
        assert "../search.html" in parsed.loads + hrefs or 'action="../search.html"' in \
            (site / "notebooks" / f"{stem}.html").read_text(encoding="utf-8"), f"{stem}: no search box"
    search_index = (site / "searchindex.js").read_text(encoding="utf-8")
    assert "conditioning" in search_index and "gradient" in search_index  # Sphinx's own, offline search


def test_no_page_loads_anything_from_the_network(site):
    pages = sorted(path for path in site.rglob("*.html") if "_static" not in path.parts)  # not the theme's macros
    assert len(pages) >= 4  # index, two notebooks, search
    for path in pages:
        html = path.read_text(encoding="utf-8")
        assert network_references(html) == [], f"{path.relative_to(site)} loads {network_references(html)}"
        for url in page(path).loads:  # and every local file it loads is there
            target = (path.parent / url.split("?")[0].split("#")[0]).resolve()
            assert target.exists(), f"{path.relative_to(site)} loads {url}, which is not in the site"
    for css in (site / "_static").rglob("*.css"):
        remote_urls = re.findall(r"""(?:url\(|@import)\s*['"]?((?:https?:)?//[^'")\s]+)""",
                                 css.read_text(encoding="utf-8", errors="replace"))
        assert remote_urls == [], f"{css.relative_to(site)} loads {remote_urls}"
    mathjax = site / "_static" / "mathjax"
    assert (mathjax / "MathJax.js").is_file() and (mathjax / "LICENSE").is_file()


def test_widgets_give_way_to_a_note_and_their_static_twins_stay(site):
    for path in NOTEBOOKS:
        nb = read_notebook(path)
        html = (site / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
        assert "widget-view+json" not in html and "widget-state+json" not in html
        playgrounds = sum(1 for cell in nb.cells for output in cell.get("outputs", [])
                          if str(output.get("data", {}).get("text/plain", "")).startswith(PLAYGROUND_REPRS))
        assert html.count('class="widget-note"') == playgrounds >= 1, path.name
        figures = sum(1 for cell in nb.cells for output in cell.get("outputs", [])
                      if "image/png" in output.get("data", {}))
        images = [src for src in page(site / "notebooks" / f"{path.stem}.html").loads if src.endswith(".png")]
        assert len(images) == figures, f"{path.name}: {len(images)} figures on the page, {figures} in the notebook"


def test_static_notebook_keeps_progress_text_out_and_changes_no_other_output():
    nb = read_notebook(course_notebooks()[7])  # 08: a progress-bar widget and a playground
    static = static_notebook(nb)
    assert "widgets" in nb.metadata and "widgets" not in static.metadata
    before = [o for c in nb.cells for o in c.get("outputs", []) if WIDGET_VIEW not in o.get("data", {})]
    after = [o for c in static.cells for o in c.get("outputs", []) if "widget-note" not in str(o.get("data", {}))]
    assert before == after
    assert sum("widget-note" in str(o.get("data", {})) for c in static.cells for o in c.get("outputs", [])) == 1


def test_links_between_notebooks_point_to_their_pages(tmp_path):
    first, second = NOTEBOOKS
    nb = read_notebook(first)
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"See [the next notebook]({second.name}) and [the seed](https://example.org/a.ipynb)."))
    source = tmp_path / first.name
    nbformat.write(nb, str(source))
    build_site([source, second], tmp_path / "site", images=tmp_path / "no-images")
    links = [href for _, href in page(tmp_path / "site" / "notebooks" / f"{first.stem}.html").links]
    assert f"{second.stem}.html" in links or f"#{second.stem}" in links or any(
        href.startswith(f"{second.stem}.html") for href in links)
    assert "https://example.org/a.ipynb" in links


def test_build_site_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="notebooks"):
        build_site([], tmp_path / "site")
    with pytest.raises(FileNotFoundError, match="no_such.ipynb"):
        build_site([tmp_path / "no_such.ipynb"], tmp_path / "site")


# --- in a browser with the network off --------------------------------------------------------------------------

def chromium():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        missing("Chromium is not installed (Debian: apt-get install chromium; `make browser-install` as root)")
    return binary


def offline_dom(url, tmp_path, budget_ms=20000):
    """The DOM of ``url`` after scripts ran, in headless Chromium with no name resolution and a dead proxy."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium-profile'}",
               '--host-resolver-rules=MAP * ~NOTFOUND', "--proxy-server=http://127.0.0.1:9",
               f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def visible_text(dom):
    parsed = _Page()
    parsed.feed(dom)
    return "".join(parsed.text)


def display_math_count(path):
    """How many $$...$$ blocks a notebook's markdown holds."""
    markdown = "".join(cell_source(cell) for cell in read_notebook(path).cells if cell.cell_type == "markdown")
    return markdown.count("$$") // 2


PROBE = """<script>
window.addEventListener("load", function () {
  MathJax.Hub.Queue(function () {
    var pre = document.querySelector("div.cell_input pre"), box = pre.parentElement;
    var probe = document.createElement("div");
    probe.id = "course-probe";
    probe.setAttribute("data-overflow", getComputedStyle(pre).overflowX);
    probe.setAttribute("data-wide", String(pre.scrollWidth > pre.clientWidth));
    document.body.appendChild(probe);
  });
});
</script></body>"""


def test_math_renders_in_chromium_with_the_network_off(site, tmp_path):
    stem = NOTEBOOKS[0].stem
    html = (site / "notebooks" / f"{stem}.html").read_text(encoding="utf-8")
    probe = site / "notebooks" / f"{stem}.probe.html"  # beside the page, so its relative paths hold
    probe.write_text(html.replace("</body>", PROBE, 1), encoding="utf-8")
    dom = offline_dom(probe.as_uri(), tmp_path)
    expected = display_math_count(NOTEBOOKS[0])
    assert expected >= 1
    rendered = len(re.findall(r'class="MathJax_Display"', dom))
    assert rendered == expected, f"{rendered} of {expected} displayed formulas rendered by MathJax"
    assert 'class="MathJax_Error"' not in dom and "[Math Processing Error]" not in dom
    text = visible_text(dom)
    assert "$$" not in text and "\\[" not in text and "\\(" not in text, "raw TeX left on the page"
    found = re.search(r'id="course-probe" data-overflow="([^"]+)" data-wide="([^"]+)"', dom)
    assert found, "the probe script did not run"
    assert found.group(1) in ("auto", "scroll"), f"wide code lines are clipped (overflow-x: {found.group(1)})"


def test_index_renders_with_the_network_off(site, tmp_path):
    dom = offline_dom((site / "index.html").as_uri(), tmp_path)
    text = visible_text(dom)
    for path in NOTEBOOKS:
        assert notebook_info(path).title in text


def test_search_finds_pages_with_the_network_off(site, tmp_path):
    dom = offline_dom((site / "search.html").as_uri() + "?q=conditioning", tmp_path)
    found = re.search(r"found (\d+) pages? matching", dom)
    assert found and int(found.group(1)) >= 1, "Sphinx's search found nothing offline"
    assert f"notebooks/{NOTEBOOKS[1].stem}.html" in dom


# --- offline slides ---------------------------------------------------------------------------------------------

def test_offline_deck_references_no_network_script_or_style(tmp_path):
    deck = export_slides(NOTEBOOKS[0], tmp_path, exporter=slides_exporter(assets=VENDOR))
    html = deck.read_text(encoding="utf-8")
    assert network_references(html) == []
    loads = page(deck).loads
    assert {url.split("?")[0] for url in loads} == {
        f"{VENDOR}/jquery.min.js", f"{VENDOR}/require.js", f"{VENDOR}/MathJax/MathJax.js",
        f"{VENDOR}/reveal.js/dist/reveal.css", f"{VENDOR}/reveal.js/dist/theme/simple.css"}
    assert f'"{VENDOR}/reveal.js/dist/reveal.js"' in html and f'"{VENDOR}/reveal.js/plugin/notes/notes.js"' in html
    for cdn in ("unpkg", "jsdelivr", "cdnjs", "mermaid", "widget-state+json", "embed-amd"):
        assert cdn not in html, cdn


def test_default_deck_still_names_its_cdns(tmp_path):
    deck = export_slides(NOTEBOOKS[0], tmp_path, exporter=slides_exporter())
    assert network_references(deck.read_text(encoding="utf-8"))  # the check above can see a CDN


@pytest.fixture(scope="module")
def offline_slides(tmp_path_factory):
    absent = [package for package, items in NPM_ASSETS.items() for inside, _ in items
              if not (NPM_DIR / package / inside).exists()]
    if absent:
        missing(f"{NPM_DIR} lacks {', '.join(sorted(set(absent)))}: run `make slides-npm`")
    out = tmp_path_factory.mktemp("slides-offline")
    assert make_slides_main(["--offline", "--npm-dir", str(NPM_DIR), "--output-dir", str(out),
                             str(NOTEBOOKS[0])]) == 0
    return out / f"{NOTEBOOKS[0].stem}.slides.html"


def test_make_slides_offline_copies_everything_the_deck_loads(offline_slides):
    html = offline_slides.read_text(encoding="utf-8")
    required = page(offline_slides).loads + re.findall(r'"(vendor/reveal\.js/[^"]+\.js)"', html)
    assert len(required) >= 7
    for url in required:
        assert (offline_slides.parent / url.split("?")[0]).is_file(), f"the deck loads {url}, which was not copied"
    assert network_references(html) == []
    vendor = offline_slides.parent / VENDOR
    assert (vendor / "MathJax" / "LICENSE").is_file() and (vendor / "reveal.js" / "LICENSE").is_file()
    config = re.search(r"MathJax\.js\?config=([^,\"]+)", html).group(1)
    assert (vendor / "MathJax" / "config" / f"{config}.js").is_file()


def test_offline_deck_runs_in_chromium_with_the_network_off(offline_slides, tmp_path):
    dom = offline_dom(offline_slides.as_uri(), tmp_path)
    assert re.search(r'<div class="reveal [^"]*\bready\b', dom), "reveal.js did not start"
    rendered = len(re.findall(r'class="MathJax_Display"', dom))
    assert rendered == display_math_count(NOTEBOOKS[0]), rendered
    assert 'class="MathJax_Error"' not in dom and "[Math Processing Error]" not in dom


def test_npm_pins_are_exact():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pins = re.search(r"^SLIDES_NPM_PACKAGES := (.+)$", makefile, flags=re.MULTILINE).group(1).split()
    assert sorted(pin.rsplit("@", 1)[0] for pin in pins) == sorted(NPM_ASSETS)
    assert all(re.fullmatch(r"[a-z.]+@\d+\.\d+\.\d+", pin) for pin in pins), pins
    installed = {package: json.loads((NPM_DIR / package / "package.json").read_text())["version"]
                 for package in NPM_ASSETS if (NPM_DIR / package / "package.json").is_file()}
    for pin in pins:
        name, version = pin.rsplit("@", 1)
        assert installed.get(name, version) == version, f"{NPM_DIR} holds {name} {installed[name]}, not {version}"
