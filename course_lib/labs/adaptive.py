r"""Per-coordinate step sizes: what AdaGrad and RMSProp actually do to each coordinate.

A rule without momentum moves every coordinate against its own gradient,
θ_{t,i} = θ_{t−1,i} − η_{t,i} g_{t,i}, with an *effective step size* η_{t,i}
that the rule chooses:

.. math::

    \eta_{t,i} = \eta \quad\text{(gradient descent)}, \qquad
    \eta_{t,i} = \frac{\eta}{\sqrt{\textstyle\sum_{s \le t} g_{s,i}^2} + \varepsilon} \quad\text{(AdaGrad)}, \qquad
    \eta_{t,i} = \frac{\eta}{\sqrt{v_{t,i}} + \varepsilon} \quad\text{(RMSProp)}.

:func:`effective_step_sizes` recovers η_{t,i} from the rule itself (it feeds it
the gradients and divides the move by the gradient), so the plots of notebook 05
show what the code does, not what a formula says it should do.
:func:`show_adaptive_descent` is notebook 05's playground view.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from ..descent import Trajectory, descend
from ..functions import Quadratic, quadratic
from ..plotting import METHOD_LABELS, method_color, outline, plot_contours
from ..rules import Rule, adagrad, rmsprop, sgd

__all__ = [
    "effective_step_sizes",
    "rotate",
    "AdaptiveView",
    "adaptive_view",
    "show_adaptive_descent",
    "DEFAULT_START",
    "DEFAULT_RULES",
]

DEFAULT_START = (-4.0, 2.0)
"""θ_0 of notebook 05's pictures (before rotation)."""

DEFAULT_RULES = {"gd": sgd(lr=1.0), "adagrad": adagrad(lr=1.0), "rmsprop": rmsprop(lr=0.1)}
"""The three runs of notebook 05's playground (L = 1, so gradient descent runs at η = 1/L)."""


_STYLES = {"gd": ("-", 1.2), "adagrad": ("-", 2.4), "rmsprop": ("--", 1.4)}  # AdaGrad and RMSProp often overlap


def effective_step_sizes(rule: Rule, grads) -> np.ndarray:
    """The per-coordinate step η_{t,i} a diagonal rule takes when fed the gradients g_1, …, g_T.

    ``grads`` has shape (T, ...) (steps first, then any run and coordinate
    axes). The rule is stepped with these gradients and η_{t,i} = (θ_{t−1,i} − θ_{t,i}) / g_{t,i}
    is returned with the same shape (``nan`` where g_{t,i} = 0). Only rules
    whose move is a per-coordinate multiple of the current gradient qualify:
    gradient descent, AdaGrad and RMSProp without momentum or weight decay.
    """
    hyper = rule.hyperparams
    if rule.name not in ("gd", "adagrad", "rmsprop"):
        raise ValueError(f"Invalid rule: {rule.name!r} (effective step sizes need gd, adagrad or rmsprop)")
    if np.any(np.asarray(hyper.get("momentum", 0.0)) != 0):
        raise ValueError(f"Invalid momentum: {hyper['momentum']} (with momentum a step is not a multiple of g_t)")
    if np.any(np.asarray(hyper.get("weight_decay", 0.0)) != 0):
        raise ValueError(f"Invalid weight_decay: {hyper['weight_decay']} (the step would depend on θ)")
    grads = np.asarray(grads, dtype=float)
    origin = np.zeros(grads.shape[1:])  # without weight decay the move does not depend on θ: step from 0
    state = rule.init(origin)
    steps = np.empty_like(grads)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t, grad in enumerate(grads):
            moved, state = rule.update(origin, grad, state)
            steps[t] = np.where(grad != 0, -moved / grad, np.nan)
    return steps


def rotate(points, angle: float) -> np.ndarray:
    """Points (..., 2) rotated counter-clockwise by ``angle`` radians (as quadratic(angle=…) rotates its valley)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(points, dtype=float) @ np.array([[c, -s], [s, c]]).T


@dataclass(frozen=True)
class AdaptiveView:
    """What notebook 05's playground shows: one run per rule on the same (rotated) quadratic."""

    objective: Quadratic
    runs: dict[str, Trajectory]
    angle: float
    kappa: float


def adaptive_view(angle: float = 20.0, kappa: float = 100.0, steps: int = 200, x0=DEFAULT_START,
                  rules: dict[str, Rule] | None = None) -> AdaptiveView:
    """Compute the playground's runs (no drawing). ``angle`` is in degrees; θ_0 is rotated with the valley."""
    objective = quadratic(kappa, angle=np.radians(angle))
    start = rotate(x0, np.radians(angle))
    rules = DEFAULT_RULES if rules is None else rules
    runs = {name: descend(objective, start, rule, steps) for name, rule in rules.items()}
    return AdaptiveView(objective, runs, float(angle), float(kappa))


def show_adaptive_descent(angle: float = 20.0, kappa: float = 100.0, steps: int = 200, x0=DEFAULT_START):
    """Notebook 05's playground view: GD, AdaGrad and RMSProp on quadratic(κ) rotated by ``angle`` degrees.

    Left: the paths on the contours; right: the distance ‖θ_t − θ*‖ on a log
    scale. Returns the figure.
    """
    view = adaptive_view(angle, kappa, steps, x0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    reach = 1.15 * float(np.linalg.norm(x0))
    plot_contours(view.objective, left, bounds=((-reach, reach), (-reach, reach)), resolution=120, log=True)
    for name, run in view.runs.items():
        rule = DEFAULT_RULES.get(name)
        lr = rule.hyperparams["lr"] if rule is not None else float("nan")
        label = f"{METHOD_LABELS[name]}, η = {lr:g}"
        points = run.points[np.all(np.isfinite(run.points), axis=-1)]
        style, width = _STYLES.get(name, ("-", 1.2))
        left.plot(*points.T, style, marker=".", markersize=2.5, lw=width, color=method_color(name), label=label,
                  path_effects=outline(method_color(name)))
        with np.errstate(over="ignore", invalid="ignore"):
            distance = run.distances(view.objective.minimizer)
        right.semilogy(np.where(distance > 0, distance, np.nan), style, lw=width, color=method_color(name),
                       path_effects=outline(method_color(name)),
                       label=label)
    left.plot(*view.runs["gd"].points[0], "o", color="k", markersize=6, zorder=6)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8)
    right.set_xlabel("step t")
    right.set_ylabel(r"distance to the minimizer, $\|\theta_t - \theta^*\|$")
    right.set_ylim(1e-12, 10 * reach)
    right.minorticks_off()  # labelled decades only: the unlabelled minor ticks of 13 decades cost drawing time
    fig.suptitle(f"quadratic with κ = {kappa:g}, valley rotated {angle:g}° from the θ₁ axis")
    return fig


def adaptive_playground():
    """Notebook 05: rotate an ill-conditioned valley and watch per-coordinate step sizes lose their edge.

    The view is :func:`show_adaptive_descent` (gradient descent, AdaGrad and RMSProp on quadratic(κ) rotated by
    the chosen angle).
    """
    import ipywidgets as ipw

    from ..widgets import playground

    return playground(
        lambda angle, kappa: show_adaptive_descent(angle=angle, kappa=kappa),
        angle=ipw.FloatSlider(value=20.0, min=0.0, max=90.0, step=5.0, description="angle (°)",
                              continuous_update=False, readout_format=".0f"),
        kappa=ipw.FloatLogSlider(value=100.0, base=10, min=0, max=3, step=0.25, description="κ",
                                 continuous_update=False, readout_format=".3g"),
    )


__all__ += ["adaptive_playground"]
