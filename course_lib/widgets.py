"""ipywidgets playgrounds: one helper, :func:`playground`, that every notebook's playground goes through.

A playground's view is a plain, tested function that returns a figure (a lab's ``show_...``), so the same view
can be drawn once as a static figure for readers without a live kernel. This module imports no lab: each lab
(:mod:`course_lib.labs`) builds its playground from :func:`playground` and its own view.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

__all__ = [
    "show_figure",
    "playground",
]


def show_figure(draw):
    """Wrap a function that returns a figure so that an ``interact`` callback shows it once."""

    def callback(**kwargs):
        draw(**kwargs)
        plt.show()

    callback.__name__ = getattr(draw, "__name__", "callback")
    return callback


def playground(draw, **controls) -> widgets.interactive:
    """Show the figure ``draw(**values)`` returns under a set of controls, drawn again whenever one changes.

    Each keyword is a control (an ipywidgets slider, dropdown, checkbox, ...) whose value ``draw`` receives under
    that name; as with ``ipywidgets.interactive``, a plain value is a fixed argument or gets ipywidgets' default
    control. The controls and the first figure are displayed; the returned ``ipywidgets.interactive`` holds the
    controls (``.children``) and the values they show (``.kwargs``).
    """
    controls_box = widgets.interactive(show_figure(draw), **controls)
    display(controls_box)
    return controls_box
