"""Shared test set-up: a non-interactive matplotlib backend for unit tests only, and playground callbacks that
raise.

(The notebooks run in their own kernels under nbval and keep the inline backend.)
"""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: small networks are fastest so, and do not stall when other cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def torch_optim_db():
    """torch's own optimizer test database (``torch.testing._internal.common_optimizers.optim_db``) by class name.

    It ships with torch; its import needs ``expecttest`` (a torch development dependency, not a course one),
    which only its ``TestCase`` uses: a stand-in is registered when the package is absent.
    """
    import sys
    import types
    import unittest

    try:
        import expecttest  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("expecttest")
        stand_in.TestCase, stand_in.ACCEPT = unittest.TestCase, False
        sys.modules["expecttest"] = stand_in
    from torch.testing._internal.common_optimizers import optim_db

    return {info.name: info for info in optim_db}


@pytest.fixture
def fresh_compile_caches():
    """course_lib.fast_paths forgets its kernels, fallbacks, probes and warnings before the test and after it, so the
    test sees compile_rule decide afresh (and warn again), and leaves nothing it simulated behind."""
    from course_lib import fast_paths

    fast_paths.clear_caches()
    yield
    fast_paths.clear_caches()


class _ReraisingShell:
    """Stands in for IPython where ipywidgets reports a callback's exception: it re-raises the exception instead."""

    def showtraceback(self, *args, **kwargs):
        raise  # called inside ipywidgets' ``except`` block: re-raises the callback's exception)


@pytest.fixture(autouse=True)
def playground_callbacks_raise(monkeypatch):
    """Without a kernel, ``ipywidgets.interactive`` logs a callback's exception and carries on, so a broken
    playground would pass its test. Here the exception propagates out of the slider assignment that triggered it."""
    from ipywidgets.widgets import interaction

    monkeypatch.setattr(interaction, "get_ipython", lambda: _ReraisingShell())
