"""course_lib.labs.momentum: tunings against closed forms, rates against torch.optim's own linear map and real runs."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import functions as F
from course_lib import plotting, rules
from course_lib.descent import descend
from course_lib.labs import momentum as M


def test_tunings_for_kappa_100_are_the_textbook_numbers():
    polyak = M.polyak_tuning(L=1.0, mu=0.01)
    assert polyak.lr == pytest.approx(4 / 1.1**2, rel=1e-12)
    assert polyak.momentum == pytest.approx(81 / 121, rel=1e-12)
    assert polyak.rate == pytest.approx(9 / 11, rel=1e-12)
    nesterov = M.nesterov_tuning(L=1.0, mu=0.01)
    assert nesterov == pytest.approx((1.0, 9 / 11, 0.9), rel=1e-12)
    gd = M.gd_tuning(L=1.0, mu=0.01)
    assert gd == pytest.approx((2 / 1.01, 0.0, 99 / 101), rel=1e-12)
    assert all(isinstance(value, float) for value in (*polyak, *nesterov, *gd))


@pytest.mark.parametrize("L, mu, words", [(1.0, 0.0, "mu"), (1.0, -1.0, "mu"), (0.5, 1.0, "L")])
def test_tunings_reject_bad_curvatures(L, mu, words):
    with pytest.raises(ValueError, match=f"Invalid {words}"):
        M.polyak_tuning(L, mu)


def _torch_linear_map(lr, momentum, curvature, nesterov):
    """The 2 × 2 matrix torch.optim.SGD applies to (θ, momentum buffer) on f(θ) = λθ²/2, column by column."""
    columns = []
    for theta, buffer in [(1.0, 0.0), (0.0, 1.0)]:
        x = torch.tensor([theta], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([x], lr=lr, momentum=momentum, nesterov=nesterov)
        opt.state[x]["momentum_buffer"] = torch.tensor([buffer], dtype=torch.float64)
        (0.5 * curvature * x**2).sum().backward()
        opt.step()
        columns.append([x.item(), opt.state[x]["momentum_buffer"].item()])
    return np.array(columns).T


@pytest.mark.parametrize("nesterov", [False, True])
def test_contraction_factor_is_the_spectral_radius_of_torch_sgd(nesterov):
    rng = np.random.default_rng(0)
    eigenvalues = np.array([0.02, 0.7, 1.0])
    for _ in range(25):
        lr, momentum = rng.uniform(0.05, 3.5), rng.uniform(0.01, 0.99)
        expected = max(np.abs(np.linalg.eigvals(_torch_linear_map(lr, momentum, lam, nesterov))).max()
                       for lam in eigenvalues)
        got = M.contraction_factor(lr, momentum, eigenvalues, nesterov=nesterov)
        assert got == pytest.approx(expected, rel=1e-7, abs=1e-7)


def test_contraction_factor_broadcasts_over_a_grid():
    lr = np.linspace(0.1, 3.0, 6)[:, None]
    momentum = np.full((6, 1), 0.5)
    grid = M.contraction_factor(lr, momentum, [0.01, 1.0])
    assert grid.shape == (6, 1)
    for k in range(6):
        assert grid[k, 0] == M.contraction_factor(float(lr[k, 0]), 0.5, [0.01, 1.0])
    assert isinstance(M.contraction_factor(1.0, 0.0, [1.0]), float)
    assert M.contraction_factor(0.5, 0.0, [1.0, 3.0]) == pytest.approx(0.5)  # plain GD: max |1 − ηλ|


def test_polyak_tuning_minimises_the_worst_case_rate():
    q = F.quadratic(kappa=50.0, L=2.0)
    best = M.polyak_tuning(q.L, q.mu)
    assert M.contraction_factor(best.lr, best.momentum, q.eigenvalues) == pytest.approx(best.rate, rel=1e-6)
    lr, momentum = np.meshgrid(np.linspace(0.01, 4 / q.L, 301), np.linspace(0, 0.99, 199))
    grid = M.contraction_factor(lr, momentum, q.eigenvalues)
    assert grid.min() >= best.rate - 1e-6


def test_nesterov_tuning_rate_is_its_contraction_factor():
    for kappa in (10.0, 100.0, 1e4):
        q = F.quadratic(kappa=kappa)
        tuning = M.nesterov_tuning(q.L, q.mu)
        rate = M.contraction_factor(tuning.lr, tuning.momentum, q.eigenvalues, nesterov=True)
        assert rate == pytest.approx(tuning.rate, rel=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_measured_rate_of_a_real_run_matches_the_theory(nesterov):
    q = F.quadratic(kappa=30.0, angle=0.3)
    lr, momentum = 0.8, 0.6  # complex roots, no repeated root: the factor shows cleanly
    run = descend(q, [3.0, -1.0], rules.sgd(lr=lr, momentum=momentum, nesterov=nesterov), 600)
    theory = M.contraction_factor(lr, momentum, q.eigenvalues, nesterov=nesterov)
    assert M.measured_rate(run, 200, 600) == pytest.approx(theory, rel=5e-3)
    assert M.measured_rate(run.distances(q.minimizer), 200, 600) == M.measured_rate(run, 200, 600)


def test_measured_rate_marks_diverged_and_finished_runs():
    lrs = np.array([[0.5], [1.0], [2.5]])  # x²: factor |1 − 2η| = 0, 1, 4 → converged at once, stuck, diverged
    run = descend(F.x_squared, 1.0, rules.sgd(lr=lrs), 1000)
    rates = M.measured_rate(run, 10, 1000)
    assert rates.shape == (3,)
    assert rates[0] == 0.0 and rates[1] == pytest.approx(1.0) and rates[2] == np.inf
    with pytest.raises(ValueError, match="start, stop"):
        M.measured_rate(run, 5, 5)


def test_lessard_function_is_smooth_strongly_convex_with_continuous_gradient():
    xs = np.linspace(-4, 5, 9001)[:, None]
    h = 1e-6
    numeric = (F.lessard.value(xs + h) - F.lessard.value(xs - h)) / (2 * h)
    np.testing.assert_allclose(F.lessard.grad(xs)[:, 0], numeric, rtol=1e-6, atol=1e-4)
    slopes = np.diff(F.lessard.grad(xs)[:, 0]) / np.diff(xs[:, 0])
    assert slopes.min() == pytest.approx(1.0) and slopes.max() == pytest.approx(25.0)
    x = torch.tensor([[0.3], [1.5], [3.0]], dtype=torch.float64, requires_grad=True)
    F.lessard.value(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), F.lessard.grad(x.detach().numpy()))
    assert F.lessard.value(F.lessard.minimizers) == 0.0


def test_heavy_ball_cycles_on_lessard_but_nesterov_converges():
    polyak = M.polyak_tuning(25.0, 1.0)
    cycle = descend(F.lessard, 3.3, rules.sgd(lr=polyak.lr, momentum=polyak.momentum), 300).points[:, 0]
    np.testing.assert_allclose(cycle[-3:], cycle[-6:-3], atol=1e-9)  # period three
    assert np.abs(cycle[-3:]).min() > 0.5
    nesterov = M.nesterov_tuning(25.0, 1.0)
    run = descend(F.lessard, 3.3, rules.sgd(lr=nesterov.lr, momentum=nesterov.momentum, nesterov=True), 300)
    assert abs(run.final[0]) < 1e-12


def test_momentum_view_runs_what_it_says():
    view = M.momentum_view(lr=2.0, momentum=0.5, steps=40)
    alone = descend(F.quadratic(100.0), M.DEFAULT_START, rules.sgd(lr=2.0, momentum=0.5), 40)
    np.testing.assert_array_equal(view.run.points, alone.points)
    assert view.rate == M.contraction_factor(2.0, 0.5, [0.01, 1.0])
    assert view.gd_rate == pytest.approx(99 / 101)
    assert M.momentum_view(momentum=0.0, nesterov=True).nesterov is False  # Nesterov without β is GD


@pytest.mark.parametrize("lr, momentum, nesterov", [(1.0, 0.9, False), (3.3, 0.67, False), (1.0, 0.9, True),
                                                    (4.4, 0.9, False), (1.0, 0.0, True)])
def test_momentum_view_draws_every_regime(lr, momentum, nesterov):
    fig = M.show_momentum_descent(lr=lr, momentum=momentum, nesterov=nesterov, steps=60)
    left, right = fig.axes
    assert left.get_xlabel() == "θ₁" and right.get_xlabel() == "step t" and right.get_yscale() == "log"
    assert right.get_ylabel() == M.GAP_LABEL == "gap to the minimum, f(θ_t) − f*"
    view = M.momentum_view(lr=lr, momentum=momentum, nesterov=nesterov, steps=60)
    drawn = right.lines[1].get_ydata()
    finite = np.isfinite(drawn)
    np.testing.assert_allclose(drawn[finite], view.run.values[finite])
    method = "nesterov" if view.nesterov else ("momentum" if momentum > 0 else "gd")
    assert right.lines[1].get_color() == plotting.method_color(method)
    assert ("diverges" in fig.get_suptitle()) == (view.rate >= 1)
    plt.close(fig)


def test_momentum_playground_builds_and_redraws():
    controls = M.momentum_playground()
    lr_slider, momentum_slider, nesterov_box = controls.children[:3]
    assert (lr_slider.value, momentum_slider.value, nesterov_box.value) == (1.0, 0.9, False)
    lr_slider.value = 3.3
    nesterov_box.value = True  # η = 3.3 with Nesterov diverges: the view must still draw
    assert controls.kwargs == {"lr": 3.3, "momentum": 0.9, "nesterov": True}
    momentum_slider.value = 0.0  # Nesterov without momentum falls back to gradient descent
    plt.close("all")


def _companion_eigenvalues(x, beta):
    """Eigenvalues of the heavy-ball map (e_{t−1}, e_{t−2}) ↦ (e_t, e_{t−1}) along curvature h, x = ηh."""
    x, beta = np.broadcast_arrays(np.asarray(x, float), np.asarray(beta, float))
    maps = np.zeros(x.shape + (2, 2))
    maps[..., 0, 0], maps[..., 0, 1], maps[..., 1, 0] = 1 + beta - x, -beta, 1.0
    return np.linalg.eigvals(maps)


def test_damping_regimes_match_the_eigenvalues_numpy_computes():
    rng = np.random.default_rng(0)
    x, beta = rng.uniform(-0.5, 4.5, 20_000), rng.uniform(0, 0.999, 20_000)
    z = _companion_eigenvalues(x, beta)
    radius = np.abs(z).max(axis=-1)
    complex_roots = np.abs(z.imag).max(axis=-1) > 1e-9
    real_negative = ~complex_roots & (z.real.min(axis=-1) < 0)
    expected = np.where(radius >= 1, 3, np.where(complex_roots, 1, np.where(real_negative, 2, 0)))
    root = np.sqrt(beta)
    near_boundary = np.min(np.abs(np.stack([x, x - (1 - root) ** 2, x - (1 + root) ** 2, x - 2 * (1 + beta)])),
                           axis=0) < 1e-6
    got = M.damping_regime(x, beta)
    assert np.array_equal(got[~near_boundary], expected[~near_boundary])
    assert set(np.unique(got)) == {0, 1, 2, 3}
    assert np.all(radius[got == 1] <= np.sqrt(beta[got == 1]) + 1e-7)      # under-damped: modulus √β


def test_damping_boundaries_are_double_roots_and_the_stability_edge():
    beta = np.linspace(0.01, 0.99, 50)
    for x in ((1 - np.sqrt(beta)) ** 2, (1 + np.sqrt(beta)) ** 2):      # critical damping: a double root ±√β
        z = _companion_eigenvalues(x, beta)
        assert np.all(np.abs(z[:, 0] - z[:, 1]) < 1e-6)
        assert np.allclose(np.abs(z), np.sqrt(beta)[:, None], atol=1e-6)
    edge = _companion_eigenvalues(2 * (1 + beta), beta)               # the stability edge: a root at −1
    assert np.allclose(np.abs(edge).max(axis=-1), 1, atol=1e-12)
    assert np.array_equal(M.damping_regime(2 * (1 + beta) * (1 - 1e-9), beta), np.full(50, 2))
    with pytest.raises(ValueError, match="Invalid momentum"):
        M.damping_regime(1.0, 1.0)


def test_saddle_gradient_minima_and_curvatures():
    f = M.saddle(0.04)
    rng = np.random.default_rng(1)
    points = rng.normal(size=(20, 2))
    step = 1e-6
    numeric = np.stack([(f.value(points + step * e) - f.value(points - step * e)) / (2 * step) for e in np.eye(2)], -1)
    assert np.allclose(f.grad(points), numeric, atol=1e-7)
    assert np.allclose(f.grad(f.minimizers), 0) and np.allclose(f.value(f.minimizers), f.minimum)
    assert f.minimum == pytest.approx(-0.04**2 / 4) and np.allclose(np.abs(f.minimizer), [0, 0.2])
    hessian = np.stack([(f.grad(step * e) - f.grad(-step * e)) / (2 * step) for e in np.eye(2)])
    assert np.allclose(hessian, np.diag([1.0, -0.04]), atol=1e-8)
    with pytest.raises(ValueError, match="Invalid rho"):
        M.saddle(0.0)


def test_escape_steps_counts_the_first_step_out_and_inf_for_runs_that_stay():
    f = M.saddle(0.01)
    runs = descend(f, [1.0, 1e-6], rules.sgd(lr=np.array([[1.0], [1.0]]), momentum=np.array([[0.0], [0.9]])), 300)
    gd_run = descend(f, [1.0, 1e-6], rules.sgd(lr=1.0), 1200)
    steps = M.escape_steps(gd_run, 0.05)
    y = np.abs(gd_run.points[:, 1])
    assert steps == int(np.argmax(y >= 0.05)) and y[int(steps) - 1] < 0.05
    assert M.escape_steps(runs, 0.05)[0] == np.inf and M.escape_steps(runs, 0.05)[1] < 300
    assert M.escape_steps(descend(f, [1.0, 0.0], rules.sgd(lr=1.0), 100), 0.05) == np.inf   # on the ridge: never
