"""Objectives: exact gradients against finite differences and torch autograd; minimizers."""

import numpy as np
import pytest
import torch

from course_lib import functions as F

OBJECTIVES = [F.x_squared, F.quadratic(kappa=25.0), F.quadratic(kappa=10.0, L=2.0, angle=np.pi / 5),
              F.rosenbrock, F.beale, F.booth, F.himmelblau, F.rastrigin(2), F.rastrigin(3)]
IDS = [o.name for o in OBJECTIVES]


def _sample_points(objective, n=20, seed=0):
    rng = np.random.default_rng(seed)
    lows = np.array([b[0] for b in objective.bounds])
    highs = np.array([b[1] for b in objective.bounds])
    return lows + (highs - lows) * rng.random((n, objective.dim))


@pytest.mark.parametrize("objective", OBJECTIVES, ids=IDS)
def test_gradient_matches_central_finite_differences(objective):
    points = _sample_points(objective)
    h = 1e-6
    numeric = np.stack([
        (objective.value(points + h * e) - objective.value(points - h * e)) / (2 * h)
        for e in np.eye(objective.dim)
    ], axis=-1)
    np.testing.assert_allclose(objective.grad(points), numeric, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("objective", OBJECTIVES, ids=IDS)
def test_gradient_matches_torch_autograd(objective):
    points = torch.tensor(_sample_points(objective, seed=1), requires_grad=True)
    objective.value(points).sum().backward()
    np.testing.assert_allclose(objective.grad(points.detach().numpy()), points.grad.numpy(), rtol=1e-10,
                               atol=1e-9)


@pytest.mark.parametrize("objective", OBJECTIVES, ids=IDS)
def test_minimizers_have_zero_gradient_and_the_minimum_value(objective):
    np.testing.assert_allclose(objective.grad(objective.minimizers), 0.0, atol=1e-10)
    np.testing.assert_allclose(objective.value(objective.minimizers), objective.minimum, atol=1e-12)
    # and nothing sampled in the window is lower
    assert objective.value(_sample_points(objective, n=2000)).min() >= objective.minimum - 1e-12


@pytest.mark.parametrize("objective", OBJECTIVES, ids=IDS)
def test_batched_shapes(objective):
    single = _sample_points(objective, n=1)[0]
    batch = np.broadcast_to(single, (4, 3, objective.dim))
    assert np.shape(objective.value(single)) == ()
    assert objective.value(batch).shape == (4, 3)
    assert objective.grad(batch).shape == (4, 3, objective.dim)
    np.testing.assert_allclose(objective.grad(batch)[2, 1], objective.grad(single))


def test_himmelblau_has_four_distinct_minima():
    minima = F.himmelblau.minimizers
    assert minima.shape == (4, 2)
    assert len({tuple(np.round(m, 3)) for m in minima}) == 4


def test_quadratic_condition_number_and_rotation():
    q = F.quadratic(kappa=50.0, L=4.0)
    assert q.L == pytest.approx(4.0) and q.mu == pytest.approx(0.08) and q.kappa == pytest.approx(50.0)
    rotated = F.quadratic(kappa=50.0, L=4.0, angle=0.7)
    assert rotated.kappa == pytest.approx(50.0)
    assert abs(rotated.hessian[0, 1]) > 0.1  # no longer axis-aligned
    np.testing.assert_allclose(q.hessian, np.diag([0.08, 4.0]), atol=1e-15)
    # the angle turns the flat θ₁ axis counter-clockwise: its direction (cos 0.7, sin 0.7) keeps curvature μ
    flat, steep = np.array([np.cos(0.7), np.sin(0.7)]), np.array([-np.sin(0.7), np.cos(0.7)])
    np.testing.assert_allclose(rotated.hessian @ flat, 0.08 * flat, atol=1e-14)
    np.testing.assert_allclose(rotated.hessian @ steep, 4.0 * steep, atol=1e-14)


def test_x_squared_is_the_seed_function():
    assert F.x_squared.value(np.array([5.0])) == 25.0
    assert F.x_squared.grad(np.array([5.0]))[0] == 10.0


@pytest.mark.parametrize("call, words", [
    (lambda: F.quadratic(kappa=0.5), "kappa"),
    (lambda: F.quadratic(L=-1.0), "L"),
    (lambda: F.rastrigin(0), "dim"),
    (lambda: F.rosenbrock.value(np.zeros(3)), "dimension 2"),
])
def test_bad_input_is_explained(call, words):
    with pytest.raises(ValueError, match=words):
        call()
