"""course_lib.labs.gradient_descent (notebooks 01-02): the views against closed forms; the two playgrounds."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib import functions as F
from course_lib.labs import gradient_descent as G


@pytest.mark.parametrize("lr", [0.05, 0.5, 0.9, 1.05])
def test_x_squared_view_for_every_regime(lr):
    fig = G.show_x_squared_descent(lr=lr, steps=30)
    left, right = fig.axes
    ys = right.lines[0].get_ydata()
    np.testing.assert_allclose(ys, 5 * np.abs(1 - 2 * lr) ** np.arange(31), rtol=1e-10)
    assert right.get_yscale() == "log"
    plt.close(fig)


@pytest.mark.parametrize("lr, kappa, angle", [(1.0, 10.0, 0.0), (1.95, 10.0, np.pi / 6), (2.1, 100.0, 0.0),
                                              (0.5, 1000.0, 0.3), (1.0, 1.0, 0.0)])
def test_quadratic_view_draws_the_closed_form(lr, kappa, angle):
    steps = 30
    fig = G.show_quadratic_descent(lr=lr, kappa=kappa, angle=angle, steps=steps)
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
    fig = G.show_quadratic_descent(lr=0.3, kappa=10.0)
    assert "η* = 2/(μ+L) = 1.82 gives ρ* = 0.818" in fig._suptitle.get_text()
    plt.close(fig)


def test_learning_rate_playground_builds_and_redraws():
    controls = G.learning_rate_playground()
    lr_slider, steps_slider = controls.children[:2]
    assert lr_slider.value == 0.1 and steps_slider.value == 20
    lr_slider.value = 0.8  # triggers the callback, which must not raise
    assert controls.kwargs == {"lr": 0.8, "steps": 20}
    plt.close("all")


def test_conditioning_playground_builds_and_redraws():
    controls = G.conditioning_playground()
    lr_slider, kappa_slider = controls.children[:2]
    assert lr_slider.value == 1.0 and kappa_slider.value == 10.0
    lr_slider.value = 2.1  # a diverging run must draw too
    kappa_slider.value = 1000.0
    assert controls.kwargs == {"lr": 2.1, "kappa": 1000.0}
    plt.close("all")


def test_a_playground_whose_view_raises_fails_its_test(monkeypatch):
    """ipywidgets logs a callback's exception when no kernel runs; tests/conftest.py makes it propagate, so every
    playground test fails when its view breaks."""

    def broken(**kwargs):
        raise ZeroDivisionError("the view broke")

    monkeypatch.setattr(G, "show_x_squared_descent", broken)
    with pytest.raises(ZeroDivisionError, match="the view broke"):
        G.learning_rate_playground()
    plt.close("all")
