"""course_lib.widgets: the one playground helper every notebook's playground goes through."""

import ipywidgets
import matplotlib.pyplot as plt
import pytest

from course_lib import widgets


def test_playground_shows_the_view_and_redraws_it_on_every_change(monkeypatch):
    drawn = []

    def view(lr, steps, label):
        drawn.append((lr, steps, label))
        return plt.figure()

    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    controls = widgets.playground(view, lr=ipywidgets.FloatSlider(value=0.1, min=0.0, max=1.0, step=0.1),
                                  steps=ipywidgets.IntSlider(value=3, min=1, max=10), label=ipywidgets.fixed("x"))
    assert isinstance(controls, ipywidgets.interactive) and shown == [controls]
    assert drawn == [(0.1, 3, "x")]  # drawn once when built
    controls.children[1].value = 7
    assert drawn[-1] == (0.1, 7, "x") and controls.kwargs == {"lr": 0.1, "steps": 7, "label": "x"}
    plt.close("all")


def test_a_playground_whose_view_raises_fails_its_test():
    """ipywidgets logs a callback's exception when no kernel runs; tests/conftest.py makes it propagate, so every
    playground test fails when its view breaks."""

    def broken(**kwargs):
        raise ZeroDivisionError("the view broke")

    with pytest.raises(ZeroDivisionError, match="the view broke"):
        widgets.playground(broken, lr=ipywidgets.FloatSlider(value=0.1))
    plt.close("all")
