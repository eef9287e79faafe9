"""ipywidgets playgrounds. Each callback is a plain, tested :mod:`course_lib` function,
so the same view can be drawn once as a static figure for readers without a live kernel."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from .plotting import show_x_squared_descent

__all__ = [
    "show_figure",
    "learning_rate_playground",
    "conditioning_playground",
    "sgd_playground",
    "momentum_playground",
    "adaptive_playground",
    "training_playground",
    "step_time_playground",
    "beyond_adam_playground",
]


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


def training_playground(dataset=None, *, device=None) -> widgets.interactive:
    """Notebook 08: pick an optimizer, a learning rate and a number of epochs; see the classifier's learning curves.

    The callback is :func:`course_lib.training.show_training_run` (each change trains the seed network once,
    a fraction of a second on a laptop CPU for the breast-cancer data).
    """
    from .data import breast_cancer
    from .training import METHOD_TITLES, show_training_run

    dataset = dataset if dataset is not None else breast_cancer()
    controls = widgets.interactive(
        show_figure(lambda method, lr, epochs: show_training_run(method, lr, epochs, dataset=dataset, device=device)),
        method=widgets.Dropdown(options=[(title, name) for name, title in METHOD_TITLES.items()], value="adam",
                                description="optimizer"),
        lr=widgets.FloatLogSlider(value=1e-3, base=10, min=-4, max=1, step=0.25, description="η",
                                  continuous_update=False, readout_format=".1e"),
        epochs=widgets.IntSlider(value=50, min=1, max=200, description="epochs", continuous_update=False),
    )
    display(controls)
    return controls


def conditioning_playground(steps: int = 40) -> widgets.interactive:
    """Notebook 02: learning-rate and condition-number sliders for gradient descent on a 2-D quadratic.

    L = 1, so the stability bound is η < 2. The callback is
    :func:`course_lib.plotting.show_quadratic_descent`.
    """
    from .plotting import show_quadratic_descent

    controls = widgets.interactive(
        show_figure(lambda lr, kappa: show_quadratic_descent(lr=lr, kappa=kappa, steps=steps)),
        lr=widgets.FloatSlider(value=1.0, min=0.05, max=2.2, step=0.01, description="η",
                               continuous_update=False, readout_format=".2f"),
        kappa=widgets.FloatLogSlider(value=10.0, base=10, min=0, max=3, step=0.05, description="κ",
                                     continuous_update=False, readout_format=".3g"),
    )
    display(controls)
    return controls


def sgd_playground(problem, optimum, epochs: int = 20) -> widgets.interactive:
    """Notebook 03: learning rate, batch size and sampling for minibatch SGD on a real problem.

    ``problem`` and ``optimum`` come from :mod:`course_lib.labs.stochastic`. The
    callback is :func:`course_lib.plotting.show_minibatch_sgd`.
    """
    from .plotting import show_minibatch_sgd

    sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, problem.n_samples})
    controls = widgets.interactive(
        show_figure(lambda lr, batch_size, replacement: show_minibatch_sgd(
            problem, optimum, lr=lr, batch_size=batch_size, epochs=epochs, replacement=replacement)),
        lr=widgets.FloatLogSlider(value=0.05, base=10, min=-3, max=0.5, step=0.1, description="η",
                                  continuous_update=False, readout_format=".3g"),
        batch_size=widgets.SelectionSlider(options=sizes, value=16, description="B", continuous_update=False),
        replacement=widgets.ToggleButtons(options=[("reshuffled", False), ("with replacement", True)],
                                          value=False, description="sampling"),
    )
    display(controls)
    return controls



def momentum_playground(kappa: float = 100.0) -> widgets.interactive:
    """Notebook 04: learning-rate and momentum sliders (and a Nesterov switch) on quadratic(κ).

    The callback is :func:`course_lib.labs.momentum.show_momentum_descent`: the path on
    the contours and f(θ_t) − f* against the best fixed-step gradient descent.
    """
    from .labs.momentum import show_momentum_descent

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

    The callback is :func:`course_lib.labs.adaptive.show_adaptive_descent` (gradient
    descent, AdaGrad and RMSProp on quadratic(κ) rotated by the chosen angle).
    """
    from .labs.adaptive import show_adaptive_descent

    controls = widgets.interactive(
        show_figure(lambda angle, kappa: show_adaptive_descent(angle=angle, kappa=kappa)),
        angle=widgets.FloatSlider(value=20.0, min=0.0, max=90.0, step=5.0, description="angle (°)",
                                  continuous_update=False, readout_format=".0f"),
        kappa=widgets.FloatLogSlider(value=100.0, base=10, min=0, max=3, step=0.25, description="κ",
                                     continuous_update=False, readout_format=".3g"),
    )
    display(controls)
    return controls


def step_time_playground(operations: int = 14, bytes_per_param: int = 28, unfused_bytes: int = 168):
    """Notebook 10: sliders for tensors, bandwidth, launch overhead and model size over the step-time model.

    The callback is :func:`course_lib.labs.fast_steps.show_step_time_model`.
    """
    from .labs.fast_steps import show_step_time_model

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


def beyond_adam_playground() -> widgets.interactive:
    """Notebook 11: a landscape, a method and a learning rate; the path and f − f* next to Adam at the same η.

    The callback is :func:`course_lib.labs.beyond_adam.show_method_on_landscape`.
    """
    from .labs.beyond_adam import LANDSCAPES, NEW_METHODS, show_method_on_landscape
    from .plotting import METHOD_LABELS

    controls = widgets.interactive(
        show_figure(lambda landscape, method, lr, steps: show_method_on_landscape(landscape, method, lr=lr,
                                                                                  steps=steps)),
        landscape=widgets.Dropdown(options=list(LANDSCAPES), value="Rosenbrock", description="f"),
        method=widgets.Dropdown(options=[(METHOD_LABELS[name], name) for name in NEW_METHODS], value="lion",
                                description="optimizer"),
        lr=widgets.FloatLogSlider(value=0.02, base=10, min=-4, max=1, step=0.1, description="η",
                                  continuous_update=False, readout_format=".2g"),
        steps=widgets.IntSlider(value=200, min=10, max=1000, step=10, description="steps", continuous_update=False),
    )
    display(controls)
    return controls
