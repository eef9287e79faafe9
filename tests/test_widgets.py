"""course_lib.widgets: the playground builds, and its callback draws the tested view."""

import matplotlib.pyplot as plt

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
    from course_lib import problems

    problem = problems.breast_cancer()
    controls = widgets.sgd_playground(problem, problems.reference_optimum(problem), epochs=2)
    lr_slider, batch_slider, sampling = controls.children[:3]
    assert batch_slider.options[0] == 1 and batch_slider.options[-1] == 569
    batch_slider.value = 64
    sampling.value = True
    assert controls.kwargs == {"lr": lr_slider.value, "batch_size": 64, "replacement": True}
    plt.close("all")
