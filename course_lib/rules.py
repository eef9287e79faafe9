"""Optimizer update rules, each written once as a small pure function.

Every rule here is the whole algorithm for one parameter array: it takes the
current parameters θ_{t−1}, the gradient g_t and the optimizer state, and
returns θ_t and the new state. Nothing is modified in place, so the same
function serves

* NumPy arrays (toy objectives, plots, widgets; see :mod:`course_lib.descent`),
  including a whole batch of runs at once when the arrays carry a leading
  batch axis and the hyperparameters are arrays that broadcast against it, and
* torch tensors (networks; :mod:`course_lib.optim` wraps these functions in
  drop-in :class:`torch.optim.Optimizer` classes).

Notation follows the course guide: θ parameters, g_t = ∇f(θ_{t−1}) the gradient
used at step t (t starts at 1), η ``lr``, λ ``weight_decay``, β₁, β₂ ``betas``,
m_t ``exp_avg``, v_t ``exp_avg_sq``, ε ``eps``. State names are PyTorch's, so a
state dictionary can move between :mod:`course_lib.optim` and :mod:`torch.optim`.

Use a rule through its factory, which checks and stores the hyperparameters
with torch.optim's names and defaults::

    rule = adam(lr=0.1)
    state = rule.init(params)
    params, state = rule.update(params, grad, state)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

__all__ = [
    "Rule",
    "sgd",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "sgd_update",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
    "RULES",
]


# --------------------------------------------------------------------------------------
# Two tiny helpers so that one function body works on NumPy arrays and torch tensors.
# --------------------------------------------------------------------------------------
def _sqrt(x):
    """Element-wise square root of a NumPy array or a torch tensor."""
    return x.sqrt() if hasattr(x, "sqrt") else np.sqrt(x)


def _maximum(a, b):
    """Element-wise maximum of two NumPy arrays or two torch tensors."""
    return a.maximum(b) if hasattr(a, "maximum") else np.maximum(a, b)


def _full_like(x, value):
    """An array (or tensor) shaped like ``x`` filled with ``value``."""
    if hasattr(x, "new_full"):
        return x.new_full(x.shape, float(value))
    return np.full_like(np.asarray(x, dtype=float), value, dtype=float)


def _zeros_like(x):
    return _full_like(x, 0.0)


# --------------------------------------------------------------------------------------
# The update rules
# --------------------------------------------------------------------------------------
def sgd_update(params, grad, state, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
               nesterov=False, maximize=False):
    r"""Stochastic gradient descent with optional momentum (PyTorch's convention).

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\,\theta_{t-1}                     \\
        b_t &= g_t \ (t = 1), \qquad b_t = \beta\, b_{t-1} + (1-\text{dampening})\, g_t \\
        d_t &= g_t + \beta\, b_t \ \text{(Nesterov)} \quad\text{or}\quad d_t = b_t \\
        \theta_t &= \theta_{t-1} - \eta\, d_t

    With ``momentum=0`` this is plain gradient descent θ_t = θ_{t−1} − η g_t.
    Note PyTorch's momentum buffer adds the raw gradient (b ← βb + g), not the
    moving average b ← βb + (1−β)g; notebook 04 reconciles the two.
    State: ``momentum_buffer`` (``None`` until the first step; absent without momentum).
    """
    if maximize:
        grad = -grad
    if _nonzero(weight_decay):
        grad = grad + weight_decay * params
    new_state = dict(state)
    if _nonzero(momentum):
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = grad * 1.0  # a copy: the first step stores g_1 itself
        else:
            buffer = momentum * buffer + (1 - dampening) * grad
        new_state["momentum_buffer"] = buffer
        direction = grad + momentum * buffer if nesterov else buffer
    else:
        direction = grad
    return params - lr * direction, new_state


def adagrad_update(params, grad, state, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                   initial_accumulator_value=0.0, eps=1e-10, maximize=False):
    r"""AdaGrad: every coordinate divides by the root of its summed squared gradients.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\,\theta_{t-1}                 \\
        \eta_t &= \eta \,/\, (1 + (t-1)\,\text{lr\_decay})                \\
        s_t &= s_{t-1} + g_t^2                                          \\
        \theta_t &= \theta_{t-1} - \eta_t\, g_t \,/\, (\sqrt{s_t} + \varepsilon)

    s_0 is ``initial_accumulator_value``. State: ``step`` t and ``sum`` s_t.
    """
    del initial_accumulator_value  # used by init only
    step = state["step"] + 1
    if maximize:
        grad = -grad
    if _nonzero(weight_decay):
        grad = grad + weight_decay * params
    step_lr = lr / (1 + (step - 1) * lr_decay)
    grad_sq_sum = state["sum"] + grad * grad
    params = params - step_lr * grad / (_sqrt(grad_sq_sum) + eps)
    return params, {**state, "step": step, "sum": grad_sq_sum}


def rmsprop_update(params, grad, state, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, centered=False, maximize=False):
    r"""RMSProp: divide by the root of a moving average of squared gradients.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\,\theta_{t-1}                     \\
        v_t &= \alpha\, v_{t-1} + (1-\alpha)\, g_t^2                        \\
        \bar g_t &= \alpha\, \bar g_{t-1} + (1-\alpha)\, g_t \quad\text{(centered only)} \\
        r_t &= \sqrt{v_t - \bar g_t^2} + \varepsilon \ \text{(centered)}
               \quad\text{or}\quad \sqrt{v_t} + \varepsilon                 \\
        b_t &= \beta\, b_{t-1} + g_t / r_t, \quad \theta_t = \theta_{t-1} - \eta\, b_t
               \quad\text{(momentum } \beta > 0\text{)}                     \\
        \theta_t &= \theta_{t-1} - \eta\, g_t / r_t \quad\text{(no momentum)}

    There is no bias correction: v_1 = (1−α) g_1², so the very first step is
    η g_1 / (√(1−α)|g_1| + ε) ≈ η·10·sign(g_1) for α = 0.99.
    State: ``step``, ``square_avg`` v_t, ``grad_avg`` ḡ_t (centered),
    ``momentum_buffer`` b_t (momentum).
    """
    step = state["step"] + 1
    if maximize:
        grad = -grad
    if _nonzero(weight_decay):
        grad = grad + weight_decay * params
    square_avg = alpha * state["square_avg"] + (1 - alpha) * grad * grad
    new_state = {**state, "step": step, "square_avg": square_avg}
    if centered:
        grad_avg = alpha * state["grad_avg"] + (1 - alpha) * grad
        new_state["grad_avg"] = grad_avg
        denom = _sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        denom = _sqrt(square_avg) + eps
    if _nonzero(momentum):
        buffer = momentum * state["momentum_buffer"] + grad / denom
        new_state["momentum_buffer"] = buffer
        return params - lr * buffer, new_state
    return params - lr * grad / denom, new_state


def adam_update(params, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                amsgrad=False, maximize=False, decoupled_weight_decay=False):
    r"""Adam (Kingma & Ba, 2015, Algorithm 1), with AMSGrad and AdamW as options.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\,\theta_{t-1}
              \quad\text{(L2 penalty; Adam's ``weight_decay``)}             \\
        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}
              \quad\text{(decoupled decay instead; AdamW)}                   \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t                          \\
        v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2                        \\
        \hat m_t &= m_t / (1-\beta_1^t), \qquad \hat v_t = v_t / (1-\beta_2^t) \\
        v_t^{\max} &= \max(v_{t-1}^{\max}, v_t), \qquad \hat v_t = v_t^{\max} / (1-\beta_2^t)
              \quad\text{(AMSGrad instead, as in PyTorch)}                  \\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \varepsilon)

    ε is added *after* the bias-corrected square root, as in the paper's
    Algorithm 1 and PyTorch. Keras adds its ``epsilon`` ("epsilon hat" ε̂) to
    the uncorrected √v_t instead, which equals this update with
    ε = ε̂ / √(1 − β₂^t) (notebook 06, section 5). AMSGrad takes the maximum
    of the raw v_t (``max_exp_avg_sq`` holds v_t^max, with v_0^max = 0) and
    bias-corrects that maximum, as ``torch.optim.Adam(amsgrad=True)`` does; the
    paper of Reddi, Kale & Kumar (2018) has no bias correction and takes the
    maximum of v_t itself. State: ``step`` t, ``exp_avg`` m_t, ``exp_avg_sq``
    v_t and, with AMSGrad, ``max_exp_avg_sq`` v_t^max.
    """
    beta1, beta2 = betas
    step = state["step"] + 1
    if maximize:
        grad = -grad
    if _nonzero(weight_decay):
        if decoupled_weight_decay:
            params = params * (1 - lr * weight_decay)
        else:
            grad = grad + weight_decay * params
    exp_avg = beta1 * state["exp_avg"] + (1 - beta1) * grad
    exp_avg_sq = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
    new_state = {**state, "step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if amsgrad:
        exp_avg_sq = _maximum(state["max_exp_avg_sq"], exp_avg_sq)
        new_state["max_exp_avg_sq"] = exp_avg_sq
    m_hat = exp_avg / (1 - beta1**step)
    v_hat = exp_avg_sq / (1 - beta2**step)
    return params - lr * m_hat / (_sqrt(v_hat) + eps), new_state


# --------------------------------------------------------------------------------------
# Initial states
# --------------------------------------------------------------------------------------
def sgd_init(params, *, momentum=0.0, **_):
    return {"momentum_buffer": None} if _nonzero(momentum) else {}


def adagrad_init(params, *, initial_accumulator_value=0.0, **_):
    return {"step": 0, "sum": _full_like(params, initial_accumulator_value)}


def rmsprop_init(params, *, momentum=0.0, centered=False, **_):
    state = {"step": 0, "square_avg": _zeros_like(params)}
    if _nonzero(momentum):
        state["momentum_buffer"] = _zeros_like(params)
    if centered:
        state["grad_avg"] = _zeros_like(params)
    return state


def adam_init(params, *, amsgrad=False, **_):
    state = {"step": 0, "exp_avg": _zeros_like(params), "exp_avg_sq": _zeros_like(params)}
    if amsgrad:
        state["max_exp_avg_sq"] = _zeros_like(params)
    return state


# --------------------------------------------------------------------------------------
# Rule objects and factories (torch.optim's names, defaults and checks)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """An update rule bound to its hyperparameters.

    ``init(params)`` gives the starting state; ``update(params, grad, state)``
    returns ``(params, state)`` after one step. ``name`` is the method's key in
    :data:`course_lib.plotting.METHOD_COLORS`.
    """

    name: str
    hyperparams: Mapping[str, Any]
    update_fn: Callable = field(repr=False)
    init_fn: Callable = field(repr=False)

    def init(self, params):
        return self.init_fn(params, **self.hyperparams)

    def update(self, params, grad, state):
        return self.update_fn(params, grad, state, **self.hyperparams)

    def with_options(self, **changes) -> Rule:
        """The same rule with some hyperparameters changed (checked again)."""
        return RULES[self.factory_name](**{**self.hyperparams, **changes})

    @property
    def factory_name(self) -> str:
        return _FACTORY_OF.get(self.name, self.name)

    @property
    def step_fn(self) -> Callable:
        """The pure update function with the hyperparameters bound (for torch.compile)."""
        return partial(self.update_fn, **self.hyperparams)


def _nonzero(value) -> bool:
    """True when a hyperparameter (a number or an array of them) is not all zero."""
    return bool(np.any(np.asarray(value) != 0))


def check_hyperparams(**checks) -> None:
    """Raise torch.optim's ``ValueError`` messages for invalid hyperparameters.

    Each keyword maps a parameter name to ``(value, is_valid)``; arrays of
    values (batched runs) must be valid everywhere.
    """
    for name, (value, valid) in checks.items():
        if not bool(np.all(valid)):
            raise ValueError(f"Invalid {name}: {_show(value)}")


def _show(value):
    array = np.asarray(value)
    return value if array.ndim == 0 else f"{array.ravel().tolist()}"


def _as_number(value):
    """Scalars as Python floats (0-d tensors too); arrays are left alone."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return float(value.item())
    return value


def _common_checks(lr, weight_decay, eps=None):
    lr = _as_number(lr)
    checks = {
        "learning rate": (lr, np.asarray(lr) >= 0),
        "weight_decay value": (weight_decay, np.asarray(weight_decay) >= 0),
    }
    if eps is not None:
        checks["epsilon value"] = (eps, np.asarray(eps) >= 0)
    check_hyperparams(**checks)


def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *, maximize=False) -> Rule:
    """Gradient descent / SGD with momentum: see :func:`sgd_update`. Defaults of torch.optim.SGD."""
    _common_checks(lr, weight_decay)
    check_hyperparams(**{"momentum value": (momentum, np.asarray(momentum) >= 0)})
    if nesterov and (not bool(np.all(np.asarray(momentum) > 0)) or _nonzero(dampening)):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                 nesterov=nesterov, maximize=maximize)
    if nesterov:
        name = "nesterov"
    elif _nonzero(momentum):
        name = "momentum"
    else:
        name = "gd"
    return Rule(name, hyper, sgd_update, sgd_init)


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
            maximize=False) -> Rule:
    """AdaGrad: see :func:`adagrad_update`. Defaults of torch.optim.Adagrad."""
    _common_checks(lr, weight_decay, eps)
    check_hyperparams(**{
        "lr_decay value": (lr_decay, np.asarray(lr_decay) >= 0),
        "initial_accumulator_value value": (initial_accumulator_value,
                                            np.asarray(initial_accumulator_value) >= 0),
    })
    hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                 initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
    return Rule("adagrad", hyper, adagrad_update, adagrad_init)


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
            maximize=False) -> Rule:
    """RMSProp: see :func:`rmsprop_update`. Defaults of torch.optim.RMSprop."""
    _common_checks(lr, weight_decay, eps)
    check_hyperparams(**{
        "momentum value": (momentum, np.asarray(momentum) >= 0),
        "alpha value": (alpha, np.asarray(alpha) >= 0),
    })
    hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                 centered=centered, maximize=maximize)
    return Rule("rmsprop", hyper, rmsprop_update, rmsprop_init)


def _check_betas(betas):
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = (_as_number(b) for b in betas)
    check_hyperparams(**{
        "beta parameter at index 0": (beta1, (np.asarray(beta1) >= 0) & (np.asarray(beta1) < 1)),
        "beta parameter at index 1": (beta2, (np.asarray(beta2) >= 0) & (np.asarray(beta2) < 1)),
    })
    return beta1, beta2


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *, maximize=False,
         decoupled_weight_decay=False) -> Rule:
    """Adam (and AMSGrad with ``amsgrad=True``): see :func:`adam_update`. Defaults of torch.optim.Adam."""
    _common_checks(lr, weight_decay, eps)
    betas = _check_betas(betas)
    hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    if decoupled_weight_decay:
        name = "adamw"
    else:
        name = "amsgrad" if amsgrad else "adam"
    return Rule(name, hyper, adam_update, adam_init)


def adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
          maximize=False) -> Rule:
    """AdamW: Adam with decoupled weight decay θ ← (1 − ηλ)θ. Defaults of torch.optim.AdamW."""
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)


RULES: dict[str, Callable[..., Rule]] = {
    "sgd": sgd,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
}
_FACTORY_OF = {"gd": "sgd", "momentum": "sgd", "nesterov": "sgd", "amsgrad": "adam", "adamw": "adam"}
