"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): one result type, :class:`LRRangeTest`, and
its rules (:func:`range_test_lrs`, :meth:`LRRangeTest.from_losses`), run on a torch model by
:func:`course_lib.training.lr_range_test` and on a NumPy problem by ``labs.guide.range_test``.
:func:`course_lib.plotting.plot_range_test` draws a result. NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["LRRangeTest", "range_test_lrs"]


@dataclass(frozen=True)
class LRRangeTest:
    """A learning-rate range test's result: the loss measured at each learning rate η_k
    (:func:`course_lib.training.lr_range_test` on a torch model, ``labs.guide.range_test`` on a NumPy problem).

    ``losses[k]`` is the loss computed at step k, just before the step
    taken with ``lrs[k]``; ``smoothed`` is its bias-corrected exponential moving
    average. ``stopped_early`` is True when the loss exploded before the last step.
    :func:`course_lib.plotting.plot_range_test` draws it.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    stopped_early: bool

    def best_lr(self) -> float:
        """The learning rate at the lowest smoothed loss."""
        return float(self.lrs[int(np.nanargmin(self.smoothed))])

    def suggestion(self) -> float:
        """A starting learning rate: a tenth of :meth:`best_lr` (fastai's "minimum / 10" rule of thumb, not a law)."""
        return self.best_lr() / 10

    @classmethod
    def from_losses(cls, lrs, losses: Iterable[float], *, smoothing: float = 0.9,
                    diverge_factor: float = 4.0) -> LRRangeTest:
        r"""The test of ``losses`` (loss k measured before the step at ``lrs[k]``), read one at a time.

        The smoothed loss is the bias-corrected moving average
        :math:`\bar\ell_k = a_k / (1 - s^{k+1})`, :math:`a_k = s\,a_{k-1} + (1 - s)\,\ell_k`, s = ``smoothing``;
        the test stops (and reads no further loss, so a lazy iterable takes no further step) at the first
        non-finite loss or smoothed loss above ``diverge_factor`` times the lowest before it: fastai's
        ``lr_find`` rules.
        """
        values, smoothed = [], []
        average, best, stopped = 0.0, math.inf, False
        for k, value in enumerate(losses):
            values.append(float(value))
            average = smoothing * average + (1 - smoothing) * value
            smoothed.append(float(average / (1 - smoothing ** (k + 1))))
            if not math.isfinite(value) or smoothed[-1] > diverge_factor * best:
                stopped = k < len(lrs) - 1
                break
            best = min(best, smoothed[-1])
        count = len(values)
        return cls(np.asarray(lrs)[:count], np.asarray(values), np.asarray(smoothed), stopped)


def range_test_lrs(start_lr: float, end_lr: float, steps: int, *, smoothing: float = 0.9,
                   diverge_factor: float = 4.0) -> np.ndarray:
    r"""The learning rates of a range test, after checking its arguments:
    :math:`\eta_k = \eta_{\text{start}} \,(\eta_{\text{end}}/\eta_{\text{start}})^{k/(\text{steps}-1)}`."""
    if not (start_lr > 0 and end_lr > start_lr and math.isfinite(end_lr)):
        raise ValueError(f"need 0 < start_lr < end_lr; got start_lr={start_lr}, end_lr={end_lr}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2; got {steps!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor must be > 1; got {diverge_factor}")
    return start_lr * (end_lr / start_lr) ** (np.arange(steps) / (steps - 1))
