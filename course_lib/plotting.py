"""One look for the whole course: style, one colour per method, contour and loss plots.

Importing this module applies the course style (:func:`use_course_style`).
Every method keeps its colour from notebook 01 to the last one, so a learner
recognises gradient descent, momentum, Adam, … at a glance.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from .descent import Trajectory, descend
from .functions import Objective, x_squared
from .rules import sgd

__all__ = [
    "METHOD_COLORS",
    "METHOD_LABELS",
    "use_course_style",
    "method_color",
    "plot_contours",
    "plot_path",
    "plot_loss",
    "show_x_squared_descent",
    "show_quadratic_descent",
    "batch_color",
    "show_minibatch_sgd",
]

# Okabe–Ito colours (readable with every common form of colour blindness), one per method.
METHOD_COLORS = {
    "gd": "#0072B2",        # blue
    "momentum": "#E69F00",  # orange
    "nesterov": "#D55E00",  # vermillion
    "adagrad": "#009E73",   # bluish green
    "rmsprop": "#56B4E9",   # sky blue
    "adam": "#CC79A7",      # reddish purple
    "adamw": "#882255",     # wine
    "amsgrad": "#999933",   # olive
    # Notebook 11, from Paul Tol's colour-blind-safe palettes (distinct from the eight above):
    "nadam": "#332288",          # indigo
    "radam": "#44AA99",          # teal
    "adafactor": "#DDCC77",      # sand
    "lion": "#117733",           # green
    "muon": "#661100",           # brown
    "schedule_free": "#CC6677",  # rose
}
METHOD_LABELS = {
    "gd": "gradient descent",
    "momentum": "momentum",
    "nesterov": "Nesterov",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSProp",
    "adam": "Adam",
    "adamw": "AdamW",
    "amsgrad": "AMSGrad",
    "nadam": "NAdam",
    "radam": "RAdam",
    "adafactor": "Adafactor",
    "lion": "Lion",
    "muon": "Muon",
    "schedule_free": "Schedule-Free AdamW",
}
_ALIASES = {"sgd": "gd", "rmsprop_centered": "rmsprop"}

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
}


def use_course_style() -> None:
    """Apply the course's matplotlib style (done once when this module is imported)."""
    mpl.rcParams.update(COURSE_STYLE)


def method_color(method: str) -> str:
    """The course colour of a method (``'adam'``, ``'gd'``, ``'sgd'``, …)."""
    key = _ALIASES.get(method.lower(), method.lower())
    if key not in METHOD_COLORS:
        raise KeyError(f"no course colour for method {method!r}; known: {', '.join(METHOD_COLORS)}")
    return METHOD_COLORS[key]


def plot_contours(objective: Objective, ax=None, bounds=None, levels: int = 30, log: bool | None = None,
                  resolution: int = 300, equal_aspect: bool = True, mark_minimizers: bool = True):
    """Filled contour plot of a 2-D objective with its minimizer(s) marked by stars.

    ``log`` (default: on when the values in the window span more than three
    decades) spaces the levels logarithmically in f − f*.
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
        ax.contourf(xs, ys, np.maximum(gap, floor), levels=level_values, norm=LogNorm(), alpha=0.55)
        ax.contour(xs, ys, np.maximum(gap, floor), levels=level_values, colors="k", linewidths=0.3,
                   alpha=0.35)
    else:
        ax.contourf(xs, ys, gap, levels=levels, alpha=0.55)
        ax.contour(xs, ys, gap, levels=levels, colors="k", linewidths=0.3, alpha=0.35)
    if mark_minimizers:
        ax.plot(objective.minimizers[:, 0], objective.minimizers[:, 1], "*", color="gold", markersize=14,
                markeredgecolor="k", label="minimizer" if len(objective.minimizers) == 1 else "minimizers",
                zorder=5)
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
    label = label if label is not None else METHOD_LABELS.get(_ALIASES.get(method, method), method)
    finite = np.all(np.isfinite(points), axis=-1)
    points = points[finite]
    ax.plot(points[:, 0], points[:, 1], "-", color=color, label=label, marker="." if markers else None,
            markersize=3)
    ax.plot(points[0, 0], points[0, 1], "o", color=color, markeredgecolor="k", markersize=7, zorder=6)
    ax.plot(points[-1, 0], points[-1, 1], "X", color=color, markeredgecolor="k", markersize=8, zorder=6)
    return ax


def plot_loss(values, ax=None, method: str | None = None, label: str | None = None, color: str | None = None,
              log: bool = True, xlabel: str = "step t", ylabel: str = "f(θ_t) − f*"):
    """A loss (or suboptimality) curve, on a log scale by default."""
    ax = ax if ax is not None else plt.gca()
    if method is not None:
        color = color or method_color(method)
        label = label if label is not None else METHOD_LABELS.get(_ALIASES.get(method, method), method)
    ax.plot(np.arange(len(values)), values, color=color, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def show_x_squared_descent(lr: float = 0.1, steps: int = 20, x0: float = 5.0):
    """Gradient descent on f(x) = x²: the iterates on the parabola and |x_t| against t.

    This is the view behind notebook 01's learning-rate slider; it returns the figure.
    """
    trajectory = descend(x_squared, x0, sgd(lr=lr), steps)
    xs = trajectory.points[:, 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    finite = np.isfinite(xs)
    reach = max(abs(x0) * 1.2, float(np.nanmax(np.abs(xs[finite]))) * 1.05 if finite.any() else 1.0)
    reach = min(reach, 1e3)
    grid = np.linspace(-reach, reach, 400)
    left.plot(grid, grid**2, color="0.6", lw=1.2, label="f(x) = x²")
    shown = finite & (np.abs(xs) <= reach)
    left.plot(xs[shown], xs[shown] ** 2, "-o", color=method_color("gd"), markersize=4, lw=1,
              label=f"iterates, η = {lr:g}")
    left.plot(xs[0], xs[0] ** 2, "o", color=method_color("gd"), markeredgecolor="k", markersize=9)
    left.set_xlabel("x")
    left.set_ylabel("f(x)")
    left.legend(loc="upper center")
    factor = 1 - 2 * lr
    right.semilogy(np.arange(steps + 1), np.abs(xs), "-o", color=method_color("gd"), markersize=3,
                   label=f"$|x_t|$, factor |1 − 2η| = {abs(factor):.2f}")
    right.set_xlabel("step t")
    right.set_ylabel("$|x_t|$")
    right.legend()
    fig.suptitle(f"Gradient descent on x², η = {lr:g}: $x_t$ = {x0:g} · ({factor:.2f})$^t$")
    return fig


use_course_style()


# --------------------------------------------------------------------------------------
# Notebook 02: step size and conditioning
# --------------------------------------------------------------------------------------
def show_quadratic_descent(lr: float = 1.0, kappa: float = 10.0, angle: float = 0.0, steps: int = 40):
    """Gradient descent on the 2-D quadratic of condition number κ (with L = 1, μ = 1/κ).

    Left: the path on the contours, from a start that has a component along
    both eigen-directions. Right: ‖θ_t‖ on a log scale against the step t, and
    the worst-case line ‖θ_0‖ ρ^t with ρ(η) = max(|1 − ημ|, |1 − ηL|), the
    factor by which each step shrinks (ρ < 1) or grows (ρ > 1) the slower of the
    two eigen-components. ``angle`` (radians) rotates the valley. This is the
    view behind notebook 02's (η, κ) playground; it returns the figure.
    """
    from .functions import quadratic

    objective = quadratic(kappa=kappa, L=1.0, angle=angle)
    mu, L = objective.mu, objective.L
    c, s = np.cos(angle), np.sin(angle)
    x0 = np.array([[c, -s], [s, c]]) @ np.array([-4.0, 2.4])  # in the eigenbasis: (-4, 2.4)
    window = ((-5.0, 5.0), (-5.0, 5.0)) if angle else ((-5.0, 5.0), (-3.0, 3.0))
    trajectory = descend(objective, x0, sgd(lr=lr), steps)
    rate = max(abs(1 - lr * mu), abs(1 - lr * L))
    best_lr, best_rate = 2 / (mu + L), (kappa - 1) / (kappa + 1)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.25, 1]})
    plot_contours(objective, left, bounds=window, levels=20, log=False, resolution=150)
    plot_path(trajectory, left, label=f"η = {lr:.2f}")
    left.set_title(f"f(θ) = ½ θᵀAθ, κ = {kappa:.3g}" + (f", rotated {np.degrees(angle):.0f}°" if angle else ""))
    left.legend(loc="lower right")
    t = np.arange(steps + 1)
    norms = trajectory.distances(objective.minimizer)
    right.semilogy(t, norms, "-o", color=method_color("gd"), markersize=3, label="$\\|\\theta_t - \\theta^*\\|$")
    with np.errstate(over="ignore"):
        right.semilogy(t, norms[0] * rate ** t.astype(float), "--", color="k", lw=1,
                       label=f"$\\|\\theta_0 - \\theta^*\\|\\,\\rho^t$, ρ = {rate:.3f}")
    finite = norms[np.isfinite(norms)]
    right.set_ylim(max(finite.min(), 1e-12) / 3, min(max(finite.max(), norms[0] * 2), 1e12) * 3)
    right.set_xlabel("step t")
    right.set_ylabel("$\\|\\theta_t - \\theta^*\\|$")
    right.legend(loc="lower left")
    if lr >= 2 / L:
        verdict = "no convergence: η ≥ 2/L"
    else:
        verdict = f"best fixed step η* = 2/(μ+L) = {best_lr:.2f} gives ρ* = {best_rate:.3f}"
    fig.suptitle(f"ρ = max(|1 − ημ|, |1 − ηL|) = {rate:.3f} per step; {verdict}")
    return fig


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


def show_minibatch_sgd(problem, optimum, lr: float = 0.05, batch_size: int = 16, epochs: int = 20,
                       replacement: bool = False, seed: int = 0):
    """Minibatch SGD against full-batch gradient descent on a :mod:`course_lib.labs.stochastic` problem.

    Both start at θ_0 = 0. Draws f(θ_t) − f* at every step of SGD (against
    epochs, one epoch = n per-sample gradients), full-batch gradient descent
    with η = 1/L once per epoch, and the noise floor η tr Σ / (4B) that the
    small-η theory predicts for minibatches drawn with replacement (tr Σ, the
    one-sample gradient variance at θ*). ``optimum`` is the pair
    (θ*, f*) of :func:`course_lib.labs.stochastic.reference_optimum`. This is the view
    behind notebook 03's playground; it returns the figure.
    """
    from .labs.stochastic import minibatch_sgd

    params_star, minimum = optimum
    n = problem.n_samples
    start = np.zeros(problem.dim)
    path = minibatch_sgd(problem, start, lr, batch_size, epochs, seed=seed, replacement=replacement, every="step")
    steps_per_epoch = -(-n // int(batch_size))
    gd = minibatch_sgd(problem, start, 1 / problem.smoothness, n, epochs)
    floor = lr * problem.gradient_noise(params_star) / (4 * batch_size)

    fig, ax = plt.subplots(figsize=(8, 4.2))
    sampling = "with replacement" if replacement else "reshuffled"
    ax.plot(np.arange(len(path)) / steps_per_epoch, np.maximum(problem.loss(path) - minimum, 1e-16),
            color=batch_color(batch_size, n), lw=0.8, label=f"SGD, B = {batch_size}, η = {lr:.3g} ({sampling})")
    ax.plot(np.arange(epochs + 1), np.maximum(problem.loss(gd) - minimum, 1e-16), "-o", markersize=3,
            color=method_color("gd"), label="full-batch GD, η = 1/L")
    ax.axhline(floor, ls="--", color="k", lw=1, label="noise floor η tr Σ / (4B) (i.i.d. theory)")
    ax.set_yscale("log")
    ax.set_xlabel("epochs")
    ax.set_ylabel("f(θ_t) − f*")
    ax.set_title(f"{steps_per_epoch} steps per epoch")
    ax.legend(loc="upper right")
    return fig


