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


def step_time_playground(operations: int = 14, bytes_per_param: int = 28, unfused_bytes: int = 168):
    """Notebook 10: sliders for tensors, bandwidth, launch overhead and model size over the step-time model.

    The callback is :func:`course_lib.speed.show_step_time_model`.
    """
    from .speed import show_step_time_model

    controls = widgets.interactive(
        show_figure(lambda tensors, bandwidth_gbs, launch_us, parameters: show_step_time_model(
            tensors=tensors, bandwidth_gbs=bandwidth_gbs, launch_us=launch_us, operations=operations,
            bytes_per_param=bytes_per_param, unfused_bytes=unfused_bytes, parameters=parameters)),
        tensors=widgets.IntSlider(value=300, min=1, max=2000, description="tensors", continuous_update=False),
        bandwidth_gbs=widgets.FloatLogSlider(value=40.0, base=10, min=0, max=3.7, description="GB/s",
                                             continuous_update=False),
        launch_us=widgets.FloatLogSlider(value=5.0, base=10, min=-0.5, max=2, description="µs/launch",
                                         continuous_update=False),
        parameters=widgets.FloatLogSlider(value=2e6, base=10, min=2, max=9, description="N",
                                          continuous_update=False),
    )
    display(controls)
    return controls
