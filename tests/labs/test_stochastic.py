"""course_lib.labs.stochastic: logistic regression against scikit-learn, SciPy, autograd and finite differences."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from course_lib import optim
from course_lib.labs import stochastic as P

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def problem():
    return P.breast_cancer(weight_decay=1e-2)


@pytest.fixture(scope="module")
def optimum(problem):
    return P.reference_optimum(problem)


def _points(problem, n=4, seed=0, scale=0.5):
    return scale * np.random.default_rng(seed).standard_normal((n, problem.dim))


def test_the_data_is_scikit_learns_standardized(problem):
    features, target = load_breast_cancer(return_X_y=True)
    assert problem.design.shape == (569, 31) and problem.dim == 31 and problem.n_samples == 569
    np.testing.assert_allclose(problem.design[:, -1], 1.0)
    np.testing.assert_allclose(problem.design[:, :-1].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(problem.design[:, :-1].std(0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(problem.design[:, :-1], StandardScaler().fit_transform(features), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_array_equal(problem.labels, np.where(target == 1, 1.0, -1.0))


def test_loss_is_scikit_learns_log_loss_plus_the_penalty(problem):
    for params in _points(problem):
        probability = expit(problem.design @ params)
        expected = log_loss(problem.labels > 0, probability) + 0.5 * 1e-2 * np.sum(params[:-1] ** 2)
        assert problem.loss(params) == pytest.approx(expected, rel=1e-12)
    batch = [3, 10, 10, 400]
    probability = expit(problem.design[batch] @ params)
    expected = log_loss(problem.labels[batch] > 0, probability, labels=[False, True])
    assert problem.loss(params, batch) == pytest.approx(expected + 0.5e-2 * np.sum(params[:-1] ** 2), rel=1e-12)


@pytest.mark.parametrize("batch", [None, [0], [5, 7, 7, 300, 568]], ids=["full", "one", "five"])
def test_gradient_matches_autograd(problem, batch):
    points = torch.tensor(_points(problem, seed=1), requires_grad=True)
    problem.loss(points, batch).sum().backward()
    np.testing.assert_allclose(problem.grad(points.detach().numpy(), batch), points.grad.numpy(), rtol=1e-10,
                               atol=1e-13)
    # the torch path of grad computes the same numbers
    np.testing.assert_allclose(problem.grad(points.detach(), batch).numpy(), points.grad.numpy(), rtol=1e-12,
                               atol=1e-15)


def test_gradient_matches_central_finite_differences(problem):
    params = _points(problem, n=1, seed=2)[0]
    h = 1e-6
    numeric = np.array([(problem.loss(params + h * e) - problem.loss(params - h * e)) / (2 * h)
                        for e in np.eye(problem.dim)])
    np.testing.assert_allclose(problem.grad(params), numeric, rtol=1e-6, atol=1e-9)


def test_batched_points_equal_one_at_a_time(problem):
    points = _points(problem, n=6, seed=3).reshape(2, 3, problem.dim)
    losses, grads = problem.loss(points), problem.grad(points)
    assert losses.shape == (2, 3) and grads.shape == (2, 3, problem.dim)
    for index in np.ndindex(2, 3):
        assert losses[index] == pytest.approx(problem.loss(points[index]), rel=1e-13)
        np.testing.assert_allclose(grads[index], problem.grad(points[index]), rtol=1e-12, atol=1e-15)


def test_hessian_matches_autograd_and_smoothness_bounds_it(problem):
    for params in _points(problem, n=3, seed=4):
        reference = torch.autograd.functional.hessian(problem.loss, torch.tensor(params)).numpy()
        hessian = problem.hessian(params)
        np.testing.assert_allclose(hessian, reference, rtol=1e-10, atol=1e-13)
        assert np.linalg.eigvalsh(hessian)[-1] <= problem.smoothness
    # at θ = 0 every σ(1 − σ) is 1/4, its largest possible value, and the bound is nearly tight
    assert np.linalg.eigvalsh(problem.hessian(np.zeros(problem.dim)))[-1] == pytest.approx(problem.smoothness,
                                                                                          rel=1e-2)


def test_sample_gradients_average_to_the_gradient(problem):
    params = _points(problem, n=1, seed=5)[0]
    grads = problem.sample_grads(params)
    assert grads.shape == (569, 31)
    np.testing.assert_allclose(grads.mean(0), problem.grad(params), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads[[7, 100]], [problem.grad(params, [7]), problem.grad(params, [100])],
                               rtol=1e-12)
    expected = np.mean([np.sum((g - grads.mean(0)) ** 2) for g in grads])
    assert problem.gradient_noise(params) == pytest.approx(expected, rel=1e-12)


def test_reference_optimum_is_optimal(problem, optimum):
    params, minimum = optimum
    assert minimum == pytest.approx(problem.loss(params), abs=0)
    assert np.linalg.norm(problem.grad(params)) < 1e-10          # first-order optimality
    assert np.linalg.eigvalsh(problem.hessian(params))[0] > 0     # a strict minimum


def test_reference_optimum_agrees_with_scipy_and_another_sklearn_solver(problem, optimum):
    params, minimum = optimum
    scipy_result = minimize(problem.loss, np.zeros(problem.dim), jac=problem.grad, method="L-BFGS-B",
                            options=dict(maxiter=10_000, ftol=1e-15, gtol=1e-12))
    assert scipy_result.fun >= minimum - 1e-15
    assert scipy_result.fun == pytest.approx(minimum, abs=1e-12)
    np.testing.assert_allclose(scipy_result.x, params, atol=1e-5)
    lbfgs = LogisticRegression(C=1 / (569 * 1e-2), tol=1e-10, max_iter=10_000, solver="lbfgs")
    lbfgs.fit(problem.design[:, :-1], problem.labels)
    np.testing.assert_allclose(np.append(lbfgs.coef_.ravel(), lbfgs.intercept_), params, atol=1e-5)


def test_weight_decay_changes_the_optimum_as_expected():
    weak, strong = P.breast_cancer(1e-3), P.breast_cancer(1e-1)
    (params_weak, min_weak), (params_strong, min_strong) = P.reference_optimum(weak), P.reference_optimum(strong)
    assert np.linalg.norm(params_strong[:-1]) < np.linalg.norm(params_weak[:-1])
    assert min_weak < min_strong


@pytest.mark.parametrize("replacement", [False, True])
def test_epoch_batches(replacement):
    rng = np.random.default_rng(0)
    batches = P.epoch_batches(rng, 10, 4, replacement=replacement)
    assert [len(b) for b in batches] == [4, 4, 2]
    indices = np.concatenate(batches)
    assert indices.min() >= 0 and indices.max() < 10
    if not replacement:
        assert sorted(indices) == list(range(10))
    # the same seed gives the same batches, a different one different batches
    again = P.epoch_batches(np.random.default_rng(0), 10, 4, replacement=replacement)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = P.epoch_batches(np.random.default_rng(1), 10, 4, replacement=replacement)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))


def test_sampling_with_replacement_repeats_samples():
    indices = np.concatenate(P.epoch_batches(np.random.default_rng(0), 1000, 10, replacement=True))
    assert 550 < len(np.unique(indices)) < 720   # about 1 − 1/e of the samples appear


def test_full_batch_sgd_is_gradient_descent(problem):
    lr = 1 / problem.smoothness
    records = P.minibatch_sgd(problem, np.zeros(problem.dim), lr, problem.n_samples, 5)
    x = np.zeros(problem.dim)
    for epoch in range(1, 6):
        x = x - lr * problem.grad(x)
        np.testing.assert_allclose(records[epoch], x, rtol=1e-13, atol=1e-15)
    assert np.all(np.diff(problem.loss(records)) < 0)  # η = 1/L never increases f


def test_minibatch_sgd_equals_a_hand_written_loop(problem):
    lr, batch_size = 0.1, 50
    records = P.minibatch_sgd(problem, np.zeros(problem.dim), lr, batch_size, 2, seed=7, every="step")
    rng = np.random.default_rng(7)
    x, expected = np.zeros(problem.dim), [np.zeros(problem.dim)]
    for _ in range(2):
        for batch in P.epoch_batches(rng, problem.n_samples, batch_size):
            x = x - lr * problem.grad(x, batch)
            expected.append(x)
    assert records.shape == (1 + 2 * 12, problem.dim)
    np.testing.assert_allclose(records, expected, rtol=1e-13, atol=1e-15)
    by_epoch = P.minibatch_sgd(problem, np.zeros(problem.dim), lr, batch_size, 2, seed=7)
    np.testing.assert_allclose(by_epoch, records[[0, 12, 24]], rtol=0, atol=0)


def test_many_runs_at_once_equal_separate_runs(problem):
    lrs = np.array([[0.01], [0.1], [0.5]])
    together = P.minibatch_sgd(problem, np.zeros(problem.dim), lrs, 16, 3, seed=2, replacement=True)
    assert together.shape == (4, 3, problem.dim)
    for run, lr in enumerate(lrs[:, 0]):
        alone = P.minibatch_sgd(problem, np.zeros(problem.dim), lr, 16, 3, seed=2, replacement=True)
        np.testing.assert_allclose(together[:, run], alone, rtol=1e-13, atol=1e-15)


def test_one_minibatch_per_point(problem):
    points = _points(problem, n=3, seed=6)
    batches = np.array([[0, 1, 2], [5, 5, 9], [568, 0, 17]])
    np.testing.assert_allclose(problem.loss(points, batches),
                               [problem.loss(p, b) for p, b in zip(points, batches)], rtol=1e-13)
    np.testing.assert_allclose(problem.grad(points, batches),
                               [problem.grad(p, b) for p, b in zip(points, batches)], rtol=1e-12, atol=1e-15)
    tensor = torch.tensor(points, requires_grad=True)
    problem.loss(tensor, batches).sum().backward()
    np.testing.assert_allclose(tensor.grad.numpy(), problem.grad(points, batches), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("replacement", [False, True])
def test_one_seed_per_run_equals_separate_runs(problem, replacement):
    seeds, lrs = [3, 4, 5], np.array([[0.05], [0.05], [0.2]])
    together = P.minibatch_sgd(problem, np.zeros(problem.dim), lrs, 7, 2, seed=seeds, replacement=replacement,
                               every=20)
    assert together.shape == (1 + 2 * 82 // 20, 3, problem.dim)
    for run, (seed, lr) in enumerate(zip(seeds, lrs[:, 0])):
        alone = P.minibatch_sgd(problem, np.zeros(problem.dim), lr, 7, 2, seed=seed, replacement=replacement,
                                every="step")
        np.testing.assert_allclose(together[:, run], alone[::20], rtol=1e-12, atol=1e-15)
    assert not np.allclose(together[-1, 0], together[-1, 1])   # same lr, different seeds: different paths


def test_one_sampling_per_run_equals_separate_runs(problem):
    seeds, lrs, replacement = [3, 3, 4], np.array([[0.05], [0.05], [0.2]]), [True, False, True]
    together = P.minibatch_sgd(problem, np.zeros(problem.dim), lrs, 1, 2, seed=seeds, replacement=replacement,
                               every=50)
    for run, (seed, lr, draws) in enumerate(zip(seeds, lrs[:, 0], replacement)):
        alone = P.minibatch_sgd(problem, np.zeros(problem.dim), lr, 1, 2, seed=seed, replacement=draws, every=50)
        np.testing.assert_array_equal(together[:, run], alone)            # bit for bit
    assert not np.allclose(together[-1, 0], together[-1, 1])   # same seed and lr, other sampling: another path
    with pytest.raises(ValueError, match="replacement"):
        P.minibatch_sgd(problem, np.zeros(problem.dim), 0.1, 1, 1, seed=0, replacement=[True, False])


def test_train_equals_numpy_sgd_and_torch_optim_with_a_scheduler(problem):
    def run(optimizer_class, scheduler=True):
        params = torch.zeros(problem.dim, dtype=torch.float64, requires_grad=True)
        optimizer = optimizer_class([params], lr=0.5)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1) if scheduler else None
        return P.train(problem, params, optimizer, 4, 64, seed=3, scheduler=schedule), optimizer

    (ours, lrs), optimizer = run(optim.SGD)
    (theirs, _), _ = run(torch.optim.SGD)
    assert ours.shape == (5, problem.dim)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lrs, [0.5, 0.5, 0.05, 0.05], rtol=1e-15)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.01)
    # without a scheduler the torch loop is the NumPy runner
    (constant, lrs), _ = run(optim.SGD, scheduler=False)
    assert np.all(lrs == 0.5)
    numpy_run = P.minibatch_sgd(problem, np.zeros(problem.dim), 0.5, 64, 4, seed=3)
    np.testing.assert_allclose(constant, numpy_run, rtol=1e-11, atol=1e-13)
    assert problem.loss(constant[-1]) < problem.loss(constant[0])


def test_train_several_runs_at_once_equals_each_run_alone(problem):
    def make(k):
        params = torch.zeros(problem.dim, dtype=torch.float64, requires_grad=True)
        optimizer = optim.SGD([params], lr=0.5 / (k + 1))
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1) if k != 1 else None
        return params, optimizer, schedule

    runs = [make(k) for k in range(3)]
    params, optimizers, schedules = map(list, zip(*runs))
    together, lrs = P.train(problem, params, optimizers, 4, 64, seed=3, scheduler=schedules)
    assert together.shape == (5, 3, problem.dim) and lrs.shape == (4, 3)
    for k in range(3):
        params, optimizer, schedule = make(k)
        alone, alone_lrs = P.train(problem, params, optimizer, 4, 64, seed=3, scheduler=schedule)
        np.testing.assert_array_equal(together[:, k], alone)             # bit for bit
        np.testing.assert_array_equal(lrs[:, k], alone_lrs)
    assert not np.allclose(together[-1, 0], together[-1, 2])
    params, optimizer, _ = make(0)
    with pytest.raises(ValueError, match="equal length"):
        P.train(problem, [params], [optimizer, optimizer], 1, 64)


@CUDA
def test_train_on_cuda_matches_cpu(problem):
    results = []
    for device in ("cpu", "cuda"):
        params = torch.zeros(problem.dim, dtype=torch.float64, device=device, requires_grad=True)
        results.append(P.train(problem, params, optim.SGD([params], lr=0.3), 2, 32, seed=1)[0])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-10, atol=1e-12)


def test_bad_arguments_raise_value_errors_naming_them(problem):
    with pytest.raises(ValueError, match="params"):
        problem.loss(np.zeros(30))
    with pytest.raises(ValueError, match="weight_decay"):
        P.breast_cancer(weight_decay=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        P.epoch_batches(np.random.default_rng(0), 10, 0)
    with pytest.raises(ValueError, match="batch_size"):
        P.minibatch_sgd(problem, np.zeros(31), 0.1, 570, 1)
    with pytest.raises(ValueError, match="epochs"):
        P.minibatch_sgd(problem, np.zeros(31), 0.1, 10, -1)
    with pytest.raises(ValueError, match="every"):
        P.minibatch_sgd(problem, np.zeros(31), 0.1, 10, 1, every="batch")
    with pytest.raises(ValueError, match="learning rate"):
        P.minibatch_sgd(problem, np.zeros(31), -0.1, 10, 1)


# --------------------------------------------------------------------------------------
# The view of notebook 03's playground, and the playground
# --------------------------------------------------------------------------------------
def test_minibatch_view_draws_sgd_gd_and_the_noise_floor():
    problem = P.breast_cancer()
    optimum = P.reference_optimum(problem)
    fig = P.show_minibatch_sgd(problem, optimum, lr=0.05, batch_size=100, epochs=3, seed=1)
    (ax,) = fig.axes
    sgd_line, gd_line, floor_line = ax.lines[:3]
    records = P.minibatch_sgd(problem, np.zeros(31), 0.05, 100, 3, seed=1, every="step")
    np.testing.assert_allclose(sgd_line.get_ydata(), problem.loss(records) - optimum[1], rtol=1e-12)
    np.testing.assert_allclose(sgd_line.get_xdata()[[0, 6, 12, 18]], [0, 1, 2, 3])  # 6 steps per epoch
    x = np.zeros(31)
    for _ in range(3):
        x = x - problem.grad(x) / problem.smoothness
    assert gd_line.get_ydata()[-1] == pytest.approx(problem.loss(x) - optimum[1], rel=1e-12)
    floor = 0.05 * problem.gradient_noise(optimum[0]) / (4 * 100)
    assert floor_line.get_ydata()[0] == pytest.approx(floor, rel=1e-12)
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epochs"
    assert ax.get_ylabel() == "gap to the minimum, f(θ_t) − f*"
    again = P.show_minibatch_sgd(problem, optimum, lr=0.05, batch_size=100, epochs=3, seed=1)
    np.testing.assert_array_equal(again.axes[0].lines[0].get_ydata(), sgd_line.get_ydata())   # the same runs
    other = P.show_minibatch_sgd(problem, optimum, lr=0.05, batch_size=100, epochs=3, seed=2)
    records = P.minibatch_sgd(problem, np.zeros(31), 0.05, 100, 3, seed=2, every="step")
    np.testing.assert_allclose(other.axes[0].lines[0].get_ydata(), problem.loss(records) - optimum[1], rtol=1e-12)
    plt.close("all")


def test_sgd_playground_builds_and_redraws():
    problem = P.breast_cancer()
    controls = P.sgd_playground(problem, P.reference_optimum(problem), epochs=2)
    lr_slider, batch_slider, sampling = controls.children[:3]
    assert batch_slider.options[0] == 1 and batch_slider.options[-1] == 569
    batch_slider.value = 64
    sampling.value = True
    assert controls.kwargs == {"lr": lr_slider.value, "batch_size": 64, "replacement": True}
    plt.close("all")

