"""course_lib.sweep: the learning-rate grid against its closed form, and the choice of the best η."""

import math

import numpy as np
import pytest

from course_lib import sweep


def test_lr_grid_is_three_points_per_decade_to_three_digits():
    grid = sweep.lr_grid(-6, 7)
    assert grid == [0.01, 0.0215, 0.0464, 0.1, 0.215, 0.464, 1.0]
    for k, lr in zip(range(-6, 1), grid):
        assert math.isclose(lr, 10 ** (k / 3), rel_tol=5e-3)
    with pytest.raises(ValueError, match="Invalid count"):
        sweep.lr_grid(0, 0)


def test_best_lr_takes_the_best_score_and_the_first_of_equal_ones():
    lrs = [0.01, 0.1, 1.0, 10.0]
    assert sweep.best_lr(lrs, [3.0, 1.0, 2.0, 5.0]) == sweep.Best(1, 0.1, 1.0, False)
    assert sweep.best_lr(lrs, [3.0, 1.0, 1.0, 5.0]).lr == 0.1                 # ties: the first, as np.argmin
    assert sweep.best_lr(lrs, [3.0, 1.0, 2.0, 5.0], lower_is_better=False) == sweep.Best(3, 10.0, 5.0, True)
    scores = np.array([2.0, np.inf, np.nan, 1.5])
    assert sweep.best_lr(lrs, scores).index == int(np.argmin(np.where(np.isfinite(scores), scores, np.inf)))


def test_diverged_and_missing_scores_count_as_the_worst():
    lrs = [0.1, 0.2, 0.4]
    assert sweep.best_lr(lrs, [None, float("nan"), 7.0]) == sweep.Best(2, 0.4, 7.0, True)
    assert sweep.best_lr(lrs, [-np.inf, 5.0, 6.0]).lr == 0.2        # −∞ is not finite: no winner by overflow
    assert sweep.best_lr(lrs, [np.nan, np.inf, 6.0], lower_is_better=False).lr == 0.4
    every = sweep.best_lr(lrs, [np.inf, None, np.nan])              # nothing finite: the first, with its score
    assert every.index == 0 and every.score == np.inf and every.at_edge


def test_the_edge_flag():
    assert [sweep.best_lr([1, 2, 3], s).at_edge for s in ([0, 1, 2], [1, 0, 2], [2, 1, 0])] == [True, False, True]
    assert sweep.best_lr([0.1], [1.0]).at_edge                     # one η: the best may lie on either side
    with pytest.raises(ValueError, match="Invalid scores"):
        sweep.best_lr([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="Invalid scores"):
        sweep.best_lr([], [])


def test_grid_extension_adds_a_point_beyond_the_edge_where_the_best_sits():
    from course_lib.sweep import grid_extension

    assert grid_extension([-1, 0, 1], [2.0, 1.0, 3.0]) is None                     # best inside: done
    assert grid_extension([-1, 0, 1], [0.5, 1.0, 3.0]) == -2                        # best at the bottom
    assert grid_extension([-1, 0, 1], [3.0, 1.0, 0.5]) == 2                         # best at the top
    assert grid_extension([-1, 0, 1], [3.0, 1.0, float("nan")]) is None             # a divergence is the worst
    assert grid_extension([-6, -3, 0], [0.5, 1.0, 3.0], step=3) == -9               # one decade at a time
    assert grid_extension([-2, -1, 0], [0.5, 1.0, 3.0], lowest=-2) is None          # at its limit: flag it
    assert grid_extension([0], [1.0]) == -1                                         # one point: grow downwards
    assert grid_extension([0, 1], [2.0, 1.0], lower_is_better=False) == -1
    with pytest.raises(ValueError, match="ascending"):
        grid_extension([1, 0], [1.0, 2.0])
