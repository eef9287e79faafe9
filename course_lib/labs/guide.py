"""Notebook 13, choosing an optimizer: small problems that back the decision guide, and its playground.

* :class:`LeastSquares` and :func:`least_squares_problem` — linear regression
  f(θ) = (1/2n)‖Xθ − y‖² whose feature j is non-zero in a chosen fraction of the
  rows (its *frequency*). Rare features have small curvature, which is how
  sparse data looks to an optimizer.
* :meth:`LeastSquares.minibatch_grad` — a reshuffled-minibatch gradient for
  :func:`course_lib.descent.descend`, so every rule of :mod:`course_lib.rules`
  runs on minibatches, vectorized over learning rates.
* :func:`best_learning_rate`, :func:`fastest_learning_rate`, :func:`steps_to_tolerance`
  — a fair race: each rule at its own best η of a grid, all candidates in one batched run.
* :func:`steep_bowl`, :func:`linear_warmup` — a bowl that is sharper far out
  than at its minimum, and the linear warm-up that lets gradient descent use an
  η the start would not survive.
* :func:`clip_by_global_norm`, :class:`ClippedGradient`, :func:`heavy_tailed_problem`
  — gradient clipping (torch's ``clip_grad_norm_``) with the norms logged, and
  a regression whose outlier rows make the loss spike.
* :func:`range_test` — the learning-rate range test of
  :func:`course_lib.training.lr_range_test`, run by :func:`~course_lib.descent.descend`.
* :func:`read_sweep`, :func:`tuned_summary`, :func:`format_tuned_summary` —
  notebook 12's sweeps read back: each optimizer at its own best η (chosen by
  :func:`course_lib.benchmark.select`, as notebook 12 does), with the spread
  over seeds, and ties (paired intervals that hold zero) called ties.
* :func:`show_optimizer_choice` and :func:`choice_playground` — the
  playground: an optimizer and an η on the sparse-feature problem, seen on its
  range test and its run.

NumPy only: nothing here imports torch (notebook 13 runs in a few seconds).

>>> from course_lib import rules
>>> from course_lib.labs import guide
>>> from course_lib.descent import descend
>>> problem = guide.least_squares_problem(n=1000, frequencies=[1.0, 0.01])
>>> run = descend(problem, [0.0, 0.0], rules.adagrad(lr=0.5), 300, grad=problem.minibatch_grad(32))
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .. import benchmark, methods, rules, sweep
from ..descent import Trajectory, descend
from ..functions import Objective
from ..range_test import LRRangeTest, range_test_lrs

__all__ = [
    "fingerprint",
    "LeastSquares",
    "least_squares_problem",
    "best_learning_rate",
    "steps_to_tolerance",
    "fastest_learning_rate",
    "fastest_learning_rates",
    "SteepBowl",
    "steep_bowl",
    "linear_warmup",
    "clip_by_global_norm",
    "ClippedGradient",
    "heavy_tailed_problem",
    "RANGE_TEST_AXES",
    "range_test",
    "SWEEP_FILE",
    "read_sweep",
    "TunedResult",
    "tuned_summary",
    "format_tuned_summary",
    "PLAYGROUND_RULES",
    "show_optimizer_choice",
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
    best = sweep.best_lr(lrs, score).index
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
    lrs = _candidate_lrs(lrs)
    batch = descend(objective, x0, make_rule(lrs[:, None]), steps)
    return _fastest(lrs, batch.values, tolerance, objective.minimum)


def _candidate_lrs(lrs) -> np.ndarray:
    lrs = np.asarray(lrs, dtype=float).ravel()
    if lrs.size == 0 or not np.all(lrs > 0):
        raise ValueError(f"lrs must be a non-empty list of positive learning rates; got {lrs.tolist()}")
    return lrs


def _fastest(lrs: np.ndarray, values: np.ndarray, tolerance: float, minimum: float) -> tuple[float, float]:
    """The candidate of ``lrs`` whose column of ``values`` settles below the tolerance first (ties: the first)."""
    needed = steps_to_tolerance(values, tolerance, minimum)
    best = sweep.best_lr(lrs, needed)
    return best.lr, float(needed[best.index])


def fastest_learning_rates(problems, make_rule: Callable[[np.ndarray], rules.Rule], lrs, steps: int,
                           tolerance: float = 1e-6) -> list[tuple[float, float]]:
    """:func:`fastest_learning_rate` on several problems at once: one ``(lr, steps)`` per ``(objective, x0)``.

    ``problems`` is a sequence of ``(objective, x0)`` pairs of one dimension, ``x0`` a single point. The
    candidates of every problem advance together in one batched :func:`descend` (rows k·n to (k + 1)·n − 1 are
    problem k's n candidates, each row getting its own objective's gradient), so the loop over steps is paid
    once instead of once per problem. Each pair gets what ``fastest_learning_rate(objective, x0, make_rule,
    lrs, steps, tolerance)`` returns for it.
    """
    lrs = _candidate_lrs(lrs)
    problems = [(objective, np.asarray(x0, dtype=float)) for objective, x0 in problems]
    if not problems:
        raise ValueError("problems must hold at least one (objective, x0) pair")
    dim, n = problems[0][0].dim, lrs.size
    for objective, x0 in problems:
        if objective.dim != dim or x0.shape != (dim,):
            raise ValueError(f"every problem needs dimension {dim} and one start of shape ({dim},); "
                             f"got {objective.name} (dim {objective.dim}) from shape {x0.shape}")
    starts = np.concatenate([np.broadcast_to(x0, (n, dim)) for _, x0 in problems])
    rows = [slice(k * n, (k + 1) * n) for k in range(len(problems))]

    def gradient(x, t):
        return np.concatenate([objective.grad(x[row]) for (objective, _), row in zip(problems, rows)])

    batch = descend(problems[0][0], starts, make_rule(np.tile(lrs, len(problems))[:, None]), steps, grad=gradient)
    results = []
    for (objective, _), row in zip(problems, rows):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            values = objective.value(batch.points[:, row])
        results.append(_fastest(lrs, values, tolerance, objective.minimum))
    return results


# --------------------------------------------------------------------------------------
# Warm-up and clipping: a bowl that is steep far out, and the global-norm clip
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SteepBowl(Objective):
    r"""f(θ) = Σ_i (θ_i⁴/4 + θ_i²/2): a bowl whose curvature 3θ_i² + 1 is large far out and 1 at the minimum.

    .. math::  \nabla f(\theta)_i = \theta_i^3 + \theta_i, \qquad
               \nabla^2 f(\theta) = \operatorname{diag}(3\theta_i^2 + 1).

    Gradient descent is stable near the minimizer 0 for η < 2 (curvature 1)
    but, from θ₀ = 3, only for η below about 2/28: the start is sharper than the
    end, which is the situation a learning-rate warm-up is made for.
    """

    def value(self, x):
        x = self._check(x)
        return np.sum(x**4 / 4 + x**2 / 2, axis=-1)

    def grad(self, x):
        x = self._check(x)
        return x**3 + x


def steep_bowl(dim: int = 1) -> SteepBowl:
    """The :class:`SteepBowl` in ``dim`` dimensions (minimizer 0, f* = 0)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer; got {dim!r}")
    return SteepBowl(name="steep bowl", dim=int(dim), minimizers=np.zeros((1, int(dim))), minimum=0.0,
                     bounds=((-4.0, 4.0),) * int(dim), formula="f(θ) = Σ θ⁴/4 + θ²/2")


def linear_warmup(warmup_steps: int) -> Callable[[int], float]:
    r"""A schedule for :func:`~course_lib.descent.descend`: η_t = η · min(1, t / ``warmup_steps``), t = 1, 2, …

    The multiplier of ``torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1, (k + 1) / warmup_steps))``
    stepped once per step (its k counts from 0, descend's t from 1).
    """
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) or warmup_steps < 1:
        raise ValueError(f"warmup_steps must be a positive integer; got {warmup_steps!r}")
    return lambda t: min(1.0, t / int(warmup_steps))


def clip_by_global_norm(grad, max_norm: float):
    r"""Scale a gradient down to a global norm of at most ``max_norm``; returns ``(clipped, norm)``.

    .. math::  g \leftarrow g \cdot \min\!\left(1, \frac{c}{\lVert g \rVert_2}\right)

    The norm is taken over the last axis (one norm per run for a batch of runs,
    shape (..., d)), and ``norm`` is the norm *before* clipping, the number to
    log. This is ``torch.nn.utils.clip_grad_norm_`` for one parameter tensor
    (torch divides by ‖g‖ + 10⁻⁶; the difference is below 10⁻⁶ relative once
    ‖g‖ > 1). A non-finite norm is returned unchanged, as torch does by default.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive; got {max_norm}")
    grad = np.asarray(grad, dtype=float)
    norm = np.linalg.norm(grad, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm > max_norm, max_norm / norm, 1.0)
    return grad * scale, norm[..., 0]


class ClippedGradient:
    """A gradient callback ``grad(θ, t)`` for :func:`~course_lib.descent.descend` that clips ``base`` by global norm.

    ``base`` is a callback such as :meth:`LeastSquares.minibatch_grad`; ``max_norm``
    is the threshold c of :func:`clip_by_global_norm` (``None``: log only, clip
    nothing). Every call appends the unclipped norms to ``norms`` (the
    Tuning Playbook's advice: log them, and pick c from their distribution).
    """

    def __init__(self, base: Callable[[np.ndarray, int], np.ndarray], max_norm: float | None = None):
        if max_norm is not None and not max_norm > 0:
            raise ValueError(f"max_norm must be positive or None; got {max_norm}")
        self.base, self.max_norm, self.norms = base, max_norm, []

    def __call__(self, x, t):
        g = np.asarray(self.base(x, t), dtype=float)
        if self.max_norm is None:
            self.norms.append(np.linalg.norm(g, axis=-1))
            return g
        clipped, norm = clip_by_global_norm(g, self.max_norm)
        self.norms.append(norm)
        return clipped

    @property
    def clipped_fraction(self) -> float:
        """The share of steps (and runs) whose gradient norm was above ``max_norm``."""
        if not self.norms or self.max_norm is None:
            return 0.0
        return float(np.mean(np.asarray(self.norms) > self.max_norm))


def heavy_tailed_problem(n: int = 2000, dim: int = 10, *, outliers: float = 0.005, outlier_scale: float = 100.0,
                         seed: int = 0) -> LeastSquares:
    """Linear regression (all features always present) in which a share ``outliers`` of the targets is huge.

    y = X·1 + N(0, 1) noise, and ``outliers`` · n rows get ``outlier_scale`` ·
    N(0, 1) added: a minibatch that draws one of them has a gradient tens of
    times the usual one. Minibatch SGD then shows the loss spikes that gradient
    clipping is for. Same ``seed``, same table.
    """
    if not 0 <= outliers < 1:
        raise ValueError(f"outliers must lie in [0, 1); got {outliers}")
    base = least_squares_problem(n=n, frequencies=np.ones(int(dim)), noise=1.0, seed=seed)
    rng = np.random.default_rng([int(seed), 1])
    rows = rng.choice(int(n), size=int(round(outliers * n)), replace=False)
    targets = base.targets.copy()
    targets[rows] += outlier_scale * rng.standard_normal(rows.size)
    X = base.design
    solution, *_ = np.linalg.lstsq(X, targets, rcond=None)
    minimum = float(0.5 * np.mean((X @ solution - targets) ** 2))
    spread = float(np.abs(solution).max()) + 1.0
    return LeastSquares(name=f"least squares with outliers, {dim} features", dim=int(dim),
                        minimizers=solution[None, :], minimum=minimum, bounds=((-spread, spread),) * int(dim),
                        formula="f(θ) = (1/2n)‖Xθ − y‖²", design=X, targets=targets, frequencies=base.frequencies)


# --------------------------------------------------------------------------------------
# The learning-rate range test on a NumPy problem
# --------------------------------------------------------------------------------------
#: The axes of a range test on a NumPy problem (its loss is the objective f(θ) on the whole data), for
#: :func:`course_lib.plotting.plot_range_test`.
RANGE_TEST_AXES = {"xlabel": "learning rate η (growing every step)", "ylabel": r"$f(\theta)$"}


def range_test(objective: Objective, x0, make_rule: Callable[[float], rules.Rule], *, grad: Callable | None = None,
               start_lr: float = 1e-5, end_lr: float = 10.0, steps: int = 200, smoothing: float = 0.9,
               diverge_factor: float = 4.0) -> LRRangeTest:
    r"""The learning-rate range test of :func:`course_lib.training.lr_range_test`, run by :func:`descend`.

    .. math::  \eta_k = \eta_{\text{start}} \,(\eta_{\text{end}}/\eta_{\text{start}})^{k/(\text{steps}-1)},
               \quad k = 0, \dots, \text{steps}-1

    Step k + 1 uses η_k (``make_rule(start_lr)`` with a schedule). The loss is
    the objective f(θ_k) (the whole data set: a NumPy problem is cheap to
    evaluate), smoothed with a bias-corrected moving average, and the test stops
    at the first non-finite loss or smoothed loss above ``diverge_factor`` times
    the lowest one before it: fastai's ``lr_find`` rules, as in ``training``.
    ``grad`` is passed to :func:`descend` (minibatch gradients, say).
    """
    lrs = range_test_lrs(start_lr, end_lr, steps, smoothing=smoothing, diverge_factor=diverge_factor)
    run = descend(objective, x0, make_rule(start_lr), int(steps) - 1, grad=grad,
                  schedule=lambda t: float(lrs[t - 1] / start_lr))
    values = np.asarray(run.values, dtype=float)
    if values.ndim != 1:
        raise ValueError("range_test runs one configuration: give one start and scalar hyperparameters")
    return LRRangeTest.from_losses(lrs, values, smoothing=smoothing, diverge_factor=diverge_factor)


# --------------------------------------------------------------------------------------
# Notebook 12's sweeps, read back: each optimizer at its own best η, with the spread over seeds
# --------------------------------------------------------------------------------------
SWEEP_FILE = importlib.resources.files("course_lib") / "results" / "where_it_matters.json"
"""Notebook 12's sweep results: package data of course_lib, found wherever it is installed (``make experiments``
rewrites the repository's copy)."""


def read_sweep(path) -> list[dict] | None:
    """The runs of notebook 12's results file as flat records, or ``None`` when the file does not exist.

    Each record is a dict with at least ``workload``, ``optimizer``, ``lr`` and
    ``seed``, plus every number the file stores for that run (e.g.
    ``best_val_loss``); a curve (a list of numbers, e.g. ``val_loss_rare``) gives
    its last point as ``val_loss_rare_last``. The file holds ``{"workloads": {name: {"runs": [run,
    ...], ...}, ...}, ...}``; a run that names its own ``workload`` keeps it.
    """
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return None
    content = json.loads(path.read_text())
    workloads = content.get("workloads") if isinstance(content, dict) else None
    if not isinstance(workloads, dict):
        raise ValueError(f"{path}: expected a 'workloads' mapping at the top level")
    records = []
    for name, workload in workloads.items():
        runs = workload.get("runs") if isinstance(workload, dict) else None
        if not isinstance(runs, list):
            raise ValueError(f"{path}: workload {name!r} has no list of 'runs'")
        for run in runs:
            missing = {"optimizer", "lr", "seed"} - set(run)
            if missing:
                raise ValueError(f"{path}: a run of {name!r} lacks {sorted(missing)}")
            record = {"workload": name}
            for key, value in run.items():
                if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                    record[key] = value
                elif (isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value)
                      and not any(isinstance(v, bool) for v in value)):
                    record[key + "_last"] = float(value[-1])      # a curve: its last point
            records.append(record)
    return records


@dataclass(frozen=True)
class TunedResult:
    """One optimizer on one workload at its own best η (see :func:`tuned_summary`).

    ``value`` is the mean over seeds at ``lr`` (:func:`course_lib.benchmark.seed_statistic`), ``low``/``high``
    the best and worst seed there, ``seeds`` how many, ``grid`` the η values tried, ``at_grid_edge`` whether
    ``lr`` is the smallest or largest of them (the true optimum may lie outside), ``tie`` whether the paired
    comparison with the best optimizer (:func:`course_lib.benchmark.paired_differences`, seed by seed, 95 %
    t-interval) fails to exclude zero, ``diverged`` how many η of the grid failed on some seed, ``paired`` that
    comparison (``None`` for the best optimizer itself), ``per_seed`` the metric of each seed's run at ``lr``
    (seed → value, None where it diverged), for paired comparisons between any two optimizers.
    """

    optimizer: str
    lr: float
    value: float
    low: float
    high: float
    seeds: int
    grid: tuple[float, ...]
    at_grid_edge: bool
    tie: bool
    diverged: int
    paired: benchmark.Paired | None = None
    per_seed: dict = field(default_factory=dict, compare=False)

    @property
    def points_per_decade(self) -> float:
        """Grid density: (number of η − 1) / decades spanned (``inf`` for a single η)."""
        if len(self.grid) < 2:
            return float("inf")
        return (len(self.grid) - 1) / float(np.log10(max(self.grid) / min(self.grid)))


def tuned_summary(records, workload: str, metric: str = benchmark.METRIC, *,
                  lower_is_better: bool = True) -> list[TunedResult]:
    """Each optimizer of ``workload`` at the η :func:`course_lib.benchmark.select` chooses, best optimizer first.

    The statistic is notebook 12's: the mean over seeds of ``metric`` (default: the final validation loss), a run
    whose metric is missing or not finite counting as the worst value (that η then counts as diverged). An
    optimizer *ties* with the best one when the paired t-interval of their per-seed differences
    (:func:`course_lib.benchmark.paired_differences`: the seeds share initial weights and minibatches) holds
    zero: a winner inside the seed-to-seed noise is not a winner.
    """
    rows = [r for r in records if r["workload"] == workload]
    if not rows:
        raise ValueError(f"no runs for workload {workload!r}; have {sorted({r['workload'] for r in records})}")
    sign = 1.0 if lower_is_better else -1.0
    worst = np.inf * sign
    results = []
    for optimizer, choice in benchmark.select(rows, metric=metric, lower_is_better=lower_is_better).items():
        values = [worst if v is None or not np.isfinite(v) else float(v) for v in choice.values]
        by_lr: dict[float, list] = {}
        for r in rows:
            if r["optimizer"] == optimizer:
                by_lr.setdefault(float(r["lr"]), []).append(r.get(metric))
        diverged = sum(not all(isinstance(v, (int, float)) and np.isfinite(v) for v in vs) for vs in by_lr.values())
        results.append(dict(optimizer=optimizer, lr=choice.lr, value=choice.score,
                            low=min(values, key=lambda v: sign * v), high=max(values, key=lambda v: sign * v),
                            seeds=len(values), grid=choice.grid, at_grid_edge=choice.at_edge, diverged=diverged,
                            per_seed=dict(zip(choice.seeds, choice.values))))
    results.sort(key=lambda r: sign * r["value"])
    leader = results[0]["per_seed"]
    summary = []
    for k, r in enumerate(results):
        paired = None if k == 0 else benchmark.paired_differences(r["per_seed"], leader,
                                                                  lower_is_better=lower_is_better)
        summary.append(TunedResult(**r, tie=paired is not None and paired.verdict != "worse", paired=paired))
    return summary


def format_tuned_summary(results: list[TunedResult], metric: str, digits: int = 3) -> str:
    """A plain-text table of :func:`tuned_summary`: best η, mean and seed range, tie or not, grid edge."""
    column = metric + " (mean, best … worst seed)"
    lines = [f"{'optimizer':<22}{'best η':>9}   {column}  {'seeds':>5}  verdict"]
    for r in results:
        verdict = "best" if r is results[0] else ("tie with the best" if r.tie else "behind")
        edge = ", η at the grid's edge" if r.at_grid_edge else ""
        value = f"{r.value:.{digits}f} ({r.low:.{digits}f} … {r.high:.{digits}f})"
        lines.append(f"{r.optimizer:<22}{r.lr:>9.2g}   {value:<{len(column)}}  {r.seeds:>5}  {verdict}{edge}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The playground: an optimizer and a learning rate on the sparse-feature problem
# --------------------------------------------------------------------------------------
PLAYGROUND_RULES: dict[str, Callable[[float], rules.Rule]] = {
    name: methods.get(name).toy_rule
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "nadam", "radam", "lion")}
"""The playground's optimizers (torch's defaults, β = 0.9 for momentum): name → rule factory taking η.
``"sgd"`` is gradient descent on minibatches (:mod:`course_lib.methods`' alias of ``"gd"``); ``"gd"`` picks it too."""


def _playground_name(method: str) -> str:
    """The key of :data:`PLAYGROUND_RULES` for ``method`` or an alias of it (``"gd"`` → ``"sgd"``)."""
    known = method in methods.METHODS or method in methods.ALIASES
    for name in PLAYGROUND_RULES:
        if method == name or known and methods.get(method) is methods.get(name):
            return name
    raise ValueError(f"unknown method {method!r}; choose from {list(PLAYGROUND_RULES)}")


def show_optimizer_choice(method: str = "adam", lr: float = 1e-2, *, problem: LeastSquares | None = None,
                          epochs: int = 4, batch_size: int = 32, seed: int = 0,
                          range_result: LRRangeTest | None = None):
    """Notebook 13's playground view: ``method`` at ``lr`` on a least-squares problem; returns the figure.

    Left: the method's :func:`range_test` (same minibatches) with the chosen η
    (dashed) and the suggestion (dot). Right: f(θ_t) − f* over ``epochs``
    epochs of minibatch training at that η, or a note if it diverged (ended
    non-finite or ten times above where it started).
    ``problem`` defaults to section 2.4's sparse-feature regression; pass a
    ``range_result`` made with these settings to skip recomputing it.
    """
    import matplotlib.pyplot as plt

    from ..plotting import method_color, plot_range_test

    method = _playground_name(method)
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr}")
    if problem is None:
        problem = least_squares_problem(n=5000, frequencies=np.geomspace(1, 0.002, 10), noise=0.1, seed=0)
    make = PLAYGROUND_RULES[method]
    start = np.zeros(problem.dim)
    if range_result is None:
        range_result = range_test(problem, start, make, grad=problem.minibatch_grad(batch_size, seed=seed))
    steps = int(epochs) * (problem.n_samples // batch_size)
    run = descend(problem, start, make(lr), steps, grad=problem.minibatch_grad(batch_size, seed=seed))
    colour, title = method_color(method), methods.label(method)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    plot_range_test(range_result, left, color=colour, label=f"{title}: range test", **RANGE_TEST_AXES)
    suggestion = range_result.suggestion()
    at = int(np.argmin(np.abs(np.log(range_result.lrs / suggestion))))
    left.plot([suggestion], [range_result.smoothed[at]], "o", color="k", label=f"suggestion η ≈ {suggestion:.1e}")
    left.axvline(lr, color=colour, ls="--", lw=1.2, label=f"chosen η = {lr:.2g}")
    left.set_yscale("log")
    low, start = float(np.nanmin(range_result.smoothed)), float(range_result.smoothed[0])
    left.set_ylim(0.5 * low, 10 * max(start, low))      # raw losses past the cliff are cut off (and cheap to draw)
    left.set_title("range test" + (" (stopped when the loss took off)" if range_result.stopped_early else ""))
    left.legend(loc="lower left", fontsize=8)
    gap = run.suboptimality(problem.minimum)
    if not np.all(np.isfinite(gap)) or gap[-1] > 10 * gap[0]:       # blew up (or is on its way)
        right.text(0.5, 0.5, "diverged: η is past the cliff of the range test", ha="center", va="center",
                   transform=right.transAxes)
        right.set_title(f"{title}, η = {lr:.2g}: diverged")
        left.minorticks_off()  # log axes over many decades: minor ticks would double the time the figure takes to draw
        return fig
    right.semilogy(np.arange(steps + 1) / (problem.n_samples // batch_size), np.maximum(gap, 1e-12), color=colour)
    right.set(xlabel="epochs", ylabel=r"$f(\theta_t) - f^*$",
              title=f"{title}, η = {lr:.2g}: f − f* = {gap[-1]:.1e} after {epochs} epochs")
    for ax in (left, right):
        ax.minorticks_off()  # log axes over many decades: minor ticks would double the time the figure takes to draw
    return fig


def choice_playground(problem: LeastSquares | None = None, *, range_results: dict | None = None):
    """Notebook 13: pick an optimizer and η; see its range test and its run (:func:`show_optimizer_choice`).

    A method's range test does not depend on η, so it is computed once per
    method and kept; ``range_results`` (method → :class:`~course_lib.range_test.LRRangeTest`) hands in
    tests already made.
    """
    import ipywidgets

    from ..widgets import playground

    if problem is None:
        problem = least_squares_problem(n=5000, frequencies=np.geomspace(1, 0.002, 10), noise=0.1, seed=0)
    kept = dict(range_results or {})

    def draw(method, lr):
        if method not in kept:
            kept[method] = range_test(problem, np.zeros(problem.dim), PLAYGROUND_RULES[method],
                                      grad=problem.minibatch_grad(32, seed=0))
        return show_optimizer_choice(method, lr, problem=problem, range_result=kept[method])

    labels = [(methods.label(name), name) for name in PLAYGROUND_RULES]
    return playground(
        draw,
        method=ipywidgets.Dropdown(options=labels, value="adam", description="optimizer"),
        lr=ipywidgets.FloatLogSlider(value=1e-2, base=10, min=-4, max=1, step=0.25, description="η",
                                     continuous_update=False, readout_format=".1e"),
    )


def fingerprint(text: str) -> str:
    """The first 12 hex digits of the SHA-256 of ``text``: what notebook 13's exercise checks compare, so that a check
    can test an answer (rounded to what the exercise asks) without showing it."""
    if not isinstance(text, str):
        raise TypeError(f"fingerprint takes a str (the answer, formatted); got {type(text).__name__}")
    return hashlib.sha256(text.encode()).hexdigest()[:12]
