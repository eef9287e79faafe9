"""The repository's tooling: the commands without make (docs/windows.md) are the Makefile's, the CI workflow runs
make test on Linux and macOS, make test-portable covers other kernels and thread counts, and JupyterLab starts
without the news pop-up."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import portable_nbval  # noqa: E402

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
NOTEBOOK_GLOB = "notebooks/[0-9]*.ipynb"


# --------------------------------------------------------------------------------------------------------------------
# the Makefile's commands, as make would run them, and the commands without make (docs/windows.md)
# --------------------------------------------------------------------------------------------------------------------
def _make_commands(*targets: str) -> list[list[str]]:
    """Every command ``make -n -B targets`` prints (with ``VENV=.venv``), split into words; environment prefixes
    (``env -u MPLBACKEND PYTHONHASHSEED=0``, ``MPLBACKEND=Agg``) are kept as words."""
    printed = subprocess.run(["make", "-n", "-B", "VENV=.venv", *targets], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    commands = []
    for line in printed.replace("\\\n", " ").splitlines():
        for part in re.split(r"\s*\|\|\s*|\s*&&\s*", line.strip()):
            if part:
                commands.append(shlex.split(part))
    return commands


def _strip_environment(words: list[str]) -> tuple[list[str], dict]:
    """``words`` without a leading ``env -u NAME`` / ``NAME=value`` prefix, and that prefix as {name: value or None}."""
    env, index = {}, 0
    if words[:1] == ["env"]:
        index = 1
    while index < len(words):
        if words[index] == "-u":
            env[words[index + 1]] = None
            index += 2
        elif re.fullmatch(r"[A-Z_]+=\S*", words[index]):
            name, value = words[index].split("=", 1)
            env[name] = value
            index += 1
        else:
            break
    return words[index:], env


def _notebooks_as_glob(words: list[str]) -> list[str]:
    """The sorted list of course notebooks (what make expands) replaced by the glob it came from."""
    notebooks = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(NOTEBOOK_GLOB))
    out, index = [], 0
    while index < len(words):
        if words[index:index + len(notebooks)] == notebooks:
            out.append(NOTEBOOK_GLOB)
            index += len(notebooks)
        else:
            out.append(words[index])
            index += 1
    return out


def _makefile_commands() -> dict[str, tuple[list[str], dict]]:
    """The Makefile's commands for set-up, the lab and the tests, by kind."""
    kinds = {}
    for words in _make_commands("venv", "lab", "lint", "unit", "nbval"):
        words, env = _strip_environment(words)
        words = [w for w in _notebooks_as_glob(words) if w != "--allow-root"]  # --allow-root: only as root
        text = " ".join(words)
        for kind, pattern in _KINDS.items():
            if re.search(pattern, text):
                kinds.setdefault(kind, (words, env))
    return kinds


_KINDS = {
    "venv": r"-m venv ",
    "requirements": r"-m pip install .*-r requirements.txt",
    "editable": r"-m pip install .*-e \.",
    "kernel": r"-m ipykernel install",
    "overrides": r"^(cp|Copy-Item) .*overrides\.json",
    "lab": r"jupyter lab",
    "ruff": r"ruff check",
    "unit": r"-m pytest tests",
    "nbval": r"-m pytest --nbval",
}


def _windows_page() -> str:
    """docs/windows.md, the PowerShell commands that do what the Makefile does (the README links to it)."""
    return (ROOT / "docs" / "windows.md").read_text(encoding="utf-8")


def _windows_commands() -> tuple[dict[str, tuple[list[str], dict]], str]:
    """The PowerShell commands of docs/windows.md, by kind, with the environment each one runs in
    (PowerShell's ``$env:NAME = "value"`` and ``Remove-Item Env:NAME`` carry over to later commands)."""
    section = _windows_page()
    blocks = re.findall(r"```powershell\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "expected two PowerShell blocks: set-up and tests"
    kinds, env = {}, {}
    for line in "\n".join(blocks).splitlines():
        for statement in (s.strip() for s in line.split(";")):
            if not statement:
                continue
            if m := re.fullmatch(r'\$env:(\w+) = "([^"]*)"', statement):
                env[m.group(1)] = m.group(2)
                continue
            if m := re.fullmatch(r"Remove-Item Env:(\w+)( -ErrorAction SilentlyContinue)?", statement):
                env[m.group(1)] = None
                continue
            statement = statement.replace("(Get-Item notebooks\\[0-9]*.ipynb).FullName", NOTEBOOK_GLOB)
            words = [w.replace("\\", "/") for w in shlex.split(statement.replace("\\", "/"))]
            words = [re.sub(r"^\.venv/Scripts/", ".venv/bin/", w) for w in words]
            text = " ".join(words)
            for kind, pattern in _KINDS.items():
                if re.search(pattern, text):
                    kinds.setdefault(kind, (words, dict(env)))
    return kinds, section


@needs_make
def test_the_windows_commands_without_make_are_the_makefiles():
    """Same requirements, same install, same kernel, same pytest invocations and flags, same environment."""
    ours, section = _windows_commands()
    theirs = _makefile_commands()
    assert set(ours) == set(theirs) == set(_KINDS)
    for kind in ("requirements", "editable", "kernel", "ruff", "unit", "nbval"):
        assert ours[kind][0] == theirs[kind][0], kind
    assert ours["venv"][0][1:] == theirs["venv"][0][1:]  # `py -m venv .venv` for `python3 -m venv .venv`
    assert ours["lab"][0] == theirs["lab"][0]
    assert ours["overrides"][0][1:] == theirs["overrides"][0][1:]  # Copy-Item for cp, same source and destination
    # the environment: Agg for the unit tests only; the notebooks with the inline backend and a fixed hash seed
    assert theirs["unit"][1] == {"MPLBACKEND": "Agg"} and ours["unit"][1].get("MPLBACKEND") == "Agg"
    for kind in ("nbval", "lab"):
        assert theirs[kind][1] == {"MPLBACKEND": None, "PYTHONHASHSEED": "0"}
        assert {k: ours[kind][1].get(k) for k in theirs[kind][1]} == theirs[kind][1], kind
    assert "make test-portable" not in section or "Linux" in section


def test_the_windows_commands_parse_a_broken_copy_as_different(monkeypatch):
    """The comparison above can fail: a docs/windows.md that drops a flag no longer matches."""
    ours, _ = _windows_commands()
    assert "--dist" in ours["nbval"][0]
    original = Path.read_text

    def without_dist(self, *args, **kwargs):
        text = original(self, *args, **kwargs)
        return text.replace("-n 2 --dist loadscope (Get-Item", "-n 2 (Get-Item") if self.name == "windows.md" else text

    monkeypatch.setattr(Path, "read_text", without_dist)
    assert "--dist" not in _windows_commands()[0]["nbval"][0]


# --------------------------------------------------------------------------------------------------------------------
# CI: .ci/run and the GitHub Actions workflow
# --------------------------------------------------------------------------------------------------------------------
def test_ci_runs_make_test_then_make_test_portable():
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert "set -euo pipefail" in commands
    assert commands.index("make test") < commands.index("make test-portable")


def _workflow() -> dict:
    text = (ROOT / ".github/workflows/test.yml").read_text()
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with jupyter_events, so it is in the venv
        pytest.skip("PyYAML is not installed")
    workflow = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def test_the_github_workflow_runs_make_test_on_linux_and_macos():
    workflow = _workflow()
    assert {"push", "pull_request"} <= set(workflow["on"])
    (job,) = workflow["jobs"].values()
    systems = job["strategy"]["matrix"]["os"]
    assert job["runs-on"] == "${{ matrix.os }}"
    assert any(s.startswith("ubuntu-") for s in systems) and any(s.startswith("macos-") for s in systems)
    runs = [step for step in job["steps"] if "run" in step]
    tests = [step for step in runs if shlex.split(step["run"])[:2] == ["make", "test"]]
    assert len(tests) == 1 and "if" not in tests[0]  # on every system of the matrix
    assert any(step.get("uses", "").startswith("actions/checkout@") for step in job["steps"])
    python = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"
    portable = [step for step in runs if shlex.split(step["run"])[:2] == ["make", "test-portable"]]
    assert len(portable) == 1 and portable[0]["if"] == "runner.os == 'Linux'"
    assert job["timeout-minutes"] <= 90


# --------------------------------------------------------------------------------------------------------------------
# make test-portable
# --------------------------------------------------------------------------------------------------------------------
def test_portable_settings_cover_two_blas_kernels_one_and_two_threads_and_no_simd():
    envs = [s.env for s in portable_nbval.SETTINGS]
    assert len({e["OPENBLAS_CORETYPE"] for e in envs if "OPENBLAS_CORETYPE" in e}) >= 2
    assert {e.get("OMP_NUM_THREADS") for e in envs} >= {"1", "2"}
    assert any(e.get("ATEN_CPU_CAPABILITY") == "default" for e in envs)


@needs_make
def test_make_test_portable_runs_the_nbval_command_of_make_test():
    (nbval,) = [w for w in _make_commands("nbval") if "--nbval" in w]
    (portable,) = [w for w in _make_commands("test-portable") if "tools/portable_nbval.py" in w]
    command = portable[portable.index("--") + 1:]
    assert [w for w in command if w != "-q"] == _strip_environment(nbval)[0]
    assert _strip_environment(portable)[1] == _strip_environment(nbval)[1]


def test_portable_runner_uses_the_fallback_kernel_only_where_the_cpu_lacks_one(monkeypatch):
    skylake = next(s for s in portable_nbval.SETTINGS if s.env.get("OPENBLAS_CORETYPE") == "SkylakeX")
    monkeypatch.setattr(portable_nbval, "cpu_runs", lambda coretype: True)
    assert portable_nbval.environment(skylake) == (skylake.env, "")
    monkeypatch.setattr(portable_nbval, "cpu_runs", lambda coretype: coretype != "SkylakeX")
    env, note = portable_nbval.environment(skylake)
    assert env == {**skylake.env, "OPENBLAS_CORETYPE": "Sandybridge"} and "cannot run" in note


def test_portable_runner_runs_every_setting_and_fails_if_one_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(portable_nbval, "cpu_runs", lambda coretype: True)
    record = tmp_path / "seen.jsonl"
    script = ("import json, os, sys; names = ('OPENBLAS_CORETYPE', 'OMP_NUM_THREADS', 'ATEN_CPU_CAPABILITY'); "
              f"open({str(record)!r}, 'a').write(json.dumps({{n: os.environ.get(n) for n in names}}) + '\\n'); "
              "sys.exit(os.environ.get('OPENBLAS_CORETYPE') == 'Prescott')")
    code = portable_nbval.main(["--", sys.executable, "-c", script])
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert code == 1 and len(seen) == len(portable_nbval.SETTINGS)
    for setting, env in zip(portable_nbval.SETTINGS, seen):
        assert {k: v for k, v in env.items() if k in setting.env} == setting.env
    shown = capsys.readouterr().out
    assert re.search(r"prescott .* FAILED \(exit status 1\)", shown) and "haswell-1-thread" in shown
    assert portable_nbval.main(["--only", "haswell-1-thread", "--", sys.executable, "-c", "pass"]) == 0


def test_the_cpu_probe_runs_the_machines_own_kernel():
    import numpy  # noqa: F401  (the probe imports it in a child process)

    assert portable_nbval.cpu_runs("Haswell" if _x86() else "ARMV8") in (True, False)
    assert portable_nbval.cpu_runs("Prescott") or not _x86()  # every x86-64 CPU runs SSE3 kernels


def _x86() -> bool:
    import platform

    return platform.machine().lower() in ("x86_64", "amd64")


# --------------------------------------------------------------------------------------------------------------------
# JupyterLab without the news pop-up
# --------------------------------------------------------------------------------------------------------------------
def _lab_settings(tmp_path, overrides: dict) -> dict:
    """The notification plugin's settings schema as JupyterLab's server serves it with ``overrides`` installed."""
    from jupyterlab.commands import get_app_dir
    from jupyterlab_server.settings_utils import get_settings

    app_settings = tmp_path / "app-settings"
    app_settings.mkdir(parents=True)
    (app_settings / "overrides.json").write_text(json.dumps(overrides))
    user_settings = tmp_path / "user-settings"
    user_settings.mkdir(parents=True)
    settings, _ = get_settings(str(app_settings), str(Path(get_app_dir()) / "schemas"), str(user_settings),
                               labextensions_path=[])
    (plugin,) = [s for s in settings["settings"] if s["id"] == "@jupyterlab/apputils-extension:notification"]
    return plugin["schema"]["properties"]


def test_the_shipped_lab_settings_turn_the_news_question_off(tmp_path):
    shipped = json.loads((ROOT / "tools/jupyterlab_overrides.json").read_text())
    properties = _lab_settings(tmp_path, shipped)
    assert properties["fetchNews"]["default"] == "false"  # "Never": no question, no request
    assert properties["checkForUpdates"]["default"] is False
    assert {"const": "false", "title": "Never"} in properties["fetchNews"]["oneOf"]
    # a misspelt key would leave JupyterLab asking: the check above can fail
    assert _lab_settings(tmp_path / "typo", {"@jupyterlab/apputils-extension:notification":
                                             {"fetchnews": "false"}})["fetchNews"]["default"] == "none"


@needs_make
def test_make_lab_installs_the_settings_where_jupyterlab_reads_them():
    from jupyterlab.commands import get_app_dir

    (copy,) = [w for w in _make_commands("lab") if w[:1] == ["cp"]]
    assert copy[1] == "tools/jupyterlab_overrides.json"
    expected = Path(get_app_dir()).resolve().relative_to(Path(sys.prefix).resolve()) / "settings" / "overrides.json"
    assert Path(copy[2]) == Path(".venv") / expected


@pytest.mark.parametrize("script", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda path: path.name)
def test_every_benchmark_script_imports_and_explains_itself(script):
    # `--help` runs the script's imports and its argument parser, and nothing else: a renamed library function
    # (benchmarks/train_speed.py once imported a name that had lost its underscore) fails here, not at a user's desk.
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def test_course_time_reports_a_failure_whatever_its_message():
    # A notebook that failed with an empty message (a bare TimeoutError) once crashed the report itself.
    spec = importlib.util.spec_from_file_location("course_time", ROOT / "benchmarks" / "course_time.py")
    course_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course_time)
    assert course_time.first_line(TimeoutError()) == "TimeoutError"
    assert course_time.first_line(RuntimeError("Kernel died\nmore")) == "RuntimeError: Kernel died"


def test_course_time_sees_the_cpu_time_of_other_processes():
    """A process that is not a child of the timing script (an orphaned grandchild) shows up as other load."""
    spec = importlib.util.spec_from_file_location("course_time", ROOT / "benchmarks" / "course_time.py")
    course_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course_time)
    start = course_time.machine_cpu_seconds(), course_time.own_cpu_seconds()
    if start[0] is None:
        pytest.skip("no /proc/stat on this system")
    spin = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.6: pass"
    launcher = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {spin!r}])"
    subprocess.run([sys.executable, "-c", launcher], check=True)  # returns at once; its child spins on, orphaned
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.2)
        line = course_time.other_load(start, (course_time.machine_cpu_seconds(), course_time.own_cpu_seconds()))
        if float(line.split()[3]) >= 0.5:
            break
    assert float(line.split()[3]) >= 0.5, line
    assert course_time.other_load((None, 0.0), (None, 1.0)).endswith("not measured on this system")


def test_course_time_prints_the_load_and_the_yardstick_around_a_run(tmp_path, capsys):
    """A run of one small notebook ends with the other processes' load and the yardstick before and after."""
    import nbformat

    spec = importlib.util.spec_from_file_location("course_time", ROOT / "benchmarks" / "course_time.py")
    course_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course_time)
    notebook = tmp_path / "01_tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1 + 1)")]), str(notebook))
    assert course_time.main([str(notebook)]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert lines[1].split()[1:5] == ["wall", "s", "cells", "s"] and "yardstick ms" in lines[1]
    name, wall, cells, yardstick = lines[2].split()[:4]
    assert name == "01_tiny.ipynb" and float(cells) <= float(wall) and 0 < float(yardstick) < 1e4
    assert lines[3].startswith("total") and "within the 150 s target" in lines[3]
    assert lines[4].startswith(("other processes used", "the load of other processes is not measured"))
    low, high = (float(word) for word in re.findall(r"([0-9.]+) (?:to|ms)", lines[5]))
    assert lines[5].startswith("yardstick") and 0 < low <= high < 1e4


def test_course_time_runs_a_notebook_again_after_a_lost_kernel_but_not_after_an_error(monkeypatch, capsys, tmp_path):
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    spec = importlib.util.spec_from_file_location("course_time", ROOT / "benchmarks" / "course_time.py")
    course_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course_time)
    calls = []

    def flaky(path, timeout=course_time.CELL_TIMEOUT):
        calls.append(path.name)
        if path.name.startswith("01") and len(calls) == 1:
            raise CellTimeoutError("A cell timed out while it was being executed, after 180 seconds.")
        if path.name.startswith("02"):
            raise CellExecutionError("traceback", "ZeroDivisionError", "division by zero")
        return {"wall": 1.0, "cells": 0.5, "slowest": [(0, 0.5)]}

    monkeypatch.setattr(course_time, "time_notebook", flaky)
    assert course_time.main([str(tmp_path / "01_a.ipynb"), str(tmp_path / "02_b.ipynb")]) == 1
    out = capsys.readouterr().out
    assert calls == ["01_a.ipynb", "01_a.ipynb", "02_b.ipynb"]  # the lost run again, the failing one not
    assert "01_a.ipynb" in out and "a first run stopped: CellTimeoutError" in out
    assert "02_b.ipynb" in out and "FAILED" in out and "failed: 02_b.ipynb" in out
