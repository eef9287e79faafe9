"""Notebooks 09 and 10 · beyond Adam: the experiments and figures behind NAdam, RAdam, Adafactor, Lion, Muon and
Schedule-Free AdamW.

Each optimizer changes one part of Adam. The functions here compute what that change does, in closed form where
there is one (NAdam's momentum schedule, RAdam's rectification, Adafactor's factored second moment, the
Newton–Schulz polynomial of Muon, Schedule-Free's averaged point) and by running the course's own rules and
optimizers otherwise (landscapes, a matrix least-squares problem, a convex problem with minibatch noise, the bytes of
optimizer state). The notebooks pick every optimizer through :data:`RULE_FACTORIES` (the pure rules of
:mod:`course_lib.rules`, run by :func:`course_lib.descent.descend`) and :data:`OPTIMIZERS` (the
``torch.optim`` classes of :mod:`course_lib.optim`): nothing else names an implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import functions, methods, optim, rules, sweep
from ..descent import Trajectory, descend
from ..functions import Objective

__all__ = [
    "NEW_METHODS",
    "RULE_FACTORIES",
    "OPTIMIZERS",
    "LANDSCAPES",
    "toy_rule",
    "per_run",
    "schedule_free_x",
    "trace",
    "schedule_free_points",
    "tune",
    "compare_on_landscapes",
    "plot_comparison",
    "show_method_on_landscape",
    "nadam_momentum",
    "radam_rho",
    "radam_rectification",
    "radam_first_rectified_step",
    "linear_warmup",
    "noise_step_sizes",
    "factored_second_moment",
    "relative_error",
    "ns_polynomial",
    "polar_factor",
    "MatrixRegression",
    "matrix_regression",
    "run_matrix",
    "LogisticObjective",
    "minibatch_grad",
    "small_mlp",
    "hidden_matrices",
    "make_optimizers",
    "measure_state_bytes",
    "state_bytes",
    "expected_state_bytes",
    "memory_table",
    "plot_memory",
]

NEW_METHODS = methods.names("beyond adam")
"""The seven optimizers of notebooks 09 and 10 (the family "beyond adam" of :mod:`course_lib.methods`): NAdam, RAdam,
Adafactor, Lion, Muon, Schedule-Free AdamW, AdEMAMix. (Shampoo and SOAP, the family "preconditioning", are notebook
11's.)"""

# --------------------------------------------------------------------------------------------------------------
# The methods of this notebook, implemented as course_lib.methods says
# --------------------------------------------------------------------------------------------------------------
RULE_FACTORIES: dict[str, Callable[..., rules.Rule]] = {
    name: methods.get(name).make_rule for name in ("gd", "momentum", "adam", "adamw", *NEW_METHODS)}
"""Method name → the factory of its pure rule in :mod:`course_lib.rules` (torch.optim's defaults, and the method's
options: ``"momentum"`` is SGD with β = 0.9)."""

OPTIMIZERS: dict[str, type] = optim.OPTIMIZERS
"""Method name → its drop-in ``torch.optim`` class in :mod:`course_lib.optim` (:data:`course_lib.optim.OPTIMIZERS`)."""

MATRIX_RULES = ("muon",)
"""Rules that treat a 2-D array as one matrix (orthogonalized), not as a batch of runs: :func:`trace` runs them
through :func:`per_run`. (Adafactor would factor it too; it takes ``batch_axes=1`` instead, see :func:`trace`.)"""


def toy_rule(method: str, lr) -> rules.Rule:
    """The rule of ``method`` at learning rate ``lr`` with the options of the toy problems.

    Defaults are torch.optim's (and lion-pytorch's, schedulefree's), except that weight decay is 0 for every method
    (the ``toy`` options of :mod:`course_lib.methods`: Muon's default λ = 0.1 and AdamW's 0.01 would pull θ towards 0,
    which is not where the toy minimizers are; with λ = 0 AdamW is Adam). ``"momentum"`` is SGD with β = 0.9.
    """
    if method not in RULE_FACTORIES:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(RULE_FACTORIES)}")
    return methods.get(method).toy_rule(lr)


# --------------------------------------------------------------------------------------------------------------
# Running many learning rates at once
# --------------------------------------------------------------------------------------------------------------
def per_run(rule: rules.Rule) -> rules.Rule:
    """A rule for a batch of runs, shape (runs, d), from a rule that treats a 2-D array as one matrix.

    Muon (and Adafactor without ``batch_axes``) see a 2-D array as one matrix (Muon orthogonalizes the whole
    update, Adafactor factors its second moment and takes one RMS), so a batch of runs cannot go through them in one
    array. This wrapper
    gives each run its own 1 × d row matrix, its own state and its own hyperparameters (row i of any array-valued
    hyperparameter of shape (runs, 1)), and stacks the results, so that :func:`course_lib.descent.descend` can
    treat it like any other rule. For a 1 × d matrix Adafactor's factored estimate is exact (one row), and Muon's
    update is the normalized momentum direction times the Newton–Schulz factor (notebook 10, section 2).
    """

    def split(hyper, runs):
        rows = []
        for i in range(runs):
            rows.append({name: (np.asarray(value).reshape(-1)[i] if np.ndim(value) >= 1 and not isinstance(value, tuple)
                                else value) for name, value in hyper.items()})
        return rows

    def init(params, **hyper):
        params = np.atleast_2d(params)
        return {"runs": [rule.init_fn(row[None, :], **h) for row, h in zip(params, split(hyper, len(params)))]}

    def update(params, grad, state, **hyper):
        params, grad = np.atleast_2d(params), np.atleast_2d(grad)
        new_params, new_states = [], []
        for row, g, s, h in zip(params, grad, state["runs"], split(hyper, len(params))):
            p, s = rule.update_fn(row[None, :], g[None, :], s, **h)
            new_params.append(p[0])
            new_states.append(s)
        return np.stack(new_params), {"runs": new_states}

    return rules.Rule(rule.name, rule.hyperparams, update, init, color_key=rule.color_key)


def schedule_free_x(y, z, beta1: float = 0.9):
    r"""Schedule-Free's averaged point x from the parameters y and the state z.

    The optimizer keeps y = (1 − β₁) z + β₁ x in the parameters (the gradient is taken there) and z in its state, so

    .. math:: x = \bigl(y - (1-\beta_1)\, z\bigr) / \beta_1 ,

    which is what ``eval()`` writes into the parameters (and ``train()`` undoes).
    """
    return (y - (1 - beta1) * z) / beta1


def trace(objective: Objective, x0, rule: rules.Rule, steps: int, grad=None, schedule=None,
          at: str = "x") -> Trajectory:
    """Like :func:`course_lib.descent.descend`, but the path is the point a user evaluates.

    For every rule but Schedule-Free that is the parameter vector itself (this calls ``descend``). Schedule-Free
    evaluates its gradients at y but returns x (its ``eval()`` point): the trajectory holds
    :func:`schedule_free_x` of every step, computed from the rule's state (``at="y"`` keeps y instead, the point a
    user who forgets ``eval()`` evaluates, and ``at="z"`` the un-averaged sequence z). Muon runs each run as a
    1 × d row (:func:`per_run`); Adafactor takes a batch of runs with ``batch_axes=1`` (each run a vector, so its
    second moment is not factored: for a 1 × d row the factored estimate would be exact anyway).
    """
    if at not in ("x", "y", "z"):
        raise ValueError(f"Invalid at: {at!r} (choose 'x', 'y' or 'z')")
    if rule.name in MATRIX_RULES:
        rule = per_run(rule)
    elif rule.name == "adafactor" and _runs_shape(np.asarray(x0, dtype=float), rule):
        rule = rule.with_options(batch_axes=1)     # a batch of runs, each a vector (its RMS per run)
    if rule.name != "schedule_free":
        return descend(objective, x0, rule, steps, grad=grad, schedule=schedule)
    return schedule_free_points(objective, x0, rule, steps, grad=grad, schedule=schedule)[at]


def schedule_free_points(objective: Objective, x0, rule: rules.Rule, steps: int, grad=None,
                         schedule=None) -> dict[str, Trajectory]:
    """One Schedule-Free run seen at its three points: ``{"x": …, "y": …, "z": …}``, one :class:`Trajectory` each.

    y is the parameter vector (where the gradient is taken), z the rule's state and x = :func:`schedule_free_x`
    of the two (the point ``eval()`` returns). One run gives all three, so they come from the same gradients
    (the same minibatches when ``grad`` draws them); ``trace(..., at=…)`` returns one of them. f at each point is
    computed when the trajectory's ``values`` are first read.
    """
    if rule.name != "schedule_free":
        raise ValueError(f"schedule_free_points needs a Schedule-Free rule; got {rule.name!r}")
    y = np.asarray(x0, dtype=float)
    y = np.broadcast_to(y, _runs_shape(y, rule) + (objective.dim,)).copy()
    gradient = grad if grad is not None else (lambda point, t: objective.grad(point))
    beta1 = rule.hyperparams["betas"][0]
    points = {at: np.empty((int(steps) + 1,) + y.shape) for at in "xyz"}
    for at in "xyz":
        points[at][0] = y
    state = rule.init(y)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for t in range(1, int(steps) + 1):
            hyper = dict(rule.hyperparams)
            if schedule is not None:
                hyper["lr"] = hyper["lr"] * schedule(t)
            y, state = rule.update_fn(y, gradient(y, t), state, **hyper)
            points["x"][t] = schedule_free_x(y, state["z"], beta1)
            points["y"][t] = y
            points["z"][t] = state["z"]
    return {at: Trajectory(path, _values_when_read(objective, path), rule.name) for at, path in points.items()}


def _values_when_read(objective: Objective, points: np.ndarray):
    """f at every point, left for later: a :class:`Trajectory` computes its ``values`` when they are first read."""

    def values():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return objective.value(points)

    return values


def _runs_shape(x, rule):
    shapes = [x.shape[:-1]]
    for value in rule.hyperparams.values():
        if not isinstance(value, tuple) and np.ndim(value) >= 1:
            shapes.append(np.shape(value)[:-1])
    return np.broadcast_shapes(*shapes)


@dataclass(frozen=True)
class Tuned:
    """One method tuned on one problem: the learning-rate grid, the final gap per η (median over seeds), the best η
    and the whole trajectory batch (``values`` of shape (steps + 1, len(lrs) · seeds))."""

    method: str
    lrs: np.ndarray
    final_gap: np.ndarray
    trajectory: Trajectory
    seeds: int = 1

    @property
    def best(self) -> sweep.Best:
        """The best η of the grid (:func:`course_lib.sweep.best_lr`: the lowest final gap, a diverged run the worst)."""
        return sweep.best_lr(self.lrs, self.final_gap)

    @property
    def best_index(self) -> int:
        return self.best.index

    @property
    def best_lr(self) -> float:
        return float(self.lrs[self.best_index])

    @property
    def best_gap(self) -> float:
        return float(self.final_gap[self.best_index])

    def gap_curve(self, minimum: float = 0.0) -> np.ndarray:
        """f(θ_t) − f* at the best η (median over seeds), for every step."""
        values = self.trajectory.values.reshape(self.trajectory.values.shape[0], len(self.lrs), self.seeds)
        return np.median(values[:, self.best_index, :], axis=-1) - minimum

    @property
    def at_grid_edge(self) -> bool:
        """True when the best η is the smallest or largest of the grid (then the grid should be widened)."""
        return self.best.at_edge


def tune(objective: Objective, x0, method: str, lrs, steps: int, *, seeds: int = 1, grad=None,
         average_last: int = 1, schedule=None) -> Tuned:
    """Run ``method`` at every learning rate of ``lrs`` (and every seed) in one batch; keep the best η.

    The final gap of a run is f − f* at the evaluated point (x for Schedule-Free), averaged over the last
    ``average_last`` steps; over seeds the median is taken. Diverged runs count as ``inf``. ``grad(x, t)``
    replaces the exact gradient (noise, minibatches), ``schedule(t)`` multiplies η at step t.
    """
    lrs = np.asarray(lrs, dtype=float).ravel()
    if lrs.size == 0 or not np.all(lrs > 0):
        raise ValueError(f"Invalid lrs: {lrs.tolist()} (give positive learning rates)")
    column = np.repeat(lrs, int(seeds))[:, None]
    trajectory = trace(objective, x0, toy_rule(method, column), steps, grad=grad, schedule=schedule)
    with np.errstate(invalid="ignore", over="ignore"):    # f of the last points only: the rest when read
        tail = objective.value(trajectory.points[-int(average_last):]).mean(axis=0) - objective.minimum
    tail = np.where(np.isfinite(tail), tail, np.inf).reshape(len(lrs), int(seeds))
    return Tuned(method, lrs, np.median(tail, axis=1), trajectory, int(seeds))


LANDSCAPES = {
    "rotated quadratic κ=50": (functions.quadratic(kappa=50, angle=math.pi / 4), (-5.0, -3.0),
                               ((-6.0, 6.0), (-6.0, 6.0))),
    "Rosenbrock": (functions.rosenbrock, (-1.2, 1.0), None),
    "Beale": (functions.beale, (1.0, 1.5), None),
}
"""Three 2-D landscapes of notebooks 02–07 with notebook 06's starts: name → (objective, θ_0, plot window or None)."""


def compare_on_landscapes(methods: Sequence[str], lrs, steps: int = 200,
                          landscapes: Mapping | None = None) -> dict[str, dict[str, Tuned]]:
    """Every method on every landscape from the same start, each at its own best η of ``lrs``."""
    landscapes = LANDSCAPES if landscapes is None else landscapes
    return {name: {method: tune(objective, start, method, lrs, steps) for method in methods}
            for name, (objective, start, _) in landscapes.items()}


def show_method_on_landscape(landscape: str = "Rosenbrock", method: str = "lion", lr: float = 0.02,
                             steps: int = 200, compare_with_adam: bool = True):
    """One method's path on a landscape (left) and f − f* against t (right), next to Adam at the same η.

    The view of the playgrounds of notebooks 09 and 10; returns the figure. Schedule-Free's path is its averaged
    point x. The loss axis is logarithmic, without minor ticks.
    """
    import matplotlib.pyplot as plt

    from ..plotting import METHOD_LABELS, plot_contours, plot_loss, plot_path

    if landscape not in LANDSCAPES:
        raise ValueError(f"Invalid landscape: {landscape!r}; choose from {', '.join(LANDSCAPES)}")
    objective, start, bounds = LANDSCAPES[landscape]
    shown = [method] + (["adam"] if compare_with_adam and method != "adam" else [])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    plot_contours(objective, left, bounds=bounds, resolution=150)
    for name in shown:
        trajectory = trace(objective, start, toy_rule(name, lr), steps)
        plot_path(trajectory, left, method=name, markers=steps <= 300)
        gap = np.maximum(trajectory.suboptimality(objective.minimum), 1e-300)
        plot_loss(np.where(np.isfinite(gap), gap, np.nan), right, method=name,
                  label=f"{METHOD_LABELS[name]}: f(θ_T) − f* = {gap[-1]:.1e}")
    left.set_title(f"{objective.name}, η = {lr:g}")
    left.legend(loc="lower right", fontsize=8)
    right.legend(fontsize=8)
    right.set_title(f"{steps} steps from θ₀ = {tuple(start)}")
    right.minorticks_off()  # a tick per decade reads the same; minor ticks cost about a fifth of the drawing
    return fig


# --------------------------------------------------------------------------------------------------------------
# NAdam and RAdam: closed forms
# --------------------------------------------------------------------------------------------------------------
def nadam_momentum(steps, beta1: float = 0.9, momentum_decay: float = 4e-3) -> np.ndarray:
    r"""NAdam's momentum coefficient μ_t for t = 1, …, ``steps`` (torch.optim.NAdam, Dozat 2016):

    .. math:: \mu_t = \beta_1 \bigl(1 - \tfrac12\, 0.96^{\,t\,\psi}\bigr), \qquad \psi = \text{momentum\_decay}.

    It starts at about β₁/2 and creeps up to β₁: with ψ = 0.004, μ_t reaches 0.9 β₁ only after about 14,000 steps.
    """
    t = np.arange(1, int(steps) + 1, dtype=float)
    return beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))


def radam_rho(steps, beta2: float = 0.999) -> np.ndarray:
    r"""RAdam's ρ_t for t = 1, …, ``steps``: the length of the simple moving average that v_t behaves like,

    .. math:: \rho_\infty = \frac{2}{1-\beta_2} - 1, \qquad
              \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}.

    ρ_1 = 1 and ρ_t grows to ρ_∞ (1,999 for β₂ = 0.999).
    """
    t = np.arange(1, int(steps) + 1, dtype=float)
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf - 2 * t * beta2**t / (1 - beta2**t)


def radam_rectification(steps, beta2: float = 0.999) -> np.ndarray:
    r"""RAdam's rectification factor r_t (0 while the adaptive step is off, i.e. while ρ_t ≤ 5):

    .. math:: r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}}
              \quad (\rho_t > 5).

    The adaptive step is Adam's times r_t; while ρ_t ≤ 5, RAdam takes the plain momentum step η m̂_t instead.
    """
    rho = radam_rho(steps, beta2)
    rho_inf = 2 / (1 - beta2) - 1
    on = rho > 5
    ratio = np.where(on, (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * np.where(on, rho, 1)), 0)
    return np.sqrt(ratio)


def radam_first_rectified_step(beta2: float = 0.999) -> int:
    """The first step t at which ρ_t > 5, i.e. RAdam's adaptive (rectified) step turns on."""
    t, rho_inf = 1, 2 / (1 - beta2) - 1
    if rho_inf <= 5:
        raise ValueError(f"Invalid beta2: {beta2} (ρ_∞ = {rho_inf:g} ≤ 5: the rectified step never turns on)")
    while rho_inf - 2 * t * beta2**t / (1 - beta2**t) <= 5:
        t += 1
    return t


def linear_warmup(steps, beta2: float = 0.999) -> np.ndarray:
    """The untuned linear warm-up of Ma and Yarats (2021): η_t / η = min(1, t (1 − β₂) / 2), over 2/(1 − β₂) steps."""
    t = np.arange(1, int(steps) + 1, dtype=float)
    return np.minimum(1.0, t * (1 - beta2) / 2)


def noise_step_sizes(method: str, steps: int = 50, runs: int = 2000, seed: int = 0, schedule=None) -> np.ndarray:
    """|Δθ_t| / η for every step and run when the gradients are pure noise N(0, 1) (one coordinate per run).

    With nothing to learn, every step is a step in a random direction: its size is what the optimizer does with
    noise. Returns an array of shape (steps, runs). ``schedule(t)`` multiplies η (a warm-up, say).
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((int(steps), int(runs)))
    objective = functions.quadratic(kappa=1.0, L=1e-300)  # flat: only the noise moves θ
    x0 = np.zeros((int(runs), 2))

    def grad(x, t):
        return np.stack([noise[t - 1], noise[t - 1]], axis=-1)

    trajectory = trace(objective, x0, toy_rule(method, 1.0), int(steps), grad=grad, schedule=schedule)
    return np.abs(np.diff(trajectory.points[..., 0], axis=0))


# --------------------------------------------------------------------------------------------------------------
# Adafactor: the factored second moment
# --------------------------------------------------------------------------------------------------------------
def factored_second_moment(V, eps1: float = 0.0) -> np.ndarray:
    r"""Adafactor's estimate of a non-negative matrix V (m × n) from its row and column means alone:

    .. math:: \hat V = \frac{R\, C}{\operatorname{mean}(R)}, \qquad R_i = \tfrac1n \sum_j V_{ij},\quad
              C_j = \tfrac1m \sum_i V_{ij}

    (torch.optim.Adafactor's ``row_var @ col_var / row_var.mean()``, the denominator clamped at ``eps1``). It stores
    m + n numbers instead of m n, and it is exact when V has rank one (V_ij = a_i b_j).
    """
    V = np.asarray(V, dtype=float)
    if V.ndim < 2:
        raise ValueError(f"factored_second_moment needs a matrix; got shape {V.shape}")
    row = V.mean(axis=-1, keepdims=True)
    col = V.mean(axis=-2, keepdims=True)
    return row @ col / np.maximum(row.mean(axis=-2, keepdims=True), eps1)


def relative_error(estimate, truth) -> float:
    """‖estimate − truth‖_F / ‖truth‖_F."""
    truth = np.asarray(truth, dtype=float)
    return float(np.linalg.norm(np.asarray(estimate) - truth) / np.linalg.norm(truth))


# --------------------------------------------------------------------------------------------------------------
# Muon: orthogonalized updates
# --------------------------------------------------------------------------------------------------------------
MUON_COEFFICIENTS = (3.4445, -4.775, 2.0315)


def ns_polynomial(s, steps: int = 5, coefficients=MUON_COEFFICIENTS) -> np.ndarray:
    r"""What ``steps`` quintic Newton–Schulz iterations do to one singular value s (after the Frobenius scaling):

    .. math:: s \leftarrow a s + b s^3 + c s^5, \qquad (a, b, c) = (3.4445, -4.775, 2.0315).

    Muon's iteration X ← aX + b(XXᵀ)X + c(XXᵀ)²X keeps the singular vectors of X and applies this polynomial to each
    singular value, so the update U p(Σ/‖G‖_F) Vᵀ approximates the polar factor U Vᵀ.
    """
    a, b, c = coefficients
    s = np.asarray(s, dtype=float)
    for _ in range(int(steps)):
        s = a * s + b * s**3 + c * s**5
    return s


def polar_factor(G) -> np.ndarray:
    """U Vᵀ from the SVD G = U Σ Vᵀ: the steepest-descent direction of a linear function ⟨G, Δ⟩ under the spectral
    norm (its minimum over ‖Δ‖₂ ≤ 1 is at Δ = −U Vᵀ, with value −(s_1 + … + s_r), minus the nuclear norm)."""
    U, _, Vt = np.linalg.svd(np.asarray(G, dtype=float), full_matrices=False)
    return U @ Vt


@dataclass(frozen=True)
class MatrixRegression:
    r"""Linear regression with a matrix parameter: f(W) = ‖X W − Y‖²_F / (2n), W of shape (d_in, d_out).

    The Hessian acts on each column of W as H = XᵀX/n, whose eigenvalues run from h_min = 1/κ to h_max = 1
    (geometrically spaced); Y = X W* with W* an orthogonal matrix, so f* = 0 at W = W*.
    """

    X: np.ndarray
    Y: np.ndarray
    W_star: np.ndarray
    kappa: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.W_star.shape

    @property
    def hessian(self) -> np.ndarray:
        return self.X.T @ self.X / self.X.shape[0]

    def loss(self, W) -> np.ndarray:
        """f(W) for W of shape (..., d_in, d_out)."""
        residual = self.X @ np.asarray(W, dtype=float) - self.Y
        return 0.5 * (residual**2).sum(axis=(-2, -1)) / self.X.shape[0]

    def grad(self, W) -> np.ndarray:
        """∇f(W) = Xᵀ(XW − Y)/n, for W of shape (..., d_in, d_out)."""
        return self.X.T @ (self.X @ np.asarray(W, dtype=float) - self.Y) / self.X.shape[0]


def matrix_regression(n: int = 200, d_in: int = 16, d_out: int = 16, kappa: float = 1e4,
                      seed: int = 0) -> MatrixRegression:
    """A :class:`MatrixRegression` whose input covariance has condition number ``kappa`` (eigenvectors random)."""
    if not kappa >= 1:
        raise ValueError(f"Invalid kappa: {kappa} (at least 1)")
    if n < d_in:
        raise ValueError(f"Invalid n: {n} (at least d_in = {d_in} samples)")
    rng = np.random.default_rng(seed)
    left, _ = np.linalg.qr(rng.standard_normal((n, d_in)))
    right, _ = np.linalg.qr(rng.standard_normal((d_in, d_in)))
    singular = np.geomspace(1.0, 1.0 / math.sqrt(kappa), d_in) * math.sqrt(n)
    X = (left * singular) @ right.T
    size = max(d_in, d_out)
    rotation, _ = np.linalg.qr(rng.standard_normal((size, size)))
    W_star = rotation[:d_in, :d_out]
    return MatrixRegression(X, X @ W_star, W_star, float(kappa))


def run_matrix(problem: MatrixRegression, method: str, lrs, steps: int = 100, schedule=None) -> Tuned:
    """Every learning rate of ``lrs`` on the matrix problem from W_0 = 0, the rule applied to the whole matrix.

    All learning rates run at once, as a stack of matrices of shape (len(lrs), d_in, d_out): the rules treat
    leading axes as independent matrices (Muon orthogonalizes each on its own), so each η's run is the one it
    would be alone.

    ``schedule(t)`` multiplies η at step t. Returns a :class:`Tuned` (``trajectory.values`` holds f(W_t) per η).
    """
    lrs = np.asarray(lrs, dtype=float).ravel()
    losses = np.empty((int(steps) + 1, len(lrs)))
    rule = toy_rule(method, lrs[:, None, None])        # one W per η, stacked: every rule acts matrix by matrix
    W = np.zeros((len(lrs),) + problem.shape)
    state = rule.init(W)
    losses[0] = problem.loss(W)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, int(steps) + 1):
            hyper = dict(rule.hyperparams)
            if schedule is not None:
                hyper["lr"] = hyper["lr"] * schedule(t)
            W, state = rule.update_fn(W, problem.grad(W), state, **hyper)
            losses[t] = problem.loss(W)
    final = np.where(np.isfinite(losses[-1]), losses[-1], np.inf)
    return Tuned(method, lrs, final, Trajectory(np.zeros((int(steps) + 1, len(lrs), 0)), losses, method))


# --------------------------------------------------------------------------------------------------------------
# A convex problem with minibatch noise
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogisticObjective(Objective):
    """A :class:`course_lib.labs.stochastic.LogisticRegressionProblem` seen as an :class:`Objective` (``descend``)."""

    problem: object = field(default=None, repr=False)

    def value(self, x):
        return self.problem.loss(x)

    def grad(self, x):
        return self.problem.grad(x)

    @classmethod
    def of(cls, problem, optimum) -> LogisticObjective:
        """Wrap ``problem`` with its optimum (θ*, f*) from :func:`course_lib.labs.stochastic.reference_optimum`."""
        params, minimum = optimum
        return cls(problem.name, problem.dim, np.asarray(params)[None, :], float(minimum),
                   ((-1.0, 1.0),) * problem.dim, "mean logistic loss + (λ/2)‖w‖²", problem=problem)


def minibatch_grad(problem, batch_size: int, seed: int = 0):
    """A ``grad(x, t)`` for ``descend``: every run draws its own minibatch of ``batch_size`` samples (with
    replacement) at every step. The same ``seed`` gives the same minibatches, so methods see the same data."""
    rng = np.random.default_rng(seed)

    def grad(x, t):
        batch = rng.integers(0, problem.n_samples, size=np.shape(x)[:-1] + (int(batch_size),))
        return problem.grad(x, batch)

    return grad


# --------------------------------------------------------------------------------------------------------------
# Memory: bytes of optimizer state
# --------------------------------------------------------------------------------------------------------------
def small_mlp(in_features: int = 30, hidden: int = 64, seed: int = 0, dtype=None):
    """Linear(in, h) → ReLU → Linear(h, h) → ReLU → Linear(h, 1): one hidden matrix for Muon, two more for AdamW."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    return model.to(dtype) if dtype is not None else model


MEMORY_METHODS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "amsgrad", "adamw", "nadam", "radam", "adafactor",
                  "lion", "muon", "schedule_free", "ademamix", "shampoo", "soap")
"""The methods of the memory table (names of :mod:`course_lib.methods`): every optimizer of the course but Nesterov
(momentum's state). ``"muon"`` means the usual split, Muon for the hidden matrices and AdamW for everything else."""


def hidden_matrices(model) -> tuple[list, list]:
    """(Muon's parameters, AdamW's): the 2-D weights of the hidden layers, and the rest (first and last layer,
    biases). The usual split: Muon is meant for hidden matrices, not for embeddings, heads or vectors."""
    import torch

    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    hidden = {id(module.weight) for module in linears[1:-1]}
    muon = [p for p in model.parameters() if id(p) in hidden]
    return muon, [p for p in model.parameters() if id(p) not in hidden]


def _parts(method: str, model) -> list[tuple[methods.Method, list]]:
    """(method, its parameters) for each optimizer ``method`` takes on ``model``: Muon and AdamW for Muon."""
    if methods.get(method).name == "muon":
        return list(zip((methods.get("muon"), methods.get("adamw")), hidden_matrices(model)))
    return [(methods.get(method), list(model.parameters()))]


def make_optimizers(method: str, model, *, reference: bool = False) -> list:
    """The optimizer(s) of ``method`` for ``model`` (two for Muon: the split of :func:`hidden_matrices`), from
    :mod:`course_lib.optim`, or the classes they are proven equal to with ``reference=True`` (torch.optim's, ...)."""
    optimizers = [row.make_optimizer(params, reference=reference) for row, params in _parts(method, model)]
    for optimizer in optimizers:
        if hasattr(optimizer, "train"):  # Schedule-Free: train at y
            optimizer.train()
    return optimizers


def state_bytes(optimizer) -> tuple[int, int]:
    """(bytes of per-parameter state, bytes of 0-d counters) in ``optimizer.state_dict()``: every tensor of the state,
    split by whether it has elements per parameter (moments, buffers) or is a scalar (``step``, NAdam's
    ``mu_product``). Python numbers in the state (none for these optimizers) would not count."""
    import torch

    arrays = scalars = 0
    for per_param in optimizer.state_dict()["state"].values():
        for entry in per_param.values():
            for value in entry if isinstance(entry, (list, tuple)) else (entry,):  # SOAP's and Shampoo's factors
                if isinstance(value, torch.Tensor):
                    size = value.numel() * value.element_size()
                    if value.ndim == 0:
                        scalars += size
                    else:
                        arrays += size
    return arrays, scalars


def measure_state_bytes(method: str, model, steps: int = 1, seed: int = 0, *, reference: bool = False
                        ) -> tuple[int, int]:
    """Take ``steps`` optimizer steps on ``model`` (squared output on random inputs) and return
    :func:`state_bytes` summed over its optimizer(s) (the reference classes' with ``reference=True``)."""
    import torch

    optimizers = make_optimizers(method, model, reference=reference)
    generator = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    inputs = torch.randn(16, model[0].in_features, generator=generator).to(dtype)
    for _ in range(int(steps)):
        for optimizer in optimizers:
            optimizer.zero_grad()
        model(inputs).float().square().mean().backward()
        for optimizer in optimizers:
            optimizer.step()
    totals = [state_bytes(optimizer) for optimizer in optimizers]
    return sum(t[0] for t in totals), sum(t[1] for t in totals)


def expected_state_bytes(method: str, model) -> tuple[int, int]:
    """The formula: (bytes of per-parameter state, bytes of scalar counters) for ``method`` on ``model``.

    Per parameter element (bytes of the parameter's dtype each), the ``state_arrays`` of :mod:`course_lib.methods`:
    SGD 0; momentum, AdaGrad, RMSProp, Lion 1; Adam, AdamW, NAdam, RAdam, Schedule-Free 2 (Schedule-Free's z and v; x
    is not stored); AMSGrad 3; AdEMAMix 3; Adafactor m + n per m × n matrix and n per vector; Muon 1 per
    hidden-matrix element plus AdamW's 2 for the rest; SOAP 2 per element plus 2(m² + n²) per m × n matrix (two
    factors and their eigenbases); Shampoo (the method table's options) 3 per element plus 2(m² + n²) per matrix
    (two factors and their roots, in float32 for a bfloat16 parameter, as its reference keeps them);
    :meth:`course_lib.methods.Method.state_numbers`. Scalars (float32, 4 bytes), the ``counters``: one ``step``
    per tensor for every method that counts steps, plus NAdam's ``mu_product``; SGD, Lion and Muon keep none,
    Schedule-Free, AdEMAMix, SOAP and Shampoo keep theirs in the param group.
    """
    import torch

    if method not in MEMORY_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(MEMORY_METHODS)}")
    arrays = counters = 0
    for row, params in _parts(method, model):
        size = params[0].element_size()
        factor_size = 4 if row.factors_in_float32 and params[0].dtype != torch.float64 else size
        factors = sum(row.factor_numbers(p.shape) for p in params)
        arrays += (sum(row.state_numbers(p.shape) for p in params) - factors) * size + factors * factor_size
        counters += 4 * row.counters * len(params)
    return arrays, counters


def memory_table(model_factory: Callable[..., object] = small_mlp, dtypes=("float32", "bfloat16"),
                 methods: Sequence[str] = tuple(MEMORY_METHODS)) -> dict:
    """Measured and expected state bytes for every method and parameter dtype.

    Returns ``{dtype: {method: {"measured": (arrays, scalars), "expected": (arrays, scalars),
    "per_parameter": arrays / parameter count}}}``; a fresh model per measurement.
    """
    import torch

    table = {}
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        rows = {}
        for method in methods:
            model = model_factory(dtype=dtype)
            parameters = sum(p.numel() for p in model.parameters())
            measured = measure_state_bytes(method, model)
            rows[method] = {"measured": measured, "expected": expected_state_bytes(method, model),
                            "per_parameter": measured[0] / parameters, "parameters": parameters}
        table[dtype_name] = rows
    return table


def plot_memory(table, ax=None):
    """Bars of optimizer-state bytes per parameter, fp32 (solid) and bf16 (hatched), one colour per method."""
    import matplotlib.pyplot as plt

    from ..plotting import method_color

    ax = ax if ax is not None else plt.gca()
    dtypes = list(table)
    names = list(table[dtypes[0]])
    width = 0.8 / len(dtypes)
    positions = np.arange(len(names))
    for k, dtype in enumerate(dtypes):
        values = [table[dtype][m]["per_parameter"] for m in names]
        colors = [method_color(m) for m in names]
        ax.bar(positions + (k - (len(dtypes) - 1) / 2) * width, values, width=width, color=colors,
               hatch=None if k == 0 else "//", edgecolor="k" if k else None, linewidth=0.5,
               label=f"parameters in {dtype}")
    labels = [methods.label(m) + (" + AdamW" if m == "muon" else "") for m in names]  # Muon: the usual split
    ax.set_xticks(positions, labels, rotation=40, ha="right")
    ax.set_ylabel("optimizer state, bytes per parameter")
    ax.legend(loc="upper left")
    return ax


def plot_comparison(results: Mapping[str, Mapping[str, Tuned]], landscapes: Mapping | None = None,
                    floor: float = 1e-16, resolution: int = 120):
    """Paths on the contours (top row; Schedule-Free's averaged point x) and f(θ_t) − f* at each method's best η
    (bottom row, drawn down to ``floor``), one column per landscape."""
    import matplotlib.pyplot as plt

    from ..plotting import METHOD_LABELS, plot_contours, plot_loss, plot_path

    landscapes = LANDSCAPES if landscapes is None else landscapes
    fig, axes = plt.subplots(2, len(results), figsize=(4.3 * len(results), 8.0), squeeze=False)
    for column, (name, runs) in enumerate(results.items()):
        objective, _, bounds = landscapes[name]
        top, bottom = axes[0, column], axes[1, column]
        plot_contours(objective, top, bounds=bounds, resolution=resolution)
        for method, tuned in runs.items():
            index = tuned.best_index
            best = Trajectory(tuned.trajectory.points[:, index], tuned.trajectory.values[:, index], method)
            plot_path(best, top, method=method, markers=False)
            gap = np.maximum(best.suboptimality(objective.minimum), floor)
            plot_loss(np.where(np.isfinite(gap), gap, np.nan), bottom, method=method,
                      label=f"{METHOD_LABELS[method]}, η = {tuned.best_lr:.2g}")
        top.set_title(name)
        bottom.set_ylim(floor / 3, None)
        bottom.legend(loc="lower left", fontsize=7)
    return fig


def beyond_adam_playground(methods: tuple[str, ...] = NEW_METHODS, method: str = "lion", lr: float = 0.02):
    """Notebooks 09 and 10: a landscape, a method and a learning rate; the path and f − f* next to Adam at the same η.

    ``methods`` are the dropdown's choices (notebook 09 offers its four, notebook 10 all six), ``method`` and ``lr``
    its starting values. The view is :func:`show_method_on_landscape`.
    """
    import ipywidgets as ipw

    from ..plotting import METHOD_LABELS
    from ..widgets import playground

    methods = tuple(methods)
    unknown = [name for name in methods if name not in NEW_METHODS]
    if not methods or unknown:
        raise ValueError(f"methods must be a non-empty selection of {', '.join(NEW_METHODS)}; got {methods!r}")
    if method not in methods:
        raise ValueError(f"method must be one of methods ({', '.join(methods)}); got {method!r}")
    return playground(
        lambda landscape, method, lr, steps: show_method_on_landscape(landscape, method, lr=lr, steps=steps),
        landscape=ipw.Dropdown(options=list(LANDSCAPES), value="Rosenbrock", description="f"),
        method=ipw.Dropdown(options=[(METHOD_LABELS[name], name) for name in methods], value=method,
                            description="optimizer"),
        lr=ipw.FloatLogSlider(value=lr, base=10, min=-4, max=1, step=0.1, description="η",
                              continuous_update=False, readout_format=".2g"),
        steps=ipw.IntSlider(value=200, min=10, max=1000, step=10, description="steps", continuous_update=False),
    )


__all__ += ["beyond_adam_playground"]
