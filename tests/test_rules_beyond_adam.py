"""The rules beyond Adam (NAdam, RAdam, Adafactor, Muon, Lion, Schedule-Free AdamW) against their references.

References nobody here wrote: torch.optim.NAdam / RAdam / Adafactor / Muon, ``lion_pytorch.Lion``,
``schedulefree.AdamWScheduleFree``, and closed forms (Lion's step size, Schedule-Free's average, Muon's
singular values). Each rule runs on its own (a pure function, torch backend, float64) against the
reference optimizer stepping the same tensors with the same gradients.
"""

import lion_pytorch
import numpy as np
import pytest
import schedulefree
import torch

from course_lib import rules

STEPS = 150
MUON_STEPS = 40  # torch's bfloat16 matrix products are slow on CPUs without bfloat16 instructions
TOLERANCE = 1e-10
SHAPES = [(5, 3), (4,), (3, 6), (2, 3, 4), ()]  # matrices both ways, a vector, a 3-D tensor, a scalar
MATRICES = [(3, 6), (4, 4)]  # Muon: matrices only (tall ones in their own, shorter test: see below)


def _gradient(param, t):
    """A gradient field that changes with the step, so that every state entry matters."""
    return torch.sin(3 * param) + 0.1 * t * torch.cos(param) + param


def _starts(shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, dtype=torch.float64, generator=generator) for shape in shapes]


def _run_reference(make, shapes, steps=STEPS):
    params = [torch.nn.Parameter(start) for start in _starts(shapes)]
    optimizer = make(params)
    if hasattr(optimizer, "train"):
        optimizer.train()
    for t in range(steps):
        for param in params:
            param.grad = _gradient(param.detach(), t)
        optimizer.step()
    return params, optimizer


def _run_rule(rule, shapes, steps=STEPS):
    params = _starts(shapes)
    states = [rule.init(param) for param in params]
    for t in range(steps):
        for i, param in enumerate(params):
            params[i], states[i] = rule.update(param, _gradient(param, t), states[i])
    return params, states


def _worst(ours, theirs):
    return max((torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)).abs().max().item()
               for a, b in zip(ours, theirs))


TORCH_CASES = [
    ("nadam", torch.optim.NAdam, dict(lr=0.01)),
    ("nadam", torch.optim.NAdam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, momentum_decay=0.01)),
    ("nadam", torch.optim.NAdam, dict(lr=0.01, weight_decay=0.1)),
    ("nadam", torch.optim.NAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("radam", torch.optim.RAdam, dict(lr=0.01)),
    ("radam", torch.optim.RAdam, dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6)),  # ρ_t > 5 from step 2 on
    ("radam", torch.optim.RAdam, dict(lr=0.01, weight_decay=0.1)),
    ("radam", torch.optim.RAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("adafactor", torch.optim.Adafactor, dict(lr=0.01)),
    ("adafactor", torch.optim.Adafactor, dict(lr=0.5, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0)),
    ("adafactor", torch.optim.Adafactor, dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("muon", torch.optim.Muon, dict(lr=0.02)),
    ("muon", torch.optim.Muon, dict(lr=0.02, momentum=0.9, nesterov=False, weight_decay=0.0)),
    ("muon", torch.optim.Muon, dict(lr=0.02, adjust_lr_fn="match_rms_adamw", ns_steps=3, eps=1e-5)),
    ("muon", torch.optim.Muon, dict(lr=0.02, adjust_lr_fn="original", ns_coefficients=(2.0, -1.5, 0.5))),
]


def _case_id(case):
    name, _, kwargs = case
    return f"{name}-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("name, reference, kwargs", TORCH_CASES, ids=[_case_id(c) for c in TORCH_CASES])
def test_rule_equals_torch_optim_in_float64(name, reference, kwargs):
    shapes, steps = (MATRICES, MUON_STEPS) if name == "muon" else (SHAPES, STEPS)
    theirs, optimizer = _run_reference(lambda params: reference(params, **kwargs), shapes, steps)
    ours, states = _run_rule(rules.RULES[name](**kwargs), shapes, steps)
    # Muon rounds its update to bfloat16 inside. The rule computes that bfloat16 update from the same float64
    # momentum with torch's very operations (same kernels, same memory layouts), so the bfloat16 numbers are
    # identical and the two agree to float64 rounding; an implementation that ordered the bfloat16 arithmetic
    # differently would agree only to about 2⁻⁸ of the update per step (test_muon_tall_matrices_...).
    assert _worst(ours, theirs) < TOLERANCE
    assert _worst(ours, _starts(shapes)) > 1e-2  # the parameters really moved
    for param, state in zip(theirs, states):  # same state, under torch's names
        reference_state = optimizer.state[param]
        assert set(state) == set(reference_state)
        for key, value in reference_state.items():
            assert _worst([state[key]], [value]) < 1e-9, key


def test_muon_tall_matrices_equal_torch_and_a_bfloat16_rounding_matters():
    """Tall matrices are transposed inside (torch's bfloat16 product of that view is slow on CPUs: a few steps).

    Also the tolerance a re-implementation would need: one bfloat16 rounding of the update (2⁻⁸ relative)
    changes θ by up to η·s·2⁻⁸·max|O| per step, far above 1e-10: so equality to 1e-10 means the same bfloat16 numbers.
    """
    shapes, kwargs = [(5, 2), (4, 3)], dict(lr=0.02, momentum=0.9)
    theirs, _ = _run_reference(lambda params: torch.optim.Muon(params, **kwargs), shapes, steps=12)
    ours, _ = _run_rule(rules.muon(**kwargs), shapes, steps=12)
    assert _worst(ours, theirs) < TOLERANCE
    one_rounding = 0.02 * rules.muon_lr_ratio((5, 2)) * 2.0**-8 * 0.5
    assert one_rounding > 1e5 * TOLERANCE


LION_CASES = [
    dict(),
    dict(lr=1e-3, betas=(0.95, 0.98)),
    dict(lr=1e-3, weight_decay=0.1),
    dict(lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True),
]


@pytest.mark.parametrize("kwargs", LION_CASES, ids=[str(k) for k in LION_CASES])
def test_lion_equals_lion_pytorch(kwargs):
    theirs, optimizer = _run_reference(lambda params: lion_pytorch.Lion(params, **kwargs), SHAPES)
    ours, states = _run_rule(rules.lion(**kwargs), SHAPES)
    assert _worst(ours, theirs) < TOLERANCE
    assert _worst(ours, _starts(SHAPES)) > 1e-3
    for param, state in zip(theirs, states):
        assert _worst([state["exp_avg"]], [optimizer.state[param]["exp_avg"]]) < TOLERANCE


def test_lion_decoupled_decay_divides_by_the_initial_lr_as_lion_pytorch_does():
    """lion-pytorch divides λ by the lr the optimizer was built with, also for a group with its own lr."""
    params = [torch.nn.Parameter(start) for start in _starts([(4,), (3,)])]
    optimizer = lion_pytorch.Lion([{"params": params[:1]}, {"params": params[1:], "lr": 3e-3}], lr=1e-3,
                                  weight_decay=0.5, decoupled_weight_decay=True)
    ours = _starts([(4,), (3,)])
    group_rules = [rules.lion(lr=1e-3, weight_decay=0.5, decoupled_weight_decay=True, init_lr=1e-3),
                   rules.lion(lr=3e-3, weight_decay=0.5, decoupled_weight_decay=True, init_lr=1e-3)]
    states = [rule.init(p) for rule, p in zip(group_rules, ours)]
    for t in range(50):
        for param in params:
            param.grad = _gradient(param.detach(), t)
        optimizer.step()
        for i, rule in enumerate(group_rules):
            ours[i], states[i] = rule.update(ours[i], _gradient(ours[i], t), states[i])
    assert _worst(ours, params) < TOLERANCE


SCHEDULE_FREE_CASES = [
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, warmup_steps=20),
    dict(lr=0.01, weight_decay=0.05, r=0.5, weight_lr_power=1.0),
    dict(lr=0.02, warmup_steps=7, weight_lr_power=0.0),
]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("kwargs", SCHEDULE_FREE_CASES, ids=[str(k) for k in SCHEDULE_FREE_CASES])
def test_schedule_free_equals_schedulefree_in_train_and_eval_mode(kwargs, foreach):
    theirs, optimizer = _run_reference(
        lambda params: schedulefree.AdamWScheduleFree(params, foreach=foreach, **kwargs), SHAPES)
    rule = rules.schedule_free_adamw(**kwargs)
    ours, states = _run_rule(rule, SHAPES)
    assert _worst(ours, theirs) < TOLERANCE  # y, the train-mode parameters
    group = optimizer.param_groups[0]
    for param, state in zip(theirs, states):
        assert _worst([state["z"], state["exp_avg_sq"]],
                      [optimizer.state[param]["z"], optimizer.state[param]["exp_avg_sq"]]) < TOLERANCE
        assert state["k"] == group["k"] == STEPS
        assert state["weight_sum"] == pytest.approx(group["weight_sum"], rel=1e-14)
        assert state["lr_max"] == group["lr_max"]
    optimizer.eval()  # the package moves its parameters to x ...
    xs = [rules.schedule_free_eval(y, state, **rule.hyperparams) for y, state in zip(ours, states)]
    assert _worst(xs, theirs) < TOLERANCE  # ... and so does the rule
    assert _worst(xs, ours) > 1e-3  # x and y really differ
    optimizer.train()
    ys = [rules.schedule_free_train(x, state, **rule.hyperparams) for x, state in zip(xs, states)]
    assert _worst(ys, theirs) < TOLERANCE
    assert _worst(ys, ours) < TOLERANCE


# ---- closed forms ------------------------------------------------------------------------------------------------
def test_schedule_free_x_is_the_average_of_the_z_sequence():
    """With r = 0, no warm-up and a constant lr, c_t = 1/t: x_t is the plain mean of z_1 ... z_t."""
    rule = rules.schedule_free_adamw(lr=0.05, betas=(0.9, 0.999))
    y = np.array([1.0, -2.0, 0.5])
    state = rule.init(y)
    zs = []
    for t in range(40):
        y, state = rule.update(y, np.sin(3 * y) + y + 0.1 * t, state)
        zs.append(state["z"])
        x = rules.schedule_free_eval(y, state, **rule.hyperparams)
        np.testing.assert_allclose(x, np.mean(zs, axis=0), rtol=0, atol=1e-12)
    # and y is the interpolation (1 − β₁) z + β₁ x
    np.testing.assert_allclose(y, 0.1 * state["z"] + 0.9 * x, rtol=0, atol=1e-12)


def test_lion_moves_every_coordinate_by_exactly_lr():
    rule = rules.lion(lr=0.01)
    x = np.array([1.0, -3.0, 0.25, 2.0])
    state = rule.init(x)
    for t in range(20):
        new_x, state = rule.update(x, np.array([1e-6, -1e3, 5.0, 0.0]) * (1 + t), state)
        steps = np.abs(new_x - x)
        assert np.all((np.abs(steps - 0.01) < 1e-15) | (steps == 0.0))
        x = new_x
    assert steps[0] == pytest.approx(0.01) and steps[3] == 0.0  # a zero gradient (and momentum) does not move


def test_newton_schulz_sets_every_singular_value_near_one_in_bfloat16():
    """The docstring's claim: σ/‖M‖_F ≥ 0.002 ends in [0.68, 1.21] (bfloat16 widens it a little); smaller σ do not."""
    generator = torch.Generator().manual_seed(3)
    u, _ = torch.linalg.qr(torch.randn(7, 7, dtype=torch.float64, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(12, 7, dtype=torch.float64, generator=generator))
    sigma = torch.tensor([1.0, 0.5, 0.2, 0.1, 0.03, 0.01, 0.003], dtype=torch.float64)
    matrix = (u * sigma) @ v.T  # U S Vᵀ, singular values spread over two and a half decades
    assert (sigma / sigma.norm()).min() > 0.002
    orthogonal = rules.newton_schulz_orthogonalize(matrix)
    assert orthogonal.dtype == torch.bfloat16 and orthogonal.shape == (7, 12)
    singular = torch.linalg.svdvals(orthogonal.double())
    assert singular.min() > 0.65 and singular.max() < 1.23, singular
    # the singular vectors are the input's: O ≈ U S' Vᵀ with S' = diag(Uᵀ O V) nearly all the matrix
    core = u.T @ orthogonal.double() @ v
    assert (core - torch.diag(torch.diagonal(core))).abs().max() < 0.02
    tiny = rules.newton_schulz_orthogonalize((u * torch.tensor([1.0] * 6 + [1e-4], dtype=torch.float64)) @ v.T)
    assert torch.linalg.svdvals(tiny.double()).min() < 0.3  # σ/‖M‖_F ≈ 4e-5: multiplied by about 490 at most


def test_newton_schulz_in_float64_is_within_bfloat16_precision_of_torch():
    """The cast: the same iteration without it differs only by bfloat16's rounding (about 1 %)."""
    generator = torch.Generator().manual_seed(4)
    matrix = torch.randn(6, 9, dtype=torch.float64, generator=generator)
    x = matrix / matrix.norm()
    a, b, c = rules.MUON_NS_COEFFICIENTS
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    difference = (rules.newton_schulz_orthogonalize(matrix).double() - x).abs().max().item()
    assert 1e-4 < difference < 0.05


def test_adafactor_keeps_m_plus_n_numbers_for_an_m_by_n_matrix():
    rule = rules.adafactor()
    state = rule.init(np.zeros((30, 20)))
    assert state["row_var"].shape == (30, 1) and state["col_var"].shape == (1, 20)
    assert "variance" not in state
    assert rule.init(np.zeros(7))["variance"].shape == (7,)


def test_radam_takes_momentum_steps_while_rho_is_at_most_five():
    """β₂ = 0.999: ρ_1..ρ_5 ≤ 5, so the first five steps are θ − η m̂_t whatever v_t is; the sixth is rectified."""
    rule = rules.radam(lr=0.1)
    x = np.array([2.0, -1.0])
    state = rule.init(x)
    grads = [np.array([3.0, -0.5]) * (1 + t) for t in range(6)]
    m = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * g
        new_x, state = rule.update(x, g, state)
        if t <= 5:
            np.testing.assert_allclose(new_x, x - 0.1 * m / (1 - 0.9**t), rtol=1e-14)
        else:
            assert not np.allclose(new_x, x - 0.1 * m / (1 - 0.9**t), rtol=1e-3)
        x = new_x


# ---- one rule, two backends ------------------------------------------------------------------------------------
BACKEND_CASES = [
    ("nadam", dict(lr=0.01, weight_decay=0.1), [(6,), (3, 2)]),
    ("radam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1), [(6,), (3, 2)]),
    ("adafactor", dict(lr=0.05, weight_decay=0.01), [(6,), (3, 4), (2, 3, 4)]),
    ("muon", dict(lr=0.02), [(5, 3), (3, 4)]),
    ("muon", dict(lr=0.02, nesterov=False, adjust_lr_fn="match_rms_adamw"), [(4, 4)]),
    ("lion", dict(lr=0.01, weight_decay=0.1), [(6,), (3, 2)]),
    ("schedule_free_adamw", dict(lr=0.01, warmup_steps=5, weight_decay=0.01), [(6,), (3, 2)]),
]


@pytest.mark.parametrize("name, kwargs, shapes", BACKEND_CASES, ids=[c[0] for c in BACKEND_CASES])
def test_one_rule_two_backends(name, kwargs, shapes):
    """The same rule function on NumPy arrays and torch tensors gives the same numbers."""
    rule = rules.RULES[name](**kwargs)
    rng = np.random.default_rng(1)
    for shape in shapes:
        x_np = rng.normal(size=shape)
        x_t = torch.tensor(x_np)
        s_np, s_t = rule.init(x_np), rule.init(x_t)
        for _ in range(20 if name == "muon" else 60):
            g = np.sin(3 * x_np) + rng.normal(size=shape)
            x_np, s_np = rule.update(x_np, g, s_np)
            x_t, s_t = rule.update(x_t, torch.tensor(g), s_t)
        assert isinstance(x_t, torch.Tensor) and isinstance(x_np, np.ndarray)
        np.testing.assert_allclose(x_t.numpy(), x_np, rtol=0, atol=1e-12)
        assert set(s_np) == set(s_t)


@pytest.mark.parametrize("name, kwargs, shapes", BACKEND_CASES, ids=[c[0] for c in BACKEND_CASES])
def test_rules_are_pure(name, kwargs, shapes):
    rule = rules.RULES[name](**kwargs)
    x = np.linspace(-1, 1, int(np.prod(shapes[-1]))).reshape(shapes[-1])
    state = rule.init(x)
    state, _ = rule.update(x, np.cos(x), state)[1], None
    frozen_x = x.copy()
    frozen = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    rule.update(x, np.cos(x), state)
    np.testing.assert_array_equal(x, frozen_x)
    for key, value in frozen.items():
        np.testing.assert_array_equal(state[key], value)


# ---- a leading batch axis: one configuration per row ---------------------------------------------------------------
ELEMENTWISE_BATCHES = [
    ("nadam", "lr", [1e-3, 1e-2, 1e-1], dict(betas=(np.array([[0.9], [0.8], [0.5]]), 0.999))),
    ("radam", "lr", [1e-3, 1e-2, 1e-1], dict(betas=(0.9, np.array([[0.999], [0.9], [0.5]])))),
    ("lion", "lr", [1e-3, 1e-2, 1e-1], dict(weight_decay=0.1)),
    ("schedule_free_adamw", "lr", [1e-3, 1e-2, 1e-1], dict(warmup_steps=5, weight_decay=0.01)),
]


@pytest.mark.parametrize("name, key, values, other", ELEMENTWISE_BATCHES, ids=[c[0] for c in ELEMENTWISE_BATCHES])
def test_array_hyperparameters_run_one_configuration_per_row(name, key, values, other):
    batched = rules.RULES[name](**{key: np.array(values)[:, None]}, **other)
    x = np.tile([1.0, -1.0], (len(values), 1))
    state = batched.init(x)
    singles = []
    for i, value in enumerate(values):
        row_other = {k: (tuple(np.asarray(b).ravel()[i] if np.ndim(b) else b for b in v) if k == "betas" else v)
                     for k, v in other.items()}
        rule = rules.RULES[name](**{key: value}, **row_other)
        singles.append([x[i], rule, rule.init(x[i])])
    for step in range(30):
        g = np.array([2.0, 0.5]) * np.sin(1.0 + step)
        x, state = batched.update(x, g, state)
        for single in singles:
            single[0], single[2] = single[1].update(single[0], g, single[2])
    for i, (row, _, _) in enumerate(singles):
        np.testing.assert_allclose(x[i], row, rtol=1e-13, atol=1e-15)
    assert np.ptp(x[:, 0]) > 1e-3  # the rows really differ


def test_radam_rows_take_their_own_branch():
    """An array of β₂: a row with ρ_t ≤ 5 takes the momentum step while another is already rectified."""
    beta2 = np.array([[0.999], [0.5]])
    rule = rules.radam(lr=0.1, betas=(0.9, beta2))
    x = np.ones((2, 3))
    state = rule.init(x)
    for t in range(3):
        x, state = rule.update(x, np.array([1.0, -2.0, 0.5]) * (t + 1), state)
    for i in range(2):
        single = rules.radam(lr=0.1, betas=(0.9, float(beta2[i, 0])))
        y, s = np.ones(3), single.init(np.ones(3))
        for t in range(3):
            y, s = single.update(y, np.array([1.0, -2.0, 0.5]) * (t + 1), s)
        np.testing.assert_allclose(x[i], y, rtol=1e-14)


@pytest.mark.parametrize("shape", [(4,), (3, 5)])
def test_adafactor_batch_axes_runs_each_row_on_its_own(shape):
    lrs = np.array([1e-2, 1e-1, 0.5]).reshape((3,) + (1,) * len(shape))
    batched = rules.adafactor(lr=lrs, batch_axes=1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3,) + shape) * np.array([1.0, 10.0, 0.1]).reshape(lrs.shape)
    state = batched.init(x)
    singles = [[x[i], rules.adafactor(lr=float(lrs.ravel()[i]))] for i in range(3)]
    for single in singles:
        single.append(single[1].init(single[0]))
    for step in range(25):
        g = np.sin(x + step)
        x, state = batched.update(x, g, state)
        for single in singles:
            single[0], single[2] = single[1].update(single[0], np.sin(single[0] + step), single[2])
    for i, (row, _, _) in enumerate(singles):
        np.testing.assert_allclose(x[i], row, rtol=1e-12, atol=1e-14)


def test_adafactor_without_batch_axes_treats_the_array_as_one_parameter_like_torch():
    """(B, n) with batch_axes=0 is one B × n matrix, factored, as torch.optim.Adafactor treats such a tensor."""
    theirs, _ = _run_reference(lambda params: torch.optim.Adafactor(params, lr=0.05), [(3, 4)], steps=20)
    ours, states = _run_rule(rules.adafactor(lr=0.05), [(3, 4)], steps=20)
    assert _worst(ours, theirs) < TOLERANCE and states[0]["row_var"].shape == (3, 1)


def test_muon_on_a_stack_of_matrices_runs_each_matrix_on_its_own():
    rule = rules.muon(lr=np.array([0.01, 0.05]).reshape(2, 1, 1))
    rng = np.random.default_rng(5)
    stack = rng.normal(size=(2, 4, 3))
    state = rule.init(stack)
    singles = [[stack[i], rules.muon(lr=lr)] for i, lr in enumerate([0.01, 0.05])]
    for single in singles:
        single.append(single[1].init(single[0]))
    for _ in range(10):
        stack, state = rule.update(stack, np.sin(stack), state)
        for single in singles:
            single[0], single[2] = single[1].update(single[0], np.sin(single[0]), single[2])
    for i, (matrix, _, _) in enumerate(singles):
        np.testing.assert_array_equal(stack[i], matrix)


def test_muon_refuses_vectors_as_torch_does():
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        rules.muon().init(np.zeros(3))
    with pytest.raises(ValueError, match="2D matrix"):
        rules.muon().update(np.zeros(3), np.ones(3), {"momentum_buffer": np.zeros(3)})


# ---- hyperparameter checks: torch's messages (optim_db's error inputs), ValueError where the packages assert ------
TORCH_ERRORS = [  # (factory, torch class, kwargs, torch's message): the construction errors of optim_db's error inputs
    ("nadam", torch.optim.NAdam, dict(lr=1e-2, betas=(1.0, 0.0)), "Invalid beta parameter at index 0: 1.0"),
    ("nadam", torch.optim.NAdam, dict(lr=1e-2, momentum_decay=-0.2), "Invalid momentum_decay value: -0.2"),
    ("nadam", torch.optim.NAdam, dict(lr=-1e-2), "Invalid learning rate: -0.01"),
    ("nadam", torch.optim.NAdam, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("nadam", torch.optim.NAdam, dict(lr=torch.tensor([1e-3, 1e-3])), "Tensor lr must be 1-element"),
    ("radam", torch.optim.RAdam, dict(lr=1e-2, betas=(1.0, 0.0)), "Invalid beta parameter at index 0: 1.0"),
    ("radam", torch.optim.RAdam, dict(lr=1e-2, weight_decay=-1), "Invalid weight_decay value: -1"),
    ("radam", torch.optim.RAdam, dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    ("radam", torch.optim.RAdam, dict(lr=torch.tensor([1e-3, 1e-3])), "Tensor lr must be 1-element"),
    ("adafactor", torch.optim.Adafactor, dict(eps=(-1e-30, 1e-3)), "epsilon1 should be >= 0"),
    ("adafactor", torch.optim.Adafactor, dict(eps=(None, -1e-3)), "epsilon2 should be >= 0"),
    ("adafactor", torch.optim.Adafactor, dict(d=0.0), "Clipping threshold d should be >= 1"),
    ("adafactor", torch.optim.Adafactor, dict(beta2_decay=0.8), "beta2_decay should be <= 0"),
    ("adafactor", torch.optim.Adafactor, dict(lr=-1.0), "Learning rate should be >= 0"),
    ("adafactor", torch.optim.Adafactor, dict(weight_decay=-1.0), "weight_decay should be >= 0"),
    ("adafactor", torch.optim.Adafactor, dict(lr=torch.tensor([1e-3, 1e-3])), "Tensor lr must be 1-element"),
    ("muon", torch.optim.Muon, dict(adjust_lr_fn="arbitrary"),
     "Adjust learning rate function arbitrary is not supported"),
    ("muon", torch.optim.Muon, dict(lr=-1.0), "Learning rate should be >= 0"),
    ("muon", torch.optim.Muon, dict(momentum=-0.1), "momentum should be >= 0"),
    ("muon", torch.optim.Muon, dict(weight_decay=-0.1), "weight decay should be >= 0"),
    ("muon", torch.optim.Muon, dict(lr=torch.tensor([1e-3, 1e-3])), "Tensor lr must be 1-element"),
]


@pytest.mark.parametrize("name, reference, kwargs, message", TORCH_ERRORS,
                         ids=[f"{e[0]}-{e[3][:30]}" for e in TORCH_ERRORS])
def test_factories_raise_torchs_errors(name, reference, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as ours:
        rules.RULES[name](**kwargs)
    with pytest.raises(ValueError) as theirs:
        reference([torch.nn.Parameter(torch.zeros(2, 2))], **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_muon_checks_newton_schulz_options_at_construction_with_torchs_messages():
    """torch checks these at the first step (in its Newton–Schulz function); the factory checks them at once."""
    with pytest.raises(ValueError, match="Number of steps must be less than 100"):
        rules.muon(ns_steps=100)
    with pytest.raises(ValueError, match="Coefficients must be a tuple of exactly 3 values"):
        rules.muon(ns_coefficients=(1.0, 2.0))
    for kwargs, message in [(dict(ns_steps=100), "Number of steps"),
                            (dict(ns_coefficients=(1.0, 2.0)), "Coefficients")]:
        param = torch.nn.Parameter(torch.ones(2, 2))
        optimizer = torch.optim.Muon([param], **kwargs)
        param.grad = torch.ones(2, 2)
        with pytest.raises(ValueError, match=message):
            optimizer.step()


PACKAGE_ASSERTS = [  # what lion-pytorch asserts, refused here with a ValueError naming the parameter
    (dict(lr=-1e-4), "learning rate"),
    (dict(betas=(1.5, 0.99)), "beta parameter at index 0"),
    (dict(betas=(0.9, -0.1)), "beta parameter at index 1"),
]


@pytest.mark.parametrize("kwargs, words", PACKAGE_ASSERTS, ids=[w + str(k) for k, w in PACKAGE_ASSERTS])
def test_lion_refuses_what_lion_pytorch_asserts(kwargs, words):
    with pytest.raises(AssertionError):
        lion_pytorch.Lion([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    with pytest.raises(ValueError, match=words):
        rules.lion(**kwargs)


def test_the_lion_rule_takes_lr_zero_as_a_step_of_zero():
    """lion-pytorch refuses lr = 0 only when built (optim.Lion too); a schedule may set it later."""
    rule = rules.lion(lr=0.0, weight_decay=0.1)
    theta = np.array([1.0, -2.0])
    state = rule.init(theta)
    new_theta, _ = rule.update(theta, np.array([0.5, 0.5]), state)
    np.testing.assert_array_equal(new_theta, theta)


def test_lion_accepts_the_edges_lion_pytorch_accepts():
    for betas in [(0.0, 1.0), (1.0, 0.0)]:
        lion_pytorch.Lion([torch.nn.Parameter(torch.zeros(2))], betas=betas)
        rules.lion(betas=betas)


@pytest.mark.parametrize("kwargs, words", [
    (dict(lr=-0.1), "learning rate"),
    (dict(betas=(0.0, 0.999)), "beta parameter at index 0"),
    (dict(betas=(0.9, 1.0)), "beta parameter at index 1"),
    (dict(eps=-1e-8), "epsilon"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(warmup_steps=-1), "warmup_steps"),
    (dict(r=-1.0), "r value"),
    (dict(weight_lr_power=-2.0), "weight_lr_power"),
])
def test_schedule_free_checks_what_the_package_leaves_unchecked(kwargs, words):
    with pytest.raises(ValueError, match=words):
        rules.schedule_free_adamw(**kwargs)


def test_schedule_free_beta1_zero_is_refused_because_the_package_cannot_evaluate_it():
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = schedulefree.AdamWScheduleFree([param], betas=(0.0, 0.999))
    optimizer.train()
    param.grad = torch.ones(2)
    optimizer.step()
    with pytest.raises(ZeroDivisionError):
        optimizer.eval()
    with pytest.raises(ValueError, match="beta parameter at index 0"):
        rules.schedule_free_adamw(betas=(0.0, 0.999))


def test_rule_names_and_with_options():
    assert [rules.RULES[n]().name for n in ("nadam", "radam", "adafactor", "muon", "lion", "schedule_free_adamw")] == [
        "nadam", "radam", "adafactor", "muon", "lion", "schedule_free"]
    changed = rules.schedule_free_adamw(lr=0.1).with_options(warmup_steps=10)
    assert changed.name == "schedule_free" and changed.hyperparams["warmup_steps"] == 10
    assert rules.muon().with_options(lr=0.5).hyperparams["lr"] == 0.5
