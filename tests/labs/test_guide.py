"""course_lib.labs.guide: the least-squares problem against NumPy's solver, autograd and finite differences; minibatch
gradients against torch; the warm-up against torch's LinearLR and clipping against clip_grad_norm_; the race helpers
and the range test against plain loops, closed forms and training.lr_range_test; notebook 12's sweep reader on a fake
file; the playground view and its widget."""

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import rules, training
from course_lib.descent import descend
from course_lib.functions import quadratic, x_squared
from course_lib.labs import guide

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem():
    return guide.least_squares_problem(n=600, frequencies=[1.0, 0.3, 0.05, 0.01], noise=0.1, seed=3)


# --- the least-squares problem ------------------------------------------------------------------------------------

def test_value_and_gradient_match_the_direct_formula_autograd_and_finite_differences(problem):
    X, y = problem.design, problem.targets
    rng = np.random.default_rng(0)
    points = rng.normal(size=(5, problem.dim))
    direct = 0.5 * np.mean((points @ X.T - y) ** 2, axis=1)
    assert np.allclose(problem.value(points), direct, rtol=1e-12, atol=1e-12)
    for point in points:
        theta = torch.tensor(point, requires_grad=True)
        loss = 0.5 * torch.nn.functional.mse_loss(torch.as_tensor(X) @ theta, torch.as_tensor(y))
        loss.backward()
        assert np.allclose(problem.grad(point), theta.grad.numpy(), rtol=1e-10, atol=1e-12)
        h = 1e-6
        numeric = [(problem.value(point + h * e) - problem.value(point - h * e)) / (2 * h) for e in np.eye(problem.dim)]
        assert np.allclose(problem.grad(point), numeric, atol=1e-7)
    hessian = torch.autograd.functional.hessian(
        lambda t: 0.5 * torch.mean((torch.as_tensor(X) @ t - torch.as_tensor(y)) ** 2), torch.zeros(problem.dim,
                                                                                                      dtype=torch.float64))
    assert np.allclose(problem.hessian, hessian.numpy(), atol=1e-12)


def test_minimizer_and_minimum_match_numpy_lstsq_and_the_normal_equations(problem):
    X, y = problem.design, problem.targets
    solution = np.linalg.solve(X.T @ X, X.T @ y)
    assert np.allclose(problem.minimizer, solution, atol=1e-10)
    assert math.isclose(problem.minimum, 0.5 * np.mean((X @ solution - y) ** 2), rel_tol=1e-10)
    assert np.allclose(problem.grad(problem.minimizer), 0, atol=1e-12)


def test_features_have_the_requested_frequencies_signs_and_no_cross_correlation():
    frequencies = [1.0, 0.5, 0.1, 0.02]
    big = guide.least_squares_problem(n=20_000, frequencies=frequencies, noise=0.0, seed=0)
    share = (big.design != 0).mean(axis=0)
    n = big.n_samples
    for p, measured in zip(frequencies, share):
        assert abs(measured - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12     # binomial standard errors
    assert set(np.unique(big.design)) <= {-1.0, 0.0, 1.0}
    assert np.allclose(np.diag(big.hessian), share)                          # x² = 1 where present
    off = big.hessian - np.diag(np.diag(big.hessian))
    assert np.abs(off).max() < 4 / math.sqrt(n)                             # random signs: no correlation
    assert np.allclose(big.minimizer, 1.0, atol=1e-9)                        # noise 0: y = X·1 exactly
    assert math.isclose(big.value(np.ones(4)), 0.0, abs_tol=1e-12)


def test_every_feature_occurs_and_the_seed_fixes_the_table():
    rare = guide.least_squares_problem(n=50, frequencies=[1.0, 1e-6, 1e-6], seed=5)
    assert np.all((rare.design != 0).sum(axis=0) >= 1)
    again = guide.least_squares_problem(n=50, frequencies=[1.0, 1e-6, 1e-6], seed=5)
    assert np.array_equal(rare.design, again.design) and np.array_equal(rare.targets, again.targets)


@pytest.mark.parametrize("arguments, words", [
    (dict(n=1), "n must be"),
    (dict(frequencies=[1.0, 0.0]), "frequencies"),
    (dict(frequencies=[1.5]), "frequencies"),
    (dict(noise=-1.0), "noise"),
    (dict(frequencies=[1.0, 0.5], weights=[1.0]), "weights"),
])
def test_least_squares_problem_rejects_bad_arguments(arguments, words):
    with pytest.raises(ValueError, match=words):
        guide.least_squares_problem(**arguments)


# --- minibatch gradients ------------------------------------------------------------------------------------------

def test_minibatch_gradient_is_torch_autograd_on_the_batch_rows_and_averages_to_the_full_gradient(problem):
    batch_size = 40                                      # 600 rows: 15 batches per epoch, nothing dropped
    grad = problem.minibatch_grad(batch_size, seed=1)
    point = np.linspace(-1, 1, problem.dim)
    batches = [grad(point, t) for t in range(1, 16)]
    assert np.allclose(np.mean(batches, axis=0), problem.grad(point), atol=1e-12)
    order = np.random.default_rng([1, 0]).permutation(problem.n_samples)
    rows = order[40:80]                                  # step 2 of epoch 0
    theta = torch.tensor(point, requires_grad=True)
    X, y = torch.as_tensor(problem.design[rows]), torch.as_tensor(problem.targets[rows])
    (0.5 * torch.nn.functional.mse_loss(X @ theta, y)).backward()
    assert np.allclose(batches[1], theta.grad.numpy(), atol=1e-12)


def test_minibatch_epochs_reshuffle_drop_the_last_batch_and_repeat_with_the_seed(problem):
    grad = problem.minibatch_grad(64, seed=2)            # 600 // 64 = 9 batches per epoch, 24 rows dropped
    point = np.zeros(problem.dim)
    first_epoch, second_epoch = grad(point, 1), grad(point, 10)
    assert not np.allclose(first_epoch, second_epoch)
    assert np.array_equal(grad(point, 10), problem.minibatch_grad(64, seed=2)(point, 10))
    assert not np.array_equal(grad(point, 1), problem.minibatch_grad(64, seed=3)(point, 1))
    batch = np.stack([point, point + 1])                 # a batch of runs sees the same rows
    assert np.allclose(grad(batch, 4)[0], grad(point, 4))
    with pytest.raises(ValueError, match="batch_size"):
        problem.minibatch_grad(0)
    with pytest.raises(ValueError, match="larger than"):
        problem.minibatch_grad(10_000)


def test_sgd_on_the_problem_with_batch_n_is_gradient_descent(problem):
    full = descend(problem, np.zeros(problem.dim), rules.sgd(lr=0.5), 30)
    whole_batches = descend(problem, np.zeros(problem.dim), rules.sgd(lr=0.5), 30,
                            grad=problem.minibatch_grad(problem.n_samples))
    assert np.allclose(full.points, whole_batches.points, atol=1e-12)


# --- fair races ---------------------------------------------------------------------------------------------------

def test_best_learning_rate_agrees_with_a_loop_of_single_runs_and_skips_diverged_ones():
    bowl = quadratic(kappa=10)
    lrs = [0.05, 0.5, 1.5, 2.5]                           # 2.5 > 2/L diverges
    lr, run = guide.best_learning_rate(bowl, [-4.0, 2.0], lambda lr: rules.sgd(lr=lr), lrs, 40)
    finals = [descend(bowl, [-4.0, 2.0], rules.sgd(lr=candidate), 40).values[-1] for candidate in lrs]
    assert not np.isfinite(finals[-1]) or finals[-1] > finals[0]
    assert lr == lrs[int(np.nanargmin(np.where(np.isfinite(finals), finals, np.nan)))] == 1.5
    assert np.allclose(run.points, descend(bowl, [-4.0, 2.0], rules.sgd(lr=lr), 40).points)
    with pytest.raises(ValueError, match="lrs"):
        guide.best_learning_rate(bowl, [-4.0, 2.0], lambda lr: rules.sgd(lr=lr), [], 40)
    with pytest.raises(ValueError, match="average_last"):
        guide.best_learning_rate(bowl, [-4.0, 2.0], lambda lr: rules.sgd(lr=lr), lrs, 40, average_last=41)


def test_steps_to_tolerance_matches_the_closed_form_of_notebook_01():
    run = descend(x_squared, 5.0, rules.sgd(lr=0.1), 100)        # f(x_t) = 25 · 0.64^t
    for tolerance in (1e-3, 1e-6, 1e-12):
        expected = math.ceil(math.log(tolerance) / math.log(0.64))
        assert guide.steps_to_tolerance(run.values, tolerance) == expected


def test_steps_to_tolerance_needs_the_run_to_stay_below_and_handles_batches():
    values = np.array([[1.0, 1.0], [1e-3, 0.5], [0.5, np.nan], [1e-4, np.nan], [1e-5, np.nan]])
    assert np.array_equal(guide.steps_to_tolerance(values, 1e-2), [3.0, np.inf])   # left once, came back
    assert guide.steps_to_tolerance(np.array([2.0, 1.5, 1.2]), 0.5, minimum=1.0) == 2.0
    with pytest.raises(ValueError, match="tolerance"):
        guide.steps_to_tolerance(values, 1.5)
    with pytest.raises(ValueError, match="values"):
        guide.steps_to_tolerance(np.ones(1), 0.1)


def test_fastest_learning_rate_is_near_the_optimal_step_of_notebook_02():
    bowl = quadratic(kappa=20)                                   # best fixed step η* = 2/(μ + L) = 1.905
    best_step = 2 / (bowl.mu + bowl.L)
    rate = (bowl.kappa - 1) / (bowl.kappa + 1)                   # at η*, f(θ_t) = ρ^2t f(θ_0) exactly
    at_best = descend(bowl, [-4.0, 2.4], rules.sgd(lr=best_step), 400).values
    assert guide.steps_to_tolerance(at_best, 1e-8) == math.ceil(math.log(1e-8) / math.log(rate**2))
    lrs = np.linspace(1.0, 2.05, 106)
    lr, steps = guide.fastest_learning_rate(bowl, [-4.0, 2.4], lambda lr: rules.sgd(lr=lr), lrs, 400, 1e-8)
    singles = [guide.steps_to_tolerance(descend(bowl, [-4.0, 2.4], rules.sgd(lr=c), 400).values, 1e-8) for c in lrs]
    assert steps == min(singles) and lr == lrs[int(np.argmin(singles))]
    assert abs(lr - best_step) < 0.1 and steps <= guide.steps_to_tolerance(at_best, 1e-8)
    assert guide.fastest_learning_rate(bowl, [-4.0, 2.4], lambda lr: rules.sgd(lr=lr), [1e-6], 10)[1] == math.inf


def test_fastest_learning_rates_races_several_problems_as_each_alone():
    turn = np.radians(30)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    problems = [(quadratic(kappa=20), np.array([-4.0, 2.4])),
                (quadratic(kappa=20, angle=turn), rotation @ np.array([-4.0, 2.4])),
                (quadratic(kappa=5), np.array([1.0, -3.0]))]
    lrs = np.geomspace(0.05, 3, 19)
    for make in (lambda lr: rules.sgd(lr=lr), lambda lr: rules.sgd(lr=lr, momentum=0.5), lambda lr: rules.adam(lr=lr)):
        raced = guide.fastest_learning_rates(problems, make, lrs, 300, 1e-8)
        assert raced == [guide.fastest_learning_rate(objective, x0, make, lrs, 300, 1e-8) for objective, x0 in problems]
    gd = guide.fastest_learning_rates(problems, lambda lr: rules.sgd(lr=lr), lrs, 300, 1e-8)
    assert gd[0][0] == gd[1][0] and abs(gd[0][1] - gd[1][1]) <= 1    # gradient descent does not see the rotation
    assert np.isfinite(gd[2][1]) and gd[2][1] < gd[0][1]               # κ = 5 is faster than κ = 20
    with pytest.raises(ValueError, match="dimension"):
        guide.fastest_learning_rates([(quadratic(), [1.0, 1.0]), (x_squared, [1.0])], lambda lr: rules.sgd(lr=lr),
                                     lrs, 10)
    with pytest.raises(ValueError, match="lrs"):
        guide.fastest_learning_rates(problems, lambda lr: rules.sgd(lr=lr), [], 10)


# --- warm-up, clipping and the steep bowl -------------------------------------------------------------------------

def test_steep_bowl_gradient_and_curvature_match_autograd():
    bowl = guide.steep_bowl(3)
    point = np.array([3.0, -1.0, 0.5])
    theta = torch.tensor(point, requires_grad=True)
    value = (theta**4 / 4 + theta**2 / 2).sum()
    value.backward()
    assert math.isclose(bowl.value(point), value.item(), rel_tol=1e-12)
    assert np.allclose(bowl.grad(point), theta.grad.numpy(), atol=1e-12)
    hessian = torch.autograd.functional.hessian(lambda t: (t**4 / 4 + t**2 / 2).sum(), torch.tensor(point))
    assert np.allclose(np.diag(hessian.numpy()), 3 * point**2 + 1) and hessian.numpy()[0, 3 - 2] == 0
    assert bowl.minimum == 0 and np.array_equal(bowl.minimizer, np.zeros(3))
    with pytest.raises(ValueError, match="dim"):
        guide.steep_bowl(0)


def test_linear_warmup_is_torchs_linear_lr_scheduler():
    warmup = 7
    schedule = guide.linear_warmup(warmup)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.3)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup - 1)
    for t in range(1, 20):                               # descend's step t uses torch's lr after t − 1 scheduler steps
        assert math.isclose(0.3 * schedule(t), optimizer.param_groups[0]["lr"], rel_tol=1e-12)
        optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError, match="warmup_steps"):
        guide.linear_warmup(0)


def test_clip_by_global_norm_is_torchs_clip_grad_norm():
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 30.0):
        grad = scale * rng.standard_normal(7)
        clipped, norm = guide.clip_by_global_norm(grad, 2.0)
        param = torch.nn.Parameter(torch.zeros(7, dtype=torch.float64))
        param.grad = torch.tensor(grad)
        total = torch.nn.utils.clip_grad_norm_([param], 2.0)
        assert math.isclose(float(norm), total.item(), rel_tol=1e-12)
        assert np.allclose(clipped, param.grad.numpy(), rtol=1e-6, atol=1e-12)   # torch divides by ‖g‖ + 1e-6
    batch = rng.standard_normal((4, 3)) * np.array([[0.1], [1.0], [10.0], [100.0]])
    clipped, norms = guide.clip_by_global_norm(batch, 1.0)
    assert norms.shape == (4,) and np.allclose(norms, np.linalg.norm(batch, axis=1))
    assert np.all(np.linalg.norm(clipped, axis=1) <= 1.0 + 1e-12) and np.allclose(clipped[0], batch[0])
    with pytest.raises(ValueError, match="max_norm"):
        guide.clip_by_global_norm(batch, 0.0)


def test_clipped_gradient_logs_unclipped_norms_and_caps_the_step():
    problem = guide.heavy_tailed_problem(n=400, dim=3, outliers=0.02, seed=1)
    logger = guide.ClippedGradient(problem.minibatch_grad(16, seed=0))
    free = descend(problem, np.zeros(3), rules.sgd(lr=0.05), 50, grad=logger)
    norms = np.asarray(logger.norms)
    assert norms.shape == (50,) and logger.clipped_fraction == 0.0
    threshold = float(np.percentile(norms, 50))
    clipper = guide.ClippedGradient(problem.minibatch_grad(16, seed=0), threshold)
    capped = descend(problem, np.zeros(3), rules.sgd(lr=0.05), 50, grad=clipper)
    steps = np.linalg.norm(np.diff(capped.points, axis=0), axis=1)
    assert np.all(steps <= 0.05 * threshold + 1e-12)                      # SGD's step is η times the clipped gradient
    assert 0 < clipper.clipped_fraction < 1 and not np.allclose(free.points, capped.points)
    first = problem.minibatch_grad(16, seed=0)(np.zeros(3), 1)
    assert math.isclose(clipper.norms[0], np.linalg.norm(first), rel_tol=1e-12)   # logged before clipping
    with pytest.raises(ValueError, match="max_norm"):
        guide.ClippedGradient(problem.minibatch_grad(16), -1.0)


def test_heavy_tailed_problem_has_its_outliers_and_exact_minimizer():
    problem = guide.heavy_tailed_problem(n=1000, dim=4, outliers=0.01, outlier_scale=50.0, seed=2)
    clean = guide.least_squares_problem(n=1000, frequencies=np.ones(4), noise=1.0, seed=2)
    changed = np.flatnonzero(problem.targets != clean.targets)
    assert changed.size == 10 and np.array_equal(problem.design, clean.design)
    solution, *_ = np.linalg.lstsq(problem.design, problem.targets, rcond=None)
    assert np.allclose(problem.minimizer, solution) and np.allclose(problem.grad(problem.minimizer), 0, atol=1e-10)
    with pytest.raises(ValueError, match="outliers"):
        guide.heavy_tailed_problem(outliers=1.5)


# --- the range test -----------------------------------------------------------------------------------------------

def test_range_test_matches_the_closed_form_of_gradient_descent_on_x_squared():
    result = guide.range_test(x_squared, 1.0, lambda lr: rules.sgd(lr=lr), start_lr=1e-3, end_lr=10.0, steps=100)
    lrs = 1e-3 * (1e4) ** (np.arange(100) / 99)
    assert np.allclose(result.lrs, lrs[:len(result.lrs)])
    expected = np.cumprod(np.concatenate([[1.0], (1 - 2 * lrs[:len(result.losses) - 1]) ** 2]))   # x_{k+1} = (1 − 2η)x
    assert np.allclose(result.losses, expected, rtol=1e-10)
    rises = np.flatnonzero(np.diff(result.losses) > 0)
    assert result.lrs[rises[0]] > 1.0 > result.lrs[rises[0] - 1]    # the loss first rises once η passes 2/L = 1
    assert result.stopped_early and result.lrs[-1] < 10.0
    assert result.suggestion() == result.best_lr() / 10
    smoothed, average = [], 0.0
    for k, loss in enumerate(result.losses):
        average = 0.9 * average + 0.1 * loss
        smoothed.append(average / (1 - 0.9 ** (k + 1)))
    assert np.allclose(result.smoothed, smoothed, rtol=1e-12)
    assert type(result) is training.LRRangeTest        # one range test: the result type of training.lr_range_test


def test_range_test_equals_training_lr_range_test_on_a_linear_model():
    base = guide.least_squares_problem(n=64, frequencies=[1.0, 0.5, 0.25], noise=0.1, seed=4)
    labels = (base.targets > 0).astype(float)            # training's range test takes 0/1 labels only
    problem = guide.LeastSquares(name="0/1 targets", dim=3, minimizers=np.zeros((1, 3)), minimum=0.0,
                                 bounds=((-1.0, 1.0),) * 3, design=base.design, targets=labels)
    ours = guide.range_test(problem, np.zeros(3), lambda lr: rules.sgd(lr=lr), start_lr=1e-3, end_lr=30.0, steps=60)
    model = torch.nn.Linear(3, 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    X, y = torch.as_tensor(problem.design), torch.as_tensor(problem.targets)
    theirs = training.lr_range_test(model, torch.optim.SGD(model.parameters(), lr=1e-3), (X, y), 1e-3, 30.0, 60,
                                    batch_size=None, loss=lambda out, target: 0.5 * torch.nn.functional.mse_loss(
                                        out.reshape(-1), target.reshape(-1)), device="cpu")
    assert len(ours.losses) == len(theirs.losses) and ours.stopped_early == theirs.stopped_early
    assert np.allclose(ours.losses, theirs.losses, rtol=1e-9) and np.allclose(ours.smoothed, theirs.smoothed, rtol=1e-9)


@pytest.mark.parametrize("arguments, words", [
    (dict(start_lr=0.0), "start_lr"), (dict(start_lr=1.0, end_lr=0.5), "start_lr"), (dict(steps=1), "steps"),
    (dict(smoothing=1.0), "smoothing"), (dict(diverge_factor=1.0), "diverge_factor"),
])
def test_range_test_rejects_bad_arguments(arguments, words):
    with pytest.raises(ValueError, match=words):
        guide.range_test(x_squared, 1.0, lambda lr: rules.sgd(lr=lr), **arguments)


# --- notebook 12's sweeps, read back ------------------------------------------------------------------------------

def _fake_sweep(tmp_path):
    runs = []
    for seed, jitter in enumerate((0.0, 0.01, -0.01)):
        for lr, loss in [(1e-3, 2.0), (1e-2, 1.5), (1e-1, 1.2)]:
            runs.append(dict(optimizer="sgd", lr=lr, seed=seed, best_val_loss=loss + jitter, curve=[3.0, loss]))
        for lr, loss in [(1e-4, 1.3), (1e-3, 1.0), (1e-2, float("nan") if seed == 1 else 5.0)]:
            runs.append(dict(optimizer="adamw", lr=lr, seed=seed, best_val_loss=loss + jitter))
        runs.append(dict(optimizer="lion", lr=3e-4, seed=seed, best_val_loss=1.0 + 2 * jitter))
        runs.append(dict(optimizer="nadam", lr=1e-3, seed=seed, best_val_loss=(1.05, 1.06, 1.0)[seed]))
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"schema": 1, "workloads": {"lm": {"runs": runs}, "cnn": {"runs": runs[:3]}}}))
    return path


def test_read_sweep_flattens_runs_and_reports_a_missing_file(tmp_path):
    records = guide.read_sweep(_fake_sweep(tmp_path))
    assert len(records) == 24 + 3 and {r["workload"] for r in records} == {"lm", "cnn"}
    assert all({"optimizer", "lr", "seed", "best_val_loss"} <= set(r) for r in records)
    assert "curve" not in records[0] and records[0]["curve_last"] == 2.0     # a curve gives its last point
    assert guide.read_sweep(tmp_path / "absent.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"workloads": {"lm": {"runs": [{"lr": 1.0}]}}}))
    with pytest.raises(ValueError, match="lacks"):
        guide.read_sweep(bad)
    bad.write_text(json.dumps({"runs": []}))
    with pytest.raises(ValueError, match="workloads"):
        guide.read_sweep(bad)


def test_tuned_summary_takes_the_best_mean_and_calls_paired_ties(tmp_path):
    records = guide.read_sweep(_fake_sweep(tmp_path))
    summary = guide.tuned_summary(records, "lm", "best_val_loss")
    by_name = {r.optimizer: r for r in summary}
    assert [r.optimizer for r in summary][0] in ("adamw", "lion") and summary[-1].optimizer == "sgd"
    adamw = by_name["adamw"]
    assert adamw.lr == 1e-3 and math.isclose(adamw.value, 1.0) and adamw.seeds == 3
    assert math.isclose(adamw.low, 0.99) and math.isclose(adamw.high, 1.01) and adamw.diverged == 1
    assert not adamw.at_grid_edge and by_name["sgd"].at_grid_edge     # SGD's best η is its largest
    # paired with the leader seed by seed: Lion's differences (0, ±0.01) and NAdam's (0.05, 0.05, 0.01) hold zero
    # in their t-intervals; SGD's (0.2 on every seed, or 0.2 ± 0.01) do not
    assert by_name["lion"].tie and by_name["nadam"].tie and not by_name["sgd"].tie
    assert by_name["sgd"].paired.verdict == "worse" and summary[0].paired is None
    assert math.isclose(by_name["nadam"].value, (1.05 + 1.06 + 1.0) / 3)          # the mean, not the median 1.05
    assert math.isclose(by_name["sgd"].points_per_decade, 1.0) and by_name["lion"].points_per_decade == math.inf
    accuracy = guide.tuned_summary([dict(r, best_val_loss=-r["best_val_loss"]) for r in records], "lm",
                                   "best_val_loss", lower_is_better=False)
    assert accuracy[-1].optimizer == "sgd" and math.isclose(accuracy[-1].value, -1.2)
    text = guide.format_tuned_summary(summary, "best validation loss")
    assert "tie with the best" in text and "behind, η at the grid's edge" in text and text.count("\n") == 4
    with pytest.raises(ValueError, match="no runs"):
        guide.tuned_summary(records, "vision", "best_val_loss")


def test_tuned_summary_chooses_as_notebook_12_does():
    """The mean over seeds of the final validation loss (course_lib.benchmark), where the median or the best point
    of the curve would choose another η; the same η as where_it_matters.summarize."""
    from course_lib import benchmark
    from course_lib.labs import where_it_matters

    runs = []
    for seed in range(3):       # η = 0.1: median 1.0, mean 1.2; η = 0.2: 1.1 on every seed
        runs.append(dict(optimizer="adam", lr=0.1, seed=seed, final_val_loss=(1.0, 1.0, 1.6)[seed],
                         best_val_loss=0.5, best_val_accuracy=0.9, steps_to_target=None))
        runs.append(dict(optimizer="adam", lr=0.2, seed=seed, final_val_loss=1.1, best_val_loss=1.1,
                         best_val_accuracy=0.9, steps_to_target=None))
    records = [dict(r, workload="lm") for r in runs]
    (adam,) = guide.tuned_summary(records, "lm")
    assert adam.lr == 0.2 and math.isclose(adam.value, 1.1)
    assert where_it_matters.summarize(runs, {"adam": [0.1, 0.2]})["adam"]["best_lr"] == 0.2
    assert benchmark.select(runs)["adam"].lr == 0.2


# --- the playground -----------------------------------------------------------------------------------------------

def test_every_playground_rule_has_a_course_colour_and_runs():
    from course_lib.plotting import method_color

    for name, make in guide.PLAYGROUND_RULES.items():
        assert method_color(name)
        run = descend(quadratic(kappa=4), [1.0, 1.0], make(1e-2), 5)
        assert np.all(np.isfinite(run.values)) and run.values[-1] < run.values[0]


def test_show_optimizer_choice_draws_both_panels_and_reports_divergence(monkeypatch):
    small = guide.least_squares_problem(n=320, frequencies=[1.0, 0.1], seed=0)
    fig = guide.show_optimizer_choice("gd", 0.1, problem=small, epochs=2)  # "gd" is the playground's "sgd"
    left, right = fig.axes
    assert right.get_title().startswith("SGD, η = 0.1") and list(guide.PLAYGROUND_RULES)[0] == "sgd"
    assert left.get_xscale() == "log" and right.get_xlabel() == "epochs" and "after 2 epochs" in right.get_title()
    doomed = guide.show_optimizer_choice("gd", 10.0, problem=small, epochs=2)
    assert "diverged" in doomed.axes[1].get_title()
    given = guide.range_test(small, np.zeros(2), guide.PLAYGROUND_RULES["adam"], grad=small.minibatch_grad(32))
    monkeypatch.setattr(guide, "range_test", lambda *args, **kwargs: pytest.fail("should reuse the range test"))
    guide.show_optimizer_choice("adam", 1e-2, problem=small, epochs=1, range_result=given)
    with pytest.raises(ValueError, match="unknown method"):
        guide.show_optimizer_choice("lbfgs", 0.1, problem=small)
    with pytest.raises(ValueError, match="lr must be positive"):
        guide.show_optimizer_choice("adam", 0.0, problem=small)
    plt.close("all")


def test_choice_playground_builds_redraws_and_keeps_range_tests(monkeypatch):
    small = guide.least_squares_problem(n=320, frequencies=[1.0, 0.1], seed=0)
    calls = []
    real = guide.range_test
    monkeypatch.setattr(guide, "range_test", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    controls = guide.choice_playground(small)
    method, lr = controls.children[:2]
    assert (method.value, lr.value) == ("adam", 1e-2) and calls == [1]
    lr.value = 1e-3                                       # new η: the range test is kept
    assert calls == [1]
    method.value = "lion"                                 # new method: one new range test
    assert calls == [1, 1] and controls.kwargs == {"method": "lion", "lr": 1e-3}
    plt.close("all")


def test_fingerprint_is_the_start_of_sha256_and_refuses_non_text():
    assert guide.fingerprint("abc") == "ba7816bf8f01"          # FIPS 180-2's test vector for SHA-256("abc")
    assert guide.fingerprint("0.20,1.42") != guide.fingerprint("0.20,1.43")
    with pytest.raises(TypeError, match="takes a str"):
        guide.fingerprint(0.2)
