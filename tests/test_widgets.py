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
