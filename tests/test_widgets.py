"""course_lib.widgets: the playground builds, and its callback draws the tested view."""

import matplotlib.pyplot as plt
import pytest

from course_lib import widgets


def test_learning_rate_playground_builds_and_redraws():
    controls = widgets.learning_rate_playground()
    lr_slider, steps_slider = controls.children[:2]
    assert lr_slider.value == 0.1 and steps_slider.value == 20
    lr_slider.value = 0.8  # triggers the callback, which must not raise
    assert controls.kwargs == {"lr": 0.8, "steps": 20}
    plt.close("all")


def test_conditioning_playground_builds_and_redraws():
    controls = widgets.conditioning_playground()
    lr_slider, kappa_slider = controls.children[:2]
    assert lr_slider.value == 1.0 and kappa_slider.value == 10.0
    lr_slider.value = 2.1  # a diverging run must draw too
    kappa_slider.value = 1000.0
    assert controls.kwargs == {"lr": 2.1, "kappa": 1000.0}
    plt.close("all")


def test_sgd_playground_builds_and_redraws():
    from course_lib.labs import stochastic as problems

    problem = problems.breast_cancer()
    controls = widgets.sgd_playground(problem, problems.reference_optimum(problem), epochs=2)
    lr_slider, batch_slider, sampling = controls.children[:3]
    assert batch_slider.options[0] == 1 and batch_slider.options[-1] == 569
    batch_slider.value = 64
    sampling.value = True
    assert controls.kwargs == {"lr": lr_slider.value, "batch_size": 64, "replacement": True}


def test_momentum_playground_builds_and_redraws():
    controls = widgets.momentum_playground()
    lr_slider, momentum_slider, nesterov_box = controls.children[:3]
    assert (lr_slider.value, momentum_slider.value, nesterov_box.value) == (1.0, 0.9, False)
    lr_slider.value = 3.3
    nesterov_box.value = True  # η = 3.3 with Nesterov diverges: the view must still draw
    assert controls.kwargs == {"lr": 3.3, "momentum": 0.9, "nesterov": True}
    momentum_slider.value = 0.0  # Nesterov without momentum falls back to gradient descent
    plt.close("all")


def test_adaptive_playground_builds_and_redraws():
    controls = widgets.adaptive_playground()
    angle_slider, kappa_slider = controls.children[:2]
    assert (angle_slider.value, kappa_slider.value) == (20.0, 100.0)
    angle_slider.value = 45.0
    kappa_slider.value = 1000.0
    assert controls.kwargs == {"angle": 45.0, "kappa": 1000.0}
    plt.close("all")


def test_a_playground_whose_callback_raises_fails_its_test(monkeypatch):
    """ipywidgets logs a callback's exception when no kernel runs; tests/conftest.py makes it propagate, so every
    playground test above fails when its view breaks."""

    def broken(**kwargs):
        raise ZeroDivisionError("the view broke")

    monkeypatch.setattr(widgets, "show_x_squared_descent", broken)
    with pytest.raises(ZeroDivisionError, match="the view broke"):
        widgets.learning_rate_playground()
    plt.close("all")
