"""course_lib.benchmark: the documented selection statistic, paired t-intervals against scipy.stats.ttest_rel,
performance profiles against hand-computed cases, and the protocol record."""

import math

import numpy as np
import pytest
from scipy import stats

from course_lib import benchmark


def runs_of(table, optimizer="adam", metric=benchmark.METRIC):
    """Records from {η: [value of seed 0, seed 1, ...]}."""
    return [{"optimizer": optimizer, "lr": lr, "seed": seed, metric: value}
            for lr, values in table.items() for seed, value in enumerate(values)]


def test_the_statistic_is_the_mean_over_seeds_with_a_diverged_run_the_worst():
    assert benchmark.seed_statistic([1.0, 2.0, 6.0]) == 3.0
    assert benchmark.seed_statistic([1.0, None, 2.0]) == math.inf
    assert benchmark.seed_statistic([1.0, float("nan")]) == math.inf
    assert benchmark.seed_statistic([0.9, None], lower_is_better=False) == -math.inf
    assert benchmark.METRIC == "final_val_loss" and "mean" in benchmark.STATISTIC
    with pytest.raises(ValueError, match="no seeds"):
        benchmark.seed_statistic([])


def test_select_uses_the_mean_where_the_median_would_choose_otherwise():
    # η = 0.1: median 1.0, mean 2.0 (one bad seed); η = 0.2: median 1.5, mean 1.5. The mean picks 0.2, the median 0.1.
    table = {0.05: [3.0, 3.0, 3.0], 0.1: [1.0, 1.0, 4.0], 0.2: [1.5, 1.5, 1.5], 0.4: [2.5, 2.5, 2.5]}
    assert np.median(table[0.1]) < np.median(table[0.2]) and np.mean(table[0.1]) > np.mean(table[0.2])
    best = benchmark.select(runs_of(table))["adam"]
    assert best.lr == 0.2 and best.index == 2 and best.score == pytest.approx(1.5) and not best.at_edge
    assert best.scores == pytest.approx((3.0, 2.0, 1.5, 2.5))
    assert best.seeds == (0, 1, 2) and best.values == (1.5, 1.5, 1.5)


def test_select_reads_the_documented_metric_not_another_loss():
    runs = runs_of({0.1: [1.0, 1.0], 0.2: [2.0, 2.0]})
    for run in runs:                                    # the best point of the curve would pick the other η
        run["best_val_loss"] = 3.0 - run["final_val_loss"]
    assert benchmark.select(runs)["adam"].lr == 0.1
    assert benchmark.select(runs, metric="best_val_loss")["adam"].lr == 0.2


def test_select_flags_the_edge_breaks_ties_to_the_first_and_rules_out_diverged():
    assert benchmark.select(runs_of({0.1: [1.0], 0.2: [2.0], 0.4: [3.0]}))["adam"].at_edge
    assert benchmark.select(runs_of({0.1: [3.0], 0.2: [2.0], 0.4: [1.0]}))["adam"].at_edge
    tie = benchmark.select(runs_of({0.1: [3.0], 0.2: [2.0], 0.4: [2.0], 0.8: [4.0]}))["adam"]
    assert tie.lr == 0.2 and not tie.at_edge
    diverged = benchmark.select(runs_of({0.1: [3.0, 3.0], 0.2: [1.0, None], 0.4: [2.8, 3.0]}))["adam"]
    assert diverged.lr == 0.4 and diverged.scores[1] == math.inf       # one diverged seed rules η = 0.2 out
    nothing = benchmark.select(runs_of({0.1: [None], 0.2: [float("nan")]}))["adam"]
    assert nothing.lr == 0.1 and nothing.score == math.inf
    higher = benchmark.select(runs_of({0.1: [0.5, 0.7], 0.2: [0.8, 0.9]}), lower_is_better=False)["adam"]
    assert higher.lr == 0.2


def test_select_follows_the_given_grids():
    runs = runs_of({0.1: [2.0], 0.2: [1.0]}) + runs_of({0.01: [1.0]}, optimizer="sgd")
    chosen = benchmark.select(runs, {"adam": [0.05, 0.1, 0.2, 0.4], "lion": [1e-4]})
    assert list(chosen) == ["adam"] and not chosen["adam"].at_edge    # 0.2 is inside the given grid
    assert chosen["adam"].scores[0] == math.inf                        # no run at 0.05: the worst
    assert list(benchmark.select(runs)) == ["adam", "sgd"]
    with pytest.raises(ValueError, match="lacks"):
        benchmark.select([{"optimizer": "adam", "lr": 0.1}])


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_paired_interval_is_scipy_ttest_rel_s(n):
    rng = np.random.default_rng(n)
    baseline = rng.normal(3.0, 0.1, n)
    candidate = baseline + rng.normal(0.05, 0.05, n)
    paired = benchmark.paired_differences(list(candidate), list(baseline))
    reference = stats.ttest_rel(candidate, baseline).confidence_interval(0.95)
    assert paired.low == pytest.approx(reference.low, rel=1e-10) and paired.high == pytest.approx(reference.high,
                                                                                                  rel=1e-10)
    assert paired.mean == pytest.approx(np.mean(candidate - baseline))
    ninety = stats.ttest_rel(candidate, baseline).confidence_interval(0.9)
    assert benchmark.paired_differences(list(candidate), list(baseline), confidence=0.9).low == pytest.approx(
        ninety.low, rel=1e-10)


def test_paired_verdicts_only_when_the_interval_excludes_zero():
    base = {0: 3.0, 1: 3.1, 2: 2.9}
    # differences 0.1, 0.2, 0.3: mean 0.2, s = 0.1, t_{0.975,2} = 4.3027: 0.2 ± 0.248 holds zero: a tie
    tie = benchmark.paired_differences({0: 3.1, 1: 3.3, 2: 3.2}, base)
    assert tie.differences == pytest.approx((0.1, 0.2, 0.3)) and tie.verdict == "tie"
    assert tie.high - tie.mean == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))
    worse = benchmark.paired_differences({0: 3.2, 1: 3.31, 2: 3.1}, base)      # 0.2, 0.21, 0.2
    assert worse.verdict == "worse" and worse.low > 0
    better = benchmark.paired_differences({0: 2.8, 1: 2.91, 2: 2.7}, base)
    assert better.verdict == "better" and better.high < 0
    assert benchmark.paired_differences({0: 2.8, 1: 2.91, 2: 2.7}, base, lower_is_better=False).verdict == "worse"
    # paired, not pooled: a shared seed effect much larger than the difference still gives a verdict
    shared = {0: 1.0, 1: 5.0, 2: 9.0}
    assert benchmark.paired_differences({s: v + 0.1 + 0.001 * s for s, v in shared.items()}, shared).verdict == "worse"
    assert stats.ttest_ind([1.101, 5.101, 9.102], [1.0, 5.0, 9.0]).pvalue > 0.5      # unpaired: no difference at all


def test_paired_pairs_by_seed_and_reports_what_it_cannot_compute():
    assert benchmark.paired_differences({2: 1.0, 0: 3.0}, {0: 1.0, 2: 0.5}).differences == (2.0, 0.5)
    with pytest.raises(ValueError, match="same seeds"):
        benchmark.paired_differences({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0})
    with pytest.raises(ValueError, match="one pair per seed"):
        benchmark.paired_differences([1.0, 2.0], [1.0])
    with pytest.raises(TypeError, match="both"):
        benchmark.paired_differences({0: 1.0}, [1.0])
    diverged = benchmark.paired_differences([1.0, None, 2.0], [1.0, 1.0, 1.0])
    assert diverged.verdict == "undefined" and math.isnan(diverged.low) and math.isnan(diverged.mean)
    one = benchmark.paired_differences([1.0], [2.0])
    assert one.verdict == "undefined" and one.mean == -1.0
    with pytest.raises(ValueError, match="confidence"):
        benchmark.paired_differences([1.0, 2.0], [1.0, 1.0], confidence=95)


def test_t_quantile_against_the_table():
    assert benchmark.t_quantile(0.975, 2) == pytest.approx(4.303, abs=5e-4)     # the printed table's values
    assert benchmark.t_quantile(0.975, 10) == pytest.approx(2.228, abs=5e-4)
    assert benchmark.t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="dof"):
        benchmark.t_quantile(0.975, 0)


def test_performance_profile_by_hand():
    costs = {"a": {"w1": 10.0, "w2": 40.0, "w3": 5.0},
             "b": {"w1": 20.0, "w2": 20.0, "w3": None},       # failed on w3
             "c": {"w1": 10.0, "w2": 80.0, "w3": 10.0}}
    profile = benchmark.performance_profile(costs, taus=[1.0, 1.5, 2.0, 4.0])
    assert profile.optimizers == ("a", "b", "c") and profile.workloads == ("w1", "w2", "w3")
    np.testing.assert_allclose(profile.ratios, [[1, 2, 1], [2, 1, np.inf], [1, 4, 2]])
    np.testing.assert_allclose(profile.rho, [[2 / 3, 2 / 3, 1, 1], [1 / 3, 1 / 3, 2 / 3, 2 / 3],
                                             [1 / 3, 1 / 3, 2 / 3, 1]])
    default = benchmark.performance_profile(costs)
    assert default.taus[0] == 1.0 and default.taus[-1] == pytest.approx(4.2) and np.all(default.rho[:, -1] <= 1)
    assert np.all(np.diff(default.rho, axis=1) >= 0)                   # ρ never decreases in τ
    with pytest.raises(ValueError, match="positive"):
        benchmark.performance_profile({"a": {"w": 0.0}})
    with pytest.raises(ValueError, match="workloads"):
        benchmark.performance_profile({"a": {"w": 1.0}, "b": {"v": 1.0}})


def test_protocol_counts_every_run_and_round_trips():
    protocol = benchmark.Protocol({"adam": [0.1, 0.2], "sgd": [1.0, 2.0, 4.0]}, (0, 1, 2))
    assert protocol.budget() == {"adam": 6, "sgd": 9} and not protocol.equal_budget()   # pilots not recorded
    counted = benchmark.Protocol({"adam": [0.1, 0.2], "sgd": [1.0, 2.0]}, (0, 1), pilot_runs={"adam": 3, "sgd": 3})
    assert counted.budget() == {"adam": 7, "sgd": 7} and counted.equal_budget()
    record = counted.to_dict()
    assert record["budget"] == {"adam": 7, "sgd": 7} and record["seeds"] == [0, 1]
    assert record["metric"] == "final_val_loss" and record["budget_counts_pilot_runs"]
    assert benchmark.Protocol.from_dict(record) == counted
