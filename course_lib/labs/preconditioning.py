r"""Preconditioning, from Newton's step to Shampoo and SOAP (notebook 11).

A preconditioned gradient step multiplies the gradient by a matrix P before stepping,

.. math::

    \theta_t = \theta_{t-1} - \eta\, P\, g_t ,

and on a quadratic f(θ) = ½ θᵀHθ its speed is set by the condition number of P H (the ratio of its largest to its
smallest eigenvalue), not of H: Newton's step (P = H⁻¹) makes it 1. This module holds the pieces notebook 11 computes
with: the condition number after preconditioning, the diagonal (Jacobi) preconditioner, full-matrix AdaGrad as a
lab's rule, the Kronecker identity behind Shampoo, and a small matrix least-squares problem whose curvature is a
Kronecker product, to run the course's Shampoo, SOAP and Adam on, aligned with the axes or rotated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import rules, sweep
from ..plotting import method_color

__all__ = [
    "preconditioned_kappa",
    "jacobi",
    "rotation",
    "matrix_power",
    "full_matrix_adagrad",
    "kronecker_step",
    "MatrixProblem",
    "matrix_problem",
    "run_matrix",
    "tuned_final",
    "LRS",
    "COMPARED",
    "compare_on_matrix_problems",
    "show_matrix_problem",
    "preconditioning_playground",
]


def preconditioned_kappa(hessian, preconditioner=None) -> float:
    """κ of the preconditioned problem: the largest over the smallest eigenvalue of P H (H when P is None).

    P H is similar to P^{1/2} H P^{1/2} for a symmetric positive definite P, so its eigenvalues are real and positive.
    """
    hessian = np.asarray(hessian, dtype=float)
    product = hessian if preconditioner is None else np.asarray(preconditioner, dtype=float) @ hessian
    eigenvalues = np.sort(np.linalg.eigvals(product).real)
    if eigenvalues[0] <= 0:
        raise ValueError("P H has a non-positive eigenvalue: H and P must be symmetric positive definite")
    return float(eigenvalues[-1] / eigenvalues[0])


def jacobi(hessian) -> np.ndarray:
    """The diagonal preconditioner P = diag(H)⁻¹: what a per-coordinate method can do at best on a quadratic."""
    return np.diag(1.0 / np.diag(np.asarray(hessian, dtype=float)))


def rotation(angle: float) -> np.ndarray:
    """The 2 × 2 rotation by ``angle`` radians (counter-clockwise)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def matrix_power(matrix, exponent: float, eps: float = 0.0) -> np.ndarray:
    """(M + εI)^q of a symmetric positive definite M for q = ``exponent`` < 1: :func:`course_lib.rules.inverse_root`
    for q < 0, and (M + εI)(M + εI)^{q−1} for 0 ≤ q < 1."""
    if not exponent < 1:
        raise ValueError(f"Invalid exponent: {exponent} (below 1)")
    if exponent < 0:
        return rules.inverse_root(matrix, -1.0 / exponent, eps=eps)
    shifted = np.asarray(matrix, dtype=float) + eps * np.eye(np.shape(matrix)[-1])
    return shifted @ rules.inverse_root(matrix, 1.0 / (1.0 - exponent), eps=eps)


def _full_matrix_adagrad_update(params, grad, state, *, lr, eps):
    r"""𝓖_t = 𝓖_{t−1} + g_t g_tᵀ;  θ_t = θ_{t−1} − η (𝓖_t + εI)^{−1/2} g_t (one run: θ a vector)."""
    total = state["sum"] + np.outer(grad, grad)
    return params - lr * matrix_power(total, -0.5, eps=eps) @ grad, {"sum": total}


def _full_matrix_adagrad_init(params, **_):
    if np.ndim(params) != 1:
        raise ValueError(f"full-matrix AdaGrad here runs one vector θ, not an array of shape {np.shape(params)}")
    return {"sum": np.zeros((np.size(params), np.size(params)))}


def full_matrix_adagrad(lr: float = 1.0, eps: float = 1e-10) -> rules.Rule:
    r"""Full-matrix AdaGrad (Duchi et al. 2011): the gradient multiplied by (𝓖_t + εI)^{−1/2}, 𝓖_t = sum of g gᵀ.

    AdaGrad keeps only the diagonal of 𝓖_t (one number per coordinate); the full matrix sees how coordinates move
    together, so its step does not depend on how the axes are drawn, at the price of d² numbers of state and a
    d × d inverse square root every step. A lab's rule: NumPy only, one run (θ a vector).
    """
    rules.check_common_hyperparams(lr, 0.0, eps)
    return rules.Rule("full_matrix_adagrad", dict(lr=lr, eps=eps), _full_matrix_adagrad_update,
                      _full_matrix_adagrad_init, factory=full_matrix_adagrad, color_key="adagrad")


def kronecker_step(grad, left, right, power: int = 4, eps: float = 0.0) -> np.ndarray:
    r"""Shampoo's direction for one weight matrix: 𝓛^{−1/p} G 𝓡^{−1/p} (p = ``power``, ε added to each factor).

    ``left`` 𝓛 is m × m (it sees the rows of G, the layer's outputs), ``right`` 𝓡 is n × n (the columns, its
    inputs). With row-major vec it is the product (𝓛^{−1/p} ⊗ 𝓡^{−1/p}) vec(G): a preconditioner for all m·n
    entries built from m² + n² numbers.
    """
    grad = np.asarray(grad, dtype=float)
    return matrix_power(left, -1.0 / power, eps=eps) @ grad @ matrix_power(right, -1.0 / power, eps=eps)


@dataclass(frozen=True)
class MatrixProblem:
    r"""f(W) = ½ tr((W − W*) H_in (W − W*)ᵀ H_out): a weight matrix W (m × n) with curvature H = H_out ⊗ H_in.

    H_out (m × m) weighs the layer's outputs, H_in (n × n) is its inputs' covariance; the gradient is
    G = H_out (W − W*) H_in, the minimum f* = 0 at W*. ``rotated`` problems have H_out and H_in turned away from the
    axes by random rotations (the same eigenvalues), so that a per-coordinate method cannot line up with them.
    """

    h_out: np.ndarray
    h_in: np.ndarray
    target: np.ndarray
    start: np.ndarray
    rotated: bool

    def value(self, W) -> float:
        delta = np.asarray(W) - self.target
        return float(0.5 * np.trace(delta @ self.h_in @ delta.T @ self.h_out))

    def grad(self, W) -> np.ndarray:
        return self.h_out @ (np.asarray(W) - self.target) @ self.h_in

    @property
    def kappa(self) -> float:
        """κ of the whole problem, the m·n × m·n matrix H_out ⊗ H_in: κ(H_out) κ(H_in)."""
        return preconditioned_kappa(self.h_out) * preconditioned_kappa(self.h_in)


def _random_rotation(size: int, rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(size, size)))
    return q * np.sign(np.diag(r))


def matrix_problem(m: int = 4, n: int = 6, kappa_out: float = 30.0, kappa_in: float = 300.0, *,
                   rotated: bool = False, seed: int = 0) -> MatrixProblem:
    """A :class:`MatrixProblem` whose H_out has eigenvalues spread geometrically over [1/κ_out, 1] and H_in over
    [1/κ_in, 1]; rotated by random orthogonal matrices when ``rotated``. The same ``seed`` gives the same W* and
    W₀ in both versions, turned with the problem, so the two differ by the axes only."""
    rng = np.random.default_rng(seed)
    a = np.geomspace(1.0, 1.0 / kappa_out, m)
    c = np.geomspace(1.0, 1.0 / kappa_in, n)
    turn_out, turn_in = _random_rotation(m, rng), _random_rotation(n, rng)
    target, start = rng.normal(size=(m, n)), rng.normal(size=(m, n))
    if not rotated:
        return MatrixProblem(np.diag(a), np.diag(c), target, start, False)
    h_out, h_in = turn_out @ np.diag(a) @ turn_out.T, turn_in @ np.diag(c) @ turn_in.T
    return MatrixProblem(h_out, h_in, turn_out @ target @ turn_in.T, turn_out @ start @ turn_in.T, True)


def run_matrix(problem: MatrixProblem, rule: rules.Rule, steps: int) -> np.ndarray:
    """f(W_t) − f* for t = 0, …, ``steps`` of ``rule`` from the problem's W₀ (inf once the run diverges)."""
    W, state = problem.start.copy(), rule.init(problem.start)
    values = np.full(steps + 1, np.inf)
    values[0] = problem.value(W)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run (too large an η) is expected in a sweep
        for t in range(1, steps + 1):
            W, state = rule.update(W, problem.grad(W), state)
            values[t] = problem.value(W)
            if not np.isfinite(values[t]):
                values[t] = np.inf
                break
    return values


def tuned_final(problem: MatrixProblem, make_rule, lrs, steps: int) -> tuple[sweep.Best, np.ndarray]:
    """The best η of ``lrs`` for ``make_rule(lr)`` by the final f − f*, and that run's curve.

    One run per η (the problem is deterministic): every method gets the same grid, the same number of trials.
    """
    curves = [run_matrix(problem, make_rule(lr), steps) for lr in lrs]
    best = sweep.best_lr(lrs, [curve[-1] for curve in curves])
    return best, curves[best.index]


LRS = sweep.lr_grid(-12, 19)
"""The η grid of every comparison here: 10^(k/3) from 1e-4 to 46.4, three per decade, 19 trials per method."""

_SHAMPOO = dict(nesterov=False, start_preconditioning_step=1, preconditioning_compute_steps=1,
                shape_interpretation=False, use_svd=True)

COMPARED = {
    "gd": ("gradient descent", lambda lr: rules.sgd(lr=lr)),
    "momentum": ("momentum", lambda lr: rules.sgd(lr=lr, momentum=0.9)),
    "adam": ("Adam", lambda lr: rules.adam(lr=lr)),
    "shampoo": ("Shampoo (SGD graft)", lambda lr: rules.shampoo(lr=lr, graft_type=rules.ShampooGraft.SGD, **_SHAMPOO)),
    "shampoo, Adam graft": ("Shampoo (Adam graft)",
                            lambda lr: rules.shampoo(lr=lr, graft_type=rules.ShampooGraft.ADAM, **_SHAMPOO)),
    "soap": ("SOAP", lambda lr: rules.soap(lr=lr, betas=(0.9, 0.999), weight_decay=0.0)),
}
"""Notebook 11's methods on the matrix problem: name → (label, η → rule). Shampoo runs without Nesterov, with fresh
roots at every step from the first (the problem is tiny), one factor per axis (``shape_interpretation=False``) and
exact roots (``use_svd=True``); SOAP with β = (0.9, 0.999), Adam's, and no weight decay (the problem has none)."""


def _style(name: str) -> tuple[str, str]:
    """(colour, line style) of a compared method: its method's colour, dashed for a variant ("shampoo, Adam graft")."""
    return method_color(name.split(",")[0]), ("--" if "," in name else "-")


def compare_on_matrix_problems(seeds=range(5), steps: int = 100, names=tuple(COMPARED), **problem) -> dict:
    """Every method of ``names`` at its best η of :data:`LRS` on the aligned and the rotated :func:`matrix_problem` of
    each seed: ``{(name, rotated, seed): (best, curve)}`` (:func:`tuned_final`'s pair)."""
    results = {}
    for seed in seeds:
        for rotated in (False, True):
            instance = matrix_problem(rotated=rotated, seed=seed, **problem)
            for name in names:
                results[name, rotated, seed] = tuned_final(instance, COMPARED[name][1], LRS, steps)
    return results


def show_matrix_problem(kappa_in: float = 300.0, rotated: bool = True, seed: int = 0, steps: int = 100,
                        names=("momentum", "adam", "shampoo", "soap")):
    """Notebook 11's playground view: f − f* against t on one matrix problem, each method at its best η of
    :data:`LRS` (a best η at the grid's edge is marked). Returns the figure."""
    import matplotlib.pyplot as plt

    problem = matrix_problem(kappa_in=kappa_in, rotated=rotated, seed=int(seed))
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for name in names:
        label, make = COMPARED[name]
        best, curve = tuned_final(problem, make, LRS, int(steps))
        color, style = _style(name)
        ax.semilogy(curve, color=color, ls=style,
                    label=f"{label}, η = {best.lr:g}" + (" (grid edge)" if best.at_edge else ""))
    ax.set(xlabel="step t", ylabel="f(W_t) − f*",
           title=f"{'rotated' if rotated else 'aligned'} problem, κ = {problem.kappa:,.0f}, seed {int(seed)}")
    ax.legend(fontsize=8)
    return fig


def preconditioning_playground():
    """Notebook 11: change the inputs' condition number, turn the problem away from the axes, and see which methods
    care. The view is :func:`show_matrix_problem`."""
    import ipywidgets as ipw

    from ..widgets import playground

    return playground(
        show_matrix_problem,
        kappa_in=ipw.FloatLogSlider(value=300.0, base=10, min=0, max=4, step=0.25, description="κ(H_in)",
                                    continuous_update=False, readout_format=".3g"),
        rotated=ipw.Checkbox(value=True, description="rotated"),
        seed=ipw.IntSlider(value=0, min=0, max=9, description="seed", continuous_update=False),
    )
