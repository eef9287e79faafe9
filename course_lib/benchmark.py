"""Comparing optimizers: the choice of each one's η, paired differences against a baseline, performance profiles.

One module for every comparison that reads sweeps (notebooks 09 and 12 both call it), so that every notebook picks
the same η from the same runs. NumPy only (SciPy for Student's t quantile).

**The statistic.** Each optimizer's η is the one of its grid with the lowest :func:`seed_statistic` of
:data:`METRIC`: the **mean over seeds of the final validation loss**, a diverged or missing run counted as the
worst value (+∞, so one diverged seed rules that η out). Why these:

* the *mean*, not the median, because the mean is the expected loss of one more run at that η (what a user who
  trains once gets), and it charges an η for a bad seed, where the median of three seeds ignores the worst one;
* the *final* loss, not the best point of the validation curve, because the best point is itself chosen on the
  validation set (a second, hidden selection that favours noisy curves); under warm-up + cosine decay to 0 the two
  nearly agree, and the final one is the model the run returns;
* a diverged run as +∞: an η that sometimes blows up is not a good choice, however good its other seeds.

**Paired differences.** The runs of one seed share their initial weights and their minibatches whatever the
optimizer, so the per-seed differences d_s = x_s − b_s (candidate minus baseline) remove what the seeds share.
:func:`paired_differences` reports d̄ with a Student-t interval and calls a difference only when the interval
excludes zero.

**Performance profiles** (Dolan & Moré, 2002; AlgoPerf's form): :func:`performance_profile`.

>>> from course_lib import benchmark
>>> runs = [{"optimizer": "adam", "lr": lr, "seed": s, "final_val_loss": v}
...         for lr, s, v in [(0.1, 0, 3.0), (0.1, 1, 3.0), (0.2, 0, 2.0), (0.2, 1, 5.0)]]
>>> best = benchmark.select(runs)["adam"]
>>> best.lr, best.score, best.at_edge
(0.1, 3.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from . import sweep

__all__ = ["METRIC", "STATISTIC", "seed_statistic", "Selection", "select", "Paired", "paired_differences",
           "t_quantile", "Profile", "performance_profile", "Protocol"]

METRIC = "final_val_loss"
"""The metric every η is chosen on: a run's validation loss at its last step."""

STATISTIC = "mean over seeds, a diverged or missing run counted as the worst (+inf)"
"""The statistic over seeds that :func:`seed_statistic` computes, in words (the results file records it)."""


def _value(value, worst: float) -> float:
    """``value`` as a float, or ``worst`` when it is missing (None) or not finite (a diverged run)."""
    if value is None or isinstance(value, bool):
        return worst
    value = float(value)
    return value if math.isfinite(value) else worst


def seed_statistic(values: Iterable, *, lower_is_better: bool = True) -> float:
    r"""The documented statistic over seeds: the mean,  s = (1/n) Σ_s x_s,  with a missing or non-finite x_s (a
    diverged run) replaced by the worst value (+∞ when lower is better, −∞ otherwise), so that s is the worst too.

    >>> seed_statistic([1.0, 2.0, 6.0]), seed_statistic([1.0, None])
    (3.0, inf)
    >>> seed_statistic([0.9, float("nan")], lower_is_better=False)
    -inf
    """
    worst = math.inf if lower_is_better else -math.inf
    values = [_value(v, worst) for v in values]
    if not values:
        raise ValueError("Invalid values: no seeds (expected one value per seed, at least one)")
    return float(np.mean(values))


@dataclass(frozen=True)
class Selection:
    """One optimizer's best η on its grid under the documented statistic (see :func:`select`).

    ``scores`` holds :func:`seed_statistic` at each η of ``grid`` (in grid order), ``score`` the best of them,
    ``at_edge`` whether ``lr`` is the grid's smallest or largest η (the optimum may lie outside: widen the grid),
    ``seeds`` the seeds at ``lr`` in ascending order and ``values`` the metric of each of those runs (None where a
    run diverged)."""

    optimizer: str
    lr: float
    index: int
    score: float
    at_edge: bool
    grid: tuple[float, ...]
    scores: tuple[float, ...]
    seeds: tuple[int, ...]
    values: tuple


def select(runs: Iterable[Mapping], grids: Mapping[str, Sequence[float]] | None = None, *, metric: str = METRIC,
           lower_is_better: bool = True) -> dict[str, Selection]:
    r"""Each optimizer's best η:  η* = argmin_η s(η),  s(η) = :func:`seed_statistic` of ``metric`` over the runs at η.

    ``runs`` are records with ``optimizer``, ``lr``, ``seed`` and ``metric`` (the results file's runs, or
    ``guide.read_sweep``'s flat records of one workload). ``grids`` maps each optimizer to its grid in ascending
    order (default: the η found in its runs, sorted); an optimizer of ``grids`` with no run is left out, and an η
    of a grid with no run scores the worst. Ties go to the first η of the grid (:func:`course_lib.sweep.best_lr`),
    and ``at_edge`` flags a best η at either end of the grid. Returns {optimizer: :class:`Selection`} in the order
    of ``grids`` (or of first appearance in ``runs``).
    """
    by_optimizer: dict[str, dict[float, list[Mapping]]] = {}
    for run in runs:
        missing = {"optimizer", "lr", "seed"} - set(run)
        if missing:
            raise ValueError(f"Invalid runs: a run lacks {sorted(missing)}")
        by_optimizer.setdefault(run["optimizer"], {}).setdefault(float(run["lr"]), []).append(run)
    if grids is None:
        grids = {name: sorted(by_lr) for name, by_lr in by_optimizer.items()}
    worst = math.inf if lower_is_better else -math.inf
    chosen = {}
    for name, grid in grids.items():
        by_lr = by_optimizer.get(name)
        if not by_lr:
            continue
        grid = tuple(float(lr) for lr in grid)
        scores = tuple(seed_statistic([r.get(metric) for r in by_lr[lr]], lower_is_better=lower_is_better)
                       if lr in by_lr else worst for lr in grid)
        best = sweep.best_lr(grid, scores, lower_is_better=lower_is_better)
        at_best = sorted(by_lr.get(best.lr, []), key=lambda r: r["seed"])
        chosen[name] = Selection(name, best.lr, best.index, best.score, best.at_edge, grid, scores,
                                 tuple(int(r["seed"]) for r in at_best), tuple(r.get(metric) for r in at_best))
    return chosen


def t_quantile(probability: float, dof: int) -> float:
    """Student's t quantile t_{p, ν} (``scipy.stats.t.ppf``): P(T ≤ t) = p for T with ν degrees of freedom."""
    from scipy import stats

    if not 0 < probability < 1:
        raise ValueError(f"Invalid probability: {probability} (expected 0 < p < 1)")
    if int(dof) != dof or dof < 1:
        raise ValueError(f"Invalid dof: {dof} (expected a positive integer)")
    return float(stats.t.ppf(probability, int(dof)))


@dataclass(frozen=True)
class Paired:
    """The paired comparison of a candidate with a baseline (see :func:`paired_differences`): the per-seed
    ``differences`` (candidate − baseline, seeds ascending), their ``mean``, the interval ``low`` … ``high`` at
    ``confidence``, and the ``verdict``: ``"better"``, ``"worse"``, ``"tie"`` (the interval holds zero) or
    ``"undefined"`` (fewer than two seeds, or a diverged run: no interval)."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    confidence: float
    verdict: str


def paired_differences(candidate, baseline, *, confidence: float = 0.95, lower_is_better: bool = True) -> Paired:
    r"""The candidate against the baseline, seed by seed:  d_s = x_s − b_s,  d̄ = (1/n) Σ d_s,

    .. math::  \bar d \pm t_{1-\alpha/2,\,n-1}\, \frac{s_d}{\sqrt n},
               \qquad s_d^2 = \frac{1}{n-1}\sum_s (d_s - \bar d)^2, \quad \alpha = 1 - \text{confidence}

    (the interval of the paired t-test, ``scipy.stats.ttest_rel(x, b).confidence_interval``). ``candidate`` and
    ``baseline`` map each seed to a value (dicts; the seeds must be the same), or are sequences paired by position
    (seed k is the k-th value). The verdict is ``"better"`` when the whole interval lies on the better side of zero
    (below it when ``lower_is_better``), ``"worse"`` when on the other, ``"tie"`` when it holds zero. With fewer than
    two seeds, or a missing or non-finite value (a diverged run), there is no interval: ``low = high = nan`` and the
    verdict is ``"undefined"``. Three seeds give t_{0.975, 2} = 4.30: only large, consistent differences count.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"Invalid confidence: {confidence} (expected 0 < confidence < 1)")
    if isinstance(candidate, Mapping) != isinstance(baseline, Mapping):
        raise TypeError("candidate and baseline must both map seeds to values, or both be sequences")
    if isinstance(candidate, Mapping):
        if set(candidate) != set(baseline):
            raise ValueError(f"Invalid seeds: candidate has {sorted(candidate)}, baseline {sorted(baseline)} "
                             "(the differences are paired by seed: expected the same seeds)")
        seeds = tuple(sorted(candidate))
        x, b = [candidate[s] for s in seeds], [baseline[s] for s in seeds]
    else:
        x, b = list(candidate), list(baseline)
        if len(x) != len(b):
            raise ValueError(f"Invalid values: {len(x)} candidate values for {len(b)} baseline values "
                             "(expected one pair per seed)")
        seeds = tuple(range(len(x)))
    if not x:
        raise ValueError("Invalid values: no seeds (expected one pair per seed, at least one)")
    x = np.array([np.nan if v is None else float(v) for v in x])
    b = np.array([np.nan if v is None else float(v) for v in b])
    d = x - b
    n = len(d)
    mean = float(np.mean(d)) if np.all(np.isfinite(d)) else float("nan")
    if n < 2 or not np.all(np.isfinite(d)):
        return Paired(seeds, tuple(float(v) for v in d), mean, math.nan, math.nan, confidence, "undefined")
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * float(np.std(d, ddof=1)) / math.sqrt(n)
    low, high = mean - half, mean + half
    below, above = high < 0, low > 0          # the whole interval below zero, or above it
    if not (below or above):
        verdict = "tie"
    else:
        verdict = "better" if below == lower_is_better else "worse"
    return Paired(seeds, tuple(float(v) for v in d), mean, low, high, confidence, verdict)


@dataclass(frozen=True)
class Profile:
    """A performance profile (see :func:`performance_profile`): ``ratios[i, j]`` is optimizer i's ratio on workload
    j (∞ where it failed), ``rho[i, k]`` the share of workloads with ratio ≤ ``taus[k]``."""

    optimizers: tuple[str, ...]
    workloads: tuple[str, ...]
    ratios: np.ndarray
    taus: np.ndarray
    rho: np.ndarray


def performance_profile(costs: Mapping[str, Mapping[str, float]], taus=None) -> Profile:
    r"""Dolan & Moré's performance profile of ``costs``: {optimizer: {workload: cost}}, lower is better, positive
    (steps to a target, or a loss above its floor); a missing, non-finite or ``None`` cost is a failure.

    .. math::  r_{o,w} = \frac{c_{o,w}}{\min_{o'} c_{o',w}}, \qquad
               \rho_o(\tau) = \frac{|\{w : r_{o,w} \le \tau\}|}{|W|}

    A failure has r = ∞ (it never counts); a workload on which every optimizer failed counts for nobody. ρ_o(1) is
    the share of workloads on which o is the best, and ρ_o(τ) → the share it solves at all as τ grows. ``taus``
    defaults to 200 points from 1 to the largest finite ratio (times 1.05). Every optimizer must name the same
    workloads.
    """
    optimizers = tuple(costs)
    if not optimizers:
        raise ValueError("Invalid costs: no optimizer")
    workloads = tuple(costs[optimizers[0]])
    for name in optimizers:
        if set(costs[name]) != set(workloads):
            raise ValueError(f"Invalid costs: {name!r} has workloads {sorted(costs[name])}, expected "
                             f"{sorted(workloads)}")
    values = np.array([[_value(costs[o][w], math.inf) for w in workloads] for o in optimizers], dtype=float)
    if np.any(values <= 0):
        raise ValueError("Invalid costs: every cost must be positive (a ratio to the best needs a best above 0)")
    best = values.min(axis=0)
    with np.errstate(invalid="ignore"):
        ratios = np.where(np.isfinite(values), values / best, np.inf)
    if taus is None:
        finite = ratios[np.isfinite(ratios)]
        taus = np.linspace(1.0, 1.05 * float(finite.max()) if finite.size else 2.0, 200)
    taus = np.asarray(taus, dtype=float).ravel()
    rho = (ratios[:, :, None] <= taus[None, None, :]).mean(axis=1)
    return Profile(optimizers, workloads, ratios, taus, rho)


@dataclass(frozen=True)
class Protocol:
    """What a comparison spent and how it chose: the record a results file carries (``to_dict``).

    ``grids`` maps each optimizer to its η grid, ``seeds`` are the seeds run at every η, ``pilot_runs`` the runs
    spent per optimizer before the sweep to place its grid (``None``: not recorded, so the budget is a lower
    bound), ``metric`` and ``statistic`` how the best η is chosen (this module's :data:`METRIC` and
    :data:`STATISTIC`). The tuning budget of an optimizer counts every run: pilot runs + |grid| × |seeds|."""

    grids: dict[str, list[float]]
    seeds: tuple[int, ...]
    pilot_runs: dict[str, int] | None = None
    metric: str = METRIC
    statistic: str = STATISTIC
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def budget(self) -> dict[str, int]:
        """Runs per optimizer, pilot runs included (a lower bound when ``pilot_runs`` is None)."""
        pilot = self.pilot_runs or {}
        return {name: int(pilot.get(name, 0)) + len(grid) * len(self.seeds) for name, grid in self.grids.items()}

    def equal_budget(self) -> bool:
        """Whether every optimizer got the same number of runs (and the pilot runs are recorded)."""
        return self.pilot_runs is not None and len(set(self.budget().values())) <= 1

    def to_dict(self) -> dict:
        """A JSON-ready dict: the fields, and ``budget`` (runs per optimizer) and ``budget_counts_pilot_runs``."""
        record = asdict(self)
        record["seeds"] = list(self.seeds)
        record["budget"] = self.budget()
        record["budget_counts_pilot_runs"] = self.pilot_runs is not None
        return record

    @classmethod
    def from_dict(cls, record: Mapping) -> Protocol:
        """The protocol of :meth:`to_dict`'s ``record`` (its derived keys are recomputed, not read)."""
        known = {"grids", "seeds", "pilot_runs", "metric", "statistic", "notes", "extra"}
        return cls(**{key: (tuple(value) if key == "seeds" else value) for key, value in record.items()
                      if key in known})
