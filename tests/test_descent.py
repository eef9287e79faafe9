"""course_lib.descent: the NumPy runner agrees with torch.optim on the same objective."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from course_lib import functions as F
from course_lib import optim, rules
from course_lib.descent import Trajectory, descend

CASES = [
    ("sgd", dict(lr=0.002), "SGD"),
    ("sgd", dict(lr=0.001, momentum=0.9, nesterov=True), "SGD"),
    ("adagrad", dict(lr=0.5, lr_decay=0.001), "Adagrad"),
    ("rmsprop", dict(lr=0.01, centered=True, momentum=0.5), "RMSprop"),
    ("adam", dict(lr=0.05, amsgrad=True), "Adam"),
    ("adamw", dict(lr=0.05, weight_decay=0.1), "AdamW"),
]


@pytest.mark.parametrize("rule_name, kwargs, class_name", CASES)
@pytest.mark.parametrize("objective", [F.rosenbrock, F.himmelblau, F.quadratic(kappa=30, angle=0.4)],
                         ids=["rosenbrock", "himmelblau", "quadratic"])
def test_one_specification_two_backends(rule_name, kwargs, class_name, objective):
    """descend(rule) in NumPy equals course_lib.optim and torch.optim driving autograd on the same function."""
    x0 = np.array([-1.2, 1.5])
    steps = 150
    trajectory = descend(objective, x0, rules.RULES[rule_name](**kwargs), steps)
    for module in (optim, torch.optim):
        x = torch.tensor(x0, requires_grad=True)
        opt = getattr(module, class_name)([x], **kwargs)
        path = [x.detach().clone()]
        for _ in range(steps):
            opt.zero_grad()
            objective.value(x).backward()
            opt.step()
            path.append(x.detach().clone())
        np.testing.assert_allclose(torch.stack(path).numpy(), trajectory.points, rtol=1e-9, atol=1e-10)


def test_trajectory_shapes_and_values():
    t = descend(F.x_squared, 5.0, rules.sgd(lr=0.1), 100)
    assert isinstance(t, Trajectory)
    assert t.points.shape == (101, 1) and t.values.shape == (101,) and t.steps == 100
    assert t.points[0, 0] == 5.0
    assert t.final[0] == pytest.approx(5 * 0.8**100, rel=1e-12)
    np.testing.assert_allclose(t.values, t.points[:, 0] ** 2)
    np.testing.assert_allclose(t.distances([0.0]), np.abs(t.points[:, 0]))
    assert t.rule == "gd"


def test_values_are_computed_once_and_only_when_read():
    """descend leaves f(θ_t) for later (a grid of runs may never need it); read, it equals f at every iterate."""
    calls = []

    class Counted(type(F.himmelblau)):
        def value(self, x):
            calls.append(np.shape(x))
            return super().value(x)

    counted = Counted(*(getattr(F.himmelblau, f.name) for f in dataclasses.fields(F.himmelblau)))
    run = descend(counted, [[-1.0, 1.0], [0.5, 2.0]], rules.adam(lr=0.05), 30)
    assert calls == []
    np.testing.assert_array_equal(run.values, F.himmelblau.value(run.points))
    assert run.values is run.values and calls == [(31, 2, 2)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.values = np.zeros(31)


def test_batched_starts_equal_separate_runs():
    starts = np.array([[-1.0, 1.0], [0.5, 2.0], [2.0, -1.0]])
    together = descend(F.himmelblau, starts, rules.adam(lr=0.05), 200)
    assert together.points.shape == (201, 3, 2) and together.values.shape == (201, 3)
    for i, start in enumerate(starts):
        alone = descend(F.himmelblau, start, rules.adam(lr=0.05), 200)
        np.testing.assert_allclose(together.points[:, i], alone.points, rtol=1e-14)


def test_grid_of_hyperparameters_in_one_run():
    lrs = np.geomspace(1e-3, 1.0, 7)[:, None]
    momenta = np.linspace(0, 0.9, 4)[:, None]
    lr_grid, momentum_grid = (a.reshape(-1, 1) for a in np.meshgrid(lrs, momenta))
    q = F.quadratic(kappa=10)
    grid = descend(q, [1.0, 1.0], rules.sgd(lr=lr_grid, momentum=momentum_grid), 50)
    assert grid.points.shape == (51, 28, 2)
    k = 11
    alone = descend(q, [1.0, 1.0], rules.sgd(lr=float(lr_grid[k, 0]), momentum=float(momentum_grid[k, 0])), 50)
    np.testing.assert_allclose(grid.points[:, k], alone.points, rtol=1e-13)


def test_divergence_gives_inf_without_warnings():
    with np.errstate(all="raise"):
        t = descend(F.x_squared, 5.0, rules.sgd(lr=5.0), 2000)
    assert not np.isfinite(t.values[-1])


def test_custom_gradient_callback():
    rng = np.random.default_rng(0)
    t = descend(F.x_squared, 5.0, rules.sgd(lr=0.1), 300, grad=lambda x, step: 2 * x + rng.normal(size=x.shape))
    assert abs(t.final[0]) < 1.0  # noisy, but near the minimum
    assert t.points[-50:, 0].std() > 0.05  # and still jittering: the noise floor


@pytest.mark.parametrize("x0, steps, words", [([1.0, 2.0], 10, "coordinates"), (1.0, -1, "steps")])
def test_bad_input(x0, steps, words):
    with pytest.raises(ValueError, match=words):
        descend(F.x_squared, x0, rules.sgd(lr=0.1), steps)


def test_bad_array_hyperparameter_shape():
    with pytest.raises(ValueError, match="trailing axis"):
        descend(F.quadratic(), [1.0, 1.0], rules.sgd(lr=np.array([0.1, 0.2])), 5)


def test_constant_schedule_is_descend_exactly():
    bowl = F.quadratic(kappa=10, angle=0.3)
    rule = rules.adam(lr=np.array([[0.01], [0.1]]))
    plain = descend(bowl, [-4.0, 2.0], rule, 50)
    scheduled = descend(bowl, [-4.0, 2.0], rule, 50, schedule=lambda t: 1.0)
    assert np.array_equal(plain.points, scheduled.points)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_schedule_matches_torch_sgd_with_lambda_lr_stepped_every_step(momentum):
    bowl = F.quadratic(kappa=10, angle=0.5)
    schedule = lambda t: 0.5 * (1 + math.cos(math.pi * (t - 1) / 60))   # noqa: E731  cosine over 60 steps
    ours = descend(bowl, [-4.0, 2.0], rules.sgd(lr=0.3, momentum=momentum), 60, schedule=schedule)
    theta = torch.tensor([-4.0, 2.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([theta], lr=0.3, momentum=momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: schedule(k + 1))
    hessian = torch.as_tensor(bowl.hessian)
    points = [theta.detach().numpy().copy()]
    for _ in range(60):
        optimizer.zero_grad()
        (0.5 * theta @ hessian @ theta).backward()
        optimizer.step()
        scheduler.step()
        points.append(theta.detach().numpy().copy())
    assert np.allclose(ours.points, np.array(points), rtol=1e-10, atol=1e-12)
