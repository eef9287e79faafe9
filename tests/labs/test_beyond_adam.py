"""course_lib.labs.beyond_adam (notebooks 09 and 10): closed forms against the reference optimizers (torch.optim,
schedulefree), SciPy's polar decomposition, finite differences and hand computations."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import schedulefree
import scipy.linalg
import torch

from course_lib import functions, methods, plotting, rules
from course_lib.descent import descend
from course_lib.labs import beyond_adam as ba
from course_lib.labs import stochastic as problems


# --- the mapping and the runners -------------------------------------------------------------------------------
def test_toy_rule_uses_defaults_without_weight_decay():
    assert ba.toy_rule("adam", 0.1).hyperparams["lr"] == 0.1
    assert ba.toy_rule("muon", 0.1).hyperparams["weight_decay"] == 0.0
    assert ba.toy_rule("adamw", 0.1).hyperparams["weight_decay"] == 0.0
    assert ba.toy_rule("momentum", 0.1).hyperparams["momentum"] == 0.9
    assert ba.toy_rule("lion", 0.1).hyperparams["betas"] == (0.9, 0.99)       # lion-pytorch's defaults
    with pytest.raises(ValueError, match="unknown method"):
        ba.toy_rule("kfac", 0.1)


def test_every_new_method_has_a_rule_a_class_and_a_colour():
    for name in ba.NEW_METHODS:
        assert ba.RULE_FACTORIES[name](lr=0.01).name == name
        cls = ba.OPTIMIZERS.get(name) or methods.get(name).optimizer_class()  # a row with options is not in OPTIMIZERS
        assert issubclass(cls, torch.optim.Optimizer)
        assert plotting.method_color(name) and plotting.METHOD_LABELS[name]
    colours = list(plotting.METHOD_COLORS.values())
    assert len(colours) == len(set(colours)) == len(methods.METHODS)


@pytest.mark.parametrize("method", ["adafactor", "muon"])
def test_per_run_gives_each_run_a_one_row_matrix(method):
    """Each row of the batch follows torch's own optimizer on a 1 × 2 parameter, with its own learning rate."""
    lrs = np.array([[0.01], [0.1]])
    rule = ba.per_run(ba.toy_rule(method, lrs))
    x = np.array([[1.0, -2.0], [0.5, 0.3]])
    state = rule.init(x)
    grads = np.random.default_rng(0).normal(size=(5, 2, 2))
    for g in grads:
        x, state = rule.update(x, g, state)
    for row, lr in enumerate(lrs[:, 0]):
        param = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 0.3]][row], dtype=torch.float64)[None, :])
        options = {"weight_decay": 0.0} if method == "muon" else {}
        reference = {"adafactor": torch.optim.Adafactor, "muon": torch.optim.Muon}[method]([param], lr=lr, **options)
        for g in grads:
            param.grad = torch.tensor(g[row][None, :])
            reference.step()
        tolerance = 1e-12 if method == "adafactor" else 5e-2 * lr       # torch's Muon runs in bfloat16 (5 steps)
        np.testing.assert_allclose(x[row], param.detach().numpy()[0], atol=tolerance)
        single = ba.toy_rule(method, float(lr))                           # and the rule itself on that one row
        point = np.array([[1.0, -2.0], [0.5, 0.3]][row])[None, :]
        single_state = single.init(point)
        for g in grads:
            point, single_state = single.update(point, g[row][None, :], single_state)
        np.testing.assert_array_equal(x[row], point[0])


def test_schedule_free_x_is_what_eval_writes():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    optimizer = schedulefree.AdamWScheduleFree([param], lr=0.1)
    optimizer.train()
    for k in range(7):
        param.grad = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64) * (k - 3)
        optimizer.step()
    y, z = param.detach().clone(), optimizer.state[param]["z"].clone()
    optimizer.eval()
    torch.testing.assert_close(ba.schedule_free_x(y, z, 0.9), param.detach(), rtol=0, atol=1e-14)


def test_trace_follows_the_reference_schedule_free_at_x_and_y():
    objective, start = functions.rosenbrock, [-1.2, 1.0]
    at_x = ba.trace(objective, start, ba.toy_rule("schedule_free", 0.05), 30)
    at_y = ba.trace(objective, start, ba.toy_rule("schedule_free", 0.05), 30, at="y")
    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = schedulefree.AdamWScheduleFree([param], lr=0.05)
    for t in range(1, 31):
        optimizer.train()
        param.grad = None
        objective.value(param).backward()
        optimizer.step()
        np.testing.assert_allclose(at_y.points[t], param.detach().numpy(), rtol=0, atol=1e-12)
        optimizer.eval()
        np.testing.assert_allclose(at_x.points[t], param.detach().numpy(), rtol=0, atol=1e-12)
    assert at_x.rule == "schedule_free"
    with pytest.raises(ValueError, match="Invalid at"):
        ba.trace(objective, start, ba.toy_rule("schedule_free", 0.05), 3, at="w")


def test_schedule_free_points_are_one_run_seen_at_x_y_and_z():
    problem = problems.breast_cancer()
    objective = ba.LogisticObjective.of(problem, (np.zeros(problem.dim), 0.0))
    start, rule = np.zeros((2, problem.dim)), ba.toy_rule("schedule_free", 0.05)
    points = ba.schedule_free_points(objective, start, rule, 15, grad=ba.minibatch_grad(problem, 8, seed=3))
    for at in "xyz":                                   # three separate runs on the same minibatches
        alone = ba.trace(objective, start, rule, 15, grad=ba.minibatch_grad(problem, 8, seed=3), at=at)
        np.testing.assert_array_equal(points[at].points, alone.points)
        np.testing.assert_array_equal(points[at].values, problem.loss(alone.points))
    np.testing.assert_allclose(points["x"].points, ba.schedule_free_x(points["y"].points, points["z"].points),
                               rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="Schedule-Free"):
        ba.schedule_free_points(objective, start, ba.toy_rule("adam", 0.05), 3)


def test_trace_runs_adafactor_batched_like_single_runs():
    lrs = np.array([0.01, 0.3])
    batch = ba.trace(functions.beale, [1.0, 1.5], ba.toy_rule("adafactor", lrs[:, None]), 20)
    for i, lr in enumerate(lrs):
        single = descend(functions.beale, [1.0, 1.5], rules.adafactor(lr=lr), 20)
        np.testing.assert_allclose(batch.points[:, i], single.points, rtol=1e-13)


def test_trace_is_descend_for_other_rules():
    rule = rules.adam(lr=0.1)
    np.testing.assert_array_equal(ba.trace(functions.beale, [1.0, 1.5], rule, 20).points,
                                  descend(functions.beale, [1.0, 1.5], rule, 20).points)


def test_tune_picks_the_best_learning_rate_of_separate_runs():
    lrs = np.array([1e-3, 1e-2, 1e-1, 3.0])
    tuned = ba.tune(functions.rosenbrock, [-1.2, 1.0], "adam", lrs, 50)
    separate = [descend(functions.rosenbrock, [-1.2, 1.0], rules.adam(lr=lr), 50).values[-1] for lr in lrs]
    np.testing.assert_allclose(tuned.final_gap, separate, rtol=1e-12)
    assert tuned.best_lr == lrs[int(np.argmin(separate))] and tuned.best_gap == min(separate)
    assert tuned.gap_curve()[-1] == tuned.best_gap and not tuned.at_grid_edge
    diverging = ba.tune(functions.quadratic(kappa=10), [1.0, 1.0], "gd", [0.1, 10.0], 400)
    assert diverging.final_gap[1] == np.inf and diverging.best_lr == 0.1 and diverging.at_grid_edge
    with pytest.raises(ValueError, match="Invalid lrs"):
        ba.tune(functions.rosenbrock, [0.0, 0.0], "adam", [0.1, -1.0], 5)


def test_tune_takes_the_median_over_seeds():
    def noise(seed):
        rng = np.random.default_rng(seed)
        return lambda x, t: functions.quadratic(kappa=4).grad(x) + rng.standard_normal(np.shape(x))

    tuned = ba.tune(functions.quadratic(kappa=4), [1.0, 1.0], "gd", [0.1, 0.5], 40, seeds=3, grad=noise(0))
    runs = descend(functions.quadratic(kappa=4), [1.0, 1.0], rules.sgd(lr=np.repeat([0.1, 0.5], 3)[:, None]), 40,
                   grad=noise(0))
    np.testing.assert_allclose(tuned.final_gap, np.median(runs.values[-1].reshape(2, 3), axis=1))


def test_compare_on_landscapes_tunes_each_method_on_each_landscape():
    lrs = [0.01, 0.1]
    results = ba.compare_on_landscapes(["adam", "lion"], lrs, steps=10)
    assert list(results) == list(ba.LANDSCAPES)
    objective, start, _ = ba.LANDSCAPES["Beale"]
    assert results["Beale"]["lion"].best_gap == ba.tune(objective, start, "lion", lrs, 10).best_gap
    fig = ba.plot_comparison(results)
    assert len(fig.axes) == 2 * len(ba.LANDSCAPES)
    assert any("Lion" in text.get_text() for text in fig.axes[3].get_legend().get_texts())
    plt.close(fig)


def test_show_method_on_landscape_draws_both_methods():
    fig = ba.show_method_on_landscape("Beale", "muon", lr=0.05, steps=20)
    labels = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert labels[0].startswith("Muon") and labels[1].startswith("Adam")
    fig.canvas.draw()
    assert fig.axes[1].get_yscale() == "log" and len(fig.axes[1].yaxis.get_minorticklocs()) == 0
    plt.close(fig)
    with pytest.raises(ValueError, match="Invalid landscape"):
        ba.show_method_on_landscape("Himmelblau")


# --- NAdam and RAdam --------------------------------------------------------------------------------------------
def test_nadam_momentum_matches_torchs_mu_product():
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = torch.optim.NAdam([param], lr=0.01)
    for _ in range(25):
        param.grad = torch.ones(3, dtype=torch.float64)
        optimizer.step()
    mu = ba.nadam_momentum(25)
    assert math.isclose(optimizer.state[param]["mu_product"].item(), float(np.prod(mu)), rel_tol=1e-6)
    assert math.isclose(mu[0], 0.9 * (1 - 0.5 * 0.96**0.004), rel_tol=1e-15)


def test_radam_rho_and_rectification_drive_torchs_steps():
    """Steps 1–5 of torch.optim.RAdam are η·m̂_t; later ones are η·m̂_t·r_t·√(1 − β₂^t)/(√v_t + ε)."""
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.RAdam([param], lr=0.1)
    r = ba.radam_rectification(12)
    m = v = 0.0
    for t in range(1, 13):
        g = 1.0 + 0.5 * (-1) ** t
        before = param.item()
        param.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        m_hat = m / (1 - 0.9**t)
        expected = 0.1 * m_hat if t <= 5 else 0.1 * m_hat * r[t - 1] * math.sqrt(1 - 0.999**t) / (math.sqrt(v) + 1e-8)
        assert math.isclose(before - param.item(), expected, rel_tol=1e-10), t
    rho = ba.radam_rho(3)
    np.testing.assert_allclose(rho[0], 1.0, rtol=1e-10)
    assert r[4] == 0.0 and r[5] > 0


def test_radam_first_rectified_step_by_brute_force():
    for beta2 in (0.999, 0.99, 0.95):
        rho = ba.radam_rho(200, beta2)
        assert ba.radam_first_rectified_step(beta2) == int(np.argmax(rho > 5)) + 1
    with pytest.raises(ValueError, match="never turns on"):
        ba.radam_first_rectified_step(0.6)


def test_linear_warmup_reaches_one_after_two_over_one_minus_beta2_steps():
    w = ba.linear_warmup(3000, beta2=0.999)
    np.testing.assert_allclose(w[[0, 999, 1999, 2999]], [0.0005, 0.5, 1.0, 1.0], rtol=1e-12)


def test_noise_step_sizes_first_steps():
    adam = ba.noise_step_sizes("adam", steps=3, runs=50, seed=3)
    radam = ba.noise_step_sizes("radam", steps=3, runs=50, seed=3)
    g1 = np.random.default_rng(3).standard_normal((3, 50))[0]
    np.testing.assert_allclose(adam[0], np.abs(g1) / (np.abs(g1) + 1e-8), rtol=1e-12)   # Adam: η sign(g₁)
    np.testing.assert_allclose(radam[0], np.abs(g1), rtol=1e-12)                         # RAdam: η m̂₁ = η g₁
    assert adam.shape == (3, 50)
    half = ba.noise_step_sizes("adam", steps=3, runs=50, seed=3, schedule=lambda t: 0.5)
    np.testing.assert_allclose(half, adam / 2, rtol=1e-12)


# --- Adafactor and Muon -------------------------------------------------------------------------------------------
def test_factored_second_moment_exact_for_rank_one_and_equal_to_torchs_first_step():
    a, b = np.array([1.0, 2.0, 0.5]), np.array([0.1, 3.0])
    np.testing.assert_allclose(ba.factored_second_moment(np.outer(a, b)), np.outer(a, b), rtol=1e-14)
    param = torch.nn.Parameter(torch.zeros(5, 4, dtype=torch.float64))
    optimizer = torch.optim.Adafactor([param])
    grad = torch.arange(1.0, 21.0, dtype=torch.float64).reshape(5, 4).sin()
    param.grad = grad
    optimizer.step()
    state = optimizer.state[param]
    torch_estimate = state["row_var"] @ state["col_var"] / state["row_var"].mean()
    np.testing.assert_allclose(ba.factored_second_moment(grad.numpy() ** 2), torch_estimate.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="matrix"):
        ba.factored_second_moment(np.ones(3))


def test_relative_error():
    assert ba.relative_error([3.0, 4.0], [0.0, 5.0]) == pytest.approx(math.sqrt(9 + 1) / 5)


def test_ns_polynomial_is_what_newton_schulz_does_to_singular_values():
    G = np.random.default_rng(1).normal(size=(6, 4))
    X = G / np.linalg.norm(G)
    a, b, c = ba.MUON_COEFFICIENTS
    for _ in range(5):                            # the iteration of Jordan et al., in float64
        A = X.T @ X
        X = a * X + X @ (b * A + c * A @ A)
    s = np.linalg.svd(G, compute_uv=False) / np.linalg.norm(G)
    np.testing.assert_allclose(np.sort(np.linalg.svd(X, compute_uv=False)), np.sort(ba.ns_polynomial(s)), rtol=1e-10)
    assert ba.ns_polynomial(0.5, steps=1) == pytest.approx(a * 0.5 + b * 0.125 + c * 0.03125)


def test_polar_factor_is_scipys_and_the_spectral_steepest_direction():
    G = np.random.default_rng(2).normal(size=(5, 5))
    unitary, _ = scipy.linalg.polar(G)
    np.testing.assert_allclose(ba.polar_factor(G), unitary, atol=1e-12)
    assert np.sum(G * ba.polar_factor(G)) == pytest.approx(np.linalg.norm(G, "nuc"))


def test_matrix_regression_gradient_and_conditioning():
    problem = ba.matrix_regression(n=40, d_in=4, d_out=3, kappa=100.0, seed=1)
    eigenvalues = np.linalg.eigvalsh(problem.hessian)
    assert eigenvalues[-1] == pytest.approx(1.0) and eigenvalues[0] == pytest.approx(0.01)
    assert problem.loss(problem.W_star) < 1e-25
    np.testing.assert_allclose(problem.W_star.T @ problem.W_star, np.eye(3), atol=1e-12)
    W = np.random.default_rng(0).normal(size=(4, 3))
    E = np.zeros((4, 3))
    E[2, 1] = 1e-6
    finite = (problem.loss(W + E) - problem.loss(W - E)) / 2e-6
    assert problem.grad(W)[2, 1] == pytest.approx(finite, rel=1e-7)
    with pytest.raises(ValueError, match="kappa"):
        ba.matrix_regression(kappa=0.5)
    with pytest.raises(ValueError, match="n"):
        ba.matrix_regression(n=3, d_in=4)


def test_run_matrix_gradient_descent_matches_the_closed_form():
    problem = ba.matrix_regression(n=30, d_in=3, d_out=3, kappa=10.0, seed=2)
    run = ba.run_matrix(problem, "gd", [0.5], steps=20)
    step = np.eye(3) - 0.5 * problem.hessian
    W = problem.W_star - np.linalg.matrix_power(step, 20) @ problem.W_star       # W_t − W* = (I − ηH)^t (W_0 − W*)
    assert run.final_gap[0] == pytest.approx(problem.loss(W), rel=1e-9)
    halved = ba.run_matrix(problem, "gd", [1.0], steps=20, schedule=lambda t: 0.5)
    assert halved.final_gap[0] == pytest.approx(run.final_gap[0], rel=1e-12)


def test_run_matrix_runs_every_learning_rate_like_a_run_of_its_own():
    problem = ba.matrix_regression(n=40, d_in=4, d_out=3, kappa=100.0, seed=1)
    lrs = np.array([1e-3, 0.05, 0.5, 30.0])            # the last one diverges

    def alone(method, lr, steps=12):                    # one matrix, one η: the rule on W itself
        rule = ba.toy_rule(method, lr)
        W, losses = np.zeros(problem.shape), [problem.loss(np.zeros(problem.shape))]
        state = rule.init(W)
        with np.errstate(over="ignore", invalid="ignore"):
            for t in range(1, steps + 1):
                W, state = rule.update_fn(W, problem.grad(W), state,
                                          **{**rule.hyperparams, "lr": lr * (1 - (t - 1) / steps)})
                losses.append(problem.loss(W))
        return np.array(losses)

    for method in ("muon", "adamw", "lion", "momentum"):
        run = ba.run_matrix(problem, method, lrs, steps=12, schedule=lambda t: 1 - (t - 1) / 12)
        expected = np.stack([alone(method, lr) for lr in lrs], axis=1)
        np.testing.assert_allclose(run.trajectory.values, expected, rtol=1e-12)
        np.testing.assert_array_equal(np.isfinite(run.trajectory.values), np.isfinite(expected))


# --- the convex problem ---------------------------------------------------------------------------------------------
def test_logistic_objective_and_minibatch_grad():
    problem = problems.breast_cancer()
    objective = ba.LogisticObjective.of(problem, (np.zeros(problem.dim), 0.25))
    theta = np.random.default_rng(0).normal(size=(2, problem.dim)) * 0.1
    np.testing.assert_array_equal(objective.value(theta), problem.loss(theta))
    np.testing.assert_array_equal(objective.grad(theta), problem.grad(theta))
    assert objective.minimum == 0.25 and objective.dim == problem.dim
    grad = ba.minibatch_grad(problem, 8, seed=4)(theta, 1)
    batch = np.random.default_rng(4).integers(0, problem.n_samples, size=(2, 8))
    np.testing.assert_allclose(grad, problem.grad(theta, batch), rtol=1e-14)


# --- memory -----------------------------------------------------------------------------------------------------------
def test_small_mlp_and_the_muon_split():
    model = ba.small_mlp(in_features=5, hidden=7, dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == 5 * 7 + 7 + 7 * 7 + 7 + 7 + 1
    assert next(model.parameters()).dtype == torch.bfloat16
    muon, rest = ba.hidden_matrices(model)
    assert [tuple(p.shape) for p in muon] == [(7, 7)] and len(rest) == 5
    optimizers = ba.make_optimizers("muon", model)
    assert len(optimizers) == 2


def test_state_bytes_of_torchs_adam():
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert ba.state_bytes(optimizer) == (2 * 4 * (6 + 2), 2 * 4)        # m and v of 8 floats, two step counters


@pytest.mark.parametrize("method", list(ba.MEMORY_METHODS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_expected_state_bytes_match_the_reference_optimizers(method, dtype):
    """The formula against torch.optim's own classes (and lion-pytorch's, schedulefree's) where torch has them."""
    model = ba.small_mlp(in_features=6, hidden=5, dtype=dtype)
    expected = ba.expected_state_bytes(method, model)
    if method != "shampoo":  # ScalableShampoo keeps its factors and graft buffers in objects, not state tensors
        assert ba.measure_state_bytes(method, model, reference=True) == expected
    references = ba.make_optimizers(method, ba.small_mlp(in_features=6, hidden=5, dtype=dtype), reference=True)
    assert not [o for o in references if type(o).__module__.startswith("course_lib")]
    assert ba.measure_state_bytes(method, ba.small_mlp(in_features=6, hidden=5, dtype=dtype)) == expected


def test_expected_state_bytes_refuses_unknown_methods():
    with pytest.raises(ValueError, match="unknown method"):
        ba.expected_state_bytes("kfac", ba.small_mlp())


def test_memory_table_and_its_plot():
    table = ba.memory_table(lambda dtype: ba.small_mlp(in_features=4, hidden=3, dtype=dtype),
                            methods=("sgd", "adam", "adafactor"))
    assert table["float32"]["adam"]["per_parameter"] == 8.0 and table["bfloat16"]["adam"]["per_parameter"] == 4.0
    assert table["float32"]["sgd"]["measured"] == (0, 0)
    fig, ax = plt.subplots()
    ba.plot_memory(table, ax)
    assert len(ax.patches) == 6 and ax.get_ylabel().startswith("optimizer state")
    plt.close(fig)


def test_beyond_adam_playground_builds_and_redraws():
    controls = ba.beyond_adam_playground()
    landscape, method, lr, steps = controls.children[:4]
    assert landscape.value == "Rosenbrock" and method.value == "lion"
    method.value = "schedule_free"
    steps.value = 20
    assert controls.kwargs == {"landscape": "Rosenbrock", "method": "schedule_free", "lr": lr.value, "steps": 20}
    plt.close("all")


def test_beyond_adam_playground_offers_only_the_methods_asked_for():
    controls = ba.beyond_adam_playground(methods=("nadam", "radam", "adafactor", "lion"), method="radam", lr=0.01)
    landscape, method, lr, steps = controls.children[:4]
    assert [value for _, value in method.options] == ["nadam", "radam", "adafactor", "lion"]
    assert method.value == "radam" and abs(lr.value - 0.01) < 1e-12
    plt.close("all")
    with pytest.raises(ValueError, match="methods must be"):
        ba.beyond_adam_playground(methods=("adam",))
    with pytest.raises(ValueError, match="method must be one of methods"):
        ba.beyond_adam_playground(methods=("nadam",), method="lion")
