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
from ..functions import Objective, Quadratic, quadratic
from ..plotting import method_color, plot_contours
from ..rules import sgd

__all__ = [
    "Tuning",
    "gd_tuning",
    "polyak_tuning",
    "nesterov_tuning",
    "contraction_factor",
    "measured_rate",
    "REGIMES",
    "damping_regime",
    "Saddle",
    "saddle",
    "escape_steps",
    "MomentumView",
    "momentum_view",
    "show_momentum_descent",
    "DEFAULT_START",
    "GAP_LABEL",
]

DEFAULT_START = (-12.0, 2.5)
"""θ_0 of notebook 04's pictures: far along the flat valley of quadratic(κ=100), a little up the steep wall."""

GAP_LABEL = "gap to the minimum, f(θ_t) − f*"
"""The loss axis of notebook 04's figures in the course's notation (docs/notation.md), as plotting.plot_loss has it."""


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


REGIMES = ("over-damped", "under-damped", "alternating", "divergent")
"""The four regimes of heavy ball along one eigen-direction, in the order :func:`damping_regime` numbers them."""


def damping_regime(lr_curvature, momentum):
    r"""Which regime heavy ball is in along a direction of curvature h, from x = ηh and β (0 ≤ β < 1).

    The error obeys e_t = (1 + β − x) e_{t−1} − β e_{t−2}, with characteristic
    roots z² − (1 + β − x) z + β = 0 (product β, sum 1 + β − x). Returns an
    integer array indexing :data:`REGIMES`:

    * 0, over-damped: 0 < x < (1 − √β)², two real roots in (0, 1): e_t decays without changing sign;
    * 1, under-damped: (1 − √β)² < x < (1 + √β)², complex roots of modulus √β: e_t oscillates inside √β^t;
    * 2, alternating: (1 + √β)² < x < 2(1 + β), real roots, one in (−1, 0): e_t changes sign every step;
    * 3, divergent: x ≤ 0 or x ≥ 2(1 + β), a root of modulus ≥ 1.

    On the two curves x = (1 ∓ √β)² the root is double (critical damping, ±√β); they are counted as
    under-damped. ``lr_curvature`` and ``momentum`` broadcast against each other.
    """
    x = np.asarray(lr_curvature, dtype=float)
    beta = np.asarray(momentum, dtype=float)
    if np.any(beta < 0) or np.any(beta >= 1):
        raise ValueError(f"Invalid momentum: {momentum} (damping_regime needs 0 <= β < 1)")
    root = np.sqrt(beta)
    regime = np.full(np.broadcast(x, beta).shape, 3)
    regime = np.where((x > 0) & (x < (1 - root) ** 2), 0, regime)
    regime = np.where((x >= (1 - root) ** 2) & (x <= (1 + root) ** 2) & (x > 0), 1, regime)
    regime = np.where((x > (1 + root) ** 2) & (x < 2 * (1 + beta)), 2, regime)
    return regime


@dataclass(frozen=True)
class Saddle(Objective):
    """f(θ) = ½ θ₁² − ½ ρ θ₂² + ¼ θ₂⁴: a saddle at 0 (curvatures 1 and −ρ), minima at (0, ±√ρ)."""

    rho: float = 0.01

    def value(self, x):
        x = self._check(x)
        return 0.5 * x[..., 0] ** 2 - 0.5 * self.rho * x[..., 1] ** 2 + 0.25 * x[..., 1] ** 4

    def grad(self, x):
        x = self._check(x)
        return np.stack([x[..., 0], -self.rho * x[..., 1] + x[..., 1] ** 3], axis=-1)


def saddle(rho: float = 0.01) -> Saddle:
    """Notebook 04's saddle: curvature 1 along θ₁ and −ρ along θ₂ at θ = 0; f* = −ρ²/4 at (0, ±√ρ)."""
    if not rho > 0:
        raise ValueError(f"Invalid rho: {rho} (the negative curvature −ρ needs ρ > 0)")
    bottom = float(np.sqrt(rho))
    return Saddle(f"saddle (ρ = {rho:g})", 2, np.array([[0.0, bottom], [0.0, -bottom]]), -rho**2 / 4,
                  ((-1.2, 1.2), (-1.5 * bottom, 1.5 * bottom)), "f(θ) = θ₁²/2 − ρθ₂²/2 + θ₂⁴/4", float(rho))


def escape_steps(run: Trajectory, distance: float, settled: float = 1e-3):
    """First step t at which |θ₂| ≥ ``distance`` and |θ₁| < ``settled`` (``inf`` for runs that never get there)."""
    points = np.asarray(run.points)
    with np.errstate(invalid="ignore"):
        escaped = (np.abs(points[..., 1]) >= distance) & (np.abs(points[..., 0]) < settled)
    steps = np.where(escaped.any(axis=0), np.argmax(escaped, axis=0), np.inf)
    return float(steps) if steps.ndim == 0 else steps


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
    right.set_ylabel(GAP_LABEL)
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
