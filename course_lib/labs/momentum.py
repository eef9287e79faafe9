r"""Momentum on quadratics: the tuned parameters, the rate theory predicts, the rate the iterates show.

On f(θ) = ½ θᵀAθ every method of notebook 04 is a linear recurrence in the
eigenbasis of A. Along an eigen-direction with curvature h (an eigenvalue of A) the error e_t obeys

.. math::

    e_t = (1 + \beta - \eta h)\, e_{t-1} - \beta\, e_{t-2}
        \quad\text{(heavy ball, PyTorch's } b \leftarrow \beta b + g,\ \theta \leftarrow \theta - \eta b)

    e_t = (1 + \beta)(1 - \eta h)\, e_{t-1} - \beta (1 - \eta h)\, e_{t-2}
        \quad\text{(Nesterov, PyTorch's } \theta \leftarrow \theta - \eta (g + \beta b))

so the error shrinks per step by the larger root modulus of
z² − a z + c (a = 1 + β − ηh, c = β for heavy ball; a = (1 + β)(1 − ηh),
c = β(1 − ηh) for Nesterov), maximised over the eigenvalues h:
:func:`contraction_factor`. :func:`measured_rate` reads the same number off a
run's iterates, and :func:`show_momentum_descent` is notebook 04's playground view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np

from ..descent import Trajectory, descend
from ..functions import Quadratic, quadratic
from ..plotting import method_color, plot_contours
from ..rules import sgd

__all__ = [
    "Tuning",
    "gd_tuning",
    "polyak_tuning",
    "nesterov_tuning",
    "contraction_factor",
    "measured_rate",
    "MomentumView",
    "momentum_view",
    "show_momentum_descent",
    "DEFAULT_START",
]

DEFAULT_START = (-12.0, 2.5)
"""θ_0 of notebook 04's pictures: far along the flat valley of quadratic(κ=100), a little up the steep wall."""


class Tuning(NamedTuple):
    """Hyperparameters for a quadratic with curvatures in [μ, L] and the per-step rate they give."""

    lr: float
    momentum: float
    rate: float


def _check_curvatures(L, mu):
    if not mu > 0:
        raise ValueError(f"Invalid mu: {mu} (the smallest curvature must be positive)")
    if not L >= mu:
        raise ValueError(f"Invalid L: {L} (the largest curvature must be at least mu = {mu})")
    return float(L), float(mu)


def gd_tuning(L, mu) -> Tuning:
    """Gradient descent's best fixed step η = 2/(μ + L), with rate (κ − 1)/(κ + 1)."""
    L, mu = _check_curvatures(L, mu)
    kappa = L / mu
    return Tuning(2 / (mu + L), 0.0, float((kappa - 1) / (kappa + 1)))


def polyak_tuning(L, mu) -> Tuning:
    r"""Polyak's heavy ball: η = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))², rate (√κ − 1)/(√κ + 1).

    These are the (η, β) that minimise the worst contraction over curvatures in
    [μ, L]; both extreme eigen-directions then have a double root at ±√β.
    """
    L, mu = _check_curvatures(L, mu)
    root_kappa = np.sqrt(L / mu)
    rate = (root_kappa - 1) / (root_kappa + 1)
    return Tuning(float(4 / (np.sqrt(L) + np.sqrt(mu)) ** 2), float(rate**2), float(rate))


def nesterov_tuning(L, mu) -> Tuning:
    r"""Nesterov's constant-step scheme for strongly convex f: η = 1/L, β = (√κ − 1)/(√κ + 1).

    On a quadratic its slowest direction (h = μ) has a double root at 1 − 1/√κ,
    which is the rate returned.
    """
    L, mu = _check_curvatures(L, mu)
    root_kappa = np.sqrt(L / mu)
    return Tuning(1 / L, float((root_kappa - 1) / (root_kappa + 1)), float(1 - 1 / root_kappa))


def contraction_factor(lr, momentum, eigenvalues, nesterov: bool = False):
    """Asymptotic per-step factor by which the error shrinks (> 1: the run diverges).

    ``lr`` and ``momentum`` may be arrays (they broadcast against each other, e.g.
    a (runs, 1) grid); ``eigenvalues`` are the curvatures of the quadratic. The
    result is the spectral radius of the two-step recurrence (see the module
    docstring), maximised over the eigenvalues, with the broadcast shape of
    ``lr`` and ``momentum``.
    """
    lr = np.asarray(lr, dtype=float)[..., None]
    momentum = np.asarray(momentum, dtype=float)[..., None]
    eigenvalues = np.asarray(eigenvalues, dtype=float).ravel()
    if nesterov:
        shrink = 1 - lr * eigenvalues
        a, c = (1 + momentum) * shrink, momentum * shrink
    else:
        a, c = 1 + momentum - lr * eigenvalues, momentum + 0 * eigenvalues
    root = np.sqrt(a.astype(complex) ** 2 - 4 * c)
    radius = np.maximum(np.abs((a + root) / 2), np.abs((a - root) / 2))
    result = radius.max(axis=-1)
    return float(result) if result.ndim == 0 else result


def measured_rate(distances, start: int, stop: int, minimizer=0.0):
    """Per-step factor read off a run: (d_stop / d_start)^(1/(stop − start)).

    ``distances`` holds d_t = ‖θ_t − θ*‖ along axis 0 (steps), any run axes
    after it; a :class:`~course_lib.descent.Trajectory` may be given instead,
    and its distances to ``minimizer`` are used. Runs that diverged (inf or nan
    at ``stop``) get ``inf``; runs already at the minimizer at ``start`` get 0.
    """
    if isinstance(distances, Trajectory):
        length = len(distances.points)
    else:
        distances = np.asarray(distances, dtype=float)
        length = len(distances)
    if not 0 <= start < stop < length:
        raise ValueError(f"Invalid start, stop: {start}, {stop} (need 0 <= start < stop < {length})")
    if isinstance(distances, Trajectory):  # only the two steps that are read: a grid of runs has millions of points
        with np.errstate(over="ignore", invalid="ignore"):
            first, last = np.linalg.norm(distances.points[[start, stop]] - np.asarray(minimizer, dtype=float), axis=-1)
    else:
        first, last = distances[start], distances[stop]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rate = (last / first) ** (1.0 / (stop - start))
    rate = np.where(np.isfinite(last) & np.isfinite(first), rate, np.inf)
    rate = np.where((first == 0) & (last == 0), 0.0, rate)
    return float(rate) if rate.ndim == 0 else rate


@dataclass(frozen=True)
class MomentumView:
    """What notebook 04's playground shows: one momentum run and the best gradient-descent run."""

    objective: Quadratic
    run: Trajectory
    gd_run: Trajectory
    rate: float
    gd_rate: float
    lr: float
    momentum: float
    nesterov: bool


def momentum_view(lr: float = 1.0, momentum: float = 0.9, nesterov: bool = False, kappa: float = 100.0,
                  steps: int = 150, x0=DEFAULT_START) -> MomentumView:
    """Compute the playground's runs (no drawing): SGD with momentum and GD at η = 2/(μ + L)."""
    objective = quadratic(kappa)
    nesterov = bool(nesterov) and momentum > 0  # Nesterov with β = 0 is gradient descent
    run = descend(objective, x0, sgd(lr=lr, momentum=momentum, nesterov=nesterov), steps)
    best_gd = gd_tuning(objective.L, objective.mu)
    gd_run = descend(objective, x0, sgd(lr=best_gd.lr), steps)
    rate = contraction_factor(lr, momentum, objective.eigenvalues, nesterov=nesterov)
    return MomentumView(objective, run, gd_run, rate, best_gd.rate, float(lr), float(momentum), nesterov)


def show_momentum_descent(lr: float = 1.0, momentum: float = 0.9, nesterov: bool = False, kappa: float = 100.0,
                          steps: int = 150, x0=DEFAULT_START):
    """Notebook 04's playground view: the path on the contours and f(θ_t) − f* on a log scale.

    Gradient descent with its best fixed step 2/(μ + L) is drawn for reference.
    Returns the figure.
    """
    view = momentum_view(lr, momentum, nesterov, kappa, steps, x0)
    method = "nesterov" if view.nesterov else ("momentum" if momentum > 0 else "gd")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.9), width_ratios=(1.6, 1))
    (x_lo, x_hi), (y_lo, y_hi) = view.objective.bounds
    points = view.run.points[np.all(np.isfinite(view.run.points), axis=-1)]
    x_reach = min(max(x_hi, np.abs(points[:, 0]).max() * 1.05), 3 * x_hi)
    y_reach = min(max(y_hi, np.abs(points[:, 1]).max() * 1.05), 3 * y_hi)
    plot_contours(view.objective, left, bounds=((-x_reach, x_reach), (-y_reach, y_reach)), resolution=120)
    left.plot(*view.gd_run.points.T, "-", color=method_color("gd"), lw=1, alpha=0.7,
              label=f"gradient descent, η = 2/(μ+L) = {gd_tuning(view.objective.L, view.objective.mu).lr:.2f}")
    left.plot(*points.T, "-", marker=".", markersize=3, color=method_color(method), lw=1.2,
              label=f"{method}, η = {lr:.2f}, β = {momentum:.2f}")
    left.plot(*np.asarray(x0, dtype=float), "o", color="k", markersize=6, zorder=6)
    left.set_xlim(-x_reach, x_reach)
    left.set_ylim(-y_reach, y_reach)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize=8)
    gap = view.run.suboptimality(view.objective.minimum)
    gap = np.where(np.isfinite(gap) & (gap < 1e30), gap, np.nan)
    right.semilogy(view.gd_run.suboptimality(), color=method_color("gd"), lw=1.2,
                   label=f"gradient descent, ρ = {view.gd_rate:.3f}")
    right.semilogy(gap, color=method_color(method), label=f"{method}, ρ = {view.rate:.3f}")
    right.set_xlabel("step t")
    right.set_ylabel(r"$f(\theta_t) - f^*$")
    right.set_ylim(1e-16, 1e4)
    right.minorticks_off()  # labelled decades only: the unlabelled minor ticks of 20 decades cost drawing time
    right.legend(loc="lower left", fontsize=8)
    verdict = "diverges" if view.rate >= 1 else f"error × {view.rate:.3f} per step"
    fig.suptitle(f"{method} on a quadratic with κ = {kappa:g}: {verdict}")
    return fig


def momentum_playground(kappa: float = 100.0):
    """Notebook 04: learning-rate and momentum sliders (and a Nesterov switch) on quadratic(κ).

    The view is :func:`show_momentum_descent`: the path on the contours and f(θ_t) − f* against the best
    fixed-step gradient descent.
    """
    import ipywidgets as ipw

    from ..widgets import playground

    return playground(
        lambda lr, momentum, nesterov: show_momentum_descent(lr=lr, momentum=momentum, nesterov=nesterov,
                                                             kappa=kappa),
        lr=ipw.FloatSlider(value=1.0, min=0.05, max=4.5, step=0.05, description="η", continuous_update=False,
                           readout_format=".2f"),
        momentum=ipw.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01, description="β", continuous_update=False,
                                 readout_format=".2f"),
        nesterov=ipw.Checkbox(value=False, description="Nesterov"),
    )


__all__ += ["momentum_playground"]
