"""One look for the whole course: style, one colour per method, contour and loss plots.

Importing this module changes nothing: a notebook applies the course style by
calling :func:`use_course_style` in its set-up cell. The functions here draw
what they are given and compute nothing else; the experiments behind a figure
live in the labs (:mod:`course_lib.labs`). Every method keeps its colour from notebook 01 to the last one, so a learner
recognises gradient descent, momentum, Adam, … at a glance.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.patheffects as path_effects
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import LogFormatterSciNotation

from .descent import Trajectory
from .functions import Objective
from .methods import ALIASES, METHODS, get, label

__all__ = [
    "METHOD_COLORS",
    "METHOD_LABELS",
    "COURSE_STYLE",
    "use_course_style",
    "method_color",
    "outline",
    "CONTOUR_LABEL",
    "plot_contours",
    "plot_path",
    "plot_loss",
    "plot_history",
    "plot_range_test",
    "batch_color",
]

# One colour and one label per method, from the method table (Okabe–Ito colours for notebooks 01-07, Paul Tol's for
# notebooks 09-10: readable with every common form of colour blindness).
METHOD_COLORS = {name: method.color for name, method in METHODS.items()}
METHOD_LABELS = {name: method.label for name, method in METHODS.items()}

COURSE_STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.constrained_layout.use": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "axes.prop_cycle": mpl.cycler(color=list(METHOD_COLORS.values())),
    "image.cmap": "viridis",
    # Titles at their fixed place above the axes. matplotlib's automatic placement (``None``) moves a title up only
    # past top-side ticks or an offset text; no course figure has either, and the search measured every axis's
    # tick labels again at each drawing (about a sixth of a figure's drawing time in a profile of notebook 10).
    # Every deterministic course figure is pixel-identical either way (all twelve notebooks compared).
    "axes.titley": 1.0,
}


def use_course_style() -> None:
    """Apply the course's matplotlib style (:data:`COURSE_STYLE`) to every figure drawn from now on.

    Each notebook calls it once in its set-up cell; importing this module does not.

    In a Jupyter kernel with the inline backend it also changes how each figure becomes the PNG the notebook
    shows, without changing a pixel of it:

    * the PNG is the whole figure (``bbox_inches=None``), not trimmed to its contents (``"tight"``, the
      backend's default): the course's figures use constrained layout, which already fits titles, labels and
      legends inside the figure, and measuring the contents for the trim made printing a figure about a
      fifth slower (notebooks 01–05: 13.0 s against 10.8 s for their 34 figures);
    * the figure is laid out once more without being rendered (:func:`_lay_out_before_display`), instead of
      being rendered in full by pyplot's after-cell hook and the result thrown away.
    """
    mpl.rcParams.update(COURSE_STYLE)
    shell = _inline_backend_shell()
    if shell is not None:
        _save_inline_figures_untrimmed(shell)
        _lay_out_before_display(shell)


def _inline_backend_shell():
    """The running IPython shell when its matplotlib backend is the inline one, else None."""
    if "inline" not in mpl.get_backend():
        return None
    from IPython import get_ipython

    return get_ipython()


def _save_inline_figures_untrimmed(shell) -> None:
    """Set the inline backend's ``bbox_inches`` to None."""
    from matplotlib_inline.backend_inline import select_figure_formats
    from matplotlib_inline.config import InlineBackend

    config = InlineBackend.instance()
    config.print_figure_kwargs = {**config.print_figure_kwargs, "bbox_inches": None}
    select_figure_formats(shell, config.figure_formats, **config.print_figure_kwargs)


def _lay_out_before_display(shell) -> None:
    """After each cell, lay out every changed figure without rendering it, before the inline backend shows it.

    Constrained layout settles over successive drawings: each one places the axes from the sizes of the
    labels the one before found. When a cell ends, IPython runs pyplot's hook, which draws every changed
    figure in full (for windows on screen; ``plt.draw_all()``), then the inline backend's
    ``flush_figures``, which lays the figure out once more and renders it into the PNG. Inline figures have
    no window, so the first rendering was thrown away, yet its layout pass is what some figures need to
    settle (without it a legend below the axes can be cut off). This keeps the pass and drops the rendering:
    pyplot's hook is disconnected (``plt.uninstall_repl_displayhook()``) and :func:`_lay_out_changed_figures`
    runs just before ``flush_figures``. Switching to another backend (``%matplotlib widget``) installs
    pyplot's hook again, and the pass does nothing there.
    """
    from matplotlib_inline.backend_inline import flush_figures

    plt.uninstall_repl_displayhook()
    events = shell.events
    if _lay_out_changed_figures in events.callbacks["post_execute"]:
        return
    if flush_figures in events.callbacks["post_execute"]:
        events.unregister("post_execute", flush_figures)
    events.register("post_execute", _lay_out_changed_figures)
    events.register("post_execute", flush_figures)  # after the layout pass


def _lay_out_changed_figures() -> None:
    """Lay out (``Figure.draw_without_rendering``) each open figure that changed, while the inline backend is on."""
    if "inline" not in mpl.get_backend() or not mpl.is_interactive():  # pyplot's hook also drew only then
        return
    current = plt.gcf() if plt.get_fignums() else None
    for number in plt.get_fignums():
        figure = plt.figure(number)
        if figure.stale:
            figure.draw_without_rendering()
    if current is not None:
        plt.figure(current)


def method_color(method: str) -> str:
    """The course colour of a method, by its name or an alias in :mod:`course_lib.methods` (``"adam"``, ``"sgd"``)."""
    try:
        return get(method.lower()).color
    except KeyError:
        raise KeyError(f"no course colour for method {method!r}; known: {', '.join(METHOD_COLORS)}") from None


def outline(color, linewidth: float | None = None) -> list:
    """Path effects that give a light line a thin dark edge, so it shows on white and on light contour fills.

    Pass them as ``ax.plot(..., lw=w, path_effects=outline(color, w))``: the edge is 0.5 points wide on each
    side of a line of width ``linewidth`` (default: the style's line width). For a colour whose relative luminance is at
    most 0.45 (every method colour but RMSProp's yellow, Adafactor's sand and SOAP's cyan) the list is empty: the
    line is drawn as it is.
    """
    red, green, blue = (channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4
                        for channel in mpl.colors.to_rgb(color))
    if 0.2126 * red + 0.7152 * green + 0.0722 * blue <= 0.45:
        return []
    width = mpl.rcParams["lines.linewidth"] if linewidth is None else linewidth
    return [path_effects.Stroke(linewidth=width + 1.0, foreground="0.25"), path_effects.Normal()]


def _label(method: str) -> str:
    """The method's label (an alias's own: "sgd" → "SGD"), or ``method`` itself for a name outside the table."""
    return label(method) if method in METHODS or method in ALIASES else method


#: The colour bar's label on every contour plot of the course: the quantity in words and in symbols.
CONTOUR_LABEL = "gap to the minimum, f(θ) − f*"


def plot_contours(objective: Objective, ax=None, bounds=None, levels: int = 30, log: bool | None = None,
                  resolution: int = 300, equal_aspect: bool = True, mark_minimizers: bool = True,
                  colorbar: bool = True):
    """Filled contour plot of a 2-D objective with its minimizer(s) marked by stars and a colour bar.

    The colours show the gap f(θ) − f* to the minimum; ``log`` (default: on when
    the values in the window span more than three decades) spaces the levels
    logarithmically in it. ``colorbar`` adds a colour bar beside ``ax``, labelled
    :data:`CONTOUR_LABEL`. The minimizer stars are drawn above paths and their
    end markers (:func:`plot_path`), so a run that ends on a minimizer does not
    hide it.
    """
    if objective.dim != 2:
        raise ValueError(f"contour plots need a 2-D objective; {objective.name} has dim {objective.dim}")
    ax = ax if ax is not None else plt.gca()
    (x_lo, x_hi), (y_lo, y_hi) = bounds if bounds is not None else objective.bounds
    xs, ys = np.meshgrid(np.linspace(x_lo, x_hi, resolution), np.linspace(y_lo, y_hi, resolution))
    gap = objective.value(np.stack([xs, ys], axis=-1)) - objective.minimum
    gap = np.maximum(gap, 0.0)
    positive = gap[gap > 0]
    if log is None:
        log = positive.size > 0 and positive.max() / max(positive.min(), 1e-300) > 1e3
    if log:
        floor = max(positive.min(), positive.max() * 1e-8)
        level_values = np.geomspace(floor, positive.max(), levels)
        filled = ax.contourf(xs, ys, np.maximum(gap, floor), levels=level_values, norm=LogNorm(), alpha=0.55)
        ax.contour(xs, ys, np.maximum(gap, floor), levels=level_values, colors="k", linewidths=0.3,
                   alpha=0.35)
    else:
        filled = ax.contourf(xs, ys, gap, levels=levels, alpha=0.55)
        ax.contour(xs, ys, gap, levels=levels, colors="k", linewidths=0.3, alpha=0.35)
    if colorbar:
        # in an inset axes, a child of ax: the figure's list of axes (fig.axes) stays the panels the caller made
        bar = ax.figure.colorbar(filled, cax=ax.inset_axes((1.03, 0.0, 0.04, 1.0)))
        bar.set_label(CONTOUR_LABEL)
        low, high = (np.ceil(np.log10(level_values[0])), np.floor(np.log10(level_values[-1]))) if log else (0, -1)
        if high > low:   # two decades or more: label decades only, as on the course's log-scale axes
            step = max(1, int(np.ceil((high - low + 1) / 8)))       # at most about eight labels
            bar.set_ticks(10.0 ** np.arange(low, high + 1, step))
            bar.ax.yaxis.set_major_formatter(LogFormatterSciNotation())
            bar.minorticks_off()
    if mark_minimizers:
        ax.plot(objective.minimizers[:, 0], objective.minimizers[:, 1], "*", color="gold", markersize=14,
                markeredgecolor="k", label="minimizer" if len(objective.minimizers) == 1 else "minimizers",
                zorder=7)   # above the paths and their start and end markers (zorder 6)
    if equal_aspect:
        ax.set_aspect("equal")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")
    ax.grid(False)
    return ax


def plot_path(trajectory: Trajectory, ax=None, method: str | None = None, label: str | None = None,
              color: str | None = None, run: int | None = None, markers: bool = True):
    """Draw a 2-D trajectory on ``ax``: the path, a circle at θ_0 and a cross at θ_T."""
    ax = ax if ax is not None else plt.gca()
    points = trajectory.points if run is None else trajectory.points[:, run]
    method = method or trajectory.color_key or trajectory.rule or "gd"
    color = color or method_color(method)
    label = label if label is not None else _label(method)
    finite = np.all(np.isfinite(points), axis=-1)
    points = points[finite]
    ax.plot(points[:, 0], points[:, 1], "-", color=color, label=label, marker="." if markers else None,
            markersize=3, path_effects=outline(color))
    ax.plot(points[0, 0], points[0, 1], "o", color=color, markeredgecolor="k", markersize=7, zorder=6)
    ax.plot(points[-1, 0], points[-1, 1], "X", color=color, markeredgecolor="k", markersize=8, zorder=6)
    return ax


def plot_loss(values, ax=None, method: str | None = None, label: str | None = None, color: str | None = None,
              log: bool = True, xlabel: str = "step t", ylabel: str = "gap to the minimum, f(θ_t) − f*"):
    """A loss (or suboptimality) curve, on a log scale by default."""
    ax = ax if ax is not None else plt.gca()
    if method is not None:
        color = color or method_color(method)
        label = label if label is not None else _label(method)
    ax.plot(np.arange(len(values)), values, color=color, label=label,
            path_effects=outline(color) if color is not None else [])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


# --------------------------------------------------------------------------------------
# Notebook 03: stochastic and minibatch gradient descent
# --------------------------------------------------------------------------------------
def batch_color(batch_size: int, n_samples: int) -> str:
    """A shade of gradient descent's colour for minibatch SGD: the smaller the batch, the lighter.

    Full batch (``batch_size == n_samples``) is exactly ``method_color("gd")``:
    SGD is gradient descent with a noisy gradient, so it keeps the method's hue.
    """
    if not 1 <= batch_size <= n_samples:
        raise ValueError(f"Invalid batch_size: {batch_size} (from 1 to n_samples = {n_samples})")
    weight = 1.0 if n_samples == 1 else 0.4 + 0.6 * np.log(batch_size) / np.log(n_samples)
    base = np.array(mpl.colors.to_rgb(method_color("gd")))
    return mpl.colors.to_hex(weight * base + (1 - weight) * np.ones(3))


def plot_history(history, axes=None, *, metrics=("loss", "accuracy"), splits=("train", "val"),
                 label: str | None = None, method: str | None = None, color: str | None = None,
                 linestyle: str | None = None):
    """Learning curves of a :class:`course_lib.training.History` against epochs: one panel per metric,
    training solid, validation dashed.

    ``method`` picks the course colour (``'adam'``, ``'gd'``, …); the loss
    panel has a log scale. Pass the ``axes`` of an earlier call to overlay
    several runs. Returns the axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    if method is not None:
        color = color or method_color(method)
        label = label if label is not None else METHOD_LABELS.get(method, method)
    label = label if label is not None else (history.label or None)
    epochs = np.arange(1, history.epochs + 1)
    for ax, metric in zip(axes, metrics):
        for split in splits:
            values = history.metric(f"{split}_{metric}")
            if np.all(np.isnan(values)):
                continue
            style = linestyle or ("-" if split == "train" else "--")
            text = None if label is None else (f"{label} ({split})" if len(splits) > 1 else label)
            ax.plot(epochs, values, style, color=color, label=text)
        ax.set_xlabel("epochs")
        ax.set_ylabel({"loss": f"loss ({history.loss})", "accuracy": "accuracy"}.get(metric, metric))
        if metric == "loss":
            ax.set_yscale("log")
    return axes


def plot_range_test(result, ax=None, *, method: str | None = None, label: str | None = None,
                    color: str | None = None, xlabel: str = "learning rate η", ylabel: str = "minibatch loss"):
    """A learning-rate range test (:class:`course_lib.training.LRRangeTest`): the smoothed loss against η on a
    log axis, the raw losses faint behind it. ``method`` picks the course colour and label. Returns the axes."""
    ax = ax if ax is not None else plt.gca()
    if method is not None:
        color = color or method_color(method)
        label = label if label is not None else METHOD_LABELS.get(method, method)
    ax.semilogx(result.lrs, result.losses, color=color, alpha=0.25, lw=1)
    ax.semilogx(result.lrs, result.smoothed, color=color, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax
