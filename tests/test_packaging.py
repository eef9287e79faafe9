"""pyproject.toml, requirements.txt and binder/: what `pip install` gets is the set the tests run.

requirements.txt pins each package exactly (what CI installs); pyproject.toml's bounds must admit every pin, and name
every pinned package, so that `pip install course_lib[dev]` can resolve to exactly the tested set.
"""

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _pins(path: Path) -> dict[str, Version]:
    """``name==version`` lines of a requirements file (comments and options skipped), names canonical."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"requirements.txt must pin exactly: {line!r}"
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


PINS = _pins(ROOT / "requirements.txt")


def _declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) for every dependency pyproject.toml declares, the extras' self-references left out."""
    found = [("dependencies", Requirement(line)) for line in PROJECT["dependencies"]]
    for extra, lines in PROJECT["optional-dependencies"].items():
        found += [(f"[{extra}]", Requirement(line)) for line in lines
                  if canonicalize_name(Requirement(line).name) != canonicalize_name(PROJECT["name"])]
    return found


@pytest.mark.parametrize("where, requirement", _declared(), ids=lambda value: str(value))
def test_every_bound_admits_the_version_requirements_txt_pins(where, requirement):
    name = canonicalize_name(requirement.name)
    assert name in PINS, f"{requirement} ({where}) has no pin in requirements.txt: CI does not test it"
    assert requirement.specifier, f"{requirement.name} ({where}) is unbounded: pip may install an untested release"
    assert requirement.specifier.contains(PINS[name], prereleases=True), \
        f"{requirement} ({where}) excludes requirements.txt's {requirement.name}=={PINS[name]}"


def test_every_pinned_package_is_a_dependency_or_in_an_extra():
    declared = {canonicalize_name(requirement.name) for _, requirement in _declared()}
    assert not set(PINS) - declared, "pinned in requirements.txt, but in no dependency list of pyproject.toml"


def test_torch_and_numpy_are_held_to_the_tested_minor_release():
    # the notebooks print numbers torch and NumPy compute: a new minor release is untested, not merely newer
    for name in ("torch", "numpy"):
        (requirement,) = [r for _, r in _declared() if canonicalize_name(r.name) == name]
        pinned = PINS[name]
        next_minor = Version(f"{pinned.major}.{pinned.minor + 1}")
        assert not requirement.specifier.contains(next_minor), f"{requirement} admits the untested {next_minor}"
        assert requirement.specifier.contains(Version(f"{pinned}+cpu")), f"{requirement} refuses the CPU build"


def test_the_course_extra_holds_what_only_the_notebooks_need():
    core = {canonicalize_name(Requirement(line).name) for line in PROJECT["dependencies"]}
    course = {canonicalize_name(Requirement(line).name) for line in PROJECT["optional-dependencies"]["course"]}
    assert core == {"torch", "numpy", "scipy", "matplotlib", "scikit-learn", "tqdm", "ipywidgets"}
    assert {"mnist1d", "requests", "lion-pytorch", "schedulefree", "pytorch-optimizer", "nbgrader", "jupyterlab",
            "ipykernel"} <= course
    dev = [Requirement(line) for line in PROJECT["optional-dependencies"]["dev"]]
    assert any(r.name == PROJECT["name"] and {"course", "site"} <= r.extras for r in dev), (
        "[dev] must include [course] and [site] (make test builds the site)")


def test_license_is_an_spdx_expression_with_its_file():
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert not any(c.startswith("License ::") for c in PROJECT.get("classifiers", [])), "PEP 639: no license classifier"
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains("76.1") and setuptools.specifier.contains("77.0"), \
        "setuptools understands license = 'MIT' and license-files from version 77"
    assert setuptools.specifier.contains(version("setuptools")), "the installed setuptools cannot build the wheel"


def test_the_project_url_is_set_in_one_place():
    urls = PROJECT["urls"]
    assert list(urls) == ["Repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", urls["Repository"])


def test_the_results_the_notebooks_read_are_package_data():
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["course_lib"]
    shipped = {path.relative_to(ROOT / "course_lib").as_posix() for pattern in package_data
               for path in (ROOT / "course_lib").glob(pattern)}
    assert shipped == {"results/where_it_matters.json", "results/controls.json"}


# ------------------------------------------------------------------------------------------
# course_lib without the [course] extra
# ------------------------------------------------------------------------------------------
def test_mnist1d_without_the_package_names_the_extra_to_install(monkeypatch, tmp_path):
    import importlib.metadata

    from course_lib import data

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # `import mnist1d` fails too, as when it is not installed
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install 'course_lib[course]'")) as raised:
        data.mnist1d()
    assert raised.value.name == "mnist1d"


# ------------------------------------------------------------------------------------------
# binder/: what a hosted copy (mybinder.org, repo2docker) installs
# ------------------------------------------------------------------------------------------
def test_binder_installs_the_pinned_set_with_the_cpu_build_of_torch():
    lines = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == ["--extra-index-url https://download.pytorch.org/whl/cpu", "-r ../requirements.txt"]
    assert (ROOT / "binder" / "../requirements.txt").resolve() == ROOT / "requirements.txt"
    # a local version (+cpu) sorts above the plain release, so pip takes the CPU index's build of the pinned torch
    assert SpecifierSet(f"=={PINS['torch']}").contains(Version(f"{PINS['torch']}+cpu"))
    assert Version(f"{PINS['torch']}+cpu") > PINS["torch"]


def test_binder_runs_the_tested_python():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"
    assert SpecifierSet(PROJECT["requires-python"]).contains("3.11")


def test_binder_post_build_installs_course_lib_and_the_lab_settings():
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "repo2docker runs postBuild only when it is executable"
    mode = subprocess.run(["git", "ls-files", "--stage", "binder/postBuild"], cwd=ROOT, capture_output=True,
                          text=True).stdout.split()
    assert not mode or mode[0] == "100755", "postBuild is committed without its executable bit"
    subprocess.run(["bash", "-n", str(post_build)], check=True)  # its syntax
    text = post_build.read_text()
    assert "pip install --no-deps ." in text  # the dependencies are binder/requirements.txt's, left as they are
    assert "tools/jupyterlab_overrides.json" in text and (ROOT / "tools" / "jupyterlab_overrides.json").exists()
