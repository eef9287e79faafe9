"""labs/preconditioning.py (notebook 11): each piece against a closed form, SciPy or finite differences."""

import warnings

import numpy as np
import pytest
import scipy.linalg

from course_lib import rules
from course_lib.descent import descend
from course_lib.functions import quadratic
from course_lib.labs import preconditioning as pc


def test_condition_number_after_preconditioning():
    valley = quadratic(kappa=100, angle=0.3)
    H = valley.hessian
    assert pc.preconditioned_kappa(H) == pytest.approx(100)
    assert pc.preconditioned_kappa(H, np.linalg.inv(H)) == pytest.approx(1)
    assert pc.preconditioned_kappa(H, 7 * np.eye(2)) == pytest.approx(100)       # a multiple of I changes nothing
    with pytest.raises(ValueError, match="positive definite"):
        pc.preconditioned_kappa(np.diag([1.0, -1.0]))


def test_the_diagonal_preconditioner_is_exact_on_the_axes_and_useless_at_45_degrees():
    assert pc.preconditioned_kappa(quadratic(100).hessian, pc.jacobi(quadratic(100).hessian)) == pytest.approx(1)
    at_45 = quadratic(100, angle=np.pi / 4).hessian
    assert np.allclose(pc.jacobi(at_45), np.eye(2) / 0.505)                      # diag(H) = ((μ + L)/2, (μ + L)/2)
    assert pc.preconditioned_kappa(at_45, pc.jacobi(at_45)) == pytest.approx(100)


def test_rotation():
    assert np.allclose(pc.rotation(np.pi / 2) @ [1.0, 0.0], [0.0, 1.0])
    turn = pc.rotation(0.7)
    assert np.allclose(turn.T @ turn, np.eye(2)) and np.isclose(np.linalg.det(turn), 1.0)


@pytest.mark.parametrize("exponent", [-0.5, -0.25, 0.0, 0.25, 0.5])
def test_matrix_power_equals_scipy(exponent):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    spd = a @ a.T + 0.1 * np.eye(4)
    assert np.allclose(pc.matrix_power(spd, exponent), scipy.linalg.fractional_matrix_power(spd, exponent).real,
                       rtol=1e-10, atol=1e-12)
    assert np.allclose(pc.matrix_power(spd, exponent, eps=0.3),
                       scipy.linalg.fractional_matrix_power(spd + 0.3 * np.eye(4), exponent).real, rtol=1e-10)
    with pytest.raises(ValueError, match="below 1"):
        pc.matrix_power(spd, 1.5)


def test_full_matrix_adagrads_first_step_is_the_normalized_gradient():
    """𝓖_1 = g gᵀ, and (g gᵀ)^{−1/2} g = g/‖g‖ (ε → 0): the first step has length η."""
    rule = pc.full_matrix_adagrad(lr=0.3, eps=1e-14)
    theta, g = np.array([1.0, -2.0, 0.5]), np.array([3.0, 4.0, 12.0])
    new, state = rule.update(theta, g, rule.init(theta))
    assert np.allclose(new, theta - 0.3 * g / 13.0, atol=1e-6)
    assert np.allclose(state["sum"], np.outer(g, g))
    with pytest.raises(ValueError, match="one vector"):
        rule.init(np.zeros((2, 3)))


def test_full_matrix_adagrad_turns_with_the_valley_and_the_diagonal_does_not():
    start, turn = np.array([-4.0, 2.0]), pc.rotation(np.pi / 4)
    full = pc.full_matrix_adagrad(lr=1.0)
    aligned = descend(quadratic(100), start, full, steps=50)
    turned = descend(quadratic(100, angle=np.pi / 4), turn @ start, full, steps=50)
    assert np.allclose(turned.points, aligned.points @ turn.T, atol=1e-9)
    diagonal = rules.adagrad(lr=1.0)
    aligned = descend(quadratic(100), start, diagonal, steps=50)
    turned = descend(quadratic(100, angle=np.pi / 4), turn @ start, diagonal, steps=50)
    assert not np.allclose(turned.points, aligned.points @ turn.T, atol=1e-3)


def test_kronecker_step_is_the_kronecker_product_on_the_flattened_gradient():
    rng = np.random.default_rng(1)
    G = rng.normal(size=(3, 4))
    left, right = G @ G.T + np.eye(3), G.T @ G + np.eye(4)
    expected = np.kron(scipy.linalg.fractional_matrix_power(left, -0.25),
                       scipy.linalg.fractional_matrix_power(right, -0.25)).real @ G.ravel()
    assert np.allclose(pc.kronecker_step(G, left, right).ravel(), expected, rtol=1e-10)
    # one gradient, no memory, ε → 0: U Vᵀ (Muon's direction)
    U, _, Vt = np.linalg.svd(G, full_matrices=False)
    assert np.allclose(pc.kronecker_step(G, G @ G.T, G.T @ G, eps=1e-12), U @ Vt, atol=1e-4)


@pytest.mark.parametrize("rotated", [False, True])
def test_matrix_problem_gradient_curvature_and_minimum(rotated):
    problem = pc.matrix_problem(rotated=rotated, seed=3)
    assert problem.value(problem.target) == pytest.approx(0.0, abs=1e-14)
    assert np.allclose(problem.grad(problem.target), 0.0, atol=1e-14)
    W = problem.start
    step, numeric = 1e-6, np.zeros_like(W)
    for index in np.ndindex(W.shape):
        bump = np.zeros_like(W)
        bump[index] = step
        numeric[index] = (problem.value(W + bump) - problem.value(W - bump)) / (2 * step)
    assert np.allclose(problem.grad(W), numeric, rtol=1e-6, atol=1e-8)
    assert problem.kappa == pytest.approx(30 * 300)
    eigenvalues = np.linalg.eigvalsh(np.kron(problem.h_out, problem.h_in))
    assert eigenvalues.max() / eigenvalues.min() == pytest.approx(problem.kappa)


def test_the_rotated_problem_is_the_aligned_one_turned():
    aligned, rotated = pc.matrix_problem(seed=2), pc.matrix_problem(rotated=True, seed=2)
    assert rotated.rotated and not aligned.rotated
    assert np.allclose(np.linalg.eigvalsh(rotated.h_out), np.sort(np.diag(aligned.h_out)))
    assert np.allclose(np.linalg.eigvalsh(rotated.h_in), np.sort(np.diag(aligned.h_in)))
    assert rotated.value(rotated.start) == pytest.approx(aligned.value(aligned.start))
    assert not np.allclose(rotated.h_out, np.diag(np.diag(rotated.h_out)))      # not diagonal any more


def test_run_matrix_marks_a_diverged_run_without_warnings():
    problem = pc.matrix_problem(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = pc.run_matrix(problem, rules.sgd(lr=100.0), steps=200)
    assert values[0] == pytest.approx(problem.value(problem.start)) and np.isinf(values[-1])
    converging = pc.run_matrix(problem, rules.sgd(lr=1.0), steps=20)
    assert np.all(np.diff(converging) < 0)                                       # η = 1 ≤ 2/h_max: monotone


def test_tuned_final_picks_the_grids_best_final_value():
    problem = pc.matrix_problem(seed=0)
    lrs = [0.1, 0.5, 1.0, 1.9, 2.5]
    best, curve = pc.tuned_final(problem, lambda lr: rules.sgd(lr=lr), lrs, steps=30)
    finals = [pc.run_matrix(problem, rules.sgd(lr=lr), 30)[-1] for lr in lrs]
    assert best.lr == lrs[int(np.argmin(finals))] and curve[-1] == min(finals)
    assert not best.at_edge
