"""course_lib.plotting: the style, the colours and the views the notebooks draw."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib import functions as F
from course_lib import plotting, rules
from course_lib.descent import descend


def test_every_method_has_its_own_colour():
    assert len(set(plotting.METHOD_COLORS.values())) == len(plotting.METHOD_COLORS) == 8
    assert plotting.method_color("sgd") == plotting.method_color("gd")
    with pytest.raises(KeyError, match="known"):
        plotting.method_color("lion")


def test_rule_names_have_colours():
    for rule in (rules.sgd(), rules.sgd(momentum=0.9), rules.sgd(momentum=0.9, nesterov=True), rules.adagrad(),
                 rules.rmsprop(), rules.adam(), rules.adamw(), rules.adam(amsgrad=True)):
        assert plotting.method_color(rule.name)


def test_contours_mark_every_minimizer_and_label_axes():
    fig, ax = plt.subplots()
    plotting.plot_contours(F.himmelblau, ax)
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(stars) == 1 and len(stars[0].get_xdata()) == 4
    assert ax.get_xlabel() == "θ₁" and ax.get_ylabel() == "θ₂"
    plt.close(fig)


def test_path_marks_start_and_end():
    t = descend(F.rosenbrock, [-1.5, 2.0], rules.adam(lr=0.05), 100)
    fig, ax = plt.subplots()
    plotting.plot_path(t, ax)
    xs = ax.lines[1].get_xdata()
    assert xs[0] == -1.5
    assert ax.lines[0].get_color() == plotting.method_color("adam")
    plt.close(fig)


@pytest.mark.parametrize("lr", [0.05, 0.5, 0.9, 1.05])
def test_x_squared_view_for_every_regime(lr):
    fig = plotting.show_x_squared_descent(lr=lr, steps=30)
    left, right = fig.axes
    ys = right.lines[0].get_ydata()
    np.testing.assert_allclose(ys, 5 * np.abs(1 - 2 * lr) ** np.arange(31), rtol=1e-10)
    assert right.get_yscale() == "log"
    plt.close(fig)


def test_loss_plot_uses_log_scale_and_labels():
    fig, ax = plt.subplots()
    plotting.plot_loss(np.geomspace(1, 1e-6, 20), ax, method="adam")
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step t"
    plt.close(fig)
