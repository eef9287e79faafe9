"""course_lib.labs.adam against torch.optim, closed forms, the Adam paper and the two counterexample papers."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import functions as F
from course_lib import optim, rules
from course_lib.descent import descend
from course_lib.labs import adam as A


def torch_adam_path(grads, **kwargs):
    """Run torch.optim.Adam on the linear losses g_t · θ (so the gradient at step t is g_t); float64."""
    grads = torch.as_tensor(np.asarray(grads, dtype=float))
    theta = torch.zeros(grads.shape[1:], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], **kwargs)
    path, moments = [theta.detach().clone()], []
    for g in grads:
        opt.zero_grad()
        (g * theta).sum().backward()
        opt.step()
        path.append(theta.detach().clone())
        state = opt.state[theta]
        moments.append((state["exp_avg"].clone(), state["exp_avg_sq"].clone()))
    m = torch.stack([a for a, _ in moments]).numpy()
    v = torch.stack([b for _, b in moments]).numpy()
    return torch.stack(path).numpy(), m, v


# --------------------------------------------------------------------------------------
# Moments and bias correction
# --------------------------------------------------------------------------------------
def test_moment_estimates_equal_torch_adam_state():
    grads = np.random.default_rng(0).normal(1.0, 2.0, size=(40, 3))
    moments = A.moment_estimates(grads, betas=(0.8, 0.99))
    _, m, v = torch_adam_path(grads, lr=0.1, betas=(0.8, 0.99))
    np.testing.assert_allclose(moments["exp_avg"], m, rtol=1e-13)
    np.testing.assert_allclose(moments["exp_avg_sq"], v, rtol=1e-13)


def test_constant_gradient_gives_the_closed_form_bias():
    grads = np.full(30, 2.0)
    moments = A.moment_estimates(grads, betas=(0.9, 0.999))
    t = np.arange(1, 31)
    np.testing.assert_allclose(moments["exp_avg"], (1 - 0.9**t) * 2.0, rtol=1e-13)
    np.testing.assert_allclose(moments["exp_avg_sq"], (1 - 0.999**t) * 4.0, rtol=1e-12)
    np.testing.assert_allclose(moments["m_hat"], 2.0, rtol=1e-13)
    np.testing.assert_allclose(moments["v_hat"], 4.0, rtol=1e-12)


def test_bias_correction_experiment_corrected_is_unbiased_raw_is_not():
    result = A.bias_correction_experiment(mean=1.0, std=2.0, steps=50, runs=20_000, seed=0)
    assert result.true_first == 1.0 and result.true_second == 5.0
    # Corrected estimates: unbiased within sampling error at every step (|z| < 4 for all 50 steps).
    assert np.abs(result.z_scores("corrected_first")).max() < 4
    assert np.abs(result.z_scores("corrected_second")).max() < 4
    # Raw estimates: hundreds of standard errors off at the start ...
    assert result.z_scores("raw_first")[0] < -100 and result.z_scores("raw_second")[0] < -100
    # ... and exactly where the derivation E[m_t] = (1 − β₁^t) E[g] says they are.
    z_first = (result.raw_first_mean - result.predicted_raw_first) / result.raw_first_sem
    z_second = (result.raw_second_mean - result.predicted_raw_second) / result.raw_second_sem
    assert np.abs(z_first).max() < 4 and np.abs(z_second).max() < 4
    assert result.raw_first_mean[0] == pytest.approx(0.1, abs=5 * result.raw_first_sem[0])


def test_bias_correction_experiment_checks_arguments():
    with pytest.raises(ValueError, match="runs"):
        A.bias_correction_experiment(runs=1)
    with pytest.raises(ValueError, match="std"):
        A.bias_correction_experiment(std=-1.0)
    with pytest.raises(ValueError, match="index 1"):
        A.moment_estimates(np.ones(3), betas=(0.9, 1.0))


# --------------------------------------------------------------------------------------
# The effective step
# --------------------------------------------------------------------------------------
def test_step_ratios_equal_torch_adam_steps_in_units_of_lr():
    grads = np.random.default_rng(1).normal(0.3, 1.0, size=(200, 4)) * np.array([1e-3, 1.0, 10.0, 1e3])
    path, _, _ = torch_adam_path(grads, lr=0.01)
    measured = np.abs(np.diff(path, axis=0)) / 0.01
    np.testing.assert_allclose(A.step_ratios(grads), measured, rtol=1e-9, atol=1e-12)


def test_noisy_steps_stay_below_lr_and_a_late_spike_reaches_the_paper_bound():
    # Pure noise: |m̂| stays below √v̂. A consistent gradient (mean 2, std 1): m̂ averages over ~10 steps and
    # v̂ over ~1000, so |m̂| / √v̂ is about |E g| / √(E g²) ≈ 0.89 and sometimes a little above 1.
    noise = A.step_ratios(np.random.default_rng(2).normal(0.0, 1.0, size=(3000, 10)))
    consistent = A.step_ratios(np.random.default_rng(2).normal(2.0, 1.0, size=(3000, 10)))
    assert noise.max() <= 1.0 and np.median(noise) < 0.2
    assert np.median(consistent) == pytest.approx(2 / math.sqrt(5), abs=0.02)
    assert 0.05 < np.mean(consistent > 1) < 0.3 and consistent.max() < 1.5
    bound = A.paper_step_bound((0.9, 0.999))
    assert bound == pytest.approx(0.1 / math.sqrt(0.001))
    spike = A.step_ratios(np.r_[np.zeros(4999), 1.0], eps=0.0)[-1]
    assert spike == pytest.approx(bound * math.sqrt(1 - 0.999**5000) / (1 - 0.9**5000), rel=1e-9)
    assert 3.1 < spike <= bound
    assert A.paper_step_bound((0.9, 0.99)) == 1.0  # (1 − β₁) = 0.1 ≤ √0.01: the bound is η itself


def test_step_ratio_supremum_is_reached_by_growing_gradients_and_never_beaten():
    # Closed form (Cauchy–Schwarz) against a brute-force search over gradient streams of length 6.
    betas, t = (0.9, 0.999), 6
    bound = A.step_ratio_supremum(betas, step=t)
    growing = (0.999 / 0.9) ** np.arange(t)                  # the equality case: g grows by β₂/β₁ per step
    assert A.step_ratios(growing, eps=0.0)[-1] == pytest.approx(bound, rel=1e-12)
    rng = np.random.default_rng(0)
    random_streams = rng.standard_normal((t, 200_000)) * np.exp(rng.uniform(-3, 3, (t, 200_000)))
    assert A.step_ratios(random_streams, eps=0.0)[-1].max() <= bound * (1 + 1e-12)
    from scipy.optimize import minimize

    def negative_ratio(g):
        return -A.step_ratios(g, eps=0.0)[-1]

    searched = max(-minimize(negative_ratio, rng.uniform(0.1, 1, t), method="Nelder-Mead",
                             options=dict(xatol=1e-12, fatol=1e-14, maxiter=20_000)).fun for _ in range(5))
    assert searched == pytest.approx(bound, rel=1e-6) and searched <= bound * (1 + 1e-12)


def test_step_ratio_supremum_beats_the_paper_value_in_torch_adam_after_a_silence():
    limit = A.step_ratio_supremum((0.9, 0.999))
    assert limit == pytest.approx(A.paper_step_bound((0.9, 0.999)) / math.sqrt(1 - 0.81 / 0.999), rel=1e-12)
    assert limit == pytest.approx(7.2703, abs=1e-4)
    assert A.step_ratio_supremum((0.9, 0.999), step=10**6) == pytest.approx(limit, rel=1e-12)
    steps = np.arange(1, 3000)                               # the finite-t supremum grows towards the limit
    finite = np.array([A.step_ratio_supremum((0.9, 0.999), step=int(s)) for s in steps])
    assert np.all(np.diff(finite) > 0) and finite[-1] < limit
    stream = np.r_[np.zeros(5000), (0.999 / 0.9) ** np.arange(50)]  # a long silence, then growing gradients
    path, _, _ = torch_adam_path(stream[:, None], lr=0.01)              # ε = 1e-8: 0/0 guarded
    torch_step = abs(path[-1, 0] - path[-2, 0]) / 0.01
    assert torch_step == pytest.approx(A.step_ratios(stream)[-1], rel=1e-9)
    assert 7.2 < torch_step <= limit and torch_step > 2 * A.paper_step_bound((0.9, 0.999))
    assert A.step_ratio_supremum((0.9, 0.99)) == pytest.approx(0.1 / 0.1 / math.sqrt(1 - 0.81 / 0.99))
    assert A.step_ratio_supremum((0.99, 0.9)) == math.inf   # β₁² ≥ β₂: no finite bound
    with pytest.raises(ValueError, match="Invalid step"):
        A.step_ratio_supremum(step=0)
    with pytest.raises(ValueError, match="index 1"):
        A.step_ratio_supremum((0.9, 1.0))


# --------------------------------------------------------------------------------------
# Keras's epsilon hat
# --------------------------------------------------------------------------------------
def test_keras_adam_without_epsilon_equals_torch_adam():
    grads = np.random.default_rng(3).normal(size=(100, 3))
    rule = A.keras_adam(lr=0.01, epsilon=0.0)
    x, state, path = np.zeros(3), None, [np.zeros(3)]
    state = rule.init(x)
    for g in grads:
        x, state = rule.update(x, g, state)
        path.append(x)
    torch_path, _, _ = torch_adam_path(grads, lr=0.01, eps=0.0)
    np.testing.assert_allclose(np.array(path), torch_path, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("step", [1, 2, 10, 1000])
def test_keras_step_t_equals_torch_with_converted_eps(step):
    rng = np.random.default_rng(step)
    grads = rng.normal(size=(step, 4)) * 1e-6
    keras_rule = A.keras_adam(lr=0.1, epsilon=1e-7)
    x, state = np.zeros(4), keras_rule.init(np.zeros(4))
    for g in grads[:-1]:
        x, state = keras_rule.update(x, g, state)
    keras_x, _ = keras_rule.update(x, grads[-1], state)
    eps = A.keras_eps_as_torch_eps(1e-7, 0.999, step)
    torch_rule = rules.adam(lr=0.1, eps=float(eps))
    torch_state = {**torch_rule.init(x), "step": state["step"], "exp_avg": state["exp_avg"],
                   "exp_avg_sq": state["exp_avg_sq"]}
    torch_x, _ = torch_rule.update(x, grads[-1], torch_state)
    np.testing.assert_allclose(keras_x, torch_x, rtol=1e-12, atol=1e-18)


def test_keras_first_step_for_a_tiny_gradient():
    # g = 1e-6 at t = 1: PyTorch steps η·g/(g + 1e-8) ≈ 0.99η; Keras η·g/(g + 1e-7/√0.001) ≈ 0.24η.
    rule = A.keras_adam(lr=1.0)
    x, _ = rule.update(np.zeros(1), np.array([1e-6]), rule.init(np.zeros(1)))
    assert -x[0] == pytest.approx(1e-6 / (1e-6 + 1e-7 / math.sqrt(0.001)), rel=1e-10)
    assert A.keras_eps_as_torch_eps(1e-7, 0.999, 1) == pytest.approx(1e-7 * math.sqrt(1000))
    assert A.keras_adam().with_options(lr=0.5).hyperparams["lr"] == 0.5


# --------------------------------------------------------------------------------------
# The large-eps limit
# --------------------------------------------------------------------------------------
def test_ema_momentum_is_the_large_eps_limit_of_torch_adam():
    x0 = [-1.2, 1.0]
    limit = descend(F.rosenbrock, x0, A.ema_momentum(lr=1e-3, beta=0.9), 200)
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    eps = 1e8
    opt = torch.optim.Adam([x], lr=1e-3 * eps, eps=eps)
    path = [x.detach().clone()]
    for _ in range(200):
        opt.zero_grad()
        F.rosenbrock.value(x).backward()
        opt.step()
        path.append(x.detach().clone())
    np.testing.assert_allclose(torch.stack(path).numpy(), limit.points, rtol=1e-6, atol=1e-8)
    assert limit.rule == "ema_momentum" and limit.color_key == "momentum"  # drawn in momentum's colour


def test_ema_momentum_takes_lr_times_g_on_a_constant_gradient():
    rule = A.ema_momentum(lr=0.1, beta=0.9)
    x, state = np.zeros(1), rule.init(np.zeros(1))
    for _ in range(5):
        new_x, state = rule.update(x, np.array([3.0]), state)
        assert (x - new_x)[0] == pytest.approx(0.3, rel=1e-13)  # bias correction makes m̂ = g exactly
        x = new_x
    with pytest.raises(ValueError, match="beta"):
        A.ema_momentum(beta=1.0)


# --------------------------------------------------------------------------------------
# The learning-rate sweep
# --------------------------------------------------------------------------------------
def test_sweep_matches_the_closed_form_of_gradient_descent_on_x_squared():
    lrs = np.array([0.01, 0.1, 0.5, 0.9, 1.1])
    sweep = A.learning_rate_sweep(F.x_squared, [5.0], {"gd": lambda lr: rules.sgd(lr=lr)}, lrs, seeds=3,
                                  steps=40)
    expected = 25.0 * (1 - 2 * lrs[:4]) ** 80
    np.testing.assert_allclose(sweep.final_gap["gd"][:4], np.repeat(expected[:, None], 3, axis=1), rtol=1e-10,
                               atol=1e-300)
    assert sweep.final_gap["gd"][4, 0] > 25.0 and sweep.initial_gap == 25.0  # |1 − 2η| > 1 grows
    assert sweep.best_lr("gd") == 0.5


def test_sweep_marks_divergence_and_uses_common_noise():
    lrs = np.geomspace(1e-3, 10, 9)
    methods = {"gd": lambda lr: rules.sgd(lr=lr), "gd_again": lambda lr: rules.sgd(lr=lr),
               "adam": lambda lr: rules.adam(lr=lr)}
    sweep = A.learning_rate_sweep(F.rosenbrock, [-1.2, 1.0], methods, lrs, seeds=4, steps=300, noise_std=1.0)
    np.testing.assert_array_equal(sweep.final_gap["gd"], sweep.final_gap["gd_again"])  # same noise
    assert np.isinf(sweep.final_gap["gd"][-1]).all() and sweep.diverged("gd")[-1] == 1.0
    assert np.isfinite(sweep.final_gap["adam"]).all()  # Adam's steps are bounded by ~η: it never blows up
    assert not np.array_equal(sweep.final_gap["adam"][:, 0], sweep.final_gap["adam"][:, 1])  # seeds differ
    again = A.learning_rate_sweep(F.rosenbrock, [-1.2, 1.0], methods, lrs, seeds=4, steps=300, noise_std=1.0)
    np.testing.assert_array_equal(sweep.final_gap["adam"], again.final_gap["adam"])


def noise_drawn_per_call(objective, noise_std, seed):
    """The reference: one draw of N(0, noise_std²) per call, the way a gradient callback reads most simply."""
    rng = np.random.default_rng(seed)
    return lambda x, t: objective.grad(x) + noise_std * rng.standard_normal(np.shape(x))


@pytest.mark.parametrize("block", [1, 3, 7, 256])
def test_noisy_grad_gives_the_numbers_of_one_draw_per_call(block):
    objective = F.quadratic(kappa=10)
    for x0, steps in [(np.tile([-4.0, 2.0], (5, 1)), 20), ([1.0, 2.0], 10)]:  # blocks that do not divide steps
        expected = descend(objective, x0, rules.adam(lr=0.1), steps, grad=noise_drawn_per_call(objective, 0.3, 4))
        got = descend(objective, x0, rules.adam(lr=0.1), steps, grad=A.noisy_grad(objective, 0.3, seed=4,
                                                                                  block=block))
        np.testing.assert_array_equal(got.points, expected.points)
    grad = A.noisy_grad(objective, 0.3, seed=4, block=block)
    assert grad(np.zeros(2), 1).shape == (2,) and grad(np.zeros((3, 2)), 2).shape == (3, 2)  # a new shape: new draw
    with pytest.raises(ValueError, match="block"):
        A.noisy_grad(objective, 0.3, block=0)


def test_sweep_runs_each_method_on_the_noise_of_noisy_grad():
    lrs, seeds, steps = np.geomspace(1e-3, 1.0, 4), 3, 60
    methods = {"gd": lambda lr: rules.sgd(lr=lr), "adam": lambda lr: rules.adam(lr=lr)}
    sweep = A.learning_rate_sweep(F.rosenbrock, [-1.2, 1.0], methods, lrs, seeds=seeds, steps=steps,
                                  noise_std=0.5, seed=7, average_last=5)
    lr_column = np.repeat(lrs, seeds)[:, None]
    for name, make_rule in methods.items():  # one descend per method, each with its own fresh noisy_grad
        run = descend(F.rosenbrock, [-1.2, 1.0], make_rule(lr_column), steps,
                      grad=noise_drawn_per_call(F.rosenbrock, 0.5, 7))
        expected = F.rosenbrock.value(run.points[-5:]).mean(axis=0).reshape(len(lrs), seeds) - F.rosenbrock.minimum
        np.testing.assert_array_equal(sweep.final_gap[name], np.where(np.isfinite(expected), expected, np.inf))


def test_usable_window_is_the_longest_contiguous_run():
    lrs = np.geomspace(1e-4, 1e4, 9)  # one point per decade
    gaps = np.array([5, 0.01, 0.01, 5, 0.01, 0.01, 0.01, np.inf, 0.01])[:, None]
    sweep = A.LearningRateSweep(lrs, {"m": gaps}, initial_gap=10.0, steps=1, noise_std=0.0)
    assert sweep.usable_window("m", tolerance=1e-2) == (pytest.approx(1.0), pytest.approx(100.0))
    assert sweep.usable_decades("m", tolerance=1e-2) == pytest.approx(2.0)
    assert sweep.usable_decades("m", tolerance=1e-4) == 0.0
    low, high = sweep.spread("m")
    assert low.shape == high.shape == (9,)


def test_a_learning_rate_that_loses_a_seed_is_not_usable():
    lrs = np.geomspace(1e-2, 1e2, 5)
    gaps = np.array([[0.01, 0.01, 0.01], [0.01, 0.01, 0.01], [0.01, 0.01, np.inf], [5, 5, 5], [0.01, 0.01, 0.01]])
    sweep = A.LearningRateSweep(lrs, {"m": gaps}, initial_gap=10.0, steps=1, noise_std=0.0)
    assert np.median(gaps[2]) <= 1e-2 * 10.0                      # the median alone would call η = 1 usable
    np.testing.assert_array_equal(sweep.usable("m"), [True, True, False, False, True])
    assert sweep.usable_window("m") == (pytest.approx(1e-2), pytest.approx(1e-1))


def test_sweep_checks_arguments():
    with pytest.raises(ValueError, match="lrs"):
        A.learning_rate_sweep(F.x_squared, [1.0], {"gd": lambda lr: rules.sgd(lr=lr)}, [0.1, -0.1])
    with pytest.raises(ValueError, match="seeds"):
        A.learning_rate_sweep(F.x_squared, [1.0], {"gd": lambda lr: rules.sgd(lr=lr)}, [0.1], seeds=0)
    with pytest.raises(ValueError, match="noise_std"):
        A.noisy_grad(F.x_squared, -1.0)


def test_sweep_plot_draws_every_method():
    sweep = A.learning_rate_sweep(F.quadratic(), [-3.0, 2.0], {"gd": lambda lr: rules.sgd(lr=lr),
                                                               "adam": lambda lr: rules.adam(lr=lr)},
                                  np.geomspace(1e-3, 10, 7), seeds=2, steps=50, noise_std=0.1)
    fig, ax = plt.subplots()
    A.plot_learning_rate_sweep(sweep, ax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_xlabel() == "learning rate η"
    assert len(ax.xaxis.get_minorticklocs()) > 0  # the default: minor ticks (7 decades on the x axis)
    plt.close(fig)
    fig, ax = plt.subplots()
    A.plot_learning_rate_sweep(sweep, ax, minor_ticks=False)
    assert ax.get_xscale() == "log" and len(ax.xaxis.get_minorticklocs()) == len(ax.yaxis.get_minorticklocs()) == 0
    assert len(ax.xaxis.get_majorticklocs()) > 0
    plt.close(fig)


# --------------------------------------------------------------------------------------
# Landscapes and the playground of notebook 06
# --------------------------------------------------------------------------------------
def test_tune_on_landscape_picks_the_best_separate_run():
    lrs = [1e-4, 1e-3, 1e-2, 1e-1]
    lr, trajectory = A.tune_on_landscape(F.himmelblau, [-0.5, -0.5], lambda lr: rules.adam(lr=lr), lrs, steps=100)
    finals = [descend(F.himmelblau, [-0.5, -0.5], rules.adam(lr=x), 100).values[-1] for x in lrs]
    assert lr == lrs[int(np.argmin(finals))]
    assert trajectory.values[-1] == min(finals)


def test_compare_on_landscapes_and_its_figure():
    methods = {"gd": lambda lr: rules.sgd(lr=lr), "adam": lambda lr: rules.adam(lr=lr)}
    results = A.compare_on_landscapes(methods, np.geomspace(1e-4, 1, 5), steps=30)
    assert list(results) == list(A.LANDSCAPES) and set(results["Beale"]) == {"gd", "adam"}
    for name, (_, start, _) in A.LANDSCAPES.items():
        np.testing.assert_array_equal(results[name]["adam"][1].points[0], start)
    fig = A.plot_landscape_comparison(results)
    assert len(fig.axes) == 2 * len(A.LANDSCAPES)
    plt.close(fig)


def test_adam_landscape_view_draws_the_rule_it_names():
    fig = A.show_adam_landscape("Himmelblau", lr=0.1, beta1=0.5, beta2=0.99, steps=50)
    left, right = fig.axes
    expected = descend(F.himmelblau, [-0.5, -0.5], rules.adam(lr=0.1, betas=(0.5, 0.99)), 50)
    path = [line for line in left.lines if len(line.get_xdata()) == 51][0]
    np.testing.assert_allclose(path.get_xdata(), expected.points[:, 0])
    assert right.get_yscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="landscape"):
        A.show_adam_landscape("Everest")


def test_adam_playground_builds_and_redraws():
    controls = A.adam_playground()
    assert controls.kwargs["lr"] == pytest.approx(0.05) and controls.kwargs["landscape"] == "Rosenbrock"
    controls.children[0].value = "Beale"
    assert controls.kwargs["landscape"] == "Beale"
    plt.close("all")


# --------------------------------------------------------------------------------------
# Reddi, Kale & Kumar (2018)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("C", [2.5, 3.0, 5.0])
def test_adam_settles_at_the_worst_point_and_amsgrad_finds_the_best(C):
    adam = A.reddi_counterexample(C=C, steps=600)
    amsgrad = A.reddi_counterexample(C=C, steps=600, amsgrad=True)
    assert adam.points[-60:].min() > 0.9  # x = +1, where the average loss (C − 2)/3 is largest
    assert amsgrad.points[-60:].max() < -0.9  # x* = −1
    # Regret per step: Adam's tends to (C − 2)/3 − (2 − C)/3 = 2(C − 2)/3; AMSGrad's to 0.
    assert adam.average_regret[-1] == pytest.approx(2 * (C - 2) / 3, rel=0.1)
    assert amsgrad.average_regret[-1] < 0.1 * adam.average_regret[-1]


def test_counterexample_course_optim_equals_torch_optim():
    for amsgrad in (False, True):
        ours = A.reddi_counterexample(C=3.0, steps=300, amsgrad=amsgrad)
        theirs = A.reddi_counterexample(C=3.0, steps=300, amsgrad=amsgrad, optimizer_class=torch.optim.Adam)
        np.testing.assert_allclose(ours.points, theirs.points, rtol=0, atol=1e-12)


def test_counterexample_equals_torch_adam_driven_by_backward():
    """The reference: torch.optim.Adam on the losses f_t(x) = slope_t · x, gradients from autograd."""
    C, lr, steps = 3.0, 0.5, 120
    for amsgrad in (False, True):
        x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([x], lr=lr, betas=(0.0, 1 / (1 + C**2)), eps=1e-8, amsgrad=amsgrad)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / math.sqrt(k + 1))
        points, losses = [0.0], []
        for t in range(1, steps + 1):
            opt.zero_grad()
            loss = ((C if t % 3 == 1 else -1.0) * x).sum()
            loss.backward()
            opt.step()
            schedule.step()
            with torch.no_grad():
                x.clamp_(-1.0, 1.0)
            points.append(x.item())
            losses.append(loss.item())
        run = A.reddi_counterexample(C=C, steps=steps, lr=lr, amsgrad=amsgrad, optimizer_class=torch.optim.Adam)
        np.testing.assert_array_equal(run.points, points)
        np.testing.assert_array_equal(run.losses, losses)
        np.testing.assert_array_equal(run.best_losses, np.tile([-C, 1.0, 1.0], steps // 3))  # f_t(−1)


def test_counterexample_uses_the_theorems_beta2_and_a_decaying_lr():
    # With β₁ = 0 and β₂ = 1/(1 + C²), the first step from 0 is −η·C/√(C²) = −η (bias-corrected), then
    # the 1/√t schedule applies: check the first two steps by hand.
    C, lr = 3.0, 0.5
    run = A.reddi_counterexample(C=C, steps=2, lr=lr)
    beta2 = 1 / (1 + C**2)
    x1 = -lr * C / (C + 1e-8)  # m̂_1 = C and v̂_1 = C² after bias correction
    assert run.points[1] == pytest.approx(x1, rel=1e-12)
    v2 = beta2 * (1 - beta2) * C**2 + (1 - beta2) * 1.0
    x2 = x1 + lr / math.sqrt(2) * 1.0 / (math.sqrt(v2 / (1 - beta2**2)) + 1e-8)  # η_2 = η/√2, g_2 = −1
    assert run.points[2] == pytest.approx(x2, rel=1e-12)
    with pytest.raises(ValueError, match="C"):
        A.reddi_counterexample(C=-1.0)


def test_counterexample_view_and_playground():
    fig = A.show_counterexample(C=3.0, steps=90)
    left, right = fig.axes
    assert left.get_ylabel() == "$x_t$" and len(left.lines[0].get_ydata()) == 91
    plt.close(fig)
    controls = A.counterexample_playground()
    controls.children[0].value = 4.0
    assert controls.kwargs["C"] == 4.0
    plt.close("all")


# --------------------------------------------------------------------------------------
# Wilson, Roelofs, Stern, Srebro & Recht (2017)
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wilson():
    return A.wilson_dataset(n_train=60, n_test=1000, p=0.6, seed=0)


def test_wilson_data_follow_the_papers_construction(wilson):
    X, y = wilson.X_train, wilson.y_train
    assert X.shape == (60, 360)
    np.testing.assert_array_equal(X[:, 0], y)
    np.testing.assert_array_equal(X[:, 1:3], 1.0)
    own = X[:, 3:].sum(axis=1)
    np.testing.assert_array_equal(own, np.where(y > 0, 1, 5))
    assert (X[:, 3:].sum(axis=0) <= 1).all()  # no two points share an own feature
    # The lemma's condition: X sign(Xᵀy) = c y (here c = 4), which needs more positives than negatives.
    assert y.sum() > 0
    np.testing.assert_array_equal(X @ np.sign(X.T @ y), 4 * y)
    np.testing.assert_array_equal(wilson.X_test[:, 3:], 0.0)


def test_gd_finds_the_minimum_norm_solution_with_zero_test_error(wilson):
    X, y = wilson.X_train, wilson.y_train
    L = np.linalg.eigvalsh(X @ X.T / len(y)).max()
    for rule, steps in ((rules.sgd(lr=1 / L), 3000), (rules.sgd(lr=0.1 / L, momentum=0.9), 2000)):
        w, losses = A.fit_least_squares(X, y, rule, steps)
        np.testing.assert_allclose(w, wilson.min_norm_solution, atol=1e-9)
        assert losses[-1] < 1e-20
        assert A.classification_error(wilson.X_test, wilson.y_test, w) == 0.0


@pytest.mark.parametrize("rule", [rules.adam(lr=0.01), rules.rmsprop(lr=0.001), rules.adagrad(lr=0.1)],
                         ids=["adam", "rmsprop", "adagrad"])
def test_adaptive_methods_fit_the_data_but_predict_one_class(wilson, rule):
    X, y = wilson.X_train, wilson.y_train
    w, losses = A.fit_least_squares(X, y, rule, 3000)
    assert losses[-1] < 1e-12  # training loss as good as GD's
    assert A.classification_error(X, y, w) == 0.0
    np.testing.assert_allclose(w, np.sign(X.T @ y) / 4, atol=1e-6)  # w ∝ sign(Xᵀy), scaled to interpolate
    negatives = float(np.mean(wilson.y_test < 0))
    assert A.classification_error(wilson.X_test, wilson.y_test, w) == negatives  # says +1 for every test point
    assert 0.35 < negatives < 0.45


def test_wilson_dataset_checks_p():
    with pytest.raises(ValueError, match="p"):
        A.wilson_dataset(p=0.4)


# --------------------------------------------------------------------------------------
# L2 inside Adam versus decoupled weight decay
# --------------------------------------------------------------------------------------
def test_l2_and_decoupled_decay_settle_where_the_stationarity_conditions_say():
    lam = 0.5
    result = A.weight_decay_experiment(noise_std=(0.1, 3.0), weight_decay=lam)
    np.testing.assert_allclose(result["adam"]["theta"], 1 / (1 + lam), atol=0.02)
    predicted = 1 / (1 + lam * result["adamw"]["root_v_hat"])
    np.testing.assert_allclose(result["adamw"]["theta"], predicted, atol=0.02)
    assert result["adamw"]["theta"][0] - result["adamw"]["theta"][1] > 0.4  # the noisy weight decays far more


@pytest.mark.parametrize("module", [optim, torch.optim])
def test_adamw_decay_is_multiplied_by_lr(module):
    x = torch.tensor([2.0, -4.0], dtype=torch.float64, requires_grad=True)
    opt = module.AdamW([x], lr=0.1, weight_decay=0.3)
    x.grad = torch.zeros_like(x)  # m = v = 0: the only change is the decay
    opt.step()
    np.testing.assert_allclose(x.detach().numpy(), np.array([2.0, -4.0]) * (1 - 0.1 * 0.3), rtol=1e-15)


# --------------------------------------------------------------------------------------
# The (η, λ) map of notebook 07
# --------------------------------------------------------------------------------------
def test_weight_decay_grid_l2_without_noise_ends_at_the_ridge_solution():
    target, truth = np.array([0.5, -2.0, 3.0, -0.2]), np.array([0.0, -1.0, 1.0, 0.0])
    decays = np.array([0.1, 0.5, 2.0])
    result = A.weight_decay_grid([1e-3], decays, target=target, truth=truth, noise_std=0.0, steps=6000,
                                 average_last=500)
    ridge = [0.5 * np.sum((target / (1 + lam) - truth) ** 2) for lam in decays]   # argmin ½‖θ − c‖² + ½λ‖θ‖²
    np.testing.assert_allclose(result["adam"][0], ridge, rtol=1e-2)
    assert result["adam"].shape == result["adamw"].shape == result["adamw_paper"].shape == (1, 3)


def test_weight_decay_grid_paper_decay_is_torch_decay_times_lr_and_matches_rules():
    decays = np.array([0.3, 3.0])
    kwargs = dict(target=[1.0, -0.5, 2.0], truth=[0.5, 0.0, 1.0], noise_std=[0.1, 1.0, 3.0], steps=300,
                  average_last=50, seed=4)
    for lr in (1e-3, 1e-2):   # the paper's λ = PyTorch's ηλ (one η per call, so that the noise is the same)
        result = A.weight_decay_grid([lr], decays, paper_decays=lr * decays, **kwargs)
        np.testing.assert_allclose(result["adamw_paper"], result["adamw"], rtol=1e-12)
        assert not np.allclose(result["adam"], result["adamw"])
    # one cell by hand: rules.adamw on the same noise
    rng = np.random.default_rng(4)
    rule, theta = rules.adamw(lr=1e-2, weight_decay=decays[:, None]), np.zeros((2, 3))
    state, total, sigma = rule.init(theta), np.zeros(2), np.array([0.1, 1.0, 3.0])
    for t in range(300):
        noise = sigma * rng.standard_normal((2, 3))
        theta, state = rule.update(theta, theta - np.array([1.0, -0.5, 2.0]) + noise, state)
        if t >= 250:
            total += 0.5 * np.sum((theta - np.array([0.5, 0.0, 1.0])) ** 2, axis=1)
    np.testing.assert_allclose(result["adamw"][0], total / 50, rtol=1e-12)


def test_weight_decay_grid_marks_divergence_where_the_decay_factor_passes_minus_one():
    lrs, decays = np.array([0.1, 0.5]), np.array([1.0, 3.0, 30.0])
    result = A.weight_decay_grid(lrs, decays, target=[1.0], truth=[0.0], noise_std=0.5, steps=1500, average_last=10)
    np.testing.assert_array_equal(np.isinf(result["adamw"]), np.outer(lrs, decays) > 2)
    assert np.all(np.isfinite(result["adam"]))


@pytest.mark.parametrize("bad", [dict(lrs=[0.0]), dict(weight_decays=[-1.0]), dict(paper_decays=[1.0, 2.0]),
                                 dict(average_last=0)])
def test_weight_decay_grid_checks_arguments(bad):
    args = dict(lrs=[1e-3], weight_decays=[1.0], target=[1.0], truth=[0.0], noise_std=1.0, steps=10, average_last=5)
    with pytest.raises(ValueError):
        A.weight_decay_grid(**{**args, **bad})


def test_amsgrad_docstring_states_what_the_code_does():
    # PyTorch's AMSGrad: the maximum of the raw v_t, then the bias correction (not the maximum of v̂_t)
    doc = rules.adam_update.__doc__
    assert r"v_t^{\max} &= \max(v_{t-1}^{\max}, v_t)" in doc and r"\hat v_t = v_t^{\max} / (1-\beta_2^t)" in doc
    grads = np.array([3.0, 0.1, 0.1])
    rule, theta = rules.adam(lr=1.0, betas=(0.0, 0.5), eps=0.0, amsgrad=True), np.zeros(1)
    state = rule.init(theta)
    v = v_max = 0.0
    for t, g in enumerate(grads, start=1):
        new_theta, state = rule.update(theta, np.array([g]), state)
        v = 0.5 * v + 0.5 * g * g
        v_max = max(v_max, v)
        np.testing.assert_allclose(theta - new_theta, g / np.sqrt(v_max / (1 - 0.5**t)), rtol=1e-14)
        theta = new_theta
