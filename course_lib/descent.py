"""Run an update rule on an objective and keep the whole path.

:func:`descend` is the NumPy loop behind every toy-problem figure of the
course. It is vectorized over runs: give it a batch of starting points of shape
(runs, dim), or hyperparameters that are arrays of shape (runs, 1) (a grid of
learning rates, say), and all runs advance together, one array operation per
step, with no Python loop over runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from .functions import Objective
from .rules import Rule

__all__ = ["Trajectory", "descend"]


@dataclass(frozen=True)
class Trajectory:
    """The iterates θ_0, …, θ_T of one run (or of a batch of runs).

    ``points`` has shape (steps + 1, dim) for one run and (steps + 1, runs, dim)
    for a batch; ``values`` holds f(θ_t) with shape (steps + 1,) or
    (steps + 1, runs). Diverged runs hold ``inf`` or ``nan`` from then on.
    ``rule`` is the name of the rule that made it and ``color_key`` that
    rule's key in the course's colours (:attr:`course_lib.rules.Rule.color_key`;
    empty: the same as ``rule``).
    """

    points: np.ndarray
    values: np.ndarray
    rule: str = ""
    color_key: str = ""

    @property
    def steps(self) -> int:
        return self.points.shape[0] - 1

    @property
    def final(self) -> np.ndarray:
        """θ_T, the last iterate(s)."""
        return self.points[-1]

    def distances(self, target) -> np.ndarray:
        """‖θ_t − target‖ for every step (and run)."""
        return np.linalg.norm(self.points - np.asarray(target, dtype=float), axis=-1)

    def suboptimality(self, minimum: float = 0.0) -> np.ndarray:
        """f(θ_t) − f* for every step (and run)."""
        return self.values - minimum


def descend(objective: Objective, x0, rule: Rule, steps: int,
            grad: Callable[[np.ndarray, int], np.ndarray] | None = None,
            schedule: Callable[[int], float] | None = None) -> Trajectory:
    """Run ``rule`` on ``objective`` for ``steps`` steps from ``x0``.

    ``x0`` is a point of shape (dim,) or a batch of starting points (runs, dim);
    a scalar is taken as a 1-D point. A rule whose hyperparameters are arrays of
    shape (runs, 1) runs one configuration per row. ``grad(x, t)`` replaces the
    exact gradient (to add noise, say); by default it is ``objective.grad``.
    ``schedule(t)`` multiplies the learning rate of step t (t = 1, …, ``steps``),
    as the multiplier of a ``torch.optim.lr_scheduler.LambdaLR`` stepped every
    step would; the rule's state carries over from step to step as in one run.

    Returns a :class:`Trajectory` with ``steps + 1`` points, θ_0 included.
    """
    if int(steps) != steps or steps < 0:
        raise ValueError(f"Invalid steps: {steps} (a non-negative integer)")
    x = np.asarray(x0, dtype=float)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.shape[-1] != objective.dim:
        raise ValueError(f"x0 has {x.shape[-1]} coordinates but {objective.name} takes {objective.dim}")
    x = np.broadcast_to(x, _batch_shape(x, rule) + (objective.dim,)).copy()
    gradient = grad if grad is not None else (lambda point, t: objective.grad(point))

    points = np.empty((int(steps) + 1,) + x.shape)
    points[0] = x
    state = rule.init(x)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for t in range(1, int(steps) + 1):
            if schedule is None:
                x, state = rule.update(x, gradient(x, t), state)
            else:
                hyper = {**rule.hyperparams, "lr": rule.hyperparams["lr"] * schedule(t)}
                x, state = rule.update_fn(x, gradient(x, t), state, **hyper)
            points[t] = x
    return Trajectory(points, partial(_values_of, objective, points), rule.name, rule.color_key)


def _values_of(objective: Objective, points: np.ndarray) -> np.ndarray:
    """f(θ_t) for every iterate, computed when a :class:`Trajectory`'s ``values`` are first read."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return objective.value(points)


def _get_values(trajectory: Trajectory) -> np.ndarray:
    values = trajectory.__dict__["_values"]
    if callable(values):  # left for later by descend: a grid of runs whose values nobody reads costs nothing
        values = values()
        trajectory.__dict__["_values"] = values
    return values


def _set_values(trajectory: Trajectory, values) -> None:  # the dataclass's __init__ only (it is frozen)
    trajectory.__dict__["_values"] = values


# ``values`` is a field of the frozen dataclass, stored behind a property so that descend can defer computing it:
# f(θ_t) for 10,000 runs × 400 steps costs more than the runs when only the iterates are read (notebook 04's maps).
Trajectory.values = property(_get_values, _set_values,
                             doc="f(θ_t) for every step (and run), shape (steps + 1,) or (steps + 1, runs).")


def _batch_shape(x: np.ndarray, rule: Rule) -> tuple[int, ...]:
    """The run axes implied by the starting points and by array-valued hyperparameters."""
    shapes = [x.shape[:-1]]
    for value in rule.hyperparams.values():
        for item in value if isinstance(value, tuple) else (value,):
            array = np.asarray(item)
            if array.ndim >= 1:
                if array.shape[-1] != 1:
                    raise ValueError("array hyperparameters need a trailing axis of length 1 "
                                     f"(shape (runs, 1)); got shape {array.shape}")
                shapes.append(array.shape[:-1])
    return np.broadcast_shapes(*shapes)
