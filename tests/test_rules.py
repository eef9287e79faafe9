"""course_lib.rules against closed forms, the Adam paper, and the torch backend."""

import inspect

import numpy as np
import pytest
import torch
from optim_db import OPTIM_DB

from course_lib import methods, rules


def paper_adam(theta, grads, alpha=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Kingma & Ba (2015), Algorithm 1, written literally."""
    m = np.zeros_like(theta)  # Initialize 1st moment vector
    v = np.zeros_like(theta)  # Initialize 2nd moment vector
    t = 0  # Initialize timestep
    for g in grads:
        t = t + 1
        m = beta1 * m + (1 - beta1) * g  # Update biased first moment estimate
        v = beta2 * v + (1 - beta2) * g**2  # Update biased second raw moment estimate
        m_hat = m / (1 - beta1**t)  # Compute bias-corrected first moment estimate
        v_hat = v / (1 - beta2**t)  # Compute bias-corrected second raw moment estimate
        theta = theta - alpha * m_hat / (np.sqrt(v_hat) + epsilon)  # Update parameters
    return theta


def test_adam_equals_the_papers_algorithm_1():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(300, 5)) * np.array([1e-3, 1e-1, 1, 10, 1e3])
    theta0 = rng.normal(size=5)
    rule = rules.adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    theta, state = theta0, rule.init(theta0)
    for g in grads:
        theta, state = rule.update(theta, g, state)
    expected = paper_adam(theta0, grads, alpha=0.01, beta1=0.8, beta2=0.99, epsilon=1e-6)
    np.testing.assert_allclose(theta, expected, rtol=0, atol=1e-12)
    assert state["step"] == 300


def test_adam_epsilon_sits_after_the_bias_corrected_root():
    # g = 1e-8 and eps = 1e-8: m_hat = g, sqrt(v_hat) = |g|, so the step is lr * g / (g + eps) = lr / 2.
    lr = 0.1
    rule = rules.adam(lr=lr, eps=1e-8)
    x = np.array([1.0])
    new_x, _ = rule.update(x, np.array([1e-8]), rule.init(x))
    assert (x - new_x)[0] == pytest.approx(lr / 2, rel=1e-12)
    # Had eps been added before the bias correction (to sqrt(v)), the step would be lr * g / (g + eps*sqrt(1-beta2)/...)
    # i.e. clearly not lr / 2: the check above distinguishes the two placements.


def test_adam_first_step_has_size_lr_whatever_the_gradient_scale():
    rule = rules.adam(lr=0.01)
    x = np.zeros(4)
    new_x, _ = rule.update(x, np.array([1e-3, -1.0, 50.0, -1e4]), rule.init(x))
    np.testing.assert_allclose(new_x, -0.01 * np.sign([1e-3, -1.0, 50.0, -1e4]), rtol=1e-4)


def test_rmsprop_first_step_is_about_ten_lr():
    rule = rules.rmsprop(lr=0.01, alpha=0.99)
    x = np.zeros(3)
    new_x, _ = rule.update(x, np.array([0.5, -2.0, 30.0]), rule.init(x))
    np.testing.assert_allclose(new_x, -0.01 * 10 * np.sign([0.5, -2.0, 30.0]), rtol=1e-6)


def test_adagrad_first_step_is_lr_times_sign():
    rule = rules.adagrad(lr=0.3)
    x = np.ones(2)
    new_x, _ = rule.update(x, np.array([4.0, -0.1]), rule.init(x))
    np.testing.assert_allclose(new_x, 1 - 0.3 * np.sign([4.0, -0.1]), rtol=1e-8)


@pytest.mark.parametrize("lr", [0.01, 0.1, 0.3, 0.5, 0.7, 0.95, 1.0, 1.1])
def test_gradient_descent_on_x_squared_matches_closed_form(lr):
    rule = rules.sgd(lr=lr)
    x, state = np.array([5.0]), {}
    for k in range(1, 60):
        x, state = rule.update(x, 2 * x, state)
        assert x[0] == pytest.approx(5.0 * (1 - 2 * lr) ** k, rel=1e-12, abs=1e-300)


def test_learning_rate_regimes_on_x_squared():
    def run(lr, steps=30):
        rule, x, xs = rules.sgd(lr=lr), np.array([5.0]), [5.0]
        for _ in range(steps):
            x, _ = rule.update(x, 2 * x, {})
            xs.append(x[0])
        return np.array(xs)

    monotone = run(0.1)
    assert np.all(np.diff(monotone) < 0) and np.all(monotone > 0)
    assert run(0.5)[1] == 0.0  # one step to the minimum
    oscillating = run(0.8)
    assert np.all(np.sign(oscillating[1:]) != np.sign(oscillating[:-1])) and abs(oscillating[-1]) < 1e-3
    assert np.allclose(np.abs(run(1.0)), 5.0)  # bounces between 5 and -5 forever
    assert abs(run(1.1)[-1]) > 5.0 * 1.2**29  # divergent: |x_k| = 5 * 1.2^k


def test_seed_example_gives_five_times_point_eight_to_the_hundred():
    rule, x, state = rules.sgd(lr=0.1), 5.0, {}
    for _ in range(100):
        x, state = rule.update(x, 2 * x, state)
    assert x == pytest.approx(5 * 0.8**100, rel=1e-12)


RULE_CASES = [
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.2)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("rmsprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("adamw", dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("name, kwargs", RULE_CASES)
def test_one_rule_two_backends(name, kwargs):
    """The same rule function on NumPy arrays and torch tensors gives the same numbers."""
    rule = rules.RULES[name](**kwargs)
    rng = np.random.default_rng(1)
    x_np = rng.normal(size=6)
    x_t = torch.tensor(x_np)
    s_np, s_t = rule.init(x_np), rule.init(x_t)
    for _ in range(50):
        g = rng.normal(size=6)
        x_np, s_np = rule.update(x_np, g, s_np)
        x_t, s_t = rule.update(x_t, torch.tensor(g), s_t)
    assert isinstance(x_t, torch.Tensor)
    np.testing.assert_allclose(x_t.numpy(), x_np, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, kwargs", RULE_CASES)
def test_rules_are_pure(name, kwargs):
    rule = rules.RULES[name](**kwargs)
    x = np.array([1.0, -2.0])
    state = rule.init(x)
    frozen_x, frozen_state = x.copy(), {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    rule.update(x, np.array([0.3, 0.4]), state)
    np.testing.assert_array_equal(x, frozen_x)
    for key, value in frozen_state.items():
        np.testing.assert_array_equal(state[key], value)


def test_array_hyperparameters_run_one_configuration_per_row():
    lrs = np.array([[0.01], [0.1], [0.3]])
    batched = rules.adam(lr=lrs)
    x = np.tile([1.0, -1.0], (3, 1))
    state = batched.init(x)
    singles = [(x[i], rules.adam(lr=float(lrs[i, 0]))) for i in range(3)]
    single_states = [r.init(p) for p, r in singles]
    for step in range(20):
        g = np.array([2.0, 0.5]) * (1 + step)
        x, state = batched.update(x, g, state)
        for i, (p, r) in enumerate(singles):
            p, single_states[i] = r.update(p, g, single_states[i])
            singles[i] = (p, r)
    for i, (p, _) in enumerate(singles):
        np.testing.assert_allclose(x[i], p, rtol=1e-14)


@pytest.mark.parametrize("factory, kwargs, words", [
    (rules.sgd, dict(lr=-1), "learning rate"),
    (rules.sgd, dict(lr=np.array([[0.1], [-0.1]])), "learning rate"),
    (rules.adam, dict(betas=(0.9,)), "betas"),
    (rules.adam, dict(betas=(0.9, 1.0)), "index 1"),
    (rules.rmsprop, dict(alpha=-1), "alpha"),
    (rules.adagrad, dict(eps=-1), "epsilon"),
])
def test_rule_factories_check_hyperparameters(factory, kwargs, words):
    with pytest.raises(ValueError, match=words):
        factory(**kwargs)


def test_rule_names_and_with_options():
    assert rules.sgd(lr=0.1).name == "gd"
    assert rules.sgd(lr=0.1, momentum=0.9).name == "momentum"
    assert rules.sgd(lr=0.1, momentum=0.9, nesterov=True).name == "nesterov"
    assert rules.adam(amsgrad=True).name == "amsgrad"
    assert rules.adamw().name == "adamw"
    assert rules.adamw().hyperparams["weight_decay"] == 0.01
    changed = rules.adamw(lr=0.1).with_options(lr=0.2)
    assert changed.name == "adamw" and changed.hyperparams["lr"] == 0.2
    assert rules.sgd(lr=0.1).with_options(momentum=0.9).name == "momentum"


def test_a_rule_carries_its_factory_and_colour_key():
    for name, factory in rules.RULES.items():
        rule = factory()
        assert rule.factory is factory or (name == "adamw" and rule.factory is rules.adam), name
        assert rule.color_key == rule.name  # every rule here has its own colour
        assert rule.with_options(lr=0.5).hyperparams["lr"] == 0.5
    made_by_hand = rules.Rule("halved", {}, lambda p, g, s: (p / 2, s), lambda p: {}, color_key="gd")
    assert made_by_hand.color_key == "gd" and made_by_hand.factory is None
    with pytest.raises(TypeError, match="no factory"):
        made_by_hand.with_options(lr=1.0)


def test_public_validation_helpers_give_torch_optims_errors():
    # The messages torch.optim.Adam raises (torch/optim/adam.py), for a rule written outside rules.py to reuse.
    for betas, index in (((1.0, 0.999), 0), ((0.9, -0.1), 1)):
        with pytest.raises(ValueError, match=f"Invalid beta parameter at index {index}") as ours:
            rules.check_betas(betas)
        with pytest.raises(ValueError) as theirs:
            torch.optim.Adam([torch.zeros(1, requires_grad=True)], betas=betas)
        assert str(ours.value) == str(theirs.value)
    for kwargs in ({"lr": -1.0}, {"weight_decay": -1.0}, {"eps": -1.0}):
        with pytest.raises(ValueError) as ours:
            rules.check_common_hyperparams(**{"lr": 1e-3, "weight_decay": 0.0, "eps": 1e-8, **kwargs})
        with pytest.raises(ValueError) as theirs:
            torch.optim.Adam([torch.zeros(1, requires_grad=True)], **kwargs)
        assert str(ours.value) == str(theirs.value)
    assert rules.check_betas((torch.tensor(0.5), np.float64(0.25))) == (0.5, 0.25)
    assert type(rules.check_betas((torch.tensor([0.5]), 0.25))[0]) is float


def test_as_number_and_the_numpy_torch_helpers():
    assert rules.as_number(torch.tensor([0.1], dtype=torch.float64)) == 0.1
    assert rules.as_number(torch.tensor(3)) == 3 and type(rules.as_number(torch.tensor(3))) is int
    assert rules.as_number((torch.tensor(0.5), 0.25)) == (0.5, 0.25)
    assert rules.as_number(np.float64(2.0)) == 2.0 and type(rules.as_number(np.array(2.0))) is float
    batch = np.array([0.1])  # an array of hyperparameters (batched runs) stays an array
    assert rules.as_number(batch) is batch
    x = np.array([4.0, 9.0])
    np.testing.assert_array_equal(rules.sqrt(x), np.sqrt(x))
    torch.testing.assert_close(rules.sqrt(torch.tensor(x)), torch.sqrt(torch.tensor(x)), rtol=0, atol=0)
    assert rules.zeros_like(torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    np.testing.assert_array_equal(rules.zeros_like(x), np.zeros(2))


SGD_OPTIONS = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.3),
               dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
               dict(lr=0.1, momentum=0.5, weight_decay=0.1, maximize=True), dict(lr=0.1, weight_decay=0.1)]


@pytest.mark.parametrize("kwargs", SGD_OPTIONS, ids=[str(sorted(k.items())) for k in SGD_OPTIONS])
def test_sgd_in_place_twin_equals_the_pure_rule_bit_for_bit(kwargs):
    """sgd_update_ (optim.SGD's per-tensor path) against sgd_update: five float32 steps, the first one included."""
    rule = rules.sgd(**kwargs)
    assert rule.update_in_place_fn is rules.sgd_update_
    generator = torch.Generator().manual_seed(4)
    theta = torch.randn(7, 3, generator=generator)
    pure_theta, pure_state = theta.clone(), rule.init(theta)
    in_place_theta, in_place_state = theta.clone(), {}  # torch.optim's state: no entry before the first step
    for _ in range(5):
        grad = torch.randn(7, 3, generator=generator)
        kept = grad.clone()
        pure_theta, pure_state = rule.update(pure_theta, grad, pure_state)
        assert rule.update_in_place_fn(in_place_theta, grad, in_place_state, **rule.hyperparams) is None
        assert torch.equal(grad, kept)  # the gradient is read, never written
        assert torch.equal(in_place_theta, pure_theta)
        assert {k: v for k, v in pure_state.items() if v is not None}.keys() == in_place_state.keys()
        for name, value in in_place_state.items():
            assert torch.equal(value, pure_state[name]), name


# ---- the classic rules against torch.optim and closed forms, at the rule level -----------------------------------
#: The torch.optim twins' option grids of the conformance registry (every option flipped somewhere).
CLASSIC = [(name, index) for name in ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW")
           for index in range(len(OPTIM_DB[name].grid))]


@pytest.mark.parametrize("name, index", CLASSIC, ids=[f"{n}-{i}" for n, i in CLASSIC])
def test_classic_rule_on_numpy_equals_torch_optim_step_by_step(name, index):
    """The rule on NumPy float64 arrays against torch.optim's class fed the same gradients: θ and the state, by
    torch's names, after every one of 25 steps (gradients over six decades, so that ε and the bias corrections
    show)."""
    kwargs = OPTIM_DB[name].grid[index]
    rule = getattr(rules, methods.get(OPTIM_DB[name].methods[0]).rule)(**kwargs)
    rng = np.random.default_rng(index)
    theta = rng.normal(size=(3, 4))
    grads = rng.normal(size=(25, 3, 4)) * np.array([1e-4, 1e-2, 1.0, 1e2])
    param = torch.nn.Parameter(torch.tensor(theta))
    reference = getattr(torch.optim, name)([param], **kwargs)
    state = rule.init(theta)
    for step, g in enumerate(grads, start=1):
        theta, state = rule.update(theta, g, state)
        param.grad = torch.tensor(g)
        reference.step()
        np.testing.assert_allclose(theta, param.detach().numpy(), rtol=1e-10, atol=1e-13, err_msg=f"step {step}")
        for key, value in reference.state[param].items():
            np.testing.assert_allclose(np.asarray(state[key], dtype=np.float64), value.numpy(), rtol=1e-10,
                                       atol=1e-13, err_msg=f"{key}, step {step}")


def test_decoupled_weight_decay_shrinks_theta_by_one_minus_lr_lambda_on_a_zero_gradient():
    """AdamW's decay acts on θ, not on the gradient: with g = 0 the moments stay 0, and θ_t = (1 − ηλ)^t θ_0 exactly;
    coupled (L2) decay would instead feed λθ into m and v and take Adam's normalised step of size η."""
    lr, decay = 0.1, 0.5
    for rule in (rules.adamw(lr=lr, weight_decay=decay), rules.adam(lr=lr, weight_decay=decay,
                                                                     decoupled_weight_decay=True)):
        theta, state = np.array([2.0, -1.0]), None
        state = rule.init(theta)
        for t in range(1, 11):
            theta, state = rule.update(theta, np.zeros(2), state)
            np.testing.assert_allclose(theta, np.array([2.0, -1.0]) * (1 - lr * decay) ** t, rtol=1e-14)
            assert np.all(state["exp_avg"] == 0) and np.all(state["exp_avg_sq"] == 0)


def test_maximize_negates_the_gradient_before_the_decay():
    """maximize ascends f: g ← −g, then the L2 term λθ is added (it still pulls θ towards 0). At θ = 4, g = 1,
    λ = 0.5: −g + λθ = 1, so SGD steps by −η and Adam's first step (of size η, ε = 0) by −η too."""
    for rule in (rules.sgd(lr=0.1, weight_decay=0.5, maximize=True),
                 rules.adam(lr=0.1, weight_decay=0.5, maximize=True, eps=0.0)):
        theta, _ = rule.update(np.array([4.0]), np.array([1.0]), rule.init(np.array([4.0])))
        assert theta[0] == pytest.approx(4.0 - 0.1, rel=1e-14), rule.name


@pytest.mark.parametrize("nesterov, dampening", [(False, 0.0), (False, 0.3), (True, 0.0)])
def test_sgd_momentum_on_a_constant_gradient_follows_its_closed_form(nesterov, dampening):
    """On a constant g: b_1 = g and b_t = β b_{t−1} + (1 − dampening) g, so b_t = g (β^{t−1} + (1 − d)(1 − β^{t−1})
    / (1 − β)); the step is η b_t, or η (g + β b_t) with Nesterov's look-ahead."""
    lr, beta, g = 0.01, 0.9, 2.0
    rule = rules.sgd(lr=lr, momentum=beta, dampening=dampening, nesterov=nesterov)
    theta, state = np.array([0.0]), rule.init(np.array([0.0]))
    for t in range(1, 30):
        before = theta[0]
        theta, state = rule.update(theta, np.array([g]), state)
        buffer = g * (beta ** (t - 1) + (1 - dampening) * (1 - beta ** (t - 1)) / (1 - beta))
        direction = g + beta * buffer if nesterov else buffer
        assert before - theta[0] == pytest.approx(lr * direction, rel=1e-12), t


def test_amsgrad_keeps_the_largest_v_and_bias_corrects_it():
    """A large gradient, then small ones: v_t^max stays at the largest v_t (the raw second moment, not v̂_t), and
    the step divides by √(v_t^max / (1 − β₂^t)) + ε, as torch.optim.Adam(amsgrad=True)."""
    beta1, beta2, lr = 0.9, 0.99, 0.01
    rule = rules.adam(lr=lr, betas=(beta1, beta2), amsgrad=True, eps=0.0)
    theta, state = np.array([0.0]), rule.init(np.array([0.0]))
    m = v = v_max = 0.0
    for t, g in enumerate([10.0, 0.1, 0.1, 0.1, 5.0, 0.1], start=1):
        before = theta[0]
        theta, state = rule.update(theta, np.array([g]), state)
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)
        assert state["max_exp_avg_sq"][0] == pytest.approx(v_max, rel=1e-13)
        expected = lr * (m / (1 - beta1**t)) / np.sqrt(v_max / (1 - beta2**t))
        assert before - theta[0] == pytest.approx(expected, rel=1e-12), t


def test_centered_rmsprop_divides_by_the_root_of_the_variance():
    """Centered RMSProp: r_t = √(v_t − ḡ_t²) + ε; on a constant gradient after one step, v_1 = (1−α)g² and
    ḡ_1 = (1−α)g, so the first step is η g / √((1−α)g² − (1−α)²g²) = η / √(α(1−α)) (for g > 0, ε = 0)."""
    alpha, lr = 0.9, 0.01
    rule = rules.rmsprop(lr=lr, alpha=alpha, centered=True, eps=0.0)
    theta, _ = rule.update(np.array([0.0]), np.array([3.0]), rule.init(np.array([0.0])))
    assert -theta[0] == pytest.approx(lr / np.sqrt(alpha * (1 - alpha)), rel=1e-12)


def test_adagrad_lr_decay_starts_at_the_first_step_with_the_full_lr():
    """η_t = η / (1 + (t − 1)·lr_decay): the first step uses η itself, the second η / (1 + lr_decay)."""
    rule = rules.adagrad(lr=0.5, lr_decay=1.0, eps=0.0)
    theta, state = np.array([0.0]), rule.init(np.array([0.0]))
    theta, state = rule.update(theta, np.array([1.0]), state)
    assert theta[0] == pytest.approx(-0.5, rel=1e-12)  # η g / √(g²)
    theta2, _ = rule.update(theta, np.array([1.0]), state)
    assert theta[0] - theta2[0] == pytest.approx(0.5 / 2 / np.sqrt(2.0), rel=1e-12)  # η/2 · g / √2



def test_adam_moments_are_torch_optims_moment_updates_and_bias_corrections():
    # torch.optim.Adam's for-loop (torch/optim/adam.py, _single_tensor_adam): the same kernels give the same bits
    generator = torch.Generator().manual_seed(0)
    m0, v0, g = (torch.randn(5, generator=generator) for _ in range(3))
    v0 = v0.abs()
    saved = m0.clone(), v0.clone()
    beta1, beta2, step = 0.8, 0.99, 7
    for lerp in (False, True):
        m, v, c1, c2 = rules.adam_moments(m0, v0, g, beta1, beta2, step, lerp=lerp)
        assert torch.equal(m, m0.clone().lerp_(g, 1 - beta1))
        assert torch.equal(v, v0.clone().mul_(beta2).addcmul_(g, g, value=1 - beta2))
        assert (c1, c2) == (1 - beta1**step, 1 - beta2**step)
        assert torch.equal(m0, saved[0]) and torch.equal(v0, saved[1])  # pure: the old moments are kept
    # NumPy: the Adam paper's Algorithm 1 as written, or torch's lerp kernel m + (1 − β₁)(g − m) with lerp=True;
    # the two round differently on some of 1000 numbers, so each form is checked bit for bit
    rng = np.random.default_rng(0)
    m0, v0, g = rng.normal(size=1000), rng.random(1000), rng.normal(size=1000)
    m, v, c1, c2 = rules.adam_moments(m0, v0, g, beta1, beta2, step)
    paper, lerped = beta1 * m0 + (1 - beta1) * g, m0 + (1 - beta1) * (g - m0)
    assert np.any(paper != lerped)
    np.testing.assert_array_equal(m, paper)
    np.testing.assert_allclose(v, beta2 * v0 + (1 - beta2) * g**2, rtol=1e-15, atol=0)
    m, _, _, _ = rules.adam_moments(m0, v0, g, beta1, beta2, step, lerp=True)
    np.testing.assert_array_equal(m, lerped)
    # from zero moments, the bias-corrected estimates of the first gradient are g and g²
    m, v, c1, c2 = rules.adam_moments(np.zeros(2), np.zeros(2), np.array([3.0, -2.0]), beta1, beta2, 1)
    np.testing.assert_allclose((m / c1, v / c2), ([3.0, -2.0], [9.0, 4.0]), rtol=1e-15)


def test_adam_denominator_is_torch_optims_and_makes_one_temporary():
    # torch.optim.Adam's for-loop: (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps); its foreach code:
    # _foreach_sqrt, then _foreach_div_ and _foreach_add_ into that result
    from course_lib.fast_paths import TensorList

    generator = torch.Generator().manual_seed(0)
    v = [torch.rand(n, generator=generator, dtype=torch.float32) for n in (5, 7)]
    c2, eps = 1 - 0.999**3, 1e-8
    single = rules.adam_denominator(v[0], c2, eps)
    assert torch.equal(single, (v[0].sqrt() / c2**0.5).add_(eps))
    sqrts = torch._foreach_sqrt(v)
    torch._foreach_div_(sqrts, c2**0.5)
    torch._foreach_add_(sqrts, eps)
    calls = []
    original = torch._foreach_sqrt

    def counting(tensors):
        out = original(tensors)
        calls.append(out)
        return out

    torch._foreach_sqrt = counting
    try:
        listed = rules.adam_denominator(TensorList(v), c2, eps)
    finally:
        torch._foreach_sqrt = original
    assert all(torch.equal(a, b) for a, b in zip(listed.tensors, sqrts))
    assert len(calls) == 1 and all(a is b for a, b in zip(listed.tensors, calls[0]))   # written into the sqrt
    # NumPy: the same arithmetic, out of place
    rng = np.random.default_rng(0)
    array = rng.random(100)
    np.testing.assert_array_equal(rules.adam_denominator(array, c2, eps), np.sqrt(array) / c2**0.5 + eps)


def test_defaults_live_only_in_the_factories():
    """One place for a rule's defaults: its factory (and the optim class's signature, checked against torch's); an
    update function takes every hyperparameter from the factory's Rule, so it declares none with a default."""
    factories = {methods.get(name).rule for name in methods.names()}
    checked = 0
    for factory_name in sorted(factories):
        rule = getattr(rules, factory_name)()
        keyword_only = [p for p in inspect.signature(rule.update_fn).parameters.values() if p.kind == p.KEYWORD_ONLY]
        with_default = [p.name for p in keyword_only if p.default is not inspect.Parameter.empty]
        assert not with_default, (
            f"{rule.update_fn.__name__} declares defaults {with_default}: keep them in {factory_name}")
        assert {p.name for p in keyword_only} == set(rule.hyperparams), factory_name
        checked += 1
    assert checked >= 14, checked
