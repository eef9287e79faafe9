"""course_lib.plotting: the style (applied only when asked), the colours and the drawing primitives."""

import os
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib import functions as F
from course_lib import methods, plotting, rules
from course_lib.descent import descend


def test_every_method_has_its_own_colour():
    assert len(set(plotting.METHOD_COLORS.values())) == len(plotting.METHOD_COLORS) == len(methods.METHODS)
    assert list(plotting.METHOD_COLORS) == list(plotting.METHOD_LABELS) == list(methods.METHODS)
    assert plotting.method_color("sgd") == plotting.method_color("gd") == plotting.method_color("GD")
    assert plotting.COURSE_STYLE["axes.prop_cycle"].by_key()["color"] == list(plotting.METHOD_COLORS.values())
    with pytest.raises(KeyError, match="known"):
        plotting.method_color("kfac")


def test_rule_names_have_colours():
    for rule in (rules.sgd(), rules.sgd(momentum=0.9), rules.sgd(momentum=0.9, nesterov=True), rules.adagrad(),
                 rules.rmsprop(), rules.adam(), rules.adamw(), rules.adam(amsgrad=True)):
        assert plotting.method_color(rule.name)


def test_contours_mark_every_minimizer_and_label_axes():
    fig, ax = plt.subplots()
    plotting.plot_contours(F.himmelblau, ax)
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(stars) == 1 and len(stars[0].get_xdata()) == 4
    assert ax.get_xlabel() == "θ₁" and ax.get_ylabel() == "θ₂"
    plt.close(fig)


def test_contours_carry_a_labelled_colour_bar_outside_the_figure_s_panels():
    fig, (left, middle, right) = plt.subplots(1, 3)
    plotting.plot_contours(F.rosenbrock, left)                       # log levels: decades on the bar
    plotting.plot_contours(F.quadratic(10.0), middle, log=False)     # linear levels: matplotlib's ticks
    plotting.plot_contours(F.quadratic(10.0), right, log=False, colorbar=False)
    assert fig.axes == [left, middle, right]                         # the bar is a child of its panel
    assert middle.child_axes[0].get_ylabel() == plotting.CONTOUR_LABEL
    (bar,) = left.child_axes
    assert bar.get_ylabel() == plotting.CONTOUR_LABEL == "gap to the minimum, f(θ) − f*"
    ticks = bar.get_yticks()
    assert len(ticks) >= 3 and np.allclose(np.log10(ticks), np.round(np.log10(ticks)))
    assert right.child_axes == []
    plt.close(fig)


def test_minimizer_stays_above_a_path_that_ends_on_it():
    fig, ax = plt.subplots()
    plotting.plot_contours(F.rosenbrock, ax)
    plotting.plot_path(descend(F.rosenbrock, [1.0, 1.0], rules.sgd(lr=1e-3), 3), ax)
    star = next(line for line in ax.lines if line.get_marker() == "*")
    assert star.get_zorder() > max(line.get_zorder() for line in ax.lines if line is not star)
    plt.close(fig)


def test_only_light_method_colours_get_an_outline():
    light = [name for name, color in plotting.METHOD_COLORS.items() if plotting.outline(color)]
    assert light == ["rmsprop", "adafactor", "soap"]      # yellow, sand and cyan; the others are dark enough
    assert plotting.outline("white") and not plotting.outline("black")
    fig, ax = plt.subplots()
    plotting.plot_loss(np.geomspace(1, 1e-3, 10), ax, method="rmsprop")
    plotting.plot_loss(np.geomspace(1, 1e-3, 10), ax, method="gd")
    assert ax.lines[0].get_path_effects() and not ax.lines[1].get_path_effects()
    plt.close(fig)


def test_path_marks_start_and_end():
    t = descend(F.rosenbrock, [-1.5, 2.0], rules.adam(lr=0.05), 100)
    fig, ax = plt.subplots()
    plotting.plot_path(t, ax)
    xs = ax.lines[1].get_xdata()
    assert xs[0] == -1.5
    assert ax.lines[0].get_color() == plotting.method_color("adam")
    plt.close(fig)


def test_loss_plot_uses_log_scale_and_labels():
    fig, ax = plt.subplots()
    plotting.plot_loss(np.geomspace(1, 1e-6, 20), ax, method="adam")
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step t"
    plt.close(fig)


# --------------------------------------------------------------------------------------
# Notebook 03's colours
# --------------------------------------------------------------------------------------
def test_batch_colours_shade_gradient_descent():
    assert plotting.batch_color(569, 569) == plotting.method_color("gd").lower()
    brightness = [sum(mpl.colors.to_rgb(plotting.batch_color(b, 569))) for b in (1, 8, 64, 569)]
    assert brightness == sorted(brightness, reverse=True)  # lighter for smaller batches
    with pytest.raises(ValueError, match="batch_size"):
        plotting.batch_color(0, 569)


def _run_in_a_notebook_kernel(*cells: str) -> tuple[str, list[str]]:
    """Run ``cells`` one after another in a fresh Jupyter kernel with the inline backend (MPLBACKEND unset), as a
    notebook runs its cells; return what they printed and the PNGs they displayed (base64)."""
    from jupyter_client.manager import start_new_kernel

    kernel, client = start_new_kernel(kernel_name="python3", cwd=str(Path(__file__).resolve().parents[1]),
                                      env={name: value for name, value in os.environ.items() if name != "MPLBACKEND"})
    printed, images = [], []

    def collect(message):
        printed.append(message["content"].get("text", ""))
        if message["msg_type"] == "display_data" and "image/png" in message["content"]["data"]:
            images.append(message["content"]["data"]["image/png"])

    try:
        for code in cells:
            reply = client.execute_interactive(code, timeout=60, output_hook=collect)
            assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        kernel.shutdown_kernel(now=True)
    return "".join(printed), images


def _printed_in_a_notebook_kernel(code: str) -> str:
    """Run ``code`` in a fresh Jupyter kernel with the inline backend (MPLBACKEND unset); return what it printed."""
    return _run_in_a_notebook_kernel(code)[0]


def test_course_style_saves_inline_figures_at_their_own_size():
    """In a notebook kernel the inline backend trims figures (``bbox_inches="tight"``) until the course style is on."""
    code = (
        "import matplotlib.figure, matplotlib.pyplot as plt\n"
        "from course_lib import plotting\n"
        "png = get_ipython().display_formatter.formatters['image/png']\n"
        "def bbox():\n"
        "    plt.close(plt.figure())  # the inline backend registers its printer at the first figure\n"
        "    return png.lookup_by_type(matplotlib.figure.Figure).keywords['bbox_inches']\n"
        "print('before', bbox())\n"
        "plotting.use_course_style()\n"
        "print('after', bbox())\n"
    )
    printed = _printed_in_a_notebook_kernel(code)
    assert printed.split("\n")[:2] == ["before tight", "after None"]


def test_course_style_outside_a_kernel_only_sets_the_rc_parameters():
    with mpl.rc_context():
        plotting.use_course_style()
        assert mpl.rcParams["figure.constrained_layout.use"] is True
        assert mpl.get_backend().lower() == "agg"


def test_course_style_puts_titles_where_automatic_placement_puts_them():
    """The style fixes the title's height (a cheaper drawing); it must land where matplotlib would have put it."""
    def title_boxes(titley):
        with mpl.rc_context():
            plotting.use_course_style()
            mpl.rcParams["axes.titley"] = titley
            fig, axes = plt.subplots(1, 2, figsize=(8, 3))
            for ax in axes:
                ax.semilogy(np.arange(1, 100), np.exp(-np.arange(1, 100) / 10.0))
                ax.set(title="a title", xlabel="step", ylabel="loss")
            fig.suptitle("a figure")
            fig.canvas.draw()
            boxes = [ax.title.get_window_extent().bounds for ax in axes]
            plt.close(fig)
            return boxes

    assert plotting.COURSE_STYLE["axes.titley"] == 1.0
    assert title_boxes(1.0) == title_boxes(None)


def test_course_style_before_the_first_figure_also_holds():
    """The notebooks' order: the style is applied in the set-up cell, before the backend has drawn anything."""
    code = (
        "import matplotlib.figure, matplotlib.pyplot as plt\n"
        "from course_lib import plotting\n"
        "plotting.use_course_style()\n"
        "plt.close(plt.figure())\n"
        "png = get_ipython().display_formatter.formatters['image/png']\n"
        "print(png.lookup_by_type(matplotlib.figure.Figure).keywords['bbox_inches'])\n"
    )
    printed = _printed_in_a_notebook_kernel(code)
    assert printed.strip() == "None"


def test_inline_figures_are_laid_out_as_before_and_rendered_once():
    """With the course style a notebook figure is rendered once (pyplot's after-cell rendering is gone) and keeps
    the extra layout pass that rendering gave it: its PNG is the one the old way (a full drawing, then the
    inline backend's own printing) gives. The figure below lays out differently after 0, 1 or 2 extra passes."""
    setup = (
        "import matplotlib.figure, matplotlib.pyplot as plt, numpy as np\n"
        "from IPython.core.pylabtools import print_figure\n"
        "from matplotlib.backends.backend_agg import RendererAgg\n"
        "from course_lib import plotting\n"
        "plotting.use_course_style()\n"
        "def figure():\n"
        "    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))\n"
        "    for k in range(3):\n"
        "        left.plot([0, 1], [k, k + 1], label=f'method {k}, η = 0.1')\n"
        "    left.legend(loc='upper center', bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8)\n"
        "    left.set_title('a title')\n"
        "    right.semilogy(np.logspace(-16, 1, 50))\n"
        "    right.set(xlabel='step t', ylabel=r'$\\|\\theta_t - \\theta^*\\|$', title='another title')\n"
        "    return fig\n"
        "# a layout pass is a Figure.draw; a rendering is one that put text on the canvas (passes that only lay\n"
        "# out swap the renderer's draw_* methods for no-ops, so the class's draw_text is never reached)\n"
        "counts = {'layouts': 0, 'renderings': 0, 'text drawn': False}\n"
        "figure_draw, draw_text = matplotlib.figure.Figure.draw, RendererAgg.draw_text\n"
        "def counted_figure_draw(self, renderer):\n"
        "    counts['layouts'] += 1\n"
        "    counts['text drawn'] = False\n"
        "    result = figure_draw(self, renderer)\n"
        "    counts['renderings'] += counts['text drawn']\n"
        "    return result\n"
        "def noted_draw_text(self, *args, **kwargs):\n"
        "    counts['text drawn'] = True\n"
        "    return draw_text(self, *args, **kwargs)\n"
        "matplotlib.figure.Figure.draw, RendererAgg.draw_text = counted_figure_draw, noted_draw_text\n"
    )
    shown = "figure();\n"
    the_old_way = (
        "print(counts['layouts'], counts['renderings'])\n"
        "fig = figure()\n"
        "fig.canvas.draw()  # what pyplot's after-cell hook did\n"
        "print(print_figure(fig, 'png', base64=True, bbox_inches=None))\n"
        "plt.close(fig)\n"
    )
    printed, images = _run_in_a_notebook_kernel(setup, shown, the_old_way)
    counts, expected = printed.split("\n")[:2]
    assert len(images) == 1
    assert counts == "3 1"  # laid out three times (the extra pass, the printer's, the rendering), rendered once
    assert images[0] == expected
