"""ipywidgets playgrounds. Each callback is a plain, tested :mod:`course_lib` function,
so the same view can be drawn once as a static figure for readers without a live kernel."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from .plotting import show_x_squared_descent

__all__ = ["learning_rate_playground", "show_figure"]


def show_figure(draw):
    """Wrap a function that returns a figure so that an ``interact`` callback shows it once."""

    def callback(**kwargs):
        draw(**kwargs)
        plt.show()

    callback.__name__ = getattr(draw, "__name__", "callback")
    return callback


def learning_rate_playground(x0: float = 5.0) -> widgets.interactive:
    """Notebook 01: a learning-rate slider for gradient descent on f(x) = x².

    The callback is :func:`course_lib.plotting.show_x_squared_descent`.
    """
    controls = widgets.interactive(
        show_figure(lambda lr, steps: show_x_squared_descent(lr=lr, steps=steps, x0=x0)),
        lr=widgets.FloatSlider(value=0.1, min=0.01, max=1.1, step=0.01, description="η",
                               continuous_update=False, readout_format=".2f"),
        steps=widgets.IntSlider(value=20, min=1, max=100, description="steps", continuous_update=False),
    )
    display(controls)
    return controls


def momentum_playground(kappa: float = 100.0) -> widgets.interactive:
    """Notebook 04: learning-rate and momentum sliders (and a Nesterov switch) on quadratic(κ).

    The callback is :func:`course_lib.momentum.show_momentum_descent`: the path on
    the contours and f(θ_t) − f* against the best fixed-step gradient descent.
    """
    from .momentum import show_momentum_descent

    controls = widgets.interactive(
        show_figure(lambda lr, momentum, nesterov: show_momentum_descent(lr=lr, momentum=momentum,
                                                                         nesterov=nesterov, kappa=kappa)),
        lr=widgets.FloatSlider(value=1.0, min=0.05, max=4.5, step=0.05, description="η",
                               continuous_update=False, readout_format=".2f"),
        momentum=widgets.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01, description="β",
                                     continuous_update=False, readout_format=".2f"),
        nesterov=widgets.Checkbox(value=False, description="Nesterov"),
    )
    display(controls)
    return controls


def adaptive_playground() -> widgets.interactive:
    """Notebook 05: rotate an ill-conditioned valley and watch per-coordinate step sizes lose their edge.

    The callback is :func:`course_lib.adaptive.show_adaptive_descent` (gradient
    descent, AdaGrad and RMSProp on quadratic(κ) rotated by the chosen angle).
    """
    from .adaptive import show_adaptive_descent

    controls = widgets.interactive(
        show_figure(lambda angle, kappa: show_adaptive_descent(angle=angle, kappa=kappa)),
        angle=widgets.FloatSlider(value=20.0, min=0.0, max=90.0, step=5.0, description="angle (°)",
                                  continuous_update=False, readout_format=".0f"),
        kappa=widgets.FloatLogSlider(value=100.0, base=10, min=0, max=3, step=0.25, description="κ",
                                     continuous_update=False, readout_format=".3g"),
    )
    display(controls)
    return controls
