"""Shared test set-up: a non-interactive matplotlib backend for unit tests only.

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
