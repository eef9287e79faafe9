"""Objective functions for the toy problems of the course.

Every objective has ``value(x)`` and an exact ``grad(x)``, ``minimizers`` (all
global minimizers, one per row), ``minimizer`` (the first of them), ``minimum``
f*, ``dim``, and a suggested plotting window ``bounds``. Points are arrays whose
last axis is the coordinate axis, so ``value`` and ``grad`` also take a whole
batch of points at once: shape (..., dim) in, (...) or (..., dim) out.

``value`` also accepts a torch tensor (it then uses torch operations), which is
how the tests check ``grad`` against autograd and how :mod:`course_lib.optim`
minimizes the very same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Objective",
    "Quadratic",
    "x_squared",
    "quadratic",
    "rosenbrock",
    "beale",
    "booth",
    "himmelblau",
    "rastrigin",
    "lessard",
    "OBJECTIVES",
]


def _math(x):
    """The array module for ``x``: torch for tensors, NumPy otherwise."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _points(x):
    """Coordinates as a float array; tensors pass through untouched."""
    if type(x).__module__.startswith("torch"):
        return x
    return np.asarray(x, dtype=float)


@dataclass(frozen=True)
class Objective:
    """A differentiable test function f: R^dim → R with known minimizers."""

    name: str
    dim: int
    minimizers: np.ndarray
    minimum: float
    bounds: tuple[tuple[float, float], ...]
    formula: str = ""

    @property
    def minimizer(self) -> np.ndarray:
        return self.minimizers[0]

    def value(self, x):
        raise NotImplementedError

    def grad(self, x):
        raise NotImplementedError

    def __call__(self, x):
        return self.value(x)

    def _check(self, x):
        x = _points(x)
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"{self.name} takes points of dimension {self.dim} (last axis); got shape "
                             f"{tuple(x.shape)}")
        return x


class _XSquared(Objective):
    def value(self, x):
        x = self._check(x)
        return (x**2).sum(-1)

    def grad(self, x):
        return 2 * self._check(x)


x_squared = _XSquared("x²", 1, np.zeros((1, 1)), 0.0, ((-6.0, 6.0),), "f(x) = x²")
"""The seed article's f(x) = x², with f'(x) = 2x and its minimum 0 at x = 0."""


@dataclass(frozen=True)
class Quadratic(Objective):
    """f(θ) = ½ θᵀ A θ for a symmetric positive definite ``hessian`` A.

    ``L`` and ``mu`` are A's largest and smallest eigenvalues and ``kappa`` = L/μ
    its condition number. The minimizer is 0 and f* = 0.
    """

    hessian: np.ndarray = field(default_factory=lambda: np.eye(2))

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(self.hessian)

    @property
    def L(self) -> float:
        return float(self.eigenvalues[-1])

    @property
    def mu(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def kappa(self) -> float:
        return self.L / self.mu

    def value(self, x):
        x = self._check(x)
        hessian = self._hessian_like(x)
        return 0.5 * ((x @ hessian) * x).sum(-1)

    def grad(self, x):
        x = self._check(x)
        return x @ self._hessian_like(x)

    def _hessian_like(self, x):
        if _math(x) is np:
            return self.hessian
        return _math(x).as_tensor(self.hessian, dtype=x.dtype, device=x.device)


def quadratic(kappa: float = 10.0, L: float = 1.0, angle: float = 0.0) -> Quadratic:
    """A 2-D quadratic with curvature μ = L/κ along one axis and L along the other.

    With ``angle`` = 0 the flat direction (μ) is the θ₁ axis and the steep one
    (L) the θ₂ axis; a non-zero ``angle`` (radians) rotates both, so that the
    valley no longer lines up with the coordinate axes.
    """
    if not kappa >= 1:
        raise ValueError(f"Invalid kappa: {kappa} (the condition number L/mu is at least 1)")
    if not L > 0:
        raise ValueError(f"Invalid L: {L} (the largest curvature must be positive)")
    mu = L / kappa
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    hessian = rotation @ np.diag([mu, L]) @ rotation.T
    hessian = 0.5 * (hessian + hessian.T)
    extent = 3.0 * max(1.0, np.sqrt(kappa) / 2)
    name = f"quadratic κ={kappa:g}" + (f", rotated {np.degrees(angle):g}°" if angle else "")
    return Quadratic(name, 2, np.zeros((1, 2)), 0.0, ((-extent, extent), (-3.0, 3.0)),
                     "f(θ) = ½ θᵀAθ", hessian=hessian)


class _Rosenbrock(Objective):
    def value(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return (1 - x1) ** 2 + 100 * (x2 - x1**2) ** 2

    def grad(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        d1 = -2 * (1 - x1) - 400 * x1 * (x2 - x1**2)
        d2 = 200 * (x2 - x1**2)
        return np.stack([d1, d2], axis=-1)


rosenbrock = _Rosenbrock("Rosenbrock", 2, np.array([[1.0, 1.0]]), 0.0, ((-2.0, 2.0), (-1.0, 3.0)),
                         "f(θ) = (1 − θ₁)² + 100 (θ₂ − θ₁²)²")
"""Rosenbrock's banana valley: minimum 0 at (1, 1), at the end of a long curved valley."""


class _Beale(Objective):
    def value(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return ((1.5 - x1 + x1 * x2) ** 2 + (2.25 - x1 + x1 * x2**2) ** 2
                + (2.625 - x1 + x1 * x2**3) ** 2)

    def grad(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        r1 = 1.5 - x1 + x1 * x2
        r2 = 2.25 - x1 + x1 * x2**2
        r3 = 2.625 - x1 + x1 * x2**3
        d1 = 2 * r1 * (x2 - 1) + 2 * r2 * (x2**2 - 1) + 2 * r3 * (x2**3 - 1)
        d2 = 2 * r1 * x1 + 2 * r2 * 2 * x1 * x2 + 2 * r3 * 3 * x1 * x2**2
        return np.stack([d1, d2], axis=-1)


beale = _Beale("Beale", 2, np.array([[3.0, 0.5]]), 0.0, ((-4.5, 4.5), (-4.5, 4.5)),
               "f(θ) = (1.5 − θ₁ + θ₁θ₂)² + (2.25 − θ₁ + θ₁θ₂²)² + (2.625 − θ₁ + θ₁θ₂³)²")
"""Beale's function: minimum 0 at (3, 0.5), flat plateaus and steep walls."""


class _Booth(Objective):
    def value(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return (x1 + 2 * x2 - 7) ** 2 + (2 * x1 + x2 - 5) ** 2

    def grad(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        r1 = x1 + 2 * x2 - 7
        r2 = 2 * x1 + x2 - 5
        return np.stack([2 * r1 + 4 * r2, 4 * r1 + 2 * r2], axis=-1)


booth = _Booth("Booth", 2, np.array([[1.0, 3.0]]), 0.0, ((-10.0, 10.0), (-10.0, 10.0)),
               "f(θ) = (θ₁ + 2θ₂ − 7)² + (2θ₁ + θ₂ − 5)²")
"""Booth's function: a quadratic with minimum 0 at (1, 3)."""


class _Himmelblau(Objective):
    def value(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return (x1**2 + x2 - 11) ** 2 + (x1 + x2**2 - 7) ** 2

    def grad(self, x):
        x = self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        r1 = x1**2 + x2 - 11
        r2 = x1 + x2**2 - 7
        return np.stack([4 * x1 * r1 + 2 * r2, 2 * r1 + 4 * x2 * r2], axis=-1)


himmelblau = _Himmelblau(
    "Himmelblau", 2,
    np.array([
        [3.0, 2.0],
        [-2.805118086952745, 3.131312518250573],
        [-3.7793102533777465, -3.2831859912861696],
        [3.5844283403304917, -1.8481265269644036],
    ]),
    0.0, ((-5.0, 5.0), (-5.0, 5.0)), "f(θ) = (θ₁² + θ₂ − 11)² + (θ₁ + θ₂² − 7)²")
"""Himmelblau's function: four global minima, all with f = 0; the start decides which one you reach."""


class _Rastrigin(Objective):
    def value(self, x):
        x = self._check(x)
        xp = _math(x)
        return 10 * self.dim + (x**2 - 10 * xp.cos(2 * np.pi * x)).sum(-1)

    def grad(self, x):
        x = self._check(x)
        return 2 * x + 20 * np.pi * np.sin(2 * np.pi * x)


def rastrigin(dim: int = 2) -> Objective:
    """Rastrigin's function in ``dim`` dimensions: minimum 0 at the origin among a lattice of local minima."""
    if int(dim) != dim or dim < 1:
        raise ValueError(f"Invalid dim: {dim} (a positive integer)")
    return _Rastrigin("Rastrigin", int(dim), np.zeros((1, int(dim))), 0.0, ((-5.12, 5.12),) * int(dim),
                      "f(θ) = 10 d + Σ (θᵢ² − 10 cos 2πθᵢ)")


OBJECTIVES = {
    "x_squared": x_squared,
    "quadratic": quadratic(),
    "rosenbrock": rosenbrock,
    "beale": beale,
    "booth": booth,
    "himmelblau": himmelblau,
    "rastrigin": rastrigin(),
}


class _Lessard(Objective):
    def value(self, x):
        x = self._check(x)[..., 0]
        xp = _math(x)
        return xp.where(x < 1, 12.5 * x**2, xp.where(x < 2, 0.5 * x**2 + 24 * x - 12, 12.5 * x**2 - 24 * x + 36))

    def grad(self, x):
        x = self._check(x)
        return np.where(x < 1, 25 * x, np.where(x < 2, x + 24, 25 * x - 24))


lessard = _Lessard("Lessard's piecewise quadratic", 1, np.zeros((1, 1)), 0.0, ((-4.0, 5.0),),
                   "f(x) = 25x²/2 (x < 1), x²/2 + 24x − 12 (1 ≤ x < 2), 25x²/2 − 24x + 36 (x ≥ 2)")
"""Lessard, Recht & Packard (2016): smooth (L = 25) and strongly convex (μ = 1), minimum 0 at x = 0.

Its curvature is 25 except on [1, 2), where it is 1, and the gradient is
continuous. Heavy ball with Polyak's quadratic tuning for κ = 25 falls into a
cycle of period three on it instead of converging (notebook 04).
"""
