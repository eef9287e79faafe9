"""The layout of course_lib (issue 11), checked: a core that loads no plotting, widgets or lab; labs that import the
core, plotting and widgets but never one another; no module reaching into another's private names; one playground
helper that every playground goes through.

The import checks run each module in a fresh interpreter and read ``sys.modules``; the others read the source
(Python's own ``ast``), lazy imports inside functions included.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"
#: The library a learner reuses: importable without matplotlib, ipywidgets, a notebook progress bar or any lab.
CORE = tuple(name for name in ("methods", "sweep", "benchmark", "rules", "optim", "fast_paths", "functions", "descent",
                               "data", "training", "models", "devices", "inputs", "schedules", "range_test")
             if (PACKAGE / f"{name}.py").exists())
#: The core modules a NumPy-only user imports: they load no torch either.
NUMPY_ONLY = ("methods", "sweep", "benchmark", "rules", "functions", "descent", "range_test")
#: What the core never imports, not even lazily inside a function (the core draws nothing).
DRAWING = ("course_lib.plotting", "course_lib.widgets", "course_lib.labs", "matplotlib", "ipywidgets")
#: Never loaded by importing a core module.
NOT_IN_THE_CORE = ("matplotlib", "ipywidgets", "tqdm.notebook", "course_lib.labs")
LABS = tuple(sorted(path.stem for path in (PACKAGE / "labs").glob("*.py") if path.stem != "__init__"))
SOURCES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    """``course_lib/labs/adam.py`` → ``course_lib.labs.adam`` (a package's ``__init__.py`` → the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of course_lib (rather than a name inside one)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def course_lib_imports(path: Path):
    """Every import in ``path`` of something in course_lib, lazy ones too: ``(line, module, name)``.

    ``module`` is the absolute module imported from; ``name`` is the name taken from it, or ``None`` when the
    import brings in a module itself (``import course_lib.rules``, ``from .. import rules``: then ``module`` is
    that module).
    """
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "course_lib":
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "course_lib":
                continue
            for alias in node.names:
                if is_module(f"{source}.{alias.name}"):
                    yield node.lineno, f"{source}.{alias.name}", None
                else:
                    yield node.lineno, source, alias.name


def private_names_reached(path: Path) -> list[str]:
    """``module._name`` imported from, or looked up on, another course_lib module (``_`` but not ``__``)."""
    here = module_name(path)
    found, bound = [], {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for line, module, name in course_lib_imports(path):
        if name is not None and name.startswith("_") and not name.startswith("__") and module != here:
            found.append(f"{path.relative_to(ROOT)}:{line}: imports {module}.{name}")
    for node in ast.walk(tree):  # names bound to course_lib modules: `from .. import rules`, `import x as y`
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound_name = alias.asname or alias.name.split(".")[0]
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("course_lib")):
                    bound[bound_name] = True
                elif isinstance(node, ast.Import) and alias.name.startswith("course_lib"):
                    bound[bound_name] = True
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {node.value.id}.{node.attr}")
    return found


def lab_imports(path: Path) -> list[str]:
    """The labs (``course_lib.labs.<name>``) that ``path`` imports, other than itself."""
    here = module_name(path)
    return sorted({module for _, module, _ in course_lib_imports(path)
                   if module.startswith("course_lib.labs.") and module != here})


def modules_loaded_by(module: str) -> set[str]:
    """``sys.modules`` after ``import <module>`` in a fresh interpreter that finds this checkout's course_lib."""
    code = ("import importlib, sys; loaded = importlib.import_module(sys.argv[1]); "
            "print(loaded.__file__); print('\\n'.join(sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("MPLBACKEND", None)  # nothing should need matplotlib; a set backend must not hide an import
    result = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, env=env,
                            cwd=ROOT, check=True)
    where, *loaded = result.stdout.splitlines()
    assert Path(where).is_relative_to(PACKAGE), f"{module} came from {where}, not this checkout"
    return set(loaded)


def loaded_among(loaded: set[str], names) -> list[str]:
    return sorted(m for m in loaded for name in names if m == name or m.startswith(name + "."))


# --------------------------------------------------------------------------------------
# What importing the core loads
# --------------------------------------------------------------------------------------
def test_the_core_and_the_labs_are_where_the_layout_says():
    assert set(CORE) >= {"rules", "optim", "functions", "descent", "data", "training"}
    assert set(LABS) >= {"gradient_descent", "stochastic", "momentum", "adaptive", "adam", "seed_classifier", "guide",
                         "fast_steps", "beyond_adam"}
    flat = {path.stem for path in PACKAGE.glob("*.py")}
    assert not flat & set(LABS), "a lab module is still at the top of course_lib/"


@pytest.mark.parametrize("name", CORE)
def test_a_core_module_loads_no_plotting_widgets_or_lab(name):
    loaded = modules_loaded_by(f"course_lib.{name}")
    assert not loaded_among(loaded, NOT_IN_THE_CORE)
    if name in NUMPY_ONLY:
        assert not loaded_among(loaded, ("torch",)), f"course_lib.{name} imports torch at load"


def drawing_imports(path: Path) -> list[str]:
    """Every import in ``path``, lazy ones inside functions too, of plotting, widgets, a lab or a drawing library."""
    found = [f"{path.name}:{line}: {module}" for line, module, _ in course_lib_imports(path)
             if any(module == name or module.startswith(name + ".") for name in DRAWING)]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
        found += [f"{path.name}:{node.lineno}: {name}" for name in names
                  if any(name == top or name.startswith(top + ".") for top in ("matplotlib", "ipywidgets"))]
    return found


@pytest.mark.parametrize("name", CORE)
def test_a_core_module_imports_no_plotting_widgets_or_lab_even_lazily(name):
    assert drawing_imports(PACKAGE / f"{name}.py") == []


def test_the_lazy_import_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    """The check above, on a copy of training.py that imports plotting inside a function (as History.plot did)."""
    lazy = tmp_path / "course_lib" / "training.py"
    lazy.parent.mkdir()
    lazy.write_text((PACKAGE / "training.py").read_text(encoding="utf-8") + "\n\ndef draw(history):\n"
                    "    from .plotting import plot_history\n    import matplotlib.pyplot as plt\n"
                    "    return plot_history(history), plt\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)   # module names are read relative to the copy
    found = drawing_imports(lazy)
    assert len(found) == 2 and "course_lib.plotting" in found[0] and "matplotlib.pyplot" in found[1]


def test_optim_loads_the_fast_paths_only_when_asked():
    """``optim`` reaches ``fast_paths`` only for foreach=True/fused=True (or when a user asks it for TensorList...)."""
    code = ("import sys, torch; from course_lib import optim; p = torch.zeros(3, requires_grad=True); "
            "p.grad = torch.ones(3); opt = optim.Adam([p], foreach=False); opt.step(); "
            "print('course_lib.fast_paths' in sys.modules); "
            "optim.Adam([p], foreach=True).step(); print('course_lib.fast_paths' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                            check=True)
    assert result.stdout.split() == ["False", "True"]


# --------------------------------------------------------------------------------------
# Who imports whom (read from the source)
# --------------------------------------------------------------------------------------
def test_no_module_reaches_another_modules_private_names():
    found = [line for path in SOURCES for line in private_names_reached(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("lab", LABS)
def test_no_lab_imports_another_lab(lab):
    assert lab_imports(PACKAGE / "labs" / f"{lab}.py") == []


@pytest.mark.parametrize("path", [path for path in SOURCES if "labs" not in path.relative_to(PACKAGE).parts],
                         ids=lambda path: path.name)
def test_the_core_plotting_and_widgets_import_no_lab(path):
    assert not [module for _, module, _ in course_lib_imports(path) if module.startswith("course_lib.labs")]


def test_every_playground_goes_through_widgets_playground():
    playgrounds, direct = [], []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if called in ("interactive", "interact", "interact_manual") and path.name != "widgets.py":
                    direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.FunctionDef) and node.name.endswith("playground") and path.name != "widgets.py":
                calls = {(n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", ""))
                         for n in ast.walk(node) if isinstance(n, ast.Call)}
                playgrounds.append((f"{module_name(path)}.{node.name}", "playground" in calls))
    assert not direct, "ipywidgets.interactive called outside widgets.playground: " + ", ".join(direct)
    assert len(playgrounds) >= 10 and all(path.startswith("course_lib.labs.") for path, _ in playgrounds)
    assert [name for name, uses_helper in playgrounds if not uses_helper] == []
