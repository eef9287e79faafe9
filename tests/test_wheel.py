"""A built wheel, installed with ``[course]`` into a fresh virtual environment, runs every notebook from a folder
outside the repository.

Offline and quick: the wheel is built from a copy of the package's files with the setuptools already installed, and
the new environment sees this environment's packages through a ``.pth`` file (a folder of links to them, course_lib
left out), so ``pip install --no-index`` finds every dependency already installed, checks the wheel's bounds against
the tested versions, downloads nothing and installs the wheel alone. Each notebook then runs under nbval, as
``make nbval`` runs it (outputs compared, the same sanitizers), in its own empty temporary folder, on a kernel of the
new environment (``--nbval-current-env``) with no PYTHONPATH: it can only import the installed wheel, and an appended
last cell asserts that it did. (nbval, not nbclient: nbclient's asyncio client at times waits its whole cell timeout
after a widget playground cell before it sees the next reply; seen here in 2 of 3 runs of notebook 05 on a loaded
machine, never under nbval.)

About half a minute per pytest-xdist worker to build and install, then the notebooks' own run time, spread over the
workers. ``pytest -m "not wheel"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.course import course_notebooks  # noqa: E402

pytestmark = pytest.mark.wheel
PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def _clean_env(**extra) -> dict[str, str]:
    """This process's environment without what would let the repository or pip's configuration in."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PIP_") and key not in ("PYTHONPATH", "MPLBACKEND", "VIRTUAL_ENV")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONHASHSEED="0", **extra)
    return env


def _run(command, **kwargs):
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the package's files (the repository stays untouched: no build/ or egg-info)."""
    base = tmp_path_factory.mktemp("wheel-build")
    source = base / "source"
    shutil.copytree(ROOT / "course_lib", source / "course_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in PACKAGE_FILES:
        shutil.copy2(ROOT / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", base / "dist", source], env=_clean_env(), cwd=base)
    (wheel,) = (base / "dist").glob("course_lib-*.whl")
    return wheel


@pytest.fixture(scope="session")
def wheel_venv(built_wheel, tmp_path_factory) -> Path:
    """The python of a fresh venv where ``pip install --no-index <wheel>[course]`` succeeded."""
    base = tmp_path_factory.mktemp("wheel-venv")
    _run([sys.executable, "-m", "venv", "--without-pip", base / "venv"])
    python = base / "venv" / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    # this environment's packages, course_lib's own files and editable-install hooks left out
    view = base / "installed-here"
    view.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        lowered = entry.name.lower()
        if not lowered.startswith(("course_lib", "__editable__", "__pycache__")) and entry.suffix != ".pth":
            (view / entry.name).symlink_to(entry)
    (site / "installed-here.pth").write_text(f"{view}\n")
    extras = f"course_lib[course] @ {built_wheel.as_uri()}"
    _run([python, "-m", "pip", "install", "--no-index", "--find-links", built_wheel.parent, extras],
         env=_clean_env(), cwd=base)
    return python


def test_the_wheel_holds_the_package_its_data_and_its_metadata(built_wheel):
    with zipfile.ZipFile(built_wheel) as wheel:
        names = set(wheel.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(metadata).decode()
    assert "course_lib/results/where_it_matters.json" in names
    assert {"course_lib/__init__.py", "course_lib/labs/__init__.py", "course_lib/labs/where_it_matters.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "notebooks/", "tools/"))]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    lines = metadata.splitlines()
    assert "License-Expression: MIT" in lines
    assert any(line.startswith("Project-URL: Repository, https://github.com/") for line in lines)
    assert "Requires-Dist: torch<2.14,>=2.13" in lines
    assert "Provides-Extra: course" in lines
    assert 'Requires-Dist: mnist1d==0.0.2.post1; extra == "course"' in lines


def test_the_new_environment_imports_course_lib_from_the_wheel(wheel_venv, tmp_path):
    code = textwrap.dedent("""
        import importlib.metadata, importlib.resources, json, sys
        import course_lib
        from course_lib import data
        from course_lib.labs import where_it_matters
        print(json.dumps({"file": course_lib.__file__, "prefix": sys.prefix,
                          "installer": importlib.metadata.distribution("course_lib").read_text("INSTALLER"),
                          "results": len(where_it_matters.load_results()["workloads"]),
                          "mnist1d": data.mnist1d().sizes}))
    """)
    found = json.loads(_run([wheel_venv, "-c", code], env=_clean_env(), cwd=tmp_path).stdout)
    assert Path(found["file"]).is_relative_to(found["prefix"]) and "site-packages" in found["file"]
    assert not Path(found["file"]).is_relative_to(ROOT)
    assert found["installer"].strip() == "pip"
    assert found["results"] == 2
    assert found["mnist1d"] == {"train": 3200, "val": 800, "test": 1000}


@pytest.mark.parametrize("notebook", course_notebooks(), ids=lambda path: path.stem[:2])
def test_every_notebook_runs_from_a_folder_outside_the_repository(notebook, wheel_venv, tmp_path):
    folder = tmp_path / "anywhere"
    folder.mkdir()
    for harness in ("conftest.py", "sanitize.cfg"):  # nbval's set-up, as `make nbval` uses it
        shutil.copy2(ROOT / "notebooks" / harness, folder / harness)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    prefix = str(wheel_venv.parents[1])
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "from-the-wheel", "metadata": {},
                        "outputs": [], "source": (
                            "import sys\n\nimport course_lib\n\n"
                            f"assert sys.prefix == {prefix!r}, sys.prefix  # the kernel is the new environment's\n"
                            "assert course_lib.__file__.startswith(sys.prefix + '/lib/'), course_lib.__file__")})
    (folder / notebook.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run([str(wheel_venv), "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with",
                             "sanitize.cfg", "-p", "no:cacheprovider", "-q", notebook.name],
                            capture_output=True, text=True, env=_clean_env(), cwd=folder)
    assert result.returncode == 0, f"{notebook.name} from the wheel:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    cells = sum(cell["cell_type"] == "code" for cell in nb["cells"])
    assert f"{cells} passed" in result.stdout  # every cell ran, the appended check among them
