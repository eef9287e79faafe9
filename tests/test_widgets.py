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


def test_the_figure_is_the_output_areas_data_and_changes_replace_it(monkeypatch):
    monkeypatch.setattr(widgets, "display", lambda box: None)
    drawn = []

    def view(a):
        drawn.append(plt.figure())
        return drawn[-1]

    controls = widgets.playground(view, a=ipywidgets.IntSlider(value=1, min=0, max=3))
    assert isinstance(controls, widgets.Playground) and len(controls.out.outputs) == 1
    assert controls.out.outputs[0]["output_type"] == "display_data"
    controls.children[0].value = 2
    assert len(drawn) == 2 and len(controls.out.outputs) == 1, "a change replaces the figure, it does not add one"
    assert not plt.fignum_exists(drawn[0].number) and not plt.fignum_exists(drawn[1].number), "figures closed"


def test_a_playground_cell_sends_the_kernel_nothing_and_saves_its_figure(monkeypatch, tmp_path):
    """In a real kernel under nbclient (as nbval, nbgrader and course_time run it): the figure is in the saved widget
    state, and nbclient's Output-widget stand-in never writes to the kernel's shell channel during the cell (with
    output capture, ipywidgets' default, it sent one comm_msg per playground cell)."""
    import os

    import nbformat
    from nbclient import NotebookClient, output_widget

    sent = []
    original = output_widget.OutputWidget.send
    monkeypatch.setattr(output_widget.OutputWidget, "send",
                        lambda self, data=None, **kwargs: sent.append(data) or original(self, data, **kwargs))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    root = str(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    cells = ["import ipywidgets as ipw\nimport matplotlib.pyplot as plt\nfrom course_lib.widgets import playground",
             "def view(a):\n    fig, ax = plt.subplots()\n    ax.plot([0, a])\n    return fig\n"
             "playground(view, a=ipw.IntSlider(value=1, min=0, max=3));",
             "1 + 1"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert sent == []
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    (outputs,) = [model["state"]["outputs"] for model in state.values() if model["model_name"] == "OutputModel"]
    assert [sorted(output["data"]) for output in outputs] == [["image/png", "text/plain"]]
    assert "application/vnd.jupyter.widget-view+json" in nb.cells[1].outputs[0]["data"]
