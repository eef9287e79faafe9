"""tools/course_links.py: every notebook's set-up cell says what to install when course_lib is missing, and the
Colab/Binder links of docs/install.md follow the one address in pyproject.toml."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import course_links  # noqa: E402
from tools.course import course_notebooks  # noqa: E402

PLACEHOLDER = "https://github.com/COURSE-OWNER/choosing-an-optimizer"


def _setup_source(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "".join(nb["cells"][course_links.setup_cell_index(nb)]["source"])


def test_nothing_is_stale():
    assert course_links.stale_files() == [], "run: python tools/course_links.py --write"


@pytest.mark.parametrize("notebook", course_notebooks(), ids=lambda path: path.stem[:2])
def test_every_set_up_cell_opens_with_the_check(notebook):
    source = _setup_source(notebook)
    lines = source.splitlines(keepends=True)
    if lines[0].startswith("# NBVAL"):
        lines = lines[1:]
    assert "".join(lines).startswith("".join(course_links.setup_snippet(course_links.course_url())))
    assert "from course_lib" in source  # the check comes before the cell's own imports


def _run_setup_lines(tmp_path, hide_course_lib: bool):
    """The snippet in a fresh interpreter, in a folder outside the repository; ``-S`` (no site-packages) makes
    course_lib missing, as in a kernel where it was never installed."""
    code = "".join(course_links.setup_snippet(course_links.course_url()))
    command = [sys.executable, *(["-S"] if hide_course_lib else []), "-c", code]
    env = {"PATH": "/usr/bin:/bin", **({} if hide_course_lib else {"PYTHONPATH": str(ROOT)})}
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)


def test_the_check_says_what_to_run_when_course_lib_is_missing(tmp_path):
    result = _run_setup_lines(tmp_path, hide_course_lib=True)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()
    assert message[-4].startswith("ModuleNotFoundError: course_lib is not installed in this kernel.")
    assert message[-3] == ("  on Colab (keeps Colab's torch):  %pip install --no-deps "
                           f'"course_lib @ git+{PLACEHOLDER}" '
                           "mnist1d==0.0.2.post1 lion-pytorch==0.2.5 schedulefree==1.4.1")
    assert message[-2] == f'  anywhere else:  %pip install "course_lib[course] @ git+{PLACEHOLDER}"'
    assert message[-1] == "or, in a clone of the course, `make lab` (docs/install.md)."


def test_the_check_is_silent_when_course_lib_is_there(tmp_path):
    result = _run_setup_lines(tmp_path, hide_course_lib=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_colab_line_pins_the_tested_versions_and_keeps_torch():
    pins = course_links.pins()
    command = course_links.colab_command(PLACEHOLDER)
    assert command.startswith("pip install --no-deps ")  # nothing Colab has (torch above all) is reinstalled
    for name in course_links.COLAB_PACKAGES:
        assert f"{name}=={pins[name]}" in command.split()
    assert "torch" not in command.replace("lion-pytorch", "")


def _copy_of_the_course(tmp_path) -> Path:
    root = tmp_path / "course"
    for name in ("pyproject.toml", "requirements.txt", course_links.DOCS):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    (root / "notebooks").mkdir()
    for path in course_notebooks():
        shutil.copy2(path, root / "notebooks" / path.name)
    return root


def test_a_new_address_is_one_edit_and_one_command(tmp_path):
    root = _copy_of_the_course(tmp_path)
    pyproject = root / "pyproject.toml"
    new = "https://github.com/someone/optimizers-course"
    pyproject.write_text(pyproject.read_text().replace(PLACEHOLDER, new))
    before = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in course_notebooks(root)}
    stale = course_links.stale_files(root, write=True)
    assert len(stale) == len(course_notebooks()) + 1  # every notebook and docs/install.md
    assert course_links.stale_files(root) == []
    docs = (root / course_links.DOCS).read_text()
    assert PLACEHOLDER not in docs
    assert "https://colab.research.google.com/github/someone/optimizers-course/blob/main/notebooks/01_" in docs
    assert "https://mybinder.org/v2/gh/someone/optimizers-course/HEAD" in docs
    for path in course_notebooks(root):
        after = json.loads(path.read_text(encoding="utf-8"))
        index = course_links.setup_cell_index(after)
        assert f"git+{new}" in "".join(after["cells"][index]["source"])
        old = before[path.name]
        old["cells"][index]["source"] = after["cells"][index]["source"]
        assert old == after, f"{path.name}: something besides the set-up cell's source changed"
        assert "".join(after["cells"][index]["source"]).count("importlib.util.find_spec") == 1


def test_the_readme_gets_the_block_once_it_holds_the_markers(tmp_path):
    root = _copy_of_the_course(tmp_path)
    readme = root / course_links.README
    readme.write_text("# The course\n\nno markers here\n")
    assert course_links.stale_files(root) == []  # optional in the README
    readme.write_text(f"# The course\n\n{course_links.DOCS_BEGIN}\n{course_links.DOCS_END}\n\nmore\n")
    assert course_links.stale_files(root, write=True) == [readme]
    text = readme.read_text()
    assert text.startswith("# The course\n\n") and text.endswith("\n\nmore\n")
    assert course_links.badges(PLACEHOLDER) in text and course_links.stale_files(root) == []


def test_an_address_that_is_not_a_github_repository_is_refused(tmp_path):
    root = _copy_of_the_course(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(PLACEHOLDER, "https://example.org/course"))
    with pytest.raises(ValueError, match="must be https://github.com/OWNER/REPO"):
        course_links.stale_files(root)
