"""Notebook 08, training the seed classifier: one training run as a figure, and the playground over it.

The six optimizers (:data:`course_lib.training.METHODS`), :func:`~course_lib.training.make_optimizer` and
:func:`~course_lib.training.train_classifier` are in the core: notebook 09 (:mod:`course_lib.labs.guide`) trains
with them too, and a lab imports no other lab.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..data import breast_cancer
from ..training import METHOD_TITLES, DivergenceError, train_classifier

__all__ = ["show_training_run", "training_playground"]


def show_training_run(method: str = "adam", lr: float = 1e-3, epochs: int = 50, *, dataset=None, seed: int = 0,
                      device=None, history=None):
    """Train the seed classifier once and draw its learning curves (loss and accuracy); returns the figure.

    This is the view behind notebook 08's playground. ``dataset`` defaults to
    :func:`course_lib.data.breast_cancer`. A learning rate that makes training
    diverge is shown as a message on the figure instead of an error. Pass the
    ``history`` of a run already made with these settings to draw it without training again.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.8))
    colour_key = "gd" if method == "sgd" else method
    try:
        if history is None:
            dataset = dataset if dataset is not None else breast_cancer()
            _, history = train_classifier(dataset, method, lr, epochs=epochs, seed=seed, device=device)
    except DivergenceError as error:
        for ax in axes:
            ax.text(0.5, 0.5, "diverged:\n" + str(error).split(". ")[0], ha="center", va="center", wrap=True,
                    transform=ax.transAxes, fontsize=9)
        fig.suptitle(f"{METHOD_TITLES[method]}, η = {lr:g}: diverged")
        return fig
    history.plot(axes, method=colour_key, label=METHOD_TITLES[method])
    axes[1].legend(loc="lower right")
    fig.suptitle(f"{METHOD_TITLES[method]}, η = {lr:g}: validation accuracy {history.val_accuracy[-1]:.3f} "
                 f"after {history.epochs} epochs")
    return fig


def training_playground(dataset=None, *, device=None, history=None):
    """Notebook 08: pick an optimizer, a learning rate and a number of epochs; see the classifier's learning curves.

    The view is :func:`show_training_run` (each change trains the seed network once, a fraction of a second on a
    laptop CPU for the breast-cancer data). ``history``, the run of the first setting shown (Adam, η = 10⁻³,
    50 epochs, seed 0) when it was already made, is drawn for that setting instead of training it again.
    """
    import ipywidgets as ipw

    from ..widgets import playground

    dataset = dataset if dataset is not None else breast_cancer()

    def draw(method, lr, epochs):
        known = history if (method, lr, epochs) == ("adam", 1e-3, 50) else None
        return show_training_run(method, lr, epochs, dataset=dataset, device=device, history=known)

    return playground(
        draw,
        method=ipw.Dropdown(options=[(title, name) for name, title in METHOD_TITLES.items()], value="adam",
                            description="optimizer"),
        lr=ipw.FloatLogSlider(value=1e-3, base=10, min=-4, max=1, step=0.25, description="η",
                              continuous_update=False, readout_format=".1e"),
        epochs=ipw.IntSlider(value=50, min=1, max=200, description="epochs", continuous_update=False),
    )
