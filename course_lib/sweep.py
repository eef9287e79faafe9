"""Learning-rate sweeps: the grid, and the choice of the best η on it. NumPy only.

Every comparison of the course gives each method its own best learning rate η from a grid (the course guide,
"Comparing optimizers"). The labs run the sweeps their own way (batched toy runs, torch training runs, a results
file), score each η (a mean or a median over seeds, a loss averaged over the last steps, steps to a tolerance),
and choose with :func:`best_lr`: the best score, the first on ties, a diverged or missing score the worst, and a
flag when the choice sits at the grid's edge (the best η may then lie outside the grid: widen it).

>>> from course_lib import sweep
>>> sweep.lr_grid(-3, 4)
[0.1, 0.215, 0.464, 1.0]
>>> sweep.best_lr([0.1, 0.2, 0.4], [3.0, 2.5, float("nan")])
Best(index=1, lr=0.2, score=2.5, at_edge=False)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["lr_grid", "Best", "best_lr"]


def lr_grid(first: int, count: int) -> list[float]:
    """η = 10^(k/3) for k = first, …, first + count − 1: three points per decade, rounded to 3 significant digits."""
    if int(count) != count or count < 1:
        raise ValueError(f"Invalid count: {count!r} (a positive integer)")
    return [float(f"{10 ** (k / 3):.3g}") for k in range(int(first), int(first) + int(count))]


@dataclass(frozen=True)
class Best:
    """The best η of a grid: its ``index`` in the grid, the ``lr``, its ``score``, and ``at_edge``: whether it is
    the grid's smallest or largest η (a grid of one η is at its edge)."""

    index: int
    lr: float
    score: float
    at_edge: bool


def best_lr(lrs, scores, *, lower_is_better: bool = True) -> Best:
    """The η of ``lrs`` whose score is best: the lowest (the highest with ``lower_is_better=False``), the first of
    equal ones. A score that is missing (``None``) or not finite (a diverged run) counts as the worst; when every
    score is, the first η is returned with its score.

    ``lrs`` is the grid in its order (ascending, for ``at_edge`` to mean what it says) and ``scores`` one number
    per η: a statistic over seeds chosen by the caller (a mean, a median, steps to a tolerance, ...).
    """
    lrs = [float(lr) for lr in np.asarray(lrs, dtype=float).ravel()]
    raw = list(scores)
    if not lrs or len(raw) != len(lrs):
        raise ValueError(f"Invalid scores: {len(raw)} scores for {len(lrs)} learning rates (one per η, at least one)")
    sign = 1.0 if lower_is_better else -1.0
    keys = [sign * float(s) if s is not None and np.isfinite(s) else np.inf for s in raw]
    index = int(np.argmin(keys))
    score = raw[index]
    return Best(index, lrs[index], float(score) if score is not None else np.nan, index in (0, len(lrs) - 1))


def grid_extension(ks, scores, *, step: int = 1, lowest: int | None = None, highest: int | None = None,
                   lower_is_better: bool = True) -> int | None:
    """The grid point to add so that the best η can end up strictly inside the grid: for a grid of η = 10^(k/3)
    given by its integers ``ks`` (ascending) and one score per k, the k one ``step`` beyond the edge where the
    best score sits (:func:`best_lr`), or None when the best is inside, or the next k would pass ``lowest`` or
    ``highest`` (then the best stays at the edge: flag it).

    >>> grid_extension([-6, -3, 0], [2.0, 1.0, 3.0], step=3), grid_extension([-6, -3, 0], [0.5, 1.0, 3.0], step=3)
    (None, -9)
    >>> grid_extension([-2, -1], [2.0, 1.0], highest=-1) is None
    True
    """
    ks = [int(k) for k in ks]
    if ks != sorted(ks) or len(set(ks)) != len(ks):
        raise ValueError(f"Invalid ks: {ks} (distinct integers in ascending order)")
    best = best_lr([10 ** (k / 3) for k in ks], scores, lower_is_better=lower_is_better)
    if len(ks) > 1 and not best.at_edge:
        return None
    low, high = ks[0] - step, ks[-1] + step
    if best.index == 0 and (lowest is None or low >= lowest):
        return low
    if best.index == len(ks) - 1 and (highest is None or high <= highest):
        return high
    return None


__all__ += ["grid_extension"]
