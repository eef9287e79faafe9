"""course_lib.labs.adaptive: effective step sizes against torch.optim and closed forms; the playground view."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import functions as F
from course_lib import plotting, rules
from course_lib.descent import descend
from course_lib.labs import adaptive as A


def _gradients(seed=0, steps=200):
    rng = np.random.default_rng(seed)
    scales = np.array([1e-3, 1.0, 50.0])
    return rng.normal(size=(steps, 3)) * scales * np.linspace(2, 0.1, steps)[:, None]


@pytest.mark.parametrize("torch_class, kwargs", [
    (torch.optim.SGD, dict(lr=0.3)),
    (torch.optim.Adagrad, dict(lr=0.5)),
    (torch.optim.Adagrad, dict(lr=0.5, eps=1e-3, lr_decay=0.01)),
    (torch.optim.RMSprop, dict(lr=0.01)),
    (torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-4, centered=True)),
])
def test_effective_steps_are_what_torch_optim_moves_per_unit_gradient(torch_class, kwargs):
    grads = _gradients()
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch_class([x], **kwargs)
    moves = []
    for g in grads:
        before = x.detach().clone()
        x.grad = torch.tensor(g)
        opt.step()
        moves.append((before - x.detach()).numpy())
    expected = np.array(moves) / grads
    factory = {torch.optim.SGD: rules.sgd, torch.optim.Adagrad: rules.adagrad, torch.optim.RMSprop: rules.rmsprop}
    got = A.effective_step_sizes(factory[torch_class](**kwargs), grads)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_effective_steps_closed_forms():
    grads = _gradients(seed=1)
    adagrad = A.effective_step_sizes(rules.adagrad(lr=0.5), grads)
    np.testing.assert_allclose(adagrad, 0.5 / (np.sqrt(np.cumsum(grads**2, axis=0)) + 1e-10), rtol=1e-12)
    assert np.all(np.diff(adagrad, axis=0) <= 0)  # AdaGrad's steps never grow
    alpha = 0.99
    square_avg = np.zeros(3)
    expected = []
    for g in grads:
        square_avg = alpha * square_avg + (1 - alpha) * g**2
        expected.append(0.01 / (np.sqrt(square_avg) + 1e-8))
    np.testing.assert_allclose(A.effective_step_sizes(rules.rmsprop(lr=0.01), grads), expected, rtol=1e-12)
    np.testing.assert_allclose(A.effective_step_sizes(rules.sgd(lr=0.2), grads), 0.2, rtol=1e-12)


def test_effective_steps_of_a_batch_and_of_zero_gradients():
    grads = np.stack([_gradients(seed=2, steps=50), _gradients(seed=3, steps=50)], axis=1)  # (T, runs, dim)
    grads[10, 0, 1] = 0.0
    steps = A.effective_step_sizes(rules.adagrad(lr=0.1), grads)
    assert steps.shape == grads.shape
    assert np.isnan(steps[10, 0, 1]) and np.isfinite(np.delete(steps.reshape(50, -1), 1, axis=1)).all()
    np.testing.assert_allclose(steps[:, 1], A.effective_step_sizes(rules.adagrad(lr=0.1), grads[:, 1]))


@pytest.mark.parametrize("rule, words", [(rules.adam(), "rule"), (rules.sgd(lr=0.1, momentum=0.9), "rule"),
                                         (rules.rmsprop(momentum=0.5), "momentum"),
                                         (rules.adagrad(weight_decay=0.1), "weight_decay")])
def test_effective_steps_refuse_rules_whose_move_is_not_a_multiple_of_g(rule, words):
    with pytest.raises(ValueError, match=f"Invalid {words}"):
        A.effective_step_sizes(rule, np.ones((3, 2)))


def test_rotate_turns_the_axes_into_the_rotated_quadratics_eigenvectors():
    angle = 0.7
    q = F.quadratic(kappa=20.0, angle=angle)
    flat, steep = A.rotate(np.eye(2), angle)
    np.testing.assert_allclose(q.grad(flat), q.mu * flat, atol=1e-14)
    np.testing.assert_allclose(q.grad(steep), q.L * steep, atol=1e-14)


def test_axis_aligned_adagrad_does_not_see_the_condition_number():
    paths = [A.adaptive_view(angle=0.0, kappa=kappa, steps=60).runs["adagrad"].points for kappa in (1, 30, 1000)]
    np.testing.assert_allclose(paths[1], paths[0], rtol=1e-6, atol=1e-9)  # equal up to the ε guard
    np.testing.assert_allclose(paths[2], paths[0], rtol=1e-6, atol=1e-9)


def test_gradient_descent_turns_with_the_valley():
    plain = A.adaptive_view(angle=0.0, steps=50).runs["gd"].points
    turned = A.adaptive_view(angle=45.0, steps=50).runs["gd"].points
    np.testing.assert_allclose(turned, A.rotate(plain, np.radians(45.0)), atol=1e-12)


@pytest.mark.parametrize("angle, kappa", [(0.0, 100.0), (20.0, 100.0), (45.0, 1000.0), (90.0, 1.0)])
def test_adaptive_view_draws_three_methods(angle, kappa):
    fig = A.show_adaptive_descent(angle=angle, kappa=kappa, steps=80)
    left, right = fig.axes
    assert left.get_xlabel() == "θ₁" and right.get_xlabel() == "step t" and right.get_yscale() == "log"
    view = A.adaptive_view(angle=angle, kappa=kappa, steps=80)
    for line, (name, run) in zip(right.lines, view.runs.items()):
        assert line.get_color() == plotting.method_color(name)
        drawn = line.get_ydata()
        distance = run.distances(view.objective.minimizer)
        shown = np.isfinite(drawn)
        np.testing.assert_allclose(drawn[shown], distance[shown])
    plt.close(fig)


def test_adaptive_view_uses_the_default_rules():
    view = A.adaptive_view(angle=30.0, kappa=10.0, steps=25)
    alone = descend(F.quadratic(10.0, angle=np.radians(30.0)), A.rotate(A.DEFAULT_START, np.radians(30.0)),
                    rules.rmsprop(lr=0.1), 25)
    np.testing.assert_array_equal(view.runs["rmsprop"].points, alone.points)


def test_adaptive_playground_builds_and_redraws():
    controls = A.adaptive_playground()
    angle_slider, kappa_slider = controls.children[:2]
    assert (angle_slider.value, kappa_slider.value) == (20.0, 100.0)
    angle_slider.value = 45.0
    kappa_slider.value = 1000.0
    assert controls.kwargs == {"angle": 45.0, "kappa": 1000.0}
    plt.close("all")
