"""A built wheel, installed with ``[course]`` into a fresh virtual environment, runs every notebook from a folder
outside the repository.

Offline and quick: the wheel is built from a copy of the package's files with the setuptools already installed, and
the new environment sees this environment's packages through a ``.pth`` file (a folder of links to them, course_lib
left out), so ``pip install --no-index`` finds every dependency already installed, checks the wheel's bounds against
the tested versions, downloads nothing and installs the wheel alone. Each notebook then runs in its own empty
temporary folder on a kernel of the new environment, with no PYTHONPATH: it can only import the installed wheel, and
its last (appended) cell prints where course_lib came from. Executing is the test; nbval compares the outputs.

About a minute per worker to build and install, then the notebooks' own run time (about 2.5 minutes on 2 idle cores,
spread over pytest-xdist's workers). ``pytest -m "not wheel"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import warnings
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.course import course_notebooks  # noqa: E402

pytestmark = pytest.mark.wheel
PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")
#: Seconds a cell may run. The slowest cell takes about 4 s on the idle course machine; a cell that waits far longer
#: is the kernel stall benchmarks/course_time.py describes (kernel and client both idle), and the notebook is run once
#: more, with a warning that names it (as course_time.py does). Any other error fails at once.
CELL_TIMEOUT = 120


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
    shutil.copy2(notebook, folder / notebook.name)
    kernels = tmp_path / "jupyter" / "kernels" / "course-wheel"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(wheel_venv), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "course_lib from the wheel", "language": "python"}))
    script = textwrap.dedent(f"""
        import sys
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        def run():
            nb = nbformat.read(sys.argv[1], as_version=4)
            nb.cells.append(nbformat.v4.new_code_cell("import course_lib, sys; print(course_lib.__file__, sys.prefix)"))
            NotebookClient(nb, kernel_name="course-wheel", timeout={CELL_TIMEOUT},
                           resources={{"metadata": {{"path": sys.argv[2]}}}}).execute()
            return nb

        try:
            nb = run()
        except (CellTimeoutError, DeadKernelError) as error:
            print("retried:", type(error).__name__, str(error).strip().splitlines()[0])
            nb = run()
        print(nb.cells[-1].outputs[0]["text"])
    """)
    env = _clean_env(JUPYTER_PATH=str(tmp_path / "jupyter"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
                     JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_PLATFORM_DIRS="1")
    result = _run([wheel_venv, "-c", script, folder / notebook.name, folder], env=env, cwd=folder)
    for line in result.stdout.splitlines():
        if line.startswith("retried:"):
            warnings.warn(f"{notebook.name} was run once more after a stall ({line})", stacklevel=1)
    imported_from, prefix = result.stdout.split()[-2:]
    assert Path(imported_from).is_relative_to(prefix)
    assert Path(prefix).resolve() == wheel_venv.parents[1].resolve()  # the new environment, not this one
