"""Shared test set-up: a non-interactive matplotlib backend for unit tests only.

(The notebooks run in their own kernels under nbval and keep the inline backend.)
"""

import matplotlib

matplotlib.use("Agg")
