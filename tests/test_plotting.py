"""course_lib.plotting: the style, the colours and the views the notebooks draw."""

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


# --------------------------------------------------------------------------------------
# Notebooks 02 and 03
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr, kappa, angle", [(1.0, 10.0, 0.0), (1.95, 10.0, np.pi / 6), (2.1, 100.0, 0.0),
                                              (0.5, 1000.0, 0.3), (1.0, 1.0, 0.0)])
def test_quadratic_view_draws_the_closed_form(lr, kappa, angle):
    steps = 30
    fig = plotting.show_quadratic_descent(lr=lr, kappa=kappa, angle=angle, steps=steps)
    left, right = fig.axes[:2]
    hessian = F.quadratic(kappa=kappa, angle=angle).hessian
    x0 = np.array([left.lines[1].get_xdata()[0], left.lines[1].get_ydata()[0]])  # the start marker
    expected = [np.linalg.norm(np.linalg.matrix_power(np.eye(2) - lr * hessian, t) @ x0) for t in range(steps + 1)]
    np.testing.assert_allclose(right.lines[0].get_ydata(), expected, rtol=1e-9)
    rate = max(abs(1 - lr / kappa), abs(1 - lr))
    np.testing.assert_allclose(right.lines[1].get_ydata(), expected[0] * rate ** np.arange(steps + 1), rtol=1e-12)
    assert right.get_yscale() == "log" and right.get_xlabel() == "step t"
    title = fig._suptitle.get_text()
    assert f"{rate:.3f}" in title
    assert ("no convergence" in title) == (lr >= 2)
    plt.close(fig)


def test_quadratic_view_quotes_the_best_step():
    fig = plotting.show_quadratic_descent(lr=0.3, kappa=10.0)
    assert "η* = 2/(μ+L) = 1.82 gives ρ* = 0.818" in fig._suptitle.get_text()
    plt.close(fig)


def test_batch_colours_shade_gradient_descent():
    assert plotting.batch_color(569, 569) == plotting.method_color("gd").lower()
    brightness = [sum(mpl.colors.to_rgb(plotting.batch_color(b, 569))) for b in (1, 8, 64, 569)]
    assert brightness == sorted(brightness, reverse=True)  # lighter for smaller batches
    with pytest.raises(ValueError, match="batch_size"):
        plotting.batch_color(0, 569)


def test_minibatch_view_draws_sgd_gd_and_the_noise_floor():
    from course_lib.labs import stochastic as problems

    problem = problems.breast_cancer()
    optimum = problems.reference_optimum(problem)
    fig = plotting.show_minibatch_sgd(problem, optimum, lr=0.05, batch_size=100, epochs=3, seed=1)
    (ax,) = fig.axes
    sgd_line, gd_line, floor_line = ax.lines[:3]
    records = problems.minibatch_sgd(problem, np.zeros(31), 0.05, 100, 3, seed=1, every="step")
    np.testing.assert_allclose(sgd_line.get_ydata(), problem.loss(records) - optimum[1], rtol=1e-12)
    np.testing.assert_allclose(sgd_line.get_xdata()[[0, 6, 12, 18]], [0, 1, 2, 3])  # 6 steps per epoch
    x = np.zeros(31)
    for _ in range(3):
        x = x - problem.grad(x) / problem.smoothness
    assert gd_line.get_ydata()[-1] == pytest.approx(problem.loss(x) - optimum[1], rel=1e-12)
    floor = 0.05 * problem.gradient_noise(optimum[0]) / (4 * 100)
    assert floor_line.get_ydata()[0] == pytest.approx(floor, rel=1e-12)
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epochs" and ax.get_ylabel() == "f(θ_t) − f*"
    plt.close(fig)
