"""course_lib.plotting: the style (applied only when asked), the colours and the drawing primitives."""

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib import functions as F
from course_lib import plotting, rules
from course_lib.descent import descend


def test_every_method_has_its_own_colour():
    assert len(set(plotting.METHOD_COLORS.values())) == len(plotting.METHOD_COLORS) == 14
    assert plotting.method_color("sgd") == plotting.method_color("gd")
    with pytest.raises(KeyError, match="known"):
        plotting.method_color("shampoo")


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


def test_loss_plot_uses_log_scale_and_labels():
    fig, ax = plt.subplots()
    plotting.plot_loss(np.geomspace(1, 1e-6, 20), ax, method="adam")
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step t"
    plt.close(fig)


# --------------------------------------------------------------------------------------
# Notebook 03's colours
# --------------------------------------------------------------------------------------
def test_batch_colours_shade_gradient_descent():
    assert plotting.batch_color(569, 569) == plotting.method_color("gd").lower()
    brightness = [sum(mpl.colors.to_rgb(plotting.batch_color(b, 569))) for b in (1, 8, 64, 569)]
    assert brightness == sorted(brightness, reverse=True)  # lighter for smaller batches
    with pytest.raises(ValueError, match="batch_size"):
        plotting.batch_color(0, 569)
