"""course_lib.labs.guide: the least-squares problem against NumPy's solver, autograd and finite differences; minibatch
gradients against torch; the schedule against torch.optim.lr_scheduler; the race helpers against plain loops and
closed forms; the playground view and its widget."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import data, rules, training
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


# --- the playground -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cancer():
    return data.breast_cancer()


def test_method_range_test_is_lr_range_test_on_a_freshly_seeded_classifier(cancer):
    torch.set_num_threads(1)
    result = guide.method_range_test(cancer, "adam", steps=30, seed=4, device="cpu")
    training.seed_everything(4)
    model = training.seed_classifier(cancer.n_features)
    by_hand = training.lr_range_test(model, torch.optim.Adam(model.parameters()), cancer.train, 1e-5, 10.0, 30,
                                     seed=4, device="cpu")
    assert np.allclose(result.losses, by_hand.losses, rtol=1e-5) and np.allclose(result.lrs, by_hand.lrs)
    full = guide.method_range_test(cancer, "gd", steps=5, device="cpu")   # full batch: the first loss is the mean
    training.seed_everything(0)
    fresh = training.seed_classifier(cancer.n_features)
    assert math.isclose(full.losses[0], training.evaluate(fresh, cancer.train)[0], rel_tol=1e-5)


def test_show_learning_rate_choice_draws_both_panels_and_reports_divergence(cancer):
    fig = guide.show_learning_rate_choice("sgd", 0.1, 3, dataset=cancer, device="cpu")
    left, right = fig.axes
    assert left.get_xscale() == "log" and right.get_xlabel() == "epochs"
    assert "validation accuracy" in right.get_title()
    doomed = guide.show_learning_rate_choice("sgd", 10.0, 5, dataset=cancer, device="cpu")
    assert "diverged" in doomed.axes[1].get_title()
    plt.close("all")


def test_show_learning_rate_choice_reuses_given_results_without_training(cancer, monkeypatch):
    range_test = guide.method_range_test(cancer, "momentum", steps=20, device="cpu")
    _, history = training.train_classifier(cancer, "momentum", 0.01, epochs=2, device="cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("should not train again")

    monkeypatch.setattr(training, "train_classifier", refuse)
    monkeypatch.setattr(training, "lr_range_test", refuse)
    fig = guide.show_learning_rate_choice("momentum", 0.01, 2, range_test=range_test, history=history)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="unknown method"):
        guide.show_learning_rate_choice("lbfgs", 0.1, dataset=cancer)
    with pytest.raises(ValueError, match="lr must be positive"):
        guide.show_learning_rate_choice("adam", 0.0, dataset=cancer)
    plt.close("all")


def test_choice_playground_builds_and_redraws(cancer):
    controls = guide.choice_playground(cancer, device="cpu")
    method, lr, epochs = controls.children[:3]
    assert (method.value, lr.value, epochs.value) == ("adam", 1e-3, 50)
    epochs.value = 5                                      # triggers the callback, which must not raise
    assert controls.kwargs == {"method": "adam", "lr": 1e-3, "epochs": 5}
    plt.close("all")


def test_choice_playground_draws_its_first_view_from_given_results(cancer, monkeypatch):
    range_test = guide.method_range_test(cancer, "adam", steps=20, device="cpu")
    _, history = training.train_classifier(cancer, "adam", 1e-3, epochs=2, device="cpu")
    calls = []
    monkeypatch.setattr(guide, "method_range_test", lambda *args, **kwargs: calls.append("range test") or range_test)
    monkeypatch.setattr(training, "train_classifier", lambda *args, **kwargs: calls.append("train") or (None, history))
    controls = guide.choice_playground(cancer, device="cpu", range_tests={"adam": range_test},
                                       histories={("adam", 1e-3, 50): history})
    assert calls == []                                    # the default view needed no computation
    controls.children[2].value = 10                       # new epochs: trains once, reuses Adam's range test
    assert calls == ["train"]
    controls.children[0].value = "sgd"                    # new method: one range test, one run
    assert calls == ["train", "range test", "train"]
    plt.close("all")


def test_make_optimizer_options_override_the_methods_fixed_options():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert training.make_optimizer("adamw", params, 1e-3).param_groups[0]["weight_decay"] == 1e-2
    group = training.make_optimizer("adamw", params, 1e-3, options={"weight_decay": 1.0}).param_groups[0]
    assert group["weight_decay"] == 1.0 and group["lr"] == 1e-3
    group = training.make_optimizer("momentum", params, 0.1, options={"nesterov": True},
                                    library="torch").param_groups[0]
    assert group["momentum"] == 0.9 and group["nesterov"] is True


def test_train_classifier_passes_options_to_the_optimizer():
    dataset = data.synthetic_binary(80, 4, seed=1)
    strong = training.train_classifier(dataset, "adamw", 1e-2, epochs=3, options={"weight_decay": 30.0})[0]
    default = training.train_classifier(dataset, "adamw", 1e-2, epochs=3)[0]
    norm = [torch.cat([p.detach().flatten() for p in m.parameters()]).norm().item() for m in (strong, default)]
    assert norm[0] < 0.5 * norm[1]      # (1 − 0.3)^(3 · 2) ≈ 0.12 from the decay alone
