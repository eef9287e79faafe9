"""course_lib.optim's AdEMAMix and SOAP against pytorch_optimizer's (version 4.1), and against their papers.

The reference classes, ``pytorch_optimizer.AdEMAMix`` and ``pytorch_optimizer.SOAP``: the registry's tests
(tests/test_optim_conformance.py) prove the same numbers in float64, state dicts that move both ways, the same
signatures and defaults; here, clear errors for what is refused, SOAP's refreshes, the rules on NumPy.
Where the reference differs from its paper, the paper's algorithm is written out
here from its equations and the course's option that follows the paper is compared with it: AdEMAMix's decoupled
weight decay (the paper's Algorithm 1) and SOAP's refresh of the eigenbases by a fresh eigendecomposition
(``eigenbasis_refresh="eigh"``; the reference refreshes them by one power iteration and a QR factorisation).

A third optimizer joins by a row in tests/optim_db.py (and rows in ``BAD_INPUTS`` here).
"""

import math

import numpy as np
import pytest
import pytorch_optimizer
import torch
from optim_db import train_steps

from course_lib import optim, rules

TOLERANCE = 1e-10
STEPS = 40

pytestmark = pytest.mark.usefixtures("one_thread")

#: Constructor arguments each class refuses (or the reference refuses too), with words of the error.
BAD_INPUTS = {
    "AdEMAMix": [
        (dict(lr=-1.0), "learning rate"),
        (dict(betas=(0.9, 0.999)), "three decay rates"),
        (dict(betas=(1.0, 0.999, 0.9999)), "beta parameter at index 0"),
        (dict(betas=(0.9, -0.1, 0.9999)), "beta parameter at index 1"),
        (dict(betas=(0.9, 0.999, 1.5)), "beta parameter at index 2"),
        (dict(alpha=-1.0), "alpha"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(eps=-1e-8), "eps"),
        (dict(t_alpha_beta3=0), "t_alpha_beta3"),  # the reference divides by it at the first step
        (dict(t_alpha_beta3=10, betas=(0.0, 0.999, 0.9999)), "log"),  # the reference: math domain error
        (dict(cautious=True), "cautious"),  # a reference option through **kwargs, not implemented here
        (dict(stable_adamw=True), "stable_adamw"),
        (dict(fused=True), "fused"),
        (dict(foreach="yes"), "foreach"),
    ],
    "SOAP": [
        (dict(lr=-1.0), "learning rate"),
        (dict(betas=(0.95,)), "pair"),
        (dict(betas=(1.0, 0.95)), "beta parameter at index 0"),
        (dict(shampoo_beta=-0.5), "shampoo_beta"),
        (dict(shampoo_beta=1.5), "shampoo_beta"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(precondition_frequency=0), "precondition_frequency"),
        (dict(precondition_frequency=2.5), "precondition_frequency"),
        (dict(max_precondition_dim=0), "max_precondition_dim"),
        (dict(eps=-1.0), "eps"),
        (dict(merge_dims=True), "merge_dims"),  # not implemented here
        (dict(data_format="nchw"), "data_format"),
        (dict(foreach=True), "foreach"),  # the reference ignores extra keywords silently; refused here
    ],
}


# ---- a small network, three param groups, an lr scheduler ----------------------------------------------------------
class _Network(torch.nn.Module):
    """A convolution (a 3-D weight, 3 × 1 × 3), then two linear layers (4 × 18 and 1 × 4), biases: float64."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv1d(1, 3, kernel_size=3)
        self.hidden = torch.nn.Linear(18, 4)
        self.out = torch.nn.Linear(4, 1)
        self.double()

    def forward(self, x):
        x = torch.tanh(self.conv(x.unsqueeze(1))).flatten(1)
        return self.out(torch.tanh(self.hidden(x)))


def _scheduler(optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + 0.05 * step))


def _max_difference(model_a, model_b):
    return max((a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters()))


def test_soap_refreshes_its_bases_and_leaves_long_axes_and_vectors_alone():
    """What the grid exercises: with max_precondition_dim=5 the 18 columns of the hidden layer keep the identity, and
    vectors get a factor only with precondition_1d; Q changes at the refresh steps only."""
    model = _Network()
    optimizer = optim.SOAP(model.parameters(), lr=0.01, precondition_frequency=3, max_precondition_dim=5)
    scheduler = _scheduler(optimizer)
    bases = []
    for step in range(1, 9):
        train_steps(model, optimizer, 1, scheduler=scheduler, start=step - 1)
        bases.append(optimizer.state[model.hidden.weight]["Q"][0].clone())
    state = optimizer.state[model.hidden.weight]
    assert [np.shape(f) for f in state["GG"]] == [(4, 4), (0,)] and state["Q"][1] == []
    assert optimizer.state[model.hidden.bias]["GG"] == [[]]  # a vector, precondition_1d=False
    changed = [step for step in range(2, 9) if not torch.equal(bases[step - 1], bases[step - 2])]
    assert changed == [4, 7]  # after the steps t with (t - 1) % 3 == 0


# ---- state dicts, both ways ----------------------------------------------------------------------------------------
# ---- signatures, defaults, errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kwargs, words", [(n, k, w) for n, bad in BAD_INPUTS.items() for k, w in bad],
                         ids=[f"{n}-{i}" for n, bad in BAD_INPUTS.items() for i in range(len(bad))])
def test_bad_inputs_raise_a_clear_value_error(name, kwargs, words):
    with pytest.raises(ValueError, match=words):
        getattr(optim, name)([torch.nn.Parameter(torch.zeros(3, 2))], **kwargs)
    if set(kwargs) & {"cautious", "stable_adamw", "data_format", "foreach"}:
        return  # constructor keywords, not hyperparameters of a param group
    with pytest.raises(ValueError, match=words):  # also in a param group added later
        getattr(optim, name)([torch.nn.Parameter(torch.zeros(3, 2))]).add_param_group(
            {"params": [torch.nn.Parameter(torch.zeros(2))], **kwargs})


def test_the_reference_also_fails_on_the_inputs_it_does_not_check_at_construction():
    """t_alpha_beta3 = 0 and β₁ = 0 with a schedule: the reference builds, then fails at its first step."""
    for kwargs, error in ((dict(t_alpha_beta3=0), ZeroDivisionError),
                          (dict(t_alpha_beta3=10, betas=(0.0, 0.999, 0.9999)), ValueError)):
        param = torch.nn.Parameter(torch.ones(2))
        reference = pytorch_optimizer.AdEMAMix([param], **kwargs)
        param.grad = torch.ones(2)
        with pytest.raises(error):
            reference.step()


def test_soap_rule_refuses_arrays_of_hyperparameters_and_scalars():
    with pytest.raises(ValueError, match="SOAP takes numbers, not arrays"):
        rules.soap(lr=np.array([[0.1], [0.01]]))
    with pytest.raises(ValueError, match="at least one axis"):
        rules.soap().init(np.float64(1.0))
    with pytest.raises(ValueError, match="eigenbasis_refresh"):
        rules.soap(eigenbasis_refresh="svd")


# ---- the papers' algorithms, written out here ----------------------------------------------------------------------
def _paper_ademamix(thetas, gradient, steps, lr, betas, alpha, T, eps, weight_decay):
    """Pagliardini et al. (2024), Algorithm 1, with its schedulers f_α and f_β₃ (section 3)."""
    beta1, beta2, beta3 = betas
    m1 = [np.zeros_like(t) for t in thetas]
    m2 = [np.zeros_like(t) for t in thetas]
    nu = [np.zeros_like(t) for t in thetas]
    for t in range(1, steps + 1):
        grads = gradient(thetas, t)
        alpha_t = min(t * alpha / T, alpha)
        beta3_t = min(math.exp(math.log(beta1) * math.log(beta3)
                               / ((1 - t / T) * math.log(beta3) + (t / T) * math.log(beta1))), beta3)
        new = []
        for i, (theta, g) in enumerate(zip(thetas, grads)):
            m1[i] = beta1 * m1[i] + (1 - beta1) * g
            m2[i] = beta3_t * m2[i] + (1 - beta3_t) * g
            nu[i] = beta2 * nu[i] + (1 - beta2) * g * g
            m1_hat, nu_hat = m1[i] / (1 - beta1**t), nu[i] / (1 - beta2**t)
            new.append(theta - lr * ((m1_hat + alpha_t * m2[i]) / (np.sqrt(nu_hat) + eps) + weight_decay * theta))
        thetas = new
    return thetas


def _quadratic_problem(shapes, seed=3):
    """f_t(W) = ½‖A_t W − B_t‖² with a fresh (A_t, B_t) per step t: a stochastic least-squares problem."""
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape) for shape in shapes]
    problems = {}

    def gradient(thetas, t):
        if t not in problems:
            problems[t] = [(rng.standard_normal((6, s[0])), rng.standard_normal((6, s[1]))) for s in shapes]
        return [a.T @ (a @ w - b) for w, (a, b) in zip(thetas, problems[t])]

    return starts, gradient


def test_ademamix_with_decoupled_weight_decay_is_the_papers_algorithm_1():
    """The paper decays the weights AdamW-style; with weight_decouple=True the class follows it, schedulers too."""
    shapes = [(4, 3), (3, 2)]
    starts, gradient = _quadratic_problem(shapes)
    hyper = dict(lr=0.01, betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=20, eps=1e-8, weight_decay=0.1)
    expected = _paper_ademamix(starts, gradient, STEPS, hyper["lr"], hyper["betas"], hyper["alpha"],
                               hyper["t_alpha_beta3"], hyper["eps"], hyper["weight_decay"])
    params = [torch.nn.Parameter(torch.tensor(s)) for s in starts]
    optimizer = optim.AdEMAMix(params, weight_decouple=True, **hyper)
    for t in range(1, STEPS + 1):
        for param, g in zip(params, gradient([p.detach().numpy() for p in params], t)):
            param.grad = torch.tensor(g)
        optimizer.step()
    worst = max(np.abs(p.detach().numpy() - e).max() for p, e in zip(params, expected))
    assert worst < TOLERANCE
    # and the reference's default (an L2 penalty in the gradient) is another algorithm
    coupled = [torch.nn.Parameter(torch.tensor(s)) for s in starts]
    optimizer = optim.AdEMAMix(coupled, **hyper)
    for t in range(1, STEPS + 1):
        for param, g in zip(coupled, gradient([p.detach().numpy() for p in coupled], t)):
            param.grad = torch.tensor(g)
        optimizer.step()
    assert max(np.abs(p.detach().numpy() - e).max() for p, e in zip(coupled, expected)) > 1e-4


def _paper_soap(W, gradient, steps, lr, betas, shampoo_beta, frequency, eps, weight_decay):
    """Vyas et al. (2024), Algorithm 3, one m × n layer, with Eigenvectors(L) a fresh eigendecomposition (eigenvalues
    decreasing), and the initialisation of the authors' code: the first gradient sets L, R and the bases, no step."""
    beta1, beta2 = betas

    def eigenvectors(P):
        values, vectors = np.linalg.eigh(P)
        return vectors[:, np.argsort(-values)]

    g = gradient([W], 1)[0]
    L, R = (1 - shampoo_beta) * g @ g.T, (1 - shampoo_beta) * g.T @ g
    QL, QR = eigenvectors(L), eigenvectors(R)
    M, V = np.zeros_like(W), np.zeros_like(W)
    for t in range(1, steps):  # Adam's steps, after the first gradient
        G = gradient([W], t + 1)[0]
        G_rot = QL.T @ G @ QR
        M = beta1 * M + (1 - beta1) * G
        M_rot = QL.T @ M @ QR
        V = beta2 * V + (1 - beta2) * G_rot**2
        N = QL @ (M_rot / (np.sqrt(V) + eps)) @ QR.T
        W = W - lr * math.sqrt(1 - beta2**t) / (1 - beta1**t) * N  # Adam's bias correction
        W = W * (1 - lr * weight_decay)
        L = shampoo_beta * L + (1 - shampoo_beta) * G @ G.T
        R = shampoo_beta * R + (1 - shampoo_beta) * G.T @ G
        if t % frequency == 0:
            QL, QR = eigenvectors(L), eigenvectors(R)
    return W


@pytest.mark.parametrize("frequency", [1, 3, 10])
def test_soap_eigh_refresh_is_the_papers_algorithm_3(frequency):
    """The rule with eigenbasis_refresh="eigh", on NumPy arrays, against the paper's algorithm written out."""
    starts, gradient = _quadratic_problem([(4, 4)], seed=frequency)  # square: no repeated zero eigenvalue at step 1
    hyper = dict(lr=0.02, betas=(0.9, 0.95), shampoo_beta=0.9, precondition_frequency=frequency, eps=1e-8,
                 weight_decay=0.05)
    expected = _paper_soap(starts[0], gradient, STEPS, hyper["lr"], hyper["betas"], hyper["shampoo_beta"], frequency,
                           hyper["eps"], hyper["weight_decay"])
    rule = rules.soap(eigenbasis_refresh="eigh", **hyper)
    W = starts[0]
    state = rule.init(W)
    for t in range(1, STEPS + 1):
        W, state = rule.update(W, gradient([W], t)[0], state)
        assert isinstance(W, np.ndarray)
    assert np.abs(W - expected).max() < TOLERANCE
    assert np.abs(W - starts[0]).max() > 1e-2
    # the reference's refresh (power iteration and QR) is another algorithm when the bases are refreshed
    rule_qr = rules.soap(**hyper)
    W_qr, state = starts[0], rule_qr.init(starts[0])
    for t in range(1, STEPS + 1):
        W_qr, state = rule_qr.update(W_qr, gradient([W_qr], t)[0], state)
    assert np.abs(W_qr - expected).max() > 1e-6


def test_soap_rule_runs_on_small_numpy_matrices():
    """What a notebook does: SOAP on a 2 × 2 and a 3 × 2 least-squares problem, NumPy float64, the QR refresh on."""
    rng = np.random.default_rng(0)
    for shape in [(2, 2), (3, 2)]:
        A, W_star = rng.standard_normal((5, shape[0])), rng.standard_normal(shape)
        B = A @ W_star
        rule = rules.soap(lr=0.05, precondition_frequency=2, weight_decay=0.0)
        W, state = np.zeros(shape), rule.init(np.zeros(shape))
        loss = [0.5 * np.sum((A @ W - B) ** 2)]
        for _ in range(200):
            W, state = rule.update(W, A.T @ (A @ W - B), state)
            loss.append(0.5 * np.sum((A @ W - B) ** 2))
        assert W.dtype == np.float64 and [q.shape for q in state["Q"]] == [(shape[0],) * 2, (shape[1],) * 2]
        for Q in state["Q"]:
            np.testing.assert_allclose(Q.T @ Q, np.eye(len(Q)), atol=1e-6)  # orthogonal (QR in float32)
        assert loss[1] == loss[0] and loss[-1] < 1e-3 * loss[0]  # step 1 only sets up the bases; then it converges


def test_soap_on_numpy_with_the_qr_refresh_follows_the_reference_to_float32():
    """The QR refresh runs in float32 (as the reference's does): NumPy's LAPACK and torch's agree to float32 there."""
    shapes = [(4, 4), (3, 3)]
    starts, gradient = _quadratic_problem(shapes, seed=5)
    hyper = dict(lr=0.01, precondition_frequency=2, eps=1e-6)
    params = [torch.nn.Parameter(torch.tensor(s)) for s in starts]
    reference = pytorch_optimizer.SOAP(params, **hyper)
    rule = rules.soap(**hyper)
    xs = [s.copy() for s in starts]
    states = [rule.init(x) for x in xs]
    for t in range(1, STEPS + 1):
        for param, g in zip(params, gradient([p.detach().numpy() for p in params], t)):
            param.grad = torch.tensor(g)
        reference.step()
        grads = gradient(xs, t)
        for i in range(len(xs)):
            xs[i], states[i] = rule.update(xs[i], grads[i], states[i])
    worst = max(np.abs(p.detach().numpy() - x).max() for p, x in zip(params, xs))
    assert worst < 1e-5


def test_ademamix_rule_runs_a_batch_of_runs_with_arrays_of_hyperparameters():
    """AdEMAMix is element-wise: a leading axis of runs with their own η, λ and α equals the runs one by one."""
    rng = np.random.default_rng(2)
    x0, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    lrs, decays = np.array([[0.01], [0.05], [0.1]]), np.array([[0.0], [0.1], [0.2]])
    alphas = np.array([[0.0], [2.0], [5.0]])
    for decouple in (False, True):
        batch = rules.ademamix(lr=lrs, weight_decay=decays, alpha=alphas, t_alpha_beta3=15, weight_decouple=decouple)
        x, state = x0.copy(), batch.init(x0)
        for _ in range(30):
            x, state = batch.update(x, np.sin(x) - target, state)
        for run in range(3):
            single = rules.ademamix(lr=float(lrs[run, 0]), weight_decay=float(decays[run, 0]),
                                    alpha=float(alphas[run, 0]), t_alpha_beta3=15, weight_decouple=decouple)
            y, state = x0[run].copy(), single.init(x0[run])
            for _ in range(30):
                y, state = single.update(y, np.sin(y) - target[run], state)
            np.testing.assert_allclose(x[run], y, rtol=0, atol=1e-14)
