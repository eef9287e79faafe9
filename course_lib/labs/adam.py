"""Experiments on Adam: how it is built, what its knobs do, and where it fails (notebooks 06 and 07).

Everything here runs on top of :mod:`course_lib.rules` (NumPy) or :mod:`course_lib.optim` (torch), so the
experiments test the very code the rest of the course uses.

Notebook 06, deriving Adam
    :func:`moment_estimates`, :func:`bias_correction_experiment`   raw and bias-corrected moments
    :func:`step_ratios`, :func:`step_ratio_supremum`               the effective step |Δθ| / η and its limit
    :func:`keras_adam`, :func:`keras_eps_as_torch_eps`             Keras's "epsilon hat" placement
    :func:`noisy_grad`, :func:`learning_rate_sweep`                the learning-rate sensitivity test
    :func:`tune_on_landscape`, :func:`show_adam_landscape`         2-D landscapes and the playground

Notebook 07, when Adam fails
    :func:`reddi_counterexample`                      Reddi, Kale & Kumar (2018): Adam versus AMSGrad
    :func:`wilson_dataset`, :func:`fit_least_squares` Wilson et al. (2017): adaptive methods and generalization
    :func:`weight_decay_experiment`                   L2 penalty inside Adam versus decoupled decay (AdamW)
    :func:`weight_decay_grid`                         the (η, λ) test-loss map of Adam + L2 and AdamW
    :func:`ema_momentum`                              the large-ε limit of Adam
    :func:`show_counterexample`                       the playground of notebook 07
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .. import rules
from .. import sweep as lr_sweep
from ..descent import Trajectory, descend
from ..functions import Objective, beale, himmelblau, quadratic, rosenbrock

__all__ = [
    "moment_estimates",
    "BiasCorrectionResult",
    "bias_correction_experiment",
    "step_ratios",
    "paper_step_bound",
    "step_ratio_supremum",
    "keras_adam_update",
    "keras_adam",
    "keras_eps_as_torch_eps",
    "ema_momentum_update",
    "ema_momentum",
    "noisy_grad",
    "LearningRateSweep",
    "learning_rate_sweep",
    "plot_learning_rate_sweep",
    "tune_on_landscape",
    "LANDSCAPES",
    "compare_on_landscapes",
    "plot_landscape_comparison",
    "show_adam_landscape",
    "adam_playground",
    "OnlineRun",
    "reddi_counterexample",
    "show_counterexample",
    "counterexample_playground",
    "WilsonData",
    "wilson_dataset",
    "fit_least_squares",
    "classification_error",
    "weight_decay_experiment",
    "weight_decay_grid",
]


# ======================================================================================
# Notebook 06 · the two moment estimates and their bias correction
# ======================================================================================
def moment_estimates(grads, betas=(0.9, 0.999)) -> dict[str, np.ndarray]:
    r"""Adam's moment estimates for a given stream of gradients g_1, …, g_T (first axis = step).

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,
        \qquad m_0 = v_0 = 0,

        \hat m_t = m_t / (1-\beta_1^t), \qquad \hat v_t = v_t / (1-\beta_2^t).

    Unrolling the recursion, m_t = (1−β₁) Σ_{k=1}^{t} β₁^{t−k} g_k, so for gradients with a constant mean
    E[g] the weights sum to (1−β₁)(1 + β₁ + … + β₁^{t−1}) = 1 − β₁^t and E[m_t] = (1 − β₁^t) E[g]: the
    zero start drags m_t towards 0, and dividing by 1 − β₁^t removes that bias exactly. The same holds for
    v_t and E[g²]. Extra axes of ``grads`` (runs, coordinates) are carried along.

    Returns ``exp_avg`` m_t, ``exp_avg_sq`` v_t, ``m_hat`` and ``v_hat``, each shaped like ``grads``.
    """
    beta1, beta2 = rules.check_betas(betas)
    grads = np.asarray(grads, dtype=float)
    if grads.ndim == 0:
        raise ValueError("Invalid grads: give a stream of gradients, one per step along the first axis")
    exp_avg, exp_avg_sq = np.empty_like(grads), np.empty_like(grads)
    m, v = np.zeros_like(grads[0]), np.zeros_like(grads[0])
    for t, g in enumerate(grads):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        exp_avg[t], exp_avg_sq[t] = m, v
    steps = np.arange(1, len(grads) + 1).reshape((-1,) + (1,) * (grads.ndim - 1))
    return {
        "exp_avg": exp_avg,
        "exp_avg_sq": exp_avg_sq,
        "m_hat": exp_avg / (1 - beta1**steps),
        "v_hat": exp_avg_sq / (1 - beta2**steps),
    }


@dataclass(frozen=True)
class BiasCorrectionResult:
    """Averages over many runs of Adam's moment estimates for stationary noisy gradients.

    Every array has one entry per step t = 1, …, T. ``*_mean`` is the average over runs and ``*_sem`` its
    standard error (the spread of that average from one batch of runs to another).
    """

    steps: np.ndarray
    betas: tuple[float, float]
    true_first: float  # E[g]
    true_second: float  # E[g²]
    runs: int
    raw_first_mean: np.ndarray
    raw_first_sem: np.ndarray
    corrected_first_mean: np.ndarray
    corrected_first_sem: np.ndarray
    raw_second_mean: np.ndarray
    raw_second_sem: np.ndarray
    corrected_second_mean: np.ndarray
    corrected_second_sem: np.ndarray

    @property
    def predicted_raw_first(self) -> np.ndarray:
        """(1 − β₁^t) E[g], what the raw first moment averages to."""
        return (1 - self.betas[0] ** self.steps) * self.true_first

    @property
    def predicted_raw_second(self) -> np.ndarray:
        """(1 − β₂^t) E[g²], what the raw second moment averages to."""
        return (1 - self.betas[1] ** self.steps) * self.true_second

    def z_scores(self, which: str) -> np.ndarray:
        """(average − truth) / standard error, per step, for ``'raw_first'``, ``'corrected_second'``, …"""
        truth = self.true_first if which.endswith("first") else self.true_second
        return (getattr(self, f"{which}_mean") - truth) / getattr(self, f"{which}_sem")


def bias_correction_experiment(mean: float = 1.0, std: float = 2.0, betas=(0.9, 0.999), steps: int = 50,
                               runs: int = 20_000, seed: int = 0) -> BiasCorrectionResult:
    """Simulate ``runs`` independent streams of gradients g_t ~ N(mean, std²) and average Adam's moments.

    The truth is E[g] = mean and E[g²] = mean² + std². The raw estimates m_t, v_t average to
    (1 − β^t) times the truth; the bias-corrected m̂_t, v̂_t average to the truth at every step.
    """
    if int(runs) != runs or runs < 2:
        raise ValueError(f"Invalid runs: {runs} (at least 2 runs are needed for a standard error)")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"Invalid steps: {steps} (a positive integer)")
    if not std >= 0:
        raise ValueError(f"Invalid std: {std} (a standard deviation is non-negative)")
    rng = np.random.default_rng(seed)
    grads = mean + std * rng.standard_normal((int(steps), int(runs)))
    moments = moment_estimates(grads, betas)

    def mean_sem(values):
        return values.mean(axis=1), values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])

    fields = {}
    for name, key in [("raw_first", "exp_avg"), ("corrected_first", "m_hat"),
                      ("raw_second", "exp_avg_sq"), ("corrected_second", "v_hat")]:
        fields[f"{name}_mean"], fields[f"{name}_sem"] = mean_sem(moments[key])
    return BiasCorrectionResult(np.arange(1, int(steps) + 1), tuple(float(b) for b in betas), float(mean),
                                float(mean**2 + std**2), int(runs), **fields)


# ======================================================================================
# Notebook 06 · the effective step
# ======================================================================================
def step_ratios(grads, betas=(0.9, 0.999), eps=1e-8) -> np.ndarray:
    """|Δθ_t| / η = |m̂_t| / (√v̂_t + ε) for a stream of gradients: Adam's step measured in learning rates.

    This ratio does not depend on θ or on η, only on the gradients seen so far, so it can be studied on any
    gradient stream (with ``weight_decay`` = 0).
    """
    moments = moment_estimates(grads, betas)
    denominator = np.sqrt(moments["v_hat"]) + eps
    ratios = np.zeros_like(denominator)  # no gradient yet (and ε = 0): no step
    return np.divide(np.abs(moments["m_hat"]), denominator, out=ratios, where=denominator > 0)


def paper_step_bound(betas=(0.9, 0.999)) -> float:
    """The value Kingma & Ba (2015, section 2.1) give for |Δθ_t| / η; not a bound on every gradient stream.

    The paper states |Δθ_t| ≤ η (1 − β₁)/√(1 − β₂) when (1 − β₁) > √(1 − β₂), and |Δθ_t| ≤ η otherwise. The
    first value (0.1/√0.001 ≈ 3.16 with the defaults) is what a single gradient after a long silence gives:
    m̂ holds that one gradient with weight (1 − β₁), v̂ with weight (1 − β₂) (bias corrections → 1). It is the
    largest step over streams with **one** nonzero gradient; streams with several can go further (up to
    :func:`step_ratio_supremum`, ≈ 7.27 with the defaults), so neither value bounds every stream.
    """
    beta1, beta2 = rules.check_betas(betas)
    if 1 - beta1 > math.sqrt(1 - beta2):
        return (1 - beta1) / math.sqrt(1 - beta2)
    return 1.0


def step_ratio_supremum(betas=(0.9, 0.999), step: int | None = None) -> float:
    r"""The largest |Δθ_t| / η = |m̂_t| / √v̂_t Adam can take at step ``step`` over all gradient streams (ε = 0).

    Unroll both averages, with weights w_j = β₁^j and u_j = β₂^j on g_{t−j}, and apply Cauchy–Schwarz to
    sum w_j |g_{t−j}| = sum (w_j / √u_j) · (√u_j |g_{t−j}|):

    .. math::

        \frac{|\hat m_t|}{\sqrt{\hat v_t}}
        \le \frac{1-\beta_1}{\sqrt{1-\beta_2}}\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
        \sqrt{\frac{1-r^t}{1-r}}, \qquad r = \frac{\beta_1^2}{\beta_2},

    with equality when g_{t−j} ∝ w_j/u_j = (β₁/β₂)^j: gradients that **grow** by β₂/β₁ per step. With
    ``step=None`` the limit t → ∞, (1 − β₁)/√((1 − β₂)(1 − r)), is returned: ≈ 7.27 with the defaults, the
    supremum over all steps (the finite-t value increases towards it), and ``inf`` when β₁² ≥ β₂. ε > 0 only
    makes steps smaller.
    """
    beta1, beta2 = rules.check_betas(betas)
    if beta2 == 0:
        raise ValueError("Invalid beta parameter at index 1: 0.0 (v̂ needs β₂ > 0 for a finite bound)")
    r = beta1**2 / beta2
    if step is None:
        return (1 - beta1) / math.sqrt((1 - beta2) * (1 - r)) if r < 1 else math.inf
    if int(step) != step or step < 1:
        raise ValueError(f"Invalid step: {step} (a positive integer)")
    t = int(step)
    geometric = t if r == 1 else (1 - r**t) / (1 - r)
    return (1 - beta1) / math.sqrt(1 - beta2) * math.sqrt(1 - beta2**t) / (1 - beta1**t) * math.sqrt(geometric)


# ======================================================================================
# Notebook 06 · Keras's "epsilon hat"
# ======================================================================================
def keras_adam_update(params, grad, state, *, lr=1e-3, betas=(0.9, 0.999), epsilon=1e-7):
    r"""Adam the way Keras computes it: ε̂ is added to the *uncorrected* root √v_t.

    .. math::

        \eta_t = \eta \sqrt{1-\beta_2^t} / (1-\beta_1^t), \qquad
        \theta_t = \theta_{t-1} - \eta_t\, m_t / (\sqrt{v_t} + \hat\varepsilon)

    This is the "more efficient order of computation" at the end of section 2 of Kingma & Ba (2015); Keras
    (``keras.optimizers.Adam``, default ε̂ = 1e-7) uses it. Algebraically it is PyTorch's update with
    ε = ε̂ / √(1 − β₂^t) (see :func:`keras_eps_as_torch_eps`): the same as PyTorch except early in training
    or for gradients not much larger than ε̂. State names as in :func:`course_lib.rules.adam_update`.
    """
    beta1, beta2 = betas
    step = state["step"] + 1
    exp_avg = beta1 * state["exp_avg"] + (1 - beta1) * grad
    exp_avg_sq = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
    step_lr = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    new_params = params - step_lr * exp_avg / (rules.sqrt(exp_avg_sq) + epsilon)
    return new_params, {**state, "step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def keras_eps_as_torch_eps(epsilon_hat: float, beta2: float, step):
    """The PyTorch ε that gives the same step t as Keras's ε̂: ε = ε̂ / √(1 − β₂^t).

    At t = 1 with β₂ = 0.999 this is ε̂ · 31.6; it falls to ε̂ as t grows.
    """
    return epsilon_hat / np.sqrt(1 - beta2 ** np.asarray(step, dtype=float))


def keras_adam(lr=1e-3, betas=(0.9, 0.999), epsilon=1e-7) -> rules.Rule:
    """Keras's Adam as a course rule (:func:`keras_adam_update`), Keras's defaults."""
    rules.check_common_hyperparams(lr, 0.0, epsilon)
    betas = rules.check_betas(betas)
    return rules.Rule("keras_adam", dict(lr=lr, betas=betas, epsilon=epsilon), keras_adam_update, rules.adam_init,
                      factory=keras_adam, color_key="adam")


# ======================================================================================
# Notebook 07 · the large-ε limit: momentum as a moving average
# ======================================================================================
def ema_momentum_update(params, grad, state, *, lr=1e-3, beta=0.9):
    r"""Gradient descent along the bias-corrected moving average of the gradients: Adam without √v̂.

    .. math::

        m_t = \beta m_{t-1} + (1-\beta) g_t, \qquad \theta_t = \theta_{t-1} - \eta\, m_t / (1-\beta^t)

    This is the limit of Adam as ε → ∞ with η/ε held fixed: η m̂ / (√v̂ + ε) ≈ (η/ε) m̂ once ε ≫ √v̂. The
    moving average m_t is exactly (1 − β) times PyTorch's momentum buffer b_t = βb_{t−1} + g_t (both start
    at 0), so apart from the bias correction 1/(1 − β^t), which fades after a few 1/(1 − β) steps, this is
    PyTorch's momentum SGD with learning rate (1 − β)η. State: ``step``, ``exp_avg``.
    """
    step = state["step"] + 1
    exp_avg = beta * state["exp_avg"] + (1 - beta) * grad
    return params - lr * exp_avg / (1 - beta**step), {**state, "step": step, "exp_avg": exp_avg}


def _ema_momentum_init(params, **_):
    return {"step": 0, "exp_avg": rules.zeros_like(params)}


def ema_momentum(lr=1e-3, beta=0.9) -> rules.Rule:
    """Momentum as a bias-corrected moving average (:func:`ema_momentum_update`); colour of "momentum"."""
    rules.check_common_hyperparams(lr, 0.0)
    rules.check_hyperparams(**{"beta value": (beta, (np.asarray(beta) >= 0) & (np.asarray(beta) < 1))})
    return rules.Rule("ema_momentum", dict(lr=lr, beta=beta), ema_momentum_update, _ema_momentum_init,
                      factory=ema_momentum, color_key="momentum")


# ======================================================================================
# Notebook 06 · the learning-rate sensitivity sweep
# ======================================================================================
def noisy_grad(objective: Objective, noise_std: float, seed: int = 0,
               block: int = 256) -> Callable[[np.ndarray, int], np.ndarray]:
    """A gradient callback for :func:`course_lib.descent.descend`: exact gradient + N(0, noise_std²) noise.

    Every run (row) of a batch gets its own noise. Calling this again with the same ``seed`` gives the same
    noise sequence, so several methods can be compared on identical noise. The noise is drawn ``block`` calls
    at a time (one random-number call instead of ``block``); while ``x`` keeps its shape these are the same
    numbers as one draw per call, since a generator fills a large array in the order of the small ones.
    """
    if not noise_std >= 0:
        raise ValueError(f"Invalid noise_std: {noise_std} (a standard deviation is non-negative)")
    if int(block) != block or block < 1:
        raise ValueError(f"Invalid block: {block} (a positive integer)")
    rng = np.random.default_rng(seed)
    drawn = {"noise": np.empty(0), "used": 0}  # the noise of the coming calls (first axis = call), how many used

    def grad(x, t):
        noise, used = drawn["noise"], drawn["used"]
        if used == len(noise) or noise.shape[1:] != np.shape(x):
            noise, used = noise_std * rng.standard_normal((int(block),) + np.shape(x)), 0
            drawn["noise"] = noise
        drawn["used"] = used + 1
        return objective.grad(x) + noise[used]

    return grad


@dataclass(frozen=True)
class LearningRateSweep:
    """Final suboptimality f(θ_T) − f* for every method, learning rate and seed.

    ``final_gap[method]`` has shape (len(lrs), seeds); diverged runs hold ``inf``.
    ``initial_gap`` is f(θ_0) − f*.
    """

    lrs: np.ndarray
    final_gap: Mapping[str, np.ndarray]
    initial_gap: float
    steps: int
    noise_std: float

    @property
    def methods(self) -> list[str]:
        return list(self.final_gap)

    def median(self, method: str) -> np.ndarray:
        """Median over seeds of the final gap, per learning rate."""
        return np.median(self.final_gap[method], axis=1)

    def spread(self, method: str, low: float = 0.1, high: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper quantiles over seeds (10 % and 90 % by default), per learning rate."""
        gaps = self.final_gap[method]
        with np.errstate(invalid="ignore"):  # inf − inf inside the interpolation: diverged seeds
            return np.quantile(gaps, low, axis=1), np.quantile(gaps, high, axis=1)

    def diverged(self, method: str) -> np.ndarray:
        """Fraction of seeds that diverged (non-finite f), per learning rate."""
        return np.mean(~np.isfinite(self.final_gap[method]), axis=1)

    def best_lr(self, method: str) -> float:
        """The learning rate with the smallest median final gap (:func:`course_lib.sweep.best_lr`)."""
        return lr_sweep.best_lr(self.lrs, self.median(method)).lr

    def usable(self, method: str, tolerance: float = 1e-2) -> np.ndarray:
        """Learning rates whose median final gap is at most ``tolerance`` · (f(θ_0) − f*) and at which no seed
        diverged, as a mask (a learning rate that loses one seed in eight is not one to recommend)."""
        return (self.median(method) <= tolerance * self.initial_gap) & (self.diverged(method) == 0)

    def usable_window(self, method: str, tolerance: float = 1e-2) -> tuple[float, float]:
        """The widest contiguous range [lo, hi] of usable learning rates; (nan, nan) if there is none."""
        mask = self.usable(method, tolerance)
        best, start, run = (0, 0), None, 0
        for i, ok in enumerate(np.append(mask, False)):
            if ok and start is None:
                start = i
            if not ok and start is not None:
                if i - start > run:
                    run, best = i - start, (start, i - 1)
                start = None
        if run == 0:
            return float("nan"), float("nan")
        return float(self.lrs[best[0]]), float(self.lrs[best[1]])

    def usable_decades(self, method: str, tolerance: float = 1e-2) -> float:
        """log₁₀(hi / lo) of :meth:`usable_window`: how many decades of learning rate work (0 if none)."""
        lo, hi = self.usable_window(method, tolerance)
        return 0.0 if math.isnan(lo) else float(np.log10(hi / lo))


def learning_rate_sweep(objective: Objective, x0, methods: Mapping[str, Callable[[np.ndarray], rules.Rule]],
                        lrs, seeds: int = 5, steps: int = 1000, noise_std: float = 0.0,
                        seed: int = 0, average_last: int = 1) -> LearningRateSweep:
    """Run every method at every learning rate, ``seeds`` times, in one batched :func:`descend` per method.

    ``methods`` maps a name to a factory that takes an array of learning rates of shape (runs, 1) and returns
    a rule, e.g. ``{"adam": lambda lr: rules.adam(lr=lr)}``. Gradients carry N(0, noise_std²) noise; every
    method sees the same noise sequence (common random numbers), each seed its own.

    The final gap of a run is f(θ_T) − f*, or with ``average_last`` = k > 1 the mean of f(θ_t) − f* over the
    last k iterates (with noisy gradients the iterates jitter, and one iterate is a noisy measurement).
    """
    if int(average_last) != average_last or not 1 <= average_last <= steps:
        raise ValueError(f"Invalid average_last: {average_last} (between 1 and steps)")
    lrs = np.asarray(lrs, dtype=float).ravel()
    if lrs.size == 0 or not np.all(lrs > 0):
        raise ValueError(f"Invalid lrs: {lrs.tolist()} (give positive learning rates)")
    if int(seeds) != seeds or seeds < 1:
        raise ValueError(f"Invalid seeds: {seeds} (a positive integer)")
    lr_column = np.repeat(lrs, int(seeds))[:, None]
    x0 = np.asarray(x0, dtype=float)
    final = {}
    for name, make_rule in methods.items():
        # the same noise for every method, all its steps drawn in one call
        grad = noisy_grad(objective, noise_std, seed, block=int(steps)) if noise_std > 0 else None
        trajectory = descend(objective, x0, make_rule(lr_column), steps, grad=grad)
        with np.errstate(invalid="ignore", over="ignore"):  # f only where it is read: the last average_last steps
            tail = objective.value(trajectory.points[-int(average_last):]).mean(axis=0)
        gap = tail.reshape(len(lrs), int(seeds)) - objective.minimum
        final[name] = np.where(np.isfinite(gap), gap, np.inf)
    initial_gap = float(objective.value(x0) - objective.minimum)
    return LearningRateSweep(lrs, final, initial_gap, int(steps), float(noise_std))


def plot_learning_rate_sweep(sweep: LearningRateSweep, ax=None, methods: Sequence[str] | None = None,
                             tolerance: float | None = 1e-2, title: str | None = None, linestyle: str = "-",
                             label_suffix: str = "", relative: bool = False, minor_ticks: bool = True):
    """Median final gap against η on log–log axes, with the 10–90 % band over seeds.

    Diverged runs are drawn as crosses above the curves (one row per method); ``tolerance`` draws the
    "usable" threshold. With ``relative`` the gaps are divided by f(θ_0) − f*, so that problems of different
    scale share one axis. ``minor_ticks=False`` leaves out the minor ticks of the log axes (the figure then
    draws two to three times faster: laying out a log axis's minor ticks is most of its drawing time).
    """
    import matplotlib.pyplot as plt

    from ..plotting import METHOD_LABELS, method_color

    ax = ax if ax is not None else plt.gca()
    methods = list(methods) if methods is not None else sweep.methods
    scale = sweep.initial_gap if relative else 1.0
    finite = np.concatenate([g[np.isfinite(g)] for g in sweep.final_gap.values()]) / scale
    ceiling = max(float(finite.max()) if finite.size else 1.0, sweep.initial_gap / scale) * 10
    for row, name in enumerate(methods):
        color = method_color(name)
        median = sweep.median(name) / scale
        low, high = (q / scale for q in sweep.spread(name))
        shown = np.isfinite(median)
        ax.plot(sweep.lrs[shown], median[shown], linestyle, color=color, marker=".",
                label=METHOD_LABELS.get(name, name) + label_suffix)
        band = np.isfinite(high)
        ax.fill_between(sweep.lrs[band], low[band], high[band], color=color, alpha=0.2, lw=0)
        blown = sweep.diverged(name) > 0.5
        if blown.any():
            ax.plot(sweep.lrs[blown], np.full(blown.sum(), ceiling * 2.0**row), "x", color=color)
    if tolerance is not None:
        ax.axhline(tolerance * sweep.initial_gap / scale, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if not minor_ticks:
        ax.minorticks_off()
    ax.set_xlabel("learning rate η")
    ax.set_ylabel(r"relative final gap, $(f(\theta_T) - f^*)\,/\,(f(\theta_0) - f^*)$" if relative
                  else r"final gap to the minimum, $f(\theta_T) - f^*$")
    if title:
        ax.set_title(title)
    return ax


# ======================================================================================
# Notebook 06 · the 2-D landscapes and the playground
# ======================================================================================
def tune_on_landscape(objective: Objective, x0, make_rule: Callable[[np.ndarray], rules.Rule], lrs,
                      steps: int = 300) -> tuple[float, Trajectory]:
    """Pick the learning rate (from ``lrs``) with the smallest final f(θ_T) and return it with its path.

    All candidate learning rates run together in one batched :func:`descend`; a fair comparison gives
    every method its own best learning rate.
    """
    lrs = np.asarray(lrs, dtype=float).ravel()
    batch = descend(objective, x0, make_rule(lrs[:, None]), steps)
    lr = lr_sweep.best_lr(lrs, batch.values[-1]).lr  # a diverged run counts as the worst
    return lr, descend(objective, x0, make_rule(lr), steps)


LANDSCAPES = {
    "Rosenbrock": (rosenbrock, (-1.2, 1.0), None),
    "Beale": (beale, (1.0, 1.5), None),
    "Himmelblau": (himmelblau, (-0.5, -0.5), None),
    "rotated quadratic κ=50": (quadratic(kappa=50, angle=math.pi / 4), (-5.0, -3.0), ((-6.0, 6.0), (-6.0, 6.0))),
}
"""The 2-D landscapes of notebook 06 and its playground: name → (objective, start θ_0, plot window or None)."""


def show_adam_landscape(landscape: str = "Rosenbrock", lr: float = 0.05, beta1: float = 0.9,
                        beta2: float = 0.999, steps: int = 300):
    """Adam's path on a 2-D landscape (left) and f(θ_t) − f* (right); the view of notebook 06's playground."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_contours, plot_loss, plot_path

    if landscape not in LANDSCAPES:
        raise ValueError(f"Invalid landscape: {landscape!r}; choose from {', '.join(LANDSCAPES)}")
    objective, start, bounds = LANDSCAPES[landscape]
    trajectory = descend(objective, start, rules.adam(lr=lr, betas=(beta1, beta2)), steps)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    plot_contours(objective, left, bounds=bounds, resolution=150)  # as plot_landscape_comparison: 4× cheaper
    plot_path(trajectory, left, method="adam", markers=steps <= 400)
    left.set_title(f"Adam on {objective.name}")
    gap = np.maximum(trajectory.suboptimality(objective.minimum), 1e-300)
    plot_loss(gap, right, method="adam")
    right.set_title(f"η = {lr:g}, β₁ = {beta1:g}, β₂ = {beta2:g}: f(θ_T) − f* = {gap[-1]:.1e}")
    return fig


def compare_on_landscapes(methods: Mapping[str, Callable[[np.ndarray], rules.Rule]], lrs, steps: int = 200,
                          landscapes: Mapping | None = None) -> dict[str, dict[str, tuple[float, Trajectory]]]:
    """Every method on every landscape from the same start, each with its own best learning rate.

    Returns ``result[landscape][method] = (best lr, trajectory)`` (see :func:`tune_on_landscape`).
    """
    landscapes = LANDSCAPES if landscapes is None else landscapes
    return {name: {method: tune_on_landscape(objective, start, make_rule, lrs, steps)
                   for method, make_rule in methods.items()}
            for name, (objective, start, _) in landscapes.items()}


def plot_landscape_comparison(results, landscapes: Mapping | None = None, resolution: int = 150,
                              floor: float = 1e-16):
    """Paths on the contours (top row) and f(θ_t) − f* (bottom row, drawn down to ``floor``), one column per
    landscape; the legends give each method's learning rate."""
    import matplotlib.pyplot as plt

    from ..plotting import METHOD_LABELS, plot_contours, plot_loss, plot_path

    landscapes = LANDSCAPES if landscapes is None else landscapes
    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 7.6), squeeze=False)
    for column, (name, runs) in enumerate(results.items()):
        objective, _, bounds = landscapes[name]
        top, bottom = axes[0, column], axes[1, column]
        plot_contours(objective, top, bounds=bounds, resolution=resolution)
        for method, (lr, trajectory) in runs.items():
            plot_path(trajectory, top, method=method, markers=False)
            gap = np.maximum(trajectory.suboptimality(objective.minimum), floor)
            plot_loss(gap, bottom, method=method, label=f"{METHOD_LABELS[method]}, η = {lr:.2g}")
        top.set_title(name)
        bottom.set_ylim(floor / 3, None)
        bottom.legend(loc="lower left", fontsize=7)
    return fig


def adam_playground():
    """Notebook 06: sliders for η, β₁, β₂ and the landscape; the callback is :func:`show_adam_landscape`."""
    import ipywidgets as widgets

    from ..widgets import playground

    return playground(
        show_adam_landscape,
        landscape=widgets.Dropdown(options=list(LANDSCAPES), value="Rosenbrock", description="f"),
        lr=widgets.FloatLogSlider(value=0.05, base=10, min=-3, max=0, step=0.1, description="η",
                                  continuous_update=False),
        beta1=widgets.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01, description="β₁",
                                  continuous_update=False),
        beta2=widgets.FloatSlider(value=0.999, min=0.5, max=0.9999, step=0.0001, description="β₂",
                                  readout_format=".4f", continuous_update=False),
        steps=widgets.IntSlider(value=300, min=10, max=1000, step=10, description="steps",
                                continuous_update=False),
    )


# ======================================================================================
# Notebook 07 · Reddi, Kale & Kumar (2018): Adam does not converge, AMSGrad does
# ======================================================================================
@dataclass(frozen=True)
class OnlineRun:
    """One run of an optimizer on an online problem: iterates x_0, …, x_T and the losses f_t(x_{t−1})."""

    points: np.ndarray
    losses: np.ndarray
    best_losses: np.ndarray  # f_t(x*) for the best fixed point in hindsight

    @property
    def average_regret(self) -> np.ndarray:
        """R_t / t = (Σ_{k≤t} f_k(x_{k−1}) − Σ_{k≤t} f_k(x*)) / t for every t."""
        t = np.arange(1, len(self.losses) + 1)
        return np.cumsum(self.losses - self.best_losses) / t


def reddi_counterexample(C: float = 3.0, steps: int = 300, lr: float = 0.5, amsgrad: bool = False,
                         x0: float = 0.0, beta2: float | None = None, eps: float = 1e-8,
                         optimizer_class=None) -> OnlineRun:
    r"""The online problem of Reddi, Kale & Kumar (2018, theorem 1), run with a torch optimizer.

    On the interval [−1, 1] the loss at step t is

    .. math::

        f_t(x) = C x \ \text{if } t \bmod 3 = 1, \qquad f_t(x) = -x \ \text{otherwise}, \qquad C > 2,

    so over every three steps the sum is (C − 2) x and the best fixed point is x* = −1. The optimizer is
    Adam with β₁ = 0 and β₂ = 1/(1 + C²) (or ``beta2``), learning rate η/√t (a ``LambdaLR`` schedule) and a
    projection back onto [−1, 1] after every step. ``optimizer_class`` defaults to
    :class:`course_lib.optim.Adam`; ``amsgrad=True`` runs AMSGrad. Computed in float64.
    """
    import torch

    from .. import optim

    if not C > 0:
        raise ValueError(f"Invalid C: {C} (the counterexample needs C > 2)")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"Invalid steps: {steps} (a positive integer)")
    beta2 = 1 / (1 + C**2) if beta2 is None else beta2
    optimizer_class = optimizer_class or optim.Adam
    x = torch.tensor([float(x0)], dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([x], lr=lr, betas=(0.0, beta2), eps=eps, amsgrad=amsgrad)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 / math.sqrt(k + 1))  # η_t = η/√t
    slopes = np.where(np.arange(1, int(steps) + 1) % 3 == 1, C, -1.0)  # ∇f_t: C once, then −1 twice
    gradients = torch.tensor(slopes, dtype=torch.float64).reshape(-1, 1)
    points = np.empty(int(steps) + 1)
    points[0] = x0
    for t in range(int(steps)):
        x.grad = gradients[t]  # f_t is linear: its gradient is its slope (what backward() would compute)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)  # projection onto the feasible set [-1, 1]
        points[t + 1] = x.item()
    return OnlineRun(points, slopes * points[:-1], -slopes)  # f_t(x_{t−1}) = slope · x_{t−1}; f_t(−1) = −slope


def show_counterexample(C: float = 3.0, log10_beta2: float | None = None, lr: float = 0.5, steps: int = 300):
    """x_t for Adam and AMSGrad on the Reddi–Kale–Kumar problem; the view of notebook 07's playground.

    ``log10_beta2`` = None uses the theorem's β₂ = 1/(1 + C²).
    """
    import matplotlib.pyplot as plt

    from ..plotting import method_color

    beta2 = 1 / (1 + C**2) if log10_beta2 is None else 10.0**log10_beta2
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, amsgrad in (("adam", False), ("amsgrad", True)):
        run = reddi_counterexample(C=C, steps=steps, lr=lr, amsgrad=amsgrad, beta2=beta2)
        label = "AMSGrad" if amsgrad else "Adam"
        left.plot(run.points, color=method_color(name), label=f"{label}: x_T = {run.points[-1]:+.2f}")
        right.plot(np.arange(1, steps + 1), run.average_regret, color=method_color(name), label=label)
    left.axhline(-1, color="k", lw=0.8, ls="--")
    left.set(xlabel="step $t$", ylabel="$x_t$", ylim=(-1.1, 1.1), title=f"C = {C:g}, β₁ = 0, β₂ = {beta2:.3g}")
    right.axhline(0, color="k", lw=0.8)
    right.set(xlabel="step $t$", ylabel="average regret $R_t / t$", title="regret per step (0 = as good as x* = −1)")
    left.legend(loc="center right")
    right.legend()
    return fig


def counterexample_playground():
    """Notebook 07: sliders for C, log₁₀ β₂ and η; the callback is :func:`show_counterexample`."""
    import ipywidgets as widgets

    from ..widgets import playground

    return playground(
        show_counterexample,
        C=widgets.FloatSlider(value=3.0, min=2.1, max=10.0, step=0.1, description="C", continuous_update=False),
        log10_beta2=widgets.FloatSlider(value=-1.0, min=-3.0, max=-0.001, step=0.05, description="log₁₀ β₂",
                                        continuous_update=False),
        lr=widgets.FloatLogSlider(value=0.5, base=10, min=-2, max=0.5, step=0.1, description="η",
                                  continuous_update=False),
        steps=widgets.IntSlider(value=300, min=30, max=3000, step=30, description="steps",
                                continuous_update=False),
    )


# ======================================================================================
# Notebook 07 · Wilson et al. (2017): same training loss, different test error
# ======================================================================================
@dataclass(frozen=True)
class WilsonData:
    """The least-squares classification problem of Wilson et al. (2017, section 3.3).

    ``X_train`` is n × 6n; a test point's own features are fresh coordinates that no training point uses,
    so every method leaves their weights at 0 and they are dropped from ``X_test`` (same 6n columns).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    p: float

    @property
    def min_norm_solution(self) -> np.ndarray:
        """w = Xᵀ(XXᵀ)⁻¹y, the interpolating solution of smallest ‖w‖ (where GD from 0 converges)."""
        return np.linalg.pinv(self.X_train) @ self.y_train


def _wilson_rows(labels: np.ndarray, width: int, unique_features: bool) -> np.ndarray:
    rows = np.zeros((len(labels), width))
    rows[:, 0] = labels  # feature 1: the label itself
    rows[:, 1:3] = 1.0  # features 2 and 3: always 1
    if unique_features:
        for i, label in enumerate(labels):
            start = 3 + 5 * i  # features 4 + 5(i−1), … in the paper's 1-based numbering
            rows[i, start:start + (1 if label > 0 else 5)] = 1.0  # 1 own feature if y = +1, 5 if y = −1
    return rows


def wilson_dataset(n_train: int = 60, n_test: int = 1000, p: float = 0.6, seed: int = 0) -> WilsonData:
    """Draw the data of Wilson, Roelofs, Stern, Srebro & Recht (2017), section 3.3.

    Labels are y = +1 with probability p > 1/2 and −1 otherwise. Point i has d = 6n features:
    x_i1 = y_i, x_i2 = x_i3 = 1, and its own block starting at feature 4 + 5(i − 1): one 1 if y_i = +1,
    five 1s if y_i = −1, zeros elsewhere. The data are linearly separable by feature 1 alone.
    """
    if not 0.5 < p < 1:
        raise ValueError(f"Invalid p: {p} (the construction needs 1/2 < p < 1)")
    if int(n_train) != n_train or n_train < 2:
        raise ValueError(f"Invalid n_train: {n_train} (at least 2 training points)")
    rng = np.random.default_rng(seed)
    y_train = np.where(rng.random(int(n_train)) < p, 1.0, -1.0)
    y_test = np.where(rng.random(int(n_test)) < p, 1.0, -1.0)
    width = 6 * int(n_train)
    return WilsonData(_wilson_rows(y_train, width, True), y_train, _wilson_rows(y_test, width, False), y_test,
                      float(p))


def fit_least_squares(X, y, rule: rules.Rule, steps: int, w0=None) -> tuple[np.ndarray, np.ndarray]:
    """Minimize f(w) = ½ · mean((Xw − y)²) with a full-batch rule from w0 (default 0).

    Returns the final weights and the loss f(w_t) for t = 0, …, steps.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    w = np.zeros(X.shape[1]) if w0 is None else np.asarray(w0, dtype=float).copy()
    state = rule.init(w)
    losses = np.empty(int(steps) + 1)
    for t in range(int(steps)):
        residual = X @ w - y
        losses[t] = 0.5 * np.mean(residual**2)
        w, state = rule.update(w, X.T @ residual / len(y), state)
    losses[-1] = 0.5 * np.mean((X @ w - y) ** 2)
    return w, losses


def classification_error(X, y, w) -> float:
    """Fraction of points with sign(x·w) ≠ y (a score of exactly 0 counts as an error)."""
    scores = np.asarray(X) @ np.asarray(w)
    return float(np.mean(np.sign(scores) != np.asarray(y)))


# ======================================================================================
# Notebook 07 · L2 penalty inside Adam versus decoupled weight decay (AdamW)
# ======================================================================================
def weight_decay_experiment(noise_std=(0.1, 3.0), target=(1.0, 1.0), weight_decay: float = 0.5, lr: float = 2e-3,
                            steps: int = 8000, runs: int = 8, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    r"""Adam with an L2 penalty versus AdamW on f(θ) = ½‖θ − c‖² with noisy gradients.

    Coordinate i's gradient is θ_i − c_i + N(0, σ_i²). ``adam`` uses ``rules.adam(weight_decay=λ)`` (λθ is
    added to the gradient, so it is divided by √v̂ like the rest); ``adamw`` uses ``rules.adamw`` (θ is
    shrunk by (1 − ηλ) outside the adaptive step). Setting the expected step to zero predicts

    * L2 inside Adam: θ − c + λθ = 0, so θ_i = c_i / (1 + λ), whatever the noise;
    * AdamW: (θ − c)/√v̂ + λθ = 0, so θ_i = c_i / (1 + λ √v̂_i): coordinates with large gradients
      (here, noisy ones) are decayed much more.

    Returns, for ``'adam'`` and ``'adamw'``, the weights averaged over the second half of the steps and over
    ``runs`` (``theta``) and the root of the final v̂ averaged over runs (``root_v_hat``).
    """
    noise_std, target = np.asarray(noise_std, dtype=float), np.asarray(target, dtype=float)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((int(steps), int(runs), target.size)) * noise_std
    results = {}
    for name, rule in (("adam", rules.adam(lr=lr, weight_decay=weight_decay)),
                       ("adamw", rules.adamw(lr=lr, weight_decay=weight_decay))):
        theta = np.zeros((int(runs), target.size))
        state = rule.init(theta)
        total = np.zeros_like(theta)
        for t in range(int(steps)):
            theta, state = rule.update(theta, theta - target + noise[t], state)
            if t >= steps // 2:
                total += theta
        beta2 = rule.hyperparams["betas"][1]
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
        results[name] = {"theta": (total / (steps - steps // 2)).mean(axis=0),
                         "root_v_hat": np.sqrt(v_hat).mean(axis=0)}
    return results


def weight_decay_grid(lrs, weight_decays, *, target, truth, noise_std, paper_decays=None, steps: int = 1500,
                      average_last: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    r"""Test loss after training, for every (η, λ) of a grid: Adam + L2, PyTorch's AdamW and the paper's AdamW.

    The training loss is f(θ) = ½‖θ − c‖² (c = ``target``), seen through noisy gradients
    g_t = θ_{t−1} − c + σ ⊙ ξ_t with ξ_t ~ N(0, I) and a per-coordinate noise level σ = ``noise_std``. The
    test loss is ½‖θ − w‖² with w = ``truth``: c is w seen through a finite training set, so shrinking θ
    towards 0 can help. Three ways to add decay, all from θ_0 = 0 with Adam's defaults otherwise:

    * ``'adam'``: ``rules.adam(lr=η, weight_decay=λ)``, the L2 penalty λθ added to g_t;
    * ``'adamw'``: ``rules.adamw(lr=η, weight_decay=λ)``, PyTorch's AdamW, θ ← (1 − ηλ)θ each step;
    * ``'adamw_paper'``: Loshchilov & Hutter's (2019) Algorithm 2 without a schedule, θ ← (1 − λ)θ each step:
      the decay per step is λ itself, a hyperparameter separate from η (``rules.adamw`` with
      ``weight_decay`` = λ/η); its λ grid is ``paper_decays`` (default: ``weight_decays``).

    Every (η, λ) pair and every method runs in one vectorized loop on the same noise. Returns, per method,
    the test loss averaged over the last ``average_last`` steps, shape (len(lrs), len(weight_decays));
    ``inf`` where a run diverged.
    """
    lrs = np.asarray(lrs, dtype=float).ravel()
    weight_decays = np.asarray(weight_decays, dtype=float).ravel()
    paper_decays = weight_decays if paper_decays is None else np.asarray(paper_decays, dtype=float).ravel()
    if (lrs.size == 0 or not np.all(lrs > 0) or weight_decays.size == 0 or not np.all(weight_decays >= 0)
            or paper_decays.shape != weight_decays.shape or not np.all(paper_decays >= 0)):
        raise ValueError("lrs must be positive, weight_decays and paper_decays non-negative grids of one length")
    if int(average_last) != average_last or not 1 <= average_last <= steps:
        raise ValueError(f"Invalid average_last: {average_last} (between 1 and steps)")
    target, truth = np.asarray(target, dtype=float), np.asarray(truth, dtype=float)
    noise_std = np.broadcast_to(np.asarray(noise_std, dtype=float), target.shape)
    lr_grid, decay_grid = (a.reshape(-1, 1) for a in np.meshgrid(lrs, weight_decays, indexing="ij"))
    paper_grid = np.meshgrid(lrs, paper_decays, indexing="ij")[1].reshape(-1, 1)
    methods = {"adam": rules.adam(lr=lr_grid, weight_decay=decay_grid),
               "adamw": rules.adamw(lr=lr_grid, weight_decay=decay_grid),
               "adamw_paper": rules.adamw(lr=lr_grid, weight_decay=paper_grid / lr_grid)}
    rng = np.random.default_rng(seed)
    thetas = {name: np.zeros((lr_grid.size, target.size)) for name in methods}
    states = {name: rule.init(thetas[name]) for name, rule in methods.items()}
    totals = {name: np.zeros(lr_grid.size) for name in methods}
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(int(steps)):
            noise = noise_std * rng.standard_normal((lr_grid.size, target.size))
            for name, rule in methods.items():
                theta = thetas[name]
                thetas[name], states[name] = rule.update(theta, theta - target + noise, states[name])
                if t >= steps - average_last:
                    totals[name] += 0.5 * np.sum((thetas[name] - truth) ** 2, axis=1)
    shape = (lrs.size, weight_decays.size)
    return {name: np.where(np.isfinite(total), total / average_last, np.inf).reshape(shape)
            for name, total in totals.items()}
