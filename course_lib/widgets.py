"""ipywidgets playgrounds: one helper, :func:`playground`, that every notebook's playground goes through.

A playground's view is a plain, tested function that returns a figure (a lab's ``show_...``), so the same view
can be drawn once as a static figure for readers without a live kernel. This module imports no lab: each lab
(:mod:`course_lib.labs`) builds its playground from :func:`playground` and its own view.

The figure reaches the playground's output area as data the kernel sets (``Output.outputs``), not by output
capture (``with out:``), so a playground sends no message from the client back to the kernel while its cell runs
(see :class:`Playground`).
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from ipywidgets.widgets import interaction
from matplotlib.figure import Figure

__all__ = [
    "show_figure",
    "playground",
    "Playground",
]


def show_figure(draw):
    """Wrap a function that returns a figure so that an ``interact`` callback shows it once."""

    def callback(**kwargs):
        draw(**kwargs)
        plt.show()

    callback.__name__ = getattr(draw, "__name__", "callback")
    return callback


def figure_output(figure: Figure) -> dict:
    """``figure`` as one ``display_data`` output (PNG and text, as the inline backend shows it), for ``Output``."""
    ip = interaction.get_ipython()
    if ip is not None and hasattr(ip, "display_formatter"):
        data, metadata = ip.display_formatter.format(figure)
    else:  # no IPython (a plain script or a unit test): the text form is all a reader could see
        data, metadata = {"text/plain": repr(figure)}, {}
    return {"output_type": "display_data", "data": data, "metadata": metadata}


class Playground(widgets.interactive):
    """``ipywidgets.interactive`` whose figure is handed to its output area as data instead of being captured.

    ipywidgets' own ``update`` runs the view inside ``with self.out:``: the kernel publishes the figure as the
    cell's output and the *frontend* moves it into the Output widget, then sends the widget's new state back to
    the kernel, a ``comm_msg`` on the shell channel. Under nbclient (nbval, nbgrader's autograde, ``make
    course-time``) that message comes from nbclient's Output-widget stand-in while the cell is still running, the
    one message a course notebook ever sends the kernel between an ``execute_request`` and its reply; it is what
    the rare stall after a playground cell had in common (a kernel and nbclient both idle, each waiting for the
    other, benchmarks/playground_stall.py). Here the kernel renders the figure (the inline backend's PNG) and sets
    ``self.out.outputs`` itself: the same picture in JupyterLab and in the saved widget state, and no message from
    the client. A view that raises shows its traceback in the output area, as with ipywidgets.
    """

    def update(self, *args):
        """Draw the view for the controls' values and put its figure in the output area (a traitlets callback)."""
        self.kwargs = {}
        try:
            for widget in self.kwargs_widgets:
                self.kwargs[widget._kwarg] = widget.get_interact_value()
            self.result = self.f(**self.kwargs)
            figure = self.result if isinstance(self.result, Figure) else plt.gcf()
            self.out.outputs = (figure_output(figure),)
            plt.close(figure)
        except Exception as error:
            ip = interaction.get_ipython()
            if ip is None:
                self.log.warning("Exception in interact callback: %s", error, exc_info=True)
            else:
                with self.out:
                    self.out.clear_output()
                    ip.showtraceback()


def playground(draw, **controls) -> widgets.interactive:
    """Show the figure ``draw(**values)`` returns under a set of controls, drawn again whenever one changes.

    Each keyword is a control (an ipywidgets slider, dropdown, checkbox, ...) whose value ``draw`` receives under
    that name; as with ``ipywidgets.interactive``, a plain value is a fixed argument or gets ipywidgets' default
    control. The controls and the first figure are displayed; the returned :class:`Playground` (an
    ``ipywidgets.interactive``) holds the controls (``.children``), the values they show (``.kwargs``) and, in
    its output area (``.out.outputs``), the figure.
    """
    def view(**values):  # a keywords-only signature: ipywidgets makes no control the caller did not give
        return draw(**values)

    view.__name__ = getattr(draw, "__name__", "view")
    controls_box = Playground(view, **controls)
    display(controls_box)
    return controls_box
