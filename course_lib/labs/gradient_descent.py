"""Notebooks 01 and 02, gradient descent: its views on x² and on a 2-D quadratic, and their two playgrounds.

* :func:`show_x_squared_descent` and :func:`learning_rate_playground`: gradient descent on f(x) = x² at a chosen η
  (notebook 01).
* :func:`show_quadratic_descent` and :func:`conditioning_playground`: gradient descent on the quadratic of
  condition number κ, its path and its rate ρ(η) = max(|1 − ημ|, |1 − ηL|) (notebook 02).

Each ``show_...`` runs its experiment with :func:`course_lib.descent.descend` and draws it with
:mod:`course_lib.plotting`; each playground is :func:`course_lib.widgets.playground` over it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..descent import descend
from ..functions import quadratic, x_squared
from ..plotting import method_color, plot_contours, plot_path
from ..rules import sgd

__all__ = [
    "show_x_squared_descent",
    "learning_rate_playground",
    "show_quadratic_descent",
    "conditioning_playground",
]


# --------------------------------------------------------------------------------------
# Notebook 01: gradient descent on x²
# --------------------------------------------------------------------------------------
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
    right.set_ylabel("distance to the minimizer, $|x_t|$")
    right.minorticks_off()  # the labelled minor ticks of a short log axis were a fifth of the drawing time
    right.legend()
    fig.suptitle(f"Gradient descent on x², η = {lr:g}: $x_t$ = {x0:g} · ({factor:.2f})$^t$")
    return fig


def learning_rate_playground(x0: float = 5.0):
    """Notebook 01: a learning-rate slider for gradient descent on x²; the view is :func:`show_x_squared_descent`."""
    import ipywidgets as ipw

    from ..widgets import playground

    return playground(
        lambda lr, steps: show_x_squared_descent(lr=lr, steps=steps, x0=x0),
        lr=ipw.FloatSlider(value=0.1, min=0.01, max=1.1, step=0.01, description="η", continuous_update=False,
                           readout_format=".2f"),
        steps=ipw.IntSlider(value=20, min=1, max=100, description="steps", continuous_update=False),
    )


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

    objective = quadratic(kappa=kappa, L=1.0, angle=angle)
    mu, L = objective.mu, objective.L
    c, s = np.cos(angle), np.sin(angle)
    x0 = np.array([[c, -s], [s, c]]) @ np.array([-4.0, 2.4])  # in the eigenbasis: (-4, 2.4)
    window = ((-5.0, 5.0), (-5.0, 5.0)) if angle else ((-5.0, 5.0), (-3.0, 3.0))
    trajectory = descend(objective, x0, sgd(lr=lr), steps)
    rate = max(abs(1 - lr * mu), abs(1 - lr * L))
    best_lr, best_rate = 2 / (mu + L), (kappa - 1) / (kappa + 1)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.25, 1]})
    plot_contours(objective, left, bounds=window, levels=20, log=False, resolution=100)
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
    right.set_ylabel("distance to the minimizer, $\\|\\theta_t - \\theta^*\\|$")
    right.minorticks_off()
    right.legend(loc="lower left")
    if lr >= 2 / L:
        verdict = "no convergence: η ≥ 2/L"
    else:
        verdict = f"best fixed step η* = 2/(μ+L) = {best_lr:.2f} gives ρ* = {best_rate:.3f}"
    fig.suptitle(f"ρ = max(|1 − ημ|, |1 − ηL|) = {rate:.3f} per step; {verdict}")
    return fig


def conditioning_playground(steps: int = 40):
    """Notebook 02: learning-rate and condition-number sliders for gradient descent on a 2-D quadratic.

    L = 1, so the stability bound is η < 2. The view is :func:`show_quadratic_descent`.
    """
    import ipywidgets as ipw

    from ..widgets import playground

    return playground(
        lambda lr, kappa: show_quadratic_descent(lr=lr, kappa=kappa, steps=steps),
        lr=ipw.FloatSlider(value=1.0, min=0.05, max=2.2, step=0.01, description="η", continuous_update=False,
                           readout_format=".2f"),
        kappa=ipw.FloatLogSlider(value=10.0, base=10, min=0, max=3, step=0.05, description="κ",
                                 continuous_update=False, readout_format=".3g"),
    )
