"""Notebook 09, choosing an optimizer: small problems that back the decision guide, and its playground.

* :class:`LeastSquares` and :func:`least_squares_problem` — linear regression
  f(θ) = (1/2n)‖Xθ − y‖² whose feature j is non-zero in a chosen fraction of the
  rows (its *frequency*). Rare features have small curvature, which is how
  sparse data looks to an optimizer.
* :meth:`LeastSquares.minibatch_grad` — a reshuffled-minibatch gradient for
  :func:`course_lib.descent.descend`, so every rule of :mod:`course_lib.rules`
  runs on minibatches, vectorized over learning rates.
* :func:`best_learning_rate`, :func:`fastest_learning_rate`, :func:`steps_to_tolerance`
  — a fair race: each rule at its own best η of a grid, all candidates in one batched run.
* :func:`show_learning_rate_choice` and :func:`choice_playground` — the
  playground: an optimizer and an η for the seed classifier, seen on its
  learning-rate range test and on its learning curves.

>>> from course_lib import rules
>>> from course_lib.labs import guide
>>> from course_lib.descent import descend
>>> problem = guide.least_squares_problem(n=1000, frequencies=[1.0, 0.01])
>>> run = descend(problem, [0.0, 0.0], rules.adagrad(lr=0.5), 300, grad=problem.minibatch_grad(32))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .. import rules
from ..descent import Trajectory, descend
from ..functions import Objective

__all__ = [
    "LeastSquares",
    "least_squares_problem",
    "best_learning_rate",
    "steps_to_tolerance",
    "fastest_learning_rate",
    "method_range_test",
    "show_learning_rate_choice",
    "choice_playground",
]


# --------------------------------------------------------------------------------------
# Linear regression with features of chosen frequency
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeastSquares(Objective):
    r"""f(θ) = (1/2n) ‖Xθ − y‖², the mean squared error of a linear model (halved).

    .. math::  \nabla f(\theta) = \tfrac1n X^\top (X\theta - y), \qquad \nabla^2 f = \tfrac1n X^\top X .

    ``design`` is X (n × d), ``targets`` is y (n,). The minimizer (``minimizer``)
    and f* (``minimum``) come from ``numpy.linalg.lstsq``. Points may be batched,
    shape (..., d), like every objective of :mod:`course_lib.functions`.
    ``frequencies[j]`` is the share of rows in which feature j is non-zero.
    """

    design: np.ndarray = field(default_factory=lambda: np.eye(2))
    targets: np.ndarray = field(default_factory=lambda: np.zeros(2))
    frequencies: np.ndarray = field(default_factory=lambda: np.ones(2))

    @property
    def n_samples(self) -> int:
        return self.design.shape[0]

    @cached_property
    def hessian(self) -> np.ndarray:
        """(1/n) XᵀX: the curvature, the same at every θ."""
        return self.design.T @ self.design / self.n_samples

    @cached_property
    def _linear_term(self) -> np.ndarray:
        return self.design.T @ self.targets / self.n_samples

    @cached_property
    def _constant(self) -> float:
        return float(self.targets @ self.targets / (2 * self.n_samples))

    def value(self, x):
        # ½θᵀHθ − bᵀθ + c with H = XᵀX/n, b = Xᵀy/n, c = ‖y‖²/2n: d² work per point instead of n·d
        x = self._check(x)
        return 0.5 * np.sum((x @ self.hessian) * x, axis=-1) - x @ self._linear_term + self._constant

    def grad(self, x):
        x = self._check(x)
        return x @ self.hessian - self._linear_term

    def minibatch_grad(self, batch_size: int, seed: int = 0) -> Callable[[np.ndarray, int], np.ndarray]:
        r"""A gradient callback ``grad(θ, t)`` for :func:`~course_lib.descent.descend`: minibatch SGD's gradient.

        .. math::  g_t = \tfrac1B X_{B_t}^\top (X_{B_t}\theta - y_{B_t})

        Each epoch reshuffles the rows (a permutation fixed by ``seed`` and the
        epoch) and walks through them in ⌊n/B⌋ batches of ``batch_size`` rows
        (the last, incomplete batch is dropped, like ``DataLoader(drop_last=True)``);
        step t uses batch t − 1 of that sequence. All runs of a batch of points
        see the same rows, so methods and learning rates are compared on
        identical noise.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        if batch_size > self.n_samples:
            raise ValueError(f"batch_size {batch_size} is larger than the {self.n_samples} rows")
        per_epoch = self.n_samples // int(batch_size)
        orders: dict[int, np.ndarray] = {}

        def grad(x, t):
            epoch, position = divmod(int(t) - 1, per_epoch)
            if epoch not in orders:
                orders.clear()
                orders[epoch] = np.random.default_rng([int(seed), epoch]).permutation(self.n_samples)
            rows = orders[epoch][position * batch_size:(position + 1) * batch_size]
            X, y = self.design[rows], self.targets[rows]
            return (self._check(x) @ X.T - y) @ X / len(rows)

        return grad


def least_squares_problem(n: int = 2000, frequencies=(1.0, 0.3, 0.1, 0.03, 0.01), *, noise: float = 0.1,
                          weights=None, seed: int = 0) -> LeastSquares:
    r"""Linear regression whose feature j is non-zero in a fraction ``frequencies[j]`` of the ``n`` rows.

    x_ij = s_ij · b_ij with a random sign s_ij = ±1 and b_ij ~ Bernoulli(p_j),
    so E[x_ij x_ik] = p_j when j = k and 0 otherwise: the Hessian (1/n)XᵀX is
    close to diag(p_1, …, p_d). A feature present in 1 % of the rows has 1 %
    of the curvature of an always-present one: rare features are the flat
    directions of notebook 02. y = Xw + noise · N(0, 1) with ``weights`` w
    (all ones by default). The same ``seed`` gives the same table everywhere;
    every feature occurs at least once.
    """
    frequencies = np.asarray(frequencies, dtype=float).ravel()
    if int(n) < 2:
        raise ValueError(f"n must be at least 2; got {n}")
    if frequencies.size < 1 or not np.all((frequencies > 0) & (frequencies <= 1)):
        raise ValueError(f"frequencies must lie in (0, 1]; got {frequencies.tolist()}")
    if not noise >= 0:
        raise ValueError(f"noise must be non-negative; got {noise}")
    d = frequencies.size
    weights = np.ones(d) if weights is None else np.asarray(weights, dtype=float).ravel()
    if weights.shape != (d,):
        raise ValueError(f"weights must have one entry per feature ({d}); got shape {weights.shape}")
    rng = np.random.default_rng(seed)
    present = rng.random((int(n), d)) < frequencies
    never = ~present.any(axis=0)
    present[rng.integers(0, int(n), size=int(never.sum())), np.flatnonzero(never)] = True
    X = present * rng.choice([-1.0, 1.0], size=(int(n), d))
    y = X @ weights + noise * rng.standard_normal(int(n))
    solution, *_ = np.linalg.lstsq(X, y, rcond=None)
    minimum = float(0.5 * np.mean((X @ solution - y) ** 2))
    spread = float(np.abs(solution).max()) + 1.0
    return LeastSquares(name=f"least squares, {d} features", dim=d, minimizers=solution[None, :], minimum=minimum,
                        bounds=((-spread, spread),) * d, formula="f(θ) = (1/2n)‖Xθ − y‖²", design=X, targets=y,
                        frequencies=frequencies)


# --------------------------------------------------------------------------------------
# A fair comparison: each rule at its own best learning rate
# --------------------------------------------------------------------------------------
def best_learning_rate(objective: Objective, x0, make_rule: Callable[[np.ndarray], rules.Rule], lrs, steps: int,
                       *, grad: Callable | None = None, average_last: int = 1) -> tuple[float, Trajectory]:
    """The η of ``lrs`` with the lowest f(θ_t) averaged over the last ``average_last`` steps, and its run.

    All candidates advance together in one batched :func:`descend` (``make_rule``
    receives them as an array of shape (runs, 1)); a diverged run scores ``inf``.
    ``grad`` is passed to ``descend`` (a minibatch gradient, say). Returns
    ``(lr, trajectory)`` where ``trajectory`` is the single run at that η.
    """
    lrs = np.asarray(lrs, dtype=float).ravel()
    if lrs.size == 0 or not np.all(lrs > 0):
        raise ValueError(f"lrs must be a non-empty list of positive learning rates; got {lrs.tolist()}")
    if int(average_last) < 1 or int(average_last) > int(steps):
        raise ValueError(f"average_last must be between 1 and steps ({steps}); got {average_last}")
    batch = descend(objective, x0, make_rule(lrs[:, None]), steps, grad=grad)
    with np.errstate(invalid="ignore", over="ignore"):
        tail = batch.values[-int(average_last):]
        score = np.where(np.all(np.isfinite(tail), axis=0), tail.mean(axis=0), np.inf)
    best = int(np.argmin(score))
    run = Trajectory(batch.points[:, best], batch.values[:, best], batch.rule)
    return float(lrs[best]), run


def steps_to_tolerance(values, tolerance: float, minimum: float = 0.0) -> np.ndarray | float:
    r"""The first step t from which (f(θ_s) − f*) / (f(θ_0) − f*) < ``tolerance`` for every s ≥ t.

    ``values`` is f(θ_t) for t = 0, …, T, shape (T + 1,) or (T + 1, runs) (a
    :class:`~course_lib.descent.Trajectory`'s ``values``). A run that never
    settles below the tolerance (it diverged, or it keeps bouncing above it)
    gets ``inf``. Returns a float for one run, an array for a batch.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1); got {tolerance}")
    values = np.asarray(values, dtype=float)
    if values.ndim not in (1, 2) or values.shape[0] < 2:
        raise ValueError(f"values must have shape (steps + 1,) or (steps + 1, runs) with steps >= 1; "
                         f"got {values.shape}")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        relative = (values - minimum) / (values[0] - minimum)
        below = np.isfinite(relative) & (relative < tolerance)
    stays = np.flip(np.logical_and.accumulate(np.flip(below, axis=0), axis=0), axis=0)
    steps = np.where(stays.any(axis=0), np.argmax(stays, axis=0), np.inf)
    return float(steps) if steps.ndim == 0 else steps.astype(float)


def fastest_learning_rate(objective: Objective, x0, make_rule: Callable[[np.ndarray], rules.Rule], lrs,
                          steps: int, tolerance: float = 1e-6) -> tuple[float, float]:
    """The η of ``lrs`` that first gets f − f* below ``tolerance`` · (f(θ_0) − f*) for good, and that step count.

    All candidates run together in one batched :func:`descend`; ties go to the
    smaller η. Returns ``(lr, steps)``, with ``steps`` = ``inf`` (and the first
    η) when no candidate reaches the tolerance within ``steps`` steps.
    """
    lrs = np.asarray(lrs, dtype=float).ravel()
    if lrs.size == 0 or not np.all(lrs > 0):
        raise ValueError(f"lrs must be a non-empty list of positive learning rates; got {lrs.tolist()}")
    batch = descend(objective, x0, make_rule(lrs[:, None]), steps)
    needed = steps_to_tolerance(batch.values, tolerance, objective.minimum)
    best = int(np.argmin(needed))
    return float(lrs[best]), float(needed[best])


# --------------------------------------------------------------------------------------
# The playground: an optimizer and a learning rate, seen on the range test and in training
# --------------------------------------------------------------------------------------
def method_range_test(dataset, method: str, *, start_lr: float = 1e-5, end_lr: float = 10.0, steps: int = 200,
                      seed: int = 0, device=None):
    """The learning-rate range test of ``method`` (a key of ``training.METHODS``) on a fresh seed classifier.

    Seeds everything with ``seed``, builds ``training.seed_classifier`` and the
    method's optimizer, and runs :func:`course_lib.training.lr_range_test` with
    minibatches of 32 (the whole training split for full-batch ``'gd'``).
    """
    from .. import training

    training.seed_everything(seed)
    model = training.seed_classifier(dataset.n_features)
    optimizer = training.make_optimizer(method, model.parameters(), start_lr)
    batch_size = None if training.METHODS[method].full_batch else 32
    return training.lr_range_test(model, optimizer, dataset.train, start_lr, end_lr, steps, batch_size=batch_size,
                                  seed=seed, device=device)


def show_learning_rate_choice(method: str = "adam", lr: float = 1e-3, epochs: int = 50, *, dataset=None,
                              seed: int = 0, device=None, range_test=None, history=None):
    """Notebook 09's playground view: ``method`` at ``lr`` on the seed classifier; returns the figure.

    Left: the method's learning-rate range test (:func:`method_range_test`),
    with the chosen η (vertical line) and the range test's suggestion (dot).
    Right: training and validation loss of a ``training.train_classifier`` run
    at that η for ``epochs`` epochs, or a message if it diverged. Pass a
    ``range_test`` or a ``history`` made with these settings to draw them
    without computing them again. ``dataset`` defaults to ``data.breast_cancer()``.
    """
    import matplotlib.pyplot as plt

    from .. import training
    from ..plotting import method_color

    if method not in training.METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(training.METHODS)}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr}")
    if dataset is None and (range_test is None or history is None):
        from ..data import breast_cancer

        dataset = breast_cancer()
    colour = method_color("gd" if method == "sgd" else method)
    title = training.METHOD_TITLES[method]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    if range_test is None:
        range_test = method_range_test(dataset, method, seed=seed, device=device)
    range_test.plot(left, color=colour, label=f"{title}: range test")
    suggestion = range_test.suggestion()
    at = int(np.argmin(np.abs(np.log(range_test.lrs / suggestion))))
    left.plot([suggestion], [range_test.smoothed[at]], "o", color="k", label=f"suggestion η ≈ {suggestion:.1e}")
    left.axvline(lr, color=colour, ls="--", lw=1.2, label=f"chosen η = {lr:g}")
    left.set_ylim(0, 1.15 * float(np.nanmax(range_test.smoothed)))   # raw minibatch losses beyond it are cut off
    stopped = " (stopped when the loss took off)" if range_test.stopped_early else ""
    left.set_title("learning-rate range test" + stopped)
    left.legend(loc="lower left", fontsize=8)
    try:
        if history is None:
            _, history = training.train_classifier(dataset, method, lr, epochs=epochs, seed=seed, device=device)
    except training.DivergenceError as error:
        right.text(0.5, 0.5, "diverged:\n" + str(error).split(". ")[0], ha="center", va="center", wrap=True,
                   transform=right.transAxes, fontsize=9)
        right.set_title(f"{title}, η = {lr:g}: diverged")
        return fig
    history.plot(right, metrics=("loss",), color=colour, label=title)
    right.legend(loc="upper right", fontsize=8)
    right.set_title(f"{title}, η = {lr:g}: validation accuracy {history.val_accuracy[-1]:.3f}")
    return fig


def choice_playground(dataset=None, *, device=None, range_tests=None, histories=None):
    """Notebook 09: pick an optimizer, η and epochs; see the range test and the learning curves.

    The callback is :func:`show_learning_rate_choice`. A method's range test does
    not depend on η, so it is computed once per method and kept; ``range_tests``
    (method → :class:`~course_lib.training.LRRangeTest`) and ``histories``
    ((method, lr, epochs) → :class:`~course_lib.training.History`) hand in results
    already made, so that the first view costs no training at all.
    """
    import ipywidgets

    from ..training import METHOD_TITLES
    from ..widgets import playground

    if dataset is None:
        from ..data import breast_cancer

        dataset = breast_cancer()
    kept_tests = dict(range_tests or {})
    kept_runs = dict(histories or {})

    def draw(method, lr, epochs):
        if method not in kept_tests:
            kept_tests[method] = method_range_test(dataset, method, device=device)
        return show_learning_rate_choice(method, lr, epochs, dataset=dataset, device=device,
                                         range_test=kept_tests[method], history=kept_runs.get((method, lr, epochs)))

    return playground(
        draw,
        method=ipywidgets.Dropdown(options=[(title, name) for name, title in METHOD_TITLES.items()], value="adam",
                                   description="optimizer"),
        lr=ipywidgets.FloatLogSlider(value=1e-3, base=10, min=-4, max=1, step=0.25, description="η",
                                     continuous_update=False, readout_format=".1e"),
        epochs=ipywidgets.IntSlider(value=50, min=5, max=150, step=5, description="epochs", continuous_update=False),
    )
