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

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import partial
from typing import Any

import numpy as np

from .methods import METHODS

__all__ = [
    "Rule",
    "RULES",
    # the factories, then the update functions, in course order (course_lib.methods)
    "sgd",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
    "radam",
    "adafactor",
    "lion",
    "muon",
    "schedule_free_adamw",
    "ademamix",
    "soap",
    "shampoo",
    "sgd_update",
    "sgd_update_",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
    "nadam_update",
    "radam_update",
    "adafactor_update",
    "lion_update",
    "muon_update",
    "schedule_free_adamw_update",
    "ademamix_update",
    "soap_update",
    "shampoo_update",
    # what some rules need besides their update
    "schedule_free_eval",
    "schedule_free_train",
    "schedule_free_schedule",
    "newton_schulz_orthogonalize",
    "muon_lr_ratio",
    "MUON_NS_COEFFICIENTS",
    "ademamix_alpha",
    "ademamix_beta3",
    "soap_project",
    "SOAP_EIGENBASIS_REFRESH",
    "shampoo_init",
    "inverse_root",
    "shampoo_precondition",
    "shampoo_layout",
    "schur_newton_inverse_root",
    "ShampooGraft",
    # helpers for rules written elsewhere (a lab's)
    "adam_moments",
    "adam_denominator",
    "as_number",
    "check_hyperparams",
    "check_common_hyperparams",
    "check_betas",
    "sqrt",
    "zeros_like",
    "donating",
]


# --------------------------------------------------------------------------------------
# Tiny helpers so that one function body works on NumPy arrays and torch tensors (``sqrt`` and
# ``zeros_like`` are public: a rule written outside this module, a lab's, uses them too).
# --------------------------------------------------------------------------------------
def sqrt(x):
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


def zeros_like(x):
    """An array (or tensor) of zeros shaped like ``x``: the starting value of most optimizer states."""
    return _full_like(x, 0.0)


# Operations in torch.optim's own form. For tensors (and lists of tensors) with a number as coefficient they are
# torch's one-pass kernels (``mul``, ``add`` with ``alpha``, ``lerp``, ``addcmul``, ``addcdiv``), so that a rule
# rounds as torch.optim's for-loop does and float32 results match it bit for bit; for NumPy arrays (and
# hyperparameters given as arrays or tensors) they are the same formula written out. A tensor handed over with
# :func:`donating` is overwritten with the result instead of a new tensor being made.
def _is_number(value) -> bool:
    kind = type(value)  # the usual Python float or int first: this runs several times per tensor and step
    return kind is float or kind is int or (kind is not bool and isinstance(value, (int, float)))


_DONATED: set = set()  # ids of the tensors handed over by ``donating``


class donating:
    """``with donating(tensors):`` lets the rules overwrite these tensors with their new values (in place).

    A rule is pure: it returns new parameters and a new state and changes nothing. A caller that will replace
    θ and the state by what the rule returns anyway (:class:`course_lib.optim.RuleOptimizer`'s per-tensor path)
    can hand them over, as ``jax.jit(donate_argnums=...)`` does: the operations of a rule that produce the new
    value of a handed-over tensor then write into it (``mul_``, ``add_``, ``lerp_``, ``addcmul_``, ``addcdiv_``),
    the same kernels as torch.optim's for-loop, with the same numbers as without donation. The contract for a
    rule: the first argument of ``_scale``, ``_add``, ``_addcmul``, ``_addcdiv`` and ``_ema`` is either not a
    state tensor or θ, or the call computes that tensor's new value, after its last read of the old value (a
    derived quantity such as v − ḡ² says so: ``_addcmul(v, ḡ, ḡ, -1, new_value_of_x=False)``). The tensors
    must stay alive (referenced by the caller) inside the block.
    """

    __slots__ = ("ids",)

    def __init__(self, tensors):
        self.ids = {id(tensor) for tensor in tensors if tensor is not None}

    def __enter__(self):
        _DONATED.update(self.ids)
        return self

    def __exit__(self, *exc):
        _DONATED.difference_update(self.ids)
        return False


def _scale(x, c):
    """c·x (torch's ``x.mul(c)``)."""
    if id(x) in _DONATED and _is_number(c):
        return x.mul_(c)
    return x * c


def _add(x, y, alpha):
    """x + α·y (torch's ``x.add(y, alpha=α)``)."""
    if id(x) in _DONATED and _is_number(alpha):
        return x.add_(y, alpha=alpha)
    if hasattr(x, "addcmul") and _is_number(alpha):
        return x.add(y, alpha=alpha)
    return x + alpha * y


def _addcmul(x, a, b, value, *, new_value_of_x=True):
    """x + value·a·b (torch's ``x.addcmul(a, b, value=value)``); ``new_value_of_x=False``: a derived quantity,
    never written into a handed-over ``x``."""
    if new_value_of_x and id(x) in _DONATED and _is_number(value):
        return x.addcmul_(a, b, value=value)
    if hasattr(x, "addcmul") and _is_number(value):
        return x.addcmul(a, b, value=value)
    return x + value * a * b


def _addcdiv(x, a, b, value):
    """x + value·a/b (torch's ``x.addcdiv(a, b, value=value)``)."""
    if id(x) in _DONATED and _is_number(value):
        return x.addcdiv_(a, b, value=value)
    if hasattr(x, "addcdiv") and _is_number(value):
        return x.addcdiv(a, b, value=value)
    return x + value * a / b  # (value·a)/b, as torch's kernel computes it


def _ema(average, value, beta):
    """β·average + (1 − β)·value, the exponential moving average (torch: ``average.lerp(value, 1 − β)``)."""
    if id(average) in _DONATED and _is_number(beta):
        return average.lerp_(value, 1 - beta)
    if hasattr(average, "addcmul") and _is_number(beta):
        return average.lerp(value, 1 - beta)
    return beta * average + (1 - beta) * value


def _gradient_and_decay(params, grad, *, lr, weight_decay, maximize, decoupled=False):
    r"""The prelude the rules share: the sign of the gradient, then the weight decay λ.

    .. math::

        g_t \leftarrow -g_t \ \text{(maximize)}, \qquad
        g_t \leftarrow g_t + \lambda\,\theta_{t-1} \ \text{(L2)} \quad\text{or}\quad
        \theta_{t-1} \leftarrow (1-\eta\lambda)\,\theta_{t-1} \ \text{(decoupled)}

    Returns ``(params, grad)``; nothing is computed for a zero λ.
    """
    if maximize:
        grad = -grad
    if _nonzero(weight_decay):
        if decoupled:
            params = _scale(params, 1 - lr * weight_decay)
        else:
            grad = _add(grad, params, weight_decay)  # g + λθ
    return params, grad


def adam_moments(exp_avg, exp_avg_sq, grad, beta1, beta2, step, *, lerp=False):
    r"""Adam's two moment estimates after step t, and their bias corrections.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2                                   \\
        c_{1,t} &= 1-\beta_1^t, \qquad c_{2,t} = 1-\beta_2^t, \qquad
        \hat m_t = m_t / c_{1,t}, \qquad \hat v_t = v_t / c_{2,t}

    Returns ``(m_t, v_t, c_1, c_2)``: the moments (``exp_avg``, ``exp_avg_sq``) and the two corrections as
    numbers, not m̂_t and v̂_t. Where a rule divides by c₁ and c₂ changes the rounding, so each rule divides
    where its reference does (Adam: η/c₁ times m_t over √v_t/√c₂ + ε; NAdam: √(v_t/c₂) + ε; RAdam: m_t/c₁).
    The shared prelude of :func:`adam_update`, :func:`nadam_update`, :func:`radam_update` and
    :func:`ademamix_update`. Rules whose moments differ write theirs out: SOAP (v_t of the gradient rotated into
    an eigenbasis, corrections with t − 1), Schedule-Free AdamW (v_t only, no m_t), Shampoo's
    graft (v_t only), Lion (no v_t, and m_t interpolated twice), Adafactor (a factored v_t, no correction).

    m_t is torch.optim's ``exp_avg.lerp(grad, 1 − β₁)`` and v_t its ``exp_avg_sq.mul(β₂).addcmul(grad, grad,
    value=1 − β₂)`` for tensors and a number β; for NumPy arrays (and β given as an array or a tensor) m_t is
    written out as β₁m + (1 − β₁)g, or, with ``lerp=True``, as torch's lerp kernel computes it,
    m + (1 − β₁)(g − m) (NAdam's and RAdam's rules, which match their references operation by operation).
    """
    if lerp:
        exp_avg = _lerp(exp_avg, grad, 1 - beta1)
    else:
        exp_avg = _ema(exp_avg, grad, beta1)
    exp_avg_sq = _addcmul(_scale(exp_avg_sq, beta2), grad, grad, 1 - beta2)
    return exp_avg, exp_avg_sq, 1 - beta1**step, 1 - beta2**step


def adam_denominator(exp_avg_sq, bias_correction2, eps):
    r"""Adam's denominator :math:`\sqrt{v_t} / \sqrt{1-\beta_2^t} + \varepsilon = \sqrt{\hat v_t} + \varepsilon`, as
    torch.optim computes it.

    For tensors (and :class:`course_lib.fast_paths.TensorList` s) the square root is the one new tensor, and the
    division and the addition overwrite it (``sqrt``, ``div_``, ``add_``: torch's ``_single_tensor_adam`` and
    ``_multi_tensor_adam``), so a step makes one temporary where three out-of-place operations would make three;
    the numbers are the same either way. NumPy arrays take the same arithmetic out of place.
    """
    denom = sqrt(exp_avg_sq)
    if hasattr(denom, "div_"):
        return denom.div_(bias_correction2**0.5).add_(eps)
    return denom / bias_correction2**0.5 + eps


# --------------------------------------------------------------------------------------
# The update rules
# --------------------------------------------------------------------------------------
def sgd_update(params, grad, state, *, lr, momentum, dampening, weight_decay,
               nesterov, maximize):
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
    params, grad = _gradient_and_decay(params, grad, lr=lr, weight_decay=weight_decay, maximize=maximize)
    new_state = dict(state)
    if _nonzero(momentum):
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = grad * 1.0  # a copy: the first step stores g_1 itself
        else:
            buffer = _add(_scale(buffer, momentum), grad, 1 - dampening)  # βb + (1 − dampening)g
        new_state["momentum_buffer"] = buffer
        direction = _add(grad, buffer, momentum) if nesterov else buffer  # g + βb
    else:
        direction = grad
    return _add(params, direction, -lr), new_state  # θ − η d


def sgd_update_(params, grad, state, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                nesterov=False, maximize=False) -> None:
    """:func:`sgd_update` in place: θ and ``state`` (torch.optim's dict for one parameter) get their new values.

    The same operations as :func:`sgd_update` run on tensors handed over with :class:`donating`, written out
    (torch.optim's for-loop, line for line): the per-tensor path of :class:`course_lib.optim.SGD` calls it
    because SGD's step is three operations per tensor, so the Python around them counts. Tested equal to
    :func:`sgd_update` bit for bit (tests/test_rules.py); tensors only.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(params, alpha=weight_decay)  # g + λθ
    if momentum != 0:
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = state["momentum_buffer"] = grad * 1.0  # a copy: the first step stores g_1 itself
        else:
            buffer.mul_(momentum).add_(grad, alpha=1 - dampening)  # βb + (1 − dampening)g
        grad = grad.add(buffer, alpha=momentum) if nesterov else buffer  # g + βb
    params.add_(grad, alpha=-lr)  # θ − η d


def adagrad_update(params, grad, state, *, lr, lr_decay, weight_decay,
                   initial_accumulator_value, eps, maximize):
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
    params, grad = _gradient_and_decay(params, grad, lr=lr, weight_decay=weight_decay, maximize=maximize)
    step_lr = lr / (1 + (step - 1) * lr_decay)
    grad_sq_sum = _addcmul(state["sum"], grad, grad, 1)  # s_t
    params = _addcdiv(params, grad, sqrt(grad_sq_sum) + eps, -step_lr)  # θ − η_t g / (√s_t + ε)
    return params, {**state, "step": step, "sum": grad_sq_sum}


def rmsprop_update(params, grad, state, *, lr, alpha, eps, weight_decay,
                   momentum, centered, maximize):
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
    params, grad = _gradient_and_decay(params, grad, lr=lr, weight_decay=weight_decay, maximize=maximize)
    square_avg = _addcmul(_scale(state["square_avg"], alpha), grad, grad, 1 - alpha)  # v_t
    new_state = {**state, "step": step, "square_avg": square_avg}
    if centered:
        grad_avg = _ema(state["grad_avg"], grad, alpha)  # ḡ_t
        new_state["grad_avg"] = grad_avg
        denom = sqrt(_addcmul(square_avg, grad_avg, grad_avg, -1, new_value_of_x=False)) + eps  # √(v_t − ḡ_t²) + ε
    else:
        denom = sqrt(square_avg) + eps
    if _nonzero(momentum):
        buffer = _addcdiv(_scale(state["momentum_buffer"], momentum), grad, denom, 1)  # βb + g/r
        new_state["momentum_buffer"] = buffer
        return _add(params, buffer, -lr), new_state
    return _addcdiv(params, grad, denom, -lr), new_state


def adam_update(params, grad, state, *, lr, betas, eps, weight_decay,
                amsgrad, maximize, decoupled_weight_decay):
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
    params, grad = _gradient_and_decay(params, grad, lr=lr, weight_decay=weight_decay, maximize=maximize,
                                       decoupled=decoupled_weight_decay)
    exp_avg, exp_avg_sq, bias_correction1, bias_correction2 = adam_moments(
        state["exp_avg"], state["exp_avg_sq"], grad, beta1, beta2, step)  # m_t, v_t, 1 − β₁ᵗ, 1 − β₂ᵗ
    new_state = {**state, "step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if amsgrad:
        exp_avg_sq = _maximum(state["max_exp_avg_sq"], exp_avg_sq)
        new_state["max_exp_avg_sq"] = exp_avg_sq
    denom = adam_denominator(exp_avg_sq, bias_correction2, eps)  # √v̂_t + ε
    return _addcdiv(params, exp_avg, denom, -lr / bias_correction1), new_state  # θ − η m̂_t / (√v̂_t + ε)


# --------------------------------------------------------------------------------------
# Initial states
# --------------------------------------------------------------------------------------
def sgd_init(params, *, momentum=0.0, **_):
    return {"momentum_buffer": None} if _nonzero(momentum) else {}


def adagrad_init(params, *, initial_accumulator_value=0.0, **_):
    return {"step": 0, "sum": _full_like(params, initial_accumulator_value)}


def rmsprop_init(params, *, momentum=0.0, centered=False, **_):
    state = {"step": 0, "square_avg": zeros_like(params)}
    if _nonzero(momentum):
        state["momentum_buffer"] = zeros_like(params)
    if centered:
        state["grad_avg"] = zeros_like(params)
    return state


def adam_init(params, *, amsgrad=False, **_):
    state = {"step": 0, "exp_avg": zeros_like(params), "exp_avg_sq": zeros_like(params)}
    if amsgrad:
        state["max_exp_avg_sq"] = zeros_like(params)
    return state


# --------------------------------------------------------------------------------------
# Rule objects and factories (torch.optim's names, defaults and checks)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """An update rule bound to its hyperparameters.

    ``init(params)`` gives the starting state; ``update(params, grad, state)``
    returns ``(params, state)`` after one step. A rule carries what it is and
    how to make it again:

    * ``name``: the method it runs (``"gd"``, ``"momentum"``, ``"amsgrad"``,
      ``"adamw"``, a lab's ``"keras_adam"``, ...);
    * ``hyperparams``: its options, the keyword arguments of its factory;
    * ``factory``: the function that built it, so that :meth:`with_options`
      builds it again with some options changed (``None`` for a rule made by
      hand: it cannot be rebuilt);
    * ``color_key``: its key in :data:`course_lib.plotting.METHOD_COLORS`, its
      ``name`` unless given (a lab's variant of Adam is drawn in Adam's colour);
    * ``update_in_place_fn``: where a rule has one (SGD's :func:`sgd_update_`),
      ``update_fn`` written out in place, for :mod:`course_lib.optim`'s per-tensor path.
    """

    name: str
    hyperparams: Mapping[str, Any]
    update_fn: Callable = field(repr=False)
    init_fn: Callable = field(repr=False)
    factory: Callable[..., Rule] | None = field(default=None, repr=False)
    color_key: str = ""
    #: ``update_fn``'s in-place twin, where a rule has one (:func:`sgd_update_`): it takes the same arguments,
    #: returns nothing and writes θ and the state dict (tensors only).
    update_in_place_fn: Callable | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.color_key:
            object.__setattr__(self, "color_key", self.name)

    def init(self, params):
        return self.init_fn(params, **self.hyperparams)

    def update(self, params, grad, state):
        return self.update_fn(params, grad, state, **self.hyperparams)

    def with_options(self, **changes) -> Rule:
        """The same rule with some hyperparameters changed (built again by its factory, so checked again)."""
        if self.factory is None:
            raise TypeError(f"rule {self.name!r} has no factory to build it again with new options")
        return self.factory(**{**self.hyperparams, **changes})

    @property
    def step_fn(self) -> Callable:
        """The pure update function with the hyperparameters bound (for torch.compile)."""
        return partial(self.update_fn, **self.hyperparams)


def _nonzero(value) -> bool:
    """True when a hyperparameter (a number or an array of them) is not all zero."""
    kind = type(value)
    if kind is float or kind is int:  # the usual case, several times per tensor and step: nothing else to ask
        return value != 0
    if isinstance(value, (int, float)):  # NumPy's float64, a bool: still no array needed
        return bool(value != 0)
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


def as_number(value):
    """A hyperparameter given as one number, as a Python number; anything else unchanged.

    0-d NumPy arrays and 0-d or one-element torch tensors (a tensor ``lr``, as torch.optim allows) become Python
    floats (a one-element integer or boolean tensor its Python int or bool), tuples such as ``betas`` element-wise;
    arrays of hyperparameters (batched runs) are left alone. The rules and :mod:`course_lib.optim` both use it.
    """
    if isinstance(value, tuple):
        return tuple(as_number(v) for v in value)
    if hasattr(value, "numel") and value.numel() == 1:  # a torch tensor holding one number
        return float(value.item()) if value.is_floating_point() else value.item()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return float(value.item())
    return value


def check_common_hyperparams(lr, weight_decay, eps=None):
    """Raise torch.optim's ``ValueError`` unless η ≥ 0, λ ≥ 0 and (when given) ε ≥ 0, everywhere for arrays.

    The checks every factory here starts with; a rule written elsewhere (a lab's) calls it to get the same errors.
    """
    lr = as_number(lr)
    for name, value in (("lr", lr), ("weight_decay", weight_decay), ("eps", eps)):
        if (value is not None or name != "eps") and np.asarray(value).dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a number (or an array of numbers); got {value!r} of type "
                            f"{type(value).__name__}")
    checks = {
        "learning rate": (lr, np.asarray(lr) >= 0),
        "weight_decay value": (weight_decay, np.asarray(weight_decay) >= 0),
    }
    if eps is not None:
        checks["epsilon value"] = (eps, np.asarray(eps) >= 0)
    check_hyperparams(**checks)


def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *, maximize=False) -> Rule:
    """Gradient descent / SGD with momentum: see :func:`sgd_update`. Defaults of torch.optim.SGD."""
    check_common_hyperparams(lr, weight_decay)
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
    return Rule(name, hyper, sgd_update, sgd_init, factory=sgd, update_in_place_fn=sgd_update_)


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
            maximize=False) -> Rule:
    """AdaGrad: see :func:`adagrad_update`. Defaults of torch.optim.Adagrad."""
    check_common_hyperparams(lr, weight_decay, eps)
    check_hyperparams(**{
        "lr_decay value": (lr_decay, np.asarray(lr_decay) >= 0),
        "initial_accumulator_value value": (initial_accumulator_value,
                                            np.asarray(initial_accumulator_value) >= 0),
    })
    hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                 initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
    return Rule("adagrad", hyper, adagrad_update, adagrad_init, factory=adagrad)


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
            maximize=False) -> Rule:
    """RMSProp: see :func:`rmsprop_update`. Defaults of torch.optim.RMSprop."""
    check_common_hyperparams(lr, weight_decay, eps)
    check_hyperparams(**{
        "momentum value": (momentum, np.asarray(momentum) >= 0),
        "alpha value": (alpha, np.asarray(alpha) >= 0),
    })
    hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                 centered=centered, maximize=maximize)
    return Rule("rmsprop", hyper, rmsprop_update, rmsprop_init, factory=rmsprop)


def _beta_pair(betas) -> tuple:
    """``betas`` as a pair of numbers (:func:`as_number` each); ``ValueError`` unless it has exactly two."""
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas!r}")
    return tuple(as_number(b) for b in betas)


def check_betas(betas):
    """Check Adam's ``betas`` as torch.optim does (a pair, 0 ≤ β₁, β₂ < 1) and return them as ``(beta1, beta2)``.

    One-element tensors and 0-d arrays become Python floats (:func:`as_number`); arrays of betas (batched runs)
    must be valid everywhere.
    """
    beta1, beta2 = _beta_pair(betas)
    check_hyperparams(**{
        "beta parameter at index 0": (beta1, (np.asarray(beta1) >= 0) & (np.asarray(beta1) < 1)),
        "beta parameter at index 1": (beta2, (np.asarray(beta2) >= 0) & (np.asarray(beta2) < 1)),
    })
    return beta1, beta2


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *, maximize=False,
         decoupled_weight_decay=False) -> Rule:
    """Adam (and AMSGrad with ``amsgrad=True``): see :func:`adam_update`. Defaults of torch.optim.Adam."""
    check_common_hyperparams(lr, weight_decay, eps)
    betas = check_betas(betas)
    hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    if decoupled_weight_decay:
        name = "adamw"
    else:
        name = "amsgrad" if amsgrad else "adam"
    return Rule(name, hyper, adam_update, adam_init, factory=adam)


def adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
          maximize=False) -> Rule:
    """AdamW: Adam with decoupled weight decay θ ← (1 − ηλ)θ. Defaults of torch.optim.AdamW."""
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)


# ======================================================================================
# Beyond Adam: NAdam, RAdam, Adafactor, Muon, Lion, Schedule-Free AdamW
# ======================================================================================
# Each rule below matches its reference (torch.optim, lion-pytorch, schedulefree) operation by operation, so
# that the two agree to rounding in float64 (tests/test_rules_beyond_adam.py). Where the reference computes a
# number on the host (``.item()``, Python arithmetic), so does the rule: see :func:`as_number`.
def _lerp(start, end, weight):
    r"""start + w (end − start), torch's ``lerp`` (which for w ≥ ½ computes end − (end − start)(1 − w))."""
    if hasattr(start, "lerp") and hasattr(end, "lerp") and not isinstance(weight, np.ndarray):
        return start.lerp(end, weight)
    if np.ndim(weight) == 0:
        return start + weight * (end - start) if weight < 0.5 else end - (end - start) * (1 - weight)
    return np.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def _sign(x):
    """Element-wise sign (−1, 0 or +1) of a NumPy array or a torch tensor (or a list of tensors)."""
    return x.sign() if hasattr(x, "sign") else np.sign(x)


def _rsqrt(x):
    """Element-wise 1/√x."""
    return x.rsqrt() if hasattr(x, "rsqrt") else 1 / np.sqrt(x)


def _minimum(a, b):
    """min(a, b) for numbers, element-wise for arrays (a may be an array of learning rates)."""
    if np.ndim(a) == 0 and np.ndim(b) == 0:
        return min(as_number(a), as_number(b))
    return np.minimum(a, b)


def _clamp_min(x, low):
    """max(x, low): a number for numbers, element-wise for arrays or tensors."""
    if np.ndim(x) == 0 and np.ndim(low) == 0:
        return max(as_number(x), as_number(low))
    if hasattr(x, "clamp"):
        return x.clamp(min=low)
    return np.maximum(x, low)


def _mean(x, axis):
    """Mean over ``axis`` keeping it (size 1), for NumPy arrays and torch tensors."""
    return x.mean(dim=axis, keepdim=True) if hasattr(x, "new_full") else x.mean(axis=axis, keepdims=True)


def _root_mean_square(x, batch_axes=0):
    r"""RMS(x) = ‖x‖₂ / √n over all axes after the first ``batch_axes``: a Python number when there are none."""
    axes = tuple(range(batch_axes, np.ndim(x)))
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if hasattr(x, "new_full"):
        norm = x.norm(2) if batch_axes == 0 else x.square().sum(dim=axes, keepdim=True).sqrt()
    else:
        norm = np.sqrt(np.sum(x * x, axis=axes, keepdims=batch_axes > 0))
    norm = as_number(norm)
    return norm / count**0.5


def _scalar_one_like(params):
    """The number 1 in torch.optim's dtype for step-like counters: float32 (float64 when torch's default is).

    A 0-d CPU tensor on the torch backend (as torch.optim keeps ``mu_product``), a NumPy float32 scalar on
    the NumPy backend, whose products with Python numbers round to float32 exactly as torch's do.
    """
    if hasattr(params, "new_ones"):
        import torch

        dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        return torch.tensor(1.0, dtype=dtype)
    return np.float32(1.0)


def _check_lr_tensor(lr):
    if hasattr(lr, "numel") and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")


def _require(message, value, valid):
    """Raise ``ValueError(message.format(value))`` unless ``valid`` holds (everywhere, for arrays)."""
    if not bool(np.all(valid)):
        raise ValueError(message.format(_show(value)))


def nadam_update(params, grad, state, *, lr, betas, eps, weight_decay,
                 momentum_decay, decoupled_weight_decay, maximize):
    r"""NAdam (Dozat, 2016): Adam with Nesterov momentum, as torch.optim.NAdam computes it.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\,\theta_{t-1}
              \quad\text{or}\quad \theta_{t-1} \leftarrow (1-\eta\lambda)\,\theta_{t-1}
              \ \text{(decoupled)}                                              \\
        \mu_t &= \beta_1 \bigl(1 - \tfrac12\, 0.96^{\,t\psi}\bigr), \qquad
        \mu_{t+1} = \beta_1 \bigl(1 - \tfrac12\, 0.96^{\,(t+1)\psi}\bigr)      \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2                             \\
        \theta_t &= \theta_{t-1}
           - \eta\,\frac{1-\mu_t}{1-\prod_{i\le t}\mu_i}\,\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)}+\varepsilon}
           - \eta\,\frac{\mu_{t+1}}{1-\prod_{i\le t+1}\mu_i}\,\frac{m_t}{\sqrt{v_t/(1-\beta_2^t)}+\varepsilon}

    ψ is ``momentum_decay``: the momentum coefficient μ_t warms up from β₁/2 towards β₁. The last line is
    Adam's step with the bias-corrected m̂_t replaced by a look-ahead: the current gradient's share plus
    the *next* step's momentum (Nesterov inside Adam). State: ``step`` t, ``mu_product`` ∏μ_i, ``exp_avg`` m_t,
    ``exp_avg_sq`` v_t. Like torch, the rule keeps ∏μ_i in float32 whatever the parameters' dtype (torch's
    dtype for step counters, float64 only when torch's default dtype is float64): a relative error of about
    10⁻⁷ in the two step sizes, which float64 runs must reproduce to match torch.optim.NAdam to 10⁻¹⁰. The
    products are then used as Python numbers, as torch uses them (``.item()``).
    """
    beta1, beta2 = betas
    step = state["step"] + 1
    params, grad = _gradient_and_decay(params, grad, lr=lr, weight_decay=weight_decay, maximize=maximize,
                                       decoupled=decoupled_weight_decay)
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    previous = state["mu_product"]
    if isinstance(previous, (np.ndarray, np.generic)):  # NumPy: μ rounded to ∏μ's dtype first, as torch does
        mu_product = previous * np.asarray(mu, dtype=previous.dtype)
    else:
        mu_product = previous * mu
    exp_avg, exp_avg_sq, _, bias_correction2 = adam_moments(state["exp_avg"], state["exp_avg_sq"], grad, beta1,
                                                            beta2, step, lerp=True)  # m_t, v_t, 1 − β₂ᵗ
    denom = sqrt(exp_avg_sq / bias_correction2) + eps
    product = as_number(mu_product)
    if isinstance(product, np.ndarray):  # an array of runs: the products as float64 numbers, like .item()
        product = product.astype(np.float64)
    product_next = product * mu_next
    params = _addcdiv(params, grad, denom, -lr * (1.0 - mu) / (1.0 - product))
    params = _addcdiv(params, exp_avg, denom, -lr * mu_next / (1.0 - product_next))
    return params, {**state, "step": step, "mu_product": mu_product, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def nadam_init(params, **_):
    return {"step": 0, "mu_product": _scalar_one_like(params), "exp_avg": zeros_like(params),
            "exp_avg_sq": zeros_like(params)}


def radam_update(params, grad, state, *, lr, betas, eps, weight_decay,
                 decoupled_weight_decay, maximize):
    r"""RAdam (Liu et al., 2020, Algorithm 2): Adam whose adaptive step is switched on as v_t becomes reliable.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2t\,\beta_2^t}{1-\beta_2^t}                                 \\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t\, r_t\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\varepsilon}
             \quad\text{if } \rho_t > 5, \qquad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\,\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\,\rho_t}} \\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t \quad\text{otherwise (SGD with momentum)}

    with m̂_t = m_t/(1 − β₁ᵗ) and weight decay as in :func:`adam_update` (L2, or decoupled with
    ``decoupled_weight_decay=True``). ρ_t estimates how many gradients the average v_t effectively holds;
    while it is at most 5 the variance of the adaptive step would be unbounded, so RAdam takes plain
    momentum steps (for β₂ = 0.999 the first 5 steps), then multiplies Adam's step by the rectification
    r_t < 1, which rises to 1 as t grows: the warm-up that Adam otherwise needs, built in.
    State: ``step``, ``exp_avg``, ``exp_avg_sq`` (torch's names).
    """
    beta1, beta2 = betas
    step = state["step"] + 1
    params, grad = _gradient_and_decay(params, grad, lr=lr, weight_decay=weight_decay, maximize=maximize,
                                       decoupled=decoupled_weight_decay)
    exp_avg, exp_avg_sq, bias_correction1, bias_correction2 = adam_moments(
        state["exp_avg"], state["exp_avg_sq"], grad, beta1, beta2, step, lerp=True)  # m_t, v_t, 1 − β₁ᵗ, 1 − β₂ᵗ
    new_state = {**state, "step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    corrected_exp_avg = exp_avg / bias_correction1
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
    if np.ndim(rho_t) == 0:  # one β₂ (both backends): torch's branch
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = (bias_correction2**0.5) / (sqrt(exp_avg_sq) + eps)
            return params - corrected_exp_avg * lr * adaptive * rect, new_state
        return params - corrected_exp_avg * lr, new_state
    rectified = rho_t > 5.0  # an array of β₂ (batched NumPy runs): each run takes its own branch
    with np.errstate(divide="ignore", invalid="ignore"):  # the rows not rectified discard these numbers
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    rect = np.where(rectified, ratio, 1.0) ** 0.5
    adaptive = np.where(rectified, (bias_correction2**0.5) / (sqrt(exp_avg_sq) + eps), 1.0)
    return params - corrected_exp_avg * lr * adaptive * rect, new_state


def adafactor_update(params, grad, state, *, lr, beta2_decay, eps, d,
                     weight_decay, maximize, batch_axes):
    r"""Adafactor (Shazeer & Stern, 2018, Algorithms 4 and 5) as torch.optim.Adafactor computes it.

    .. math::

        \hat\beta_{2,t} &= 1 - t^{c}, \qquad \eta_t = \min(\eta,\ 1/\sqrt t), \qquad
        a_t = \max\bigl(\varepsilon_2,\ \mathrm{RMS}(\theta_{t-1})\bigr)\, \eta_t              \\
        \theta_{t-1} &\leftarrow (1-\eta\lambda)\,\theta_{t-1}
             \quad\text{(decoupled weight decay)}                                              \\
        R_t &= \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\, \mathrm{mean}_{\text{cols}}(g_t^2), \qquad
        C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\, \mathrm{mean}_{\text{rows}}(g_t^2)   \\
        \hat V_t &= R_t C_t / \max(\mathrm{mean}(R_t), \varepsilon_1)
             \quad\text{(matrices; a vector keeps its full } V_t\text{ like Adam's } v_t)   \\
        U_t &= g_t / \sqrt{\max(\hat V_t, \varepsilon_1^2)}, \qquad
        \theta_t = \theta_{t-1} - \frac{a_t}{\max(1,\ \mathrm{RMS}(U_t)/d)}\, U_t

    c is ``beta2_decay`` (−0.8): 1 − β̂₂,t = t^c, so the first step takes v from g₁² alone and the average
    lengthens as t grows (no bias correction needed). ε = (ε₁, ε₂) = ``eps``; ε₁ = None means the
    machine epsilon of the parameters' dtype. The step is *relative*: a_t scales with the parameters'
    RMS (at least ε₂), and η_t = min(η, 1/√t) decays it; ``d`` clips the update's RMS. For a matrix
    m × n the state is a row factor R (m × 1, ``row_var``) and a column factor C (1 × n, ``col_var``),
    m + n numbers instead of Adam's mn: the outer product R C / mean(R) is the rank-1 estimate of the
    second moments. A tensor of more than two dimensions is factored over its last two axes, as torch
    does. Vectors and scalars keep ``variance`` (V_t). State: ``step`` and those.

    Both backends: the factoring acts on the last two axes of an array of two or more dimensions. By
    default (``batch_axes=0``) an array is one parameter, so a NumPy array of shape (B, n) is factored as a
    B × n matrix and its RMS is taken over all of it, as torch.optim.Adafactor would for such a tensor.
    For B independent runs (a leading batch axis, hyperparameters as arrays broadcasting against it) pass
    ``batch_axes=1``: the RMS are then taken per run, and the factoring applies to the axes after it.
    """
    eps1, eps2 = eps
    step = state["step"] + 1
    if maximize:
        grad = -grad
    if eps1 is None:
        eps1 = float(_finfo_eps(params))
    one_minus_beta2_t = step**beta2_decay
    rho_t = _minimum(lr, 1 / (step**0.5))
    alpha = _clamp_min(_root_mean_square(params, batch_axes), eps2) * rho_t
    if _nonzero(weight_decay):
        params = params * (1 - lr * weight_decay)
    new_state = {**state, "step": step}
    if np.ndim(grad) - batch_axes > 1:
        squared = grad * grad
        row_var = _lerp(state["row_var"], _mean(squared, -1), one_minus_beta2_t)
        col_var = _lerp(state["col_var"], _mean(squared, -2), one_minus_beta2_t)
        var_estimate = (row_var @ col_var) / _clamp_min(_mean(row_var, -2), eps1)
        new_state.update(row_var=row_var, col_var=col_var)
    else:
        var_estimate = _lerp(state["variance"], grad * grad, one_minus_beta2_t)
        new_state["variance"] = var_estimate
    update = _rsqrt(_clamp_min(var_estimate, eps1 * eps1)) * grad
    denom = _clamp_min(_root_mean_square(update, batch_axes) / d, 1.0)
    return params - (alpha / denom) * update, new_state


def _finfo_eps(params):
    if hasattr(params, "new_full"):
        import torch

        return torch.finfo(params.dtype).eps
    return np.finfo(np.asarray(params).dtype).eps


def adafactor_init(params, *, batch_axes=0, **_):
    if np.ndim(params) - batch_axes > 1:
        zeros = zeros_like(params)
        return {"step": 0, "row_var": _mean(zeros, -1), "col_var": _mean(zeros, -2)}
    return {"step": 0, "variance": zeros_like(params)}


#: torch.optim.Muon's defaults: Keller Jordan's quintic Newton–Schulz coefficients, ε and number of steps.
MUON_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
MUON_EPS = 1e-7
MUON_NS_STEPS = 5


def newton_schulz_orthogonalize(matrix, ns_coefficients=MUON_NS_COEFFICIENTS, ns_steps=MUON_NS_STEPS,
                                eps=MUON_EPS):
    r"""U Vᵀ (approximately) for M = U S Vᵀ: k quintic Newton–Schulz steps, in bfloat16, as torch.optim.Muon.

    .. math::

        X_0 = M / \max(\|M\|_F, \varepsilon), \qquad
        X_{j+1} = a X_j + (b\, A_j + c\, A_j^2)\, X_j, \quad A_j = X_j X_j^\top

    Each step maps every singular value s of X to p(s) = a·s + b·s³ + c·s⁵ (the singular vectors stay); with
    (a, b, c) = (3.4445, −4.7750, 2.0315) p is steep at 0 (slope a), so five steps map every s with
    s/‖M‖_F ≥ 0.002 into [0.68, 1.21] (exact arithmetic; smaller ones are multiplied by at most a⁵ ≈ 490):
    X₅ ≈ U S′ Vᵀ with S′ ≈ I, not exactly U Vᵀ. A tall matrix is transposed first, so that
    A_j is the smaller Gram matrix.

    The iteration runs in **bfloat16**, as torch's does: the matrix is rounded to bfloat16 (8 significant
    bits, relative error up to 2⁻⁹ ≈ 0.2 %, with float32's exponent range) and every product and sum is
    rounded back to bfloat16; the result is a bfloat16 matrix whose entries carry about 2–3 significant
    digits. The approximation S′ ≈ I is far coarser than that, so the cast costs Muon nothing but makes
    its update exact only to about 1 % (tests compare with torch at that precision). NumPy has no
    bfloat16: NumPy arrays go through torch (on the CPU) for this function, so both backends give the
    same bfloat16 numbers, returned as float32 (which holds every bfloat16 exactly). A stack of matrices
    (leading axes) is orthogonalized matrix by matrix.
    """
    import torch

    if not isinstance(matrix, torch.Tensor):
        return newton_schulz_orthogonalize(torch.from_numpy(np.ascontiguousarray(matrix)), ns_coefficients,
                                           ns_steps, eps).float().numpy()
    if matrix.ndim < 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if matrix.ndim > 2:
        return torch.stack([newton_schulz_orthogonalize(m, ns_coefficients, ns_steps, eps) for m in matrix])
    a, b, c = ns_coefficients
    ortho = matrix.bfloat16()
    tall = matrix.size(0) > matrix.size(1)
    if tall:
        ortho = ortho.T
    ortho = ortho / ortho.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = ortho @ ortho.T
        gram_update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        ortho = torch.addmm(ortho, gram_update, ortho, beta=a)
    return ortho.T if tall else ortho


def muon_lr_ratio(shape, adjust_lr_fn=None) -> float:
    r"""The factor s(m, n) Muon multiplies η by for an m × n matrix, torch's ``adjust_lr_fn``.

    ``None`` or ``"original"`` (Keller Jordan): √max(1, m/n), so tall matrices get RMS-comparable steps;
    ``"match_rms_adamw"`` (Moonshot, Liu et al. 2025): 0.2 √max(m, n), so the update's RMS is about AdamW's
    (0.2) and AdamW's η and λ carry over.
    """
    rows, cols = shape[-2], shape[-1]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def muon_update(params, grad, state, *, lr, weight_decay, momentum, nesterov,
                ns_coefficients, eps, ns_steps, adjust_lr_fn):
    r"""Muon (Jordan et al., 2024): momentum, then the update orthogonalized, as torch.optim.Muon computes it.

    .. math::

        b_t &= \beta\, b_{t-1} + (1-\beta)\, g_t, \qquad
        \tilde b_t = (1-\beta)\, g_t + \beta\, b_t \ \text{(Nesterov)} \quad\text{or}\quad \tilde b_t = b_t \\
        O_t &= \mathrm{NS}^{(a,b,c)}_k(\tilde b_t;\ \varepsilon) \approx U V^\top
              \quad\text{for } \tilde b_t = U S V^\top                                              \\
        \theta_t &= (1-\eta\lambda)\,\theta_{t-1} - \eta\,s(m, n)\, O_t

    β is ``momentum``. (torch's code computes b_t = lerp(b_{t−1}, g_t, 1−β), as written here; its
    documentation's algorithm box writes b_t = βb_{t−1} + g_t, which is 1/(1−β) times this b_t: the same
    direction, and the normalization inside NS removes the factor, up to rounding and ε.)
    O_t keeps the directions of the momentum and sets all its singular values to about 1: the steepest
    descent step under the spectral norm, so no direction of a weight matrix dominates the step. s(m, n)
    is :func:`muon_lr_ratio` of the m × n matrix (``adjust_lr_fn``); the weight decay uses η itself. NS is
    :func:`newton_schulz_orthogonalize`, which runs in bfloat16 (see there what that cast does), so O_t
    holds bfloat16 values; θ keeps its own dtype. State: ``momentum_buffer`` b_t.

    The last two axes are the matrix. On either backend, leading axes are a batch of independent
    matrices (runs): each is orthogonalized on its own and s(m, n) uses the matrix's shape. Vectors and
    scalars are refused with torch's ``ValueError`` (Muon is for matrices; use AdamW for the rest).
    """
    if np.ndim(grad) < 2:
        raise ValueError("Param gradient must be a 2D matrix")
    buffer = _lerp(state["momentum_buffer"], grad, 1 - momentum)
    direction = _lerp(grad, buffer, momentum) if nesterov else buffer
    orthogonal = newton_schulz_orthogonalize(direction, ns_coefficients, ns_steps, eps)
    orthogonal = orthogonal.to(params.dtype) if hasattr(orthogonal, "to") else orthogonal.astype(params.dtype)
    adjusted_lr = lr * muon_lr_ratio(np.shape(params), adjust_lr_fn)
    params = params * (1 - lr * weight_decay)
    return params - adjusted_lr * orthogonal, {**state, "momentum_buffer": buffer}


def muon_init(params, **_):
    if np.ndim(params) < 2:
        raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: "
                         f"{tuple(np.shape(params))}")
    return {"momentum_buffer": zeros_like(params)}


def lion_update(params, grad, state, *, lr, betas, weight_decay,
                decoupled_weight_decay, init_lr):
    r"""Lion (Chen et al., 2023, Algorithm 2): the sign of an interpolation, as ``lion_pytorch.Lion``.

    .. math::

        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}                           \\
        \theta_t &= \theta_{t-1} - \eta\, \mathrm{sign}\bigl(\beta_1 m_{t-1} + (1-\beta_1)\, g_t\bigr) \\
        m_t &= \beta_2 m_{t-1} + (1-\beta_2)\, g_t

    Without weight decay every coordinate moves by exactly η (or 0 where the interpolation is 0): the step
    is bounded whatever the gradient's scale, and the only state is one moving average (``exp_avg`` m_t,
    half of Adam's memory). The direction uses
    β₁ = 0.9 while the memory m_t keeps a longer β₂ = 0.99 average. With ``decoupled_weight_decay=True``
    λ is divided by the learning rate the optimizer was built with, ``init_lr`` (η₀; the current η
    when None), so the decay per step is λ η/η₀: λ itself at η = η₀, following a schedule's changes
    of η, as lion-pytorch does.
    """
    beta1, beta2 = betas
    if _nonzero(weight_decay):
        if decoupled_weight_decay:
            weight_decay = weight_decay / (lr if init_lr is None else init_lr)
        params = params * (1.0 - lr * weight_decay)
    exp_avg = state["exp_avg"]
    direction = _sign(exp_avg * beta1 + (1.0 - beta1) * grad)
    params = params - lr * direction
    return params, {**state, "exp_avg": exp_avg * beta2 + (1.0 - beta2) * grad}


def lion_init(params, **_):
    return {"exp_avg": zeros_like(params)}


def schedule_free_adamw_update(params, grad, state, *, lr, betas, eps,
                               weight_decay, warmup_steps, r, weight_lr_power):
    r"""Schedule-Free AdamW (Defazio et al., 2024), as ``schedulefree.AdamWScheduleFree`` computes it.

    Three sequences: z_t takes AdamW-like steps, x_t is a weighted average of the z's (what to evaluate),
    and the gradient is taken at y_t, an interpolation of the two; ``params`` hold y (train mode).

    .. math::

        \eta_t &= \eta \cdot \min(1,\ t/T_{\text{warmup}}), \qquad
        w_t = t^{\,r}\, \bigl(\max_{i\le t}\eta_i\bigr)^{p}, \qquad c_t = w_t \big/ \textstyle\sum_{i\le t} w_i \\
        v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \qquad
        u_t = \frac{g_t}{\sqrt{v_t/(1-\beta_2^t)} + \varepsilon} + \lambda\, y_{t-1}           \\
        z_t &= z_{t-1} - \eta_t\, u_t, \qquad x_t = (1-c_t)\, x_{t-1} + c_t\, z_t, \qquad
        y_t = (1-\beta_1)\, z_t + \beta_1 x_t

    with p = ``weight_lr_power``, r = ``r``, T_warmup = ``warmup_steps``, z₀ = x₀ = y₀ = θ₀ and g_t the
    gradient at y_{t−1}. The rule never stores x: like the package it updates y in place as
    y_t = lerp(y_{t−1}, z_{t−1}, c_t) + η_t (β₁(1 − c_t) − 1) u_t, the same algebra. There is no learning-rate
    schedule to choose: the average x_t does what a decaying schedule does (with r = 0 and no warm-up,
    c_t = 1/t and x_t is the plain average of z_1 … z_t). β₁ plays momentum's role through the
    interpolation y. Weight decay is applied at y, as the package does.

    State: ``z``, ``exp_avg_sq`` v_t per array, and the package's per-group counters ``k`` (steps taken),
    ``weight_sum`` Σw_i, ``lr_max`` (−1 before the first step). To evaluate, move y to x with
    :func:`schedule_free_eval`; to train again, back with :func:`schedule_free_train`.
    """
    beta1, beta2 = betas
    k = state["k"]
    bias_correction2 = 1 - beta2 ** (k + 1)
    schedule = schedule_free_schedule(state, lr=lr, warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power)
    lr, ckp1, lr_max, weight_sum = schedule["lr"], schedule["ckp1"], schedule["lr_max"], schedule["weight_sum"]
    exp_avg_sq = state["exp_avg_sq"] * beta2 + (1 - beta2) * grad * grad
    denom = sqrt(exp_avg_sq / bias_correction2) + eps
    grad_normalized = grad / denom
    if _nonzero(weight_decay):
        grad_normalized = grad_normalized + weight_decay * params
    z = state["z"]
    params = _lerp(params, z, ckp1)
    params = params + (lr * (beta1 * (1 - ckp1) - 1)) * grad_normalized
    z = z - lr * grad_normalized
    return params, {**state, "k": k + 1, "weight_sum": weight_sum, "lr_max": lr_max, "z": z,
                    "exp_avg_sq": exp_avg_sq}


def schedule_free_schedule(state, *, lr=0.0025, warmup_steps=0, r=0.0, weight_lr_power=2.0, **_):
    r"""The numbers of step t = k + 1 shared by all arrays: η_t, c_{t} (``ckp1``), max η and Σw (new values).

    η_t = η · min(1, t/T_warmup), w_t = t^r (max_{i≤t} η_i)^p, c_t = w_t / Σ_{i≤t} w_i (0 while Σw = 0), from
    the counters ``k``, ``lr_max``, ``weight_sum`` of ``state``; the package keeps these per param group.
    """
    k = state["k"]
    sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
    lr = lr * sched
    lr_max = _clamp_min(lr, state["lr_max"])
    weight = ((k + 1) ** r) * (lr_max**weight_lr_power)
    weight_sum = state["weight_sum"] + weight
    if np.ndim(weight_sum) == 0:
        ckp1 = weight / weight_sum if weight_sum != 0 else 0
    else:
        ckp1 = np.divide(weight, weight_sum, out=np.zeros(np.shape(weight_sum)), where=weight_sum != 0)
    return {"lr": lr, "ckp1": ckp1, "lr_max": lr_max, "weight_sum": weight_sum}


def schedule_free_adamw_init(params, **_):
    return {"k": 0, "weight_sum": 0.0, "lr_max": -1.0, "z": params * 1.0, "exp_avg_sq": zeros_like(params)}


def schedule_free_eval(params, state, *, betas=(0.9, 0.999), **_):
    r"""x from y (the switch to eval mode): x = y + (1 − 1/β₁)(z − y), i.e. ``y.lerp(z, 1 − 1/β₁)``.

    Inverts y = (1 − β₁) z + β₁ x. Pass the rule's hyperparameters: ``schedule_free_eval(y, state,
    **rule.hyperparams)``. Before the first step (no ``z`` yet) the parameters are returned unchanged.
    """
    if "z" not in state:
        return params
    return _lerp(params, state["z"], 1 - 1 / betas[0])


def schedule_free_train(params, state, *, betas=(0.9, 0.999), **_):
    r"""y from x (the switch to train mode): y = x + (1 − β₁)(z − x) = (1 − β₁) z + β₁ x."""
    if "z" not in state:
        return params
    return _lerp(params, state["z"], 1 - betas[0])


# --------------------------------------------------------------------------------------
# Factories (the references' names, defaults and checks)
# --------------------------------------------------------------------------------------
def nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
          decoupled_weight_decay=False, *, maximize=False) -> Rule:
    """NAdam: see :func:`nadam_update`. Defaults and checks of torch.optim.NAdam."""
    _check_lr_tensor(lr)
    check_common_hyperparams(lr, weight_decay, eps)
    betas = check_betas(betas)
    check_hyperparams(**{"momentum_decay value": (momentum_decay, np.asarray(momentum_decay) >= 0)})
    hyper = dict(lr=as_number(lr), betas=betas, eps=eps, weight_decay=weight_decay,
                 momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    return Rule("nadam", hyper, nadam_update, nadam_init, factory=nadam)


def radam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, *,
          maximize=False) -> Rule:
    """RAdam: see :func:`radam_update`. Defaults and checks of torch.optim.RAdam."""
    _check_lr_tensor(lr)
    check_common_hyperparams(lr, weight_decay, eps)
    betas = check_betas(betas)
    hyper = dict(lr=as_number(lr), betas=betas, eps=eps, weight_decay=weight_decay,
                 decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    return Rule("radam", hyper, radam_update, radam_init, factory=radam)


def radam_init(params, **_):
    return {"step": 0, "exp_avg": zeros_like(params), "exp_avg_sq": zeros_like(params)}


def adafactor(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *, maximize=False,
              batch_axes=0) -> Rule:
    """Adafactor: see :func:`adafactor_update`. Defaults and checks (messages) of torch.optim.Adafactor."""
    _check_lr_tensor(lr)
    lr = as_number(lr)
    if len(eps) != 2:
        raise ValueError(f"Invalid eps: expected a pair (epsilon1, epsilon2), got {eps!r}")
    eps1, eps2 = eps
    _require("Learning rate should be >= 0 but is: {}", lr, np.asarray(lr) >= 0)
    _require("beta2_decay should be <= 0 but is: {}", beta2_decay, np.asarray(beta2_decay) <= 0)
    if eps1 is not None:
        _require("epsilon1 should be >= 0 but is: {}", eps1, np.asarray(eps1) >= 0)
    _require("epsilon2 should be >= 0 but is: {}", eps2, np.asarray(eps2) >= 0)
    _require("Clipping threshold d should be >= 1 but is: {}", d, np.asarray(d) >= 1)
    _require("weight_decay should be >= 0 but is: {}", weight_decay, np.asarray(weight_decay) >= 0)
    _require("batch_axes should be a non-negative integer but is: {}", batch_axes,
             isinstance(batch_axes, int) and batch_axes >= 0)
    hyper = dict(lr=lr, beta2_decay=beta2_decay, eps=tuple(eps), d=d, weight_decay=weight_decay,
                 maximize=maximize, batch_axes=batch_axes)
    return Rule("adafactor", hyper, adafactor_update, adafactor_init, factory=adafactor)


def muon(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=MUON_NS_COEFFICIENTS,
         eps=MUON_EPS, ns_steps=MUON_NS_STEPS, adjust_lr_fn=None) -> Rule:
    """Muon: see :func:`muon_update`. Defaults and checks (messages) of torch.optim.Muon.

    torch checks ``ns_steps`` and ``ns_coefficients`` only at the first step; they are checked here at once.
    """
    _check_lr_tensor(lr)
    lr = as_number(lr)
    _require("Learning rate should be >= 0 but is: {}", lr, np.asarray(lr) >= 0)
    _require("momentum should be >= 0 but is: {}", momentum, np.asarray(momentum) >= 0)
    _require("weight decay should be >= 0 but is: {}", weight_decay, np.asarray(weight_decay) >= 0)
    if adjust_lr_fn is not None and adjust_lr_fn not in ("original", "match_rms_adamw"):
        raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if len(ns_coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    hyper = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                 ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
    return Rule("muon", hyper, muon_update, muon_init, factory=muon)


def lion(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, decoupled_weight_decay=False, init_lr=None) -> Rule:
    """Lion: see :func:`lion_update`. Defaults of ``lion_pytorch.Lion``.

    lion-pytorch *asserts* 0 ≤ β ≤ 1; here that is a ``ValueError`` naming the parameter, and a negative
    ``weight_decay`` (which lion-pytorch accepts) is refused too. A learning rate of 0 is a step of zero, and
    allowed here as in every rule: a schedule's warm-up starts there. lion-pytorch refuses lr = 0 when it is
    *built* (:class:`course_lib.optim.Lion` does too), never when a scheduler sets it later.
    """
    _check_lr_tensor(lr)
    lr = as_number(lr)
    _require("Invalid learning rate: {}", lr, np.asarray(lr) >= 0)
    beta1, beta2 = _beta_pair(betas)
    for index, beta in enumerate((beta1, beta2)):
        _require(f"Invalid beta parameter at index {index}: {{}} (Lion needs 0 <= beta <= 1)", beta,
                 (np.asarray(beta) >= 0) & (np.asarray(beta) <= 1))
    _require("Invalid weight_decay value: {}", weight_decay, np.asarray(weight_decay) >= 0)
    if init_lr is not None:
        _require("Invalid init_lr: {} (Lion needs init_lr > 0)", init_lr, np.asarray(init_lr) > 0)
    hyper = dict(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay,
                 decoupled_weight_decay=decoupled_weight_decay, init_lr=init_lr)
    return Rule("lion", hyper, lion_update, lion_init, factory=lion)


def schedule_free_adamw(lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.0,
                        weight_lr_power=2.0) -> Rule:
    """Schedule-Free AdamW: see :func:`schedule_free_adamw_update`. Defaults of ``schedulefree.AdamWScheduleFree``.

    The package checks none of its hyperparameters; here torch's conventions apply (lr, eps, weight_decay,
    warmup_steps, r, weight_lr_power ≥ 0, 0 ≤ β₂ < 1) and β₁ must lie in (0, 1]: with β₁ = 0 the switch to
    eval mode, x = y + (1 − 1/β₁)(z − y), divides by zero (the package fails there with ZeroDivisionError).
    """
    _check_lr_tensor(lr)
    lr = as_number(lr)
    check_common_hyperparams(lr, weight_decay, eps)
    beta1, beta2 = _beta_pair(betas)
    check_hyperparams(**{
        "beta parameter at index 0": (beta1, (np.asarray(beta1) > 0) & (np.asarray(beta1) <= 1)),
        "beta parameter at index 1": (beta2, (np.asarray(beta2) >= 0) & (np.asarray(beta2) < 1)),
        "warmup_steps value": (warmup_steps, np.asarray(warmup_steps) >= 0),
        "r value": (r, np.asarray(r) >= 0),
        "weight_lr_power value": (weight_lr_power, np.asarray(weight_lr_power) >= 0),
    })
    hyper = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
                 weight_lr_power=weight_lr_power)
    return Rule("schedule_free", hyper, schedule_free_adamw_update, schedule_free_adamw_init,
                factory=schedule_free_adamw)


# ======================================================================================================================
# AdEMAMix and SOAP (pytorch_optimizer's): an extra slow momentum; Adam in the eigenbasis of Shampoo's factors
# ======================================================================================================================
def ademamix_alpha(step, alpha=5.0, t_alpha_beta3=None):
    r"""AdEMAMix's weight of the slow average at step t: α_t = min(tα/T, α) with T = ``t_alpha_beta3`` (α if None)."""
    if t_alpha_beta3 is None:
        return alpha
    return _minimum(step * alpha / t_alpha_beta3, alpha)


def ademamix_beta3(step, beta1=0.9, beta3=0.9999, t_alpha_beta3=None):
    r"""AdEMAMix's slow decay rate at step t (β₃ if ``t_alpha_beta3`` T is None), the paper's scheduler

    .. math:: \beta_3(t) = \min\Bigl(\exp\Bigl(\frac{\ln\beta_1\,\ln\beta_3}
              {(1 - t/T)\ln\beta_3 + (t/T)\ln\beta_1}\Bigr),\ \beta_3\Bigr),

    which moves the half-life of the slow average linearly in t from β₁'s (t = 0) to β₃'s (t = T).
    """
    if t_alpha_beta3 is None:
        return beta3
    log_beta1, log_beta3 = np.log(beta1), np.log(beta3)
    fraction = step / t_alpha_beta3
    scheduled = np.exp(log_beta1 * log_beta3 / ((1.0 - fraction) * log_beta3 + fraction * log_beta1))
    return _minimum(as_number(scheduled) if np.ndim(scheduled) == 0 else scheduled, beta3)


def ademamix_update(params, grad, state, *, lr, betas, weight_decay,
                    weight_decouple, fixed_decay, alpha, t_alpha_beta3, eps,
                    maximize):
    r"""AdEMAMix (Pagliardini, Ablin & Grangier, 2024): Adam plus a second, slow moving average of gradients.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\,\theta_{t-1}
              \quad\text{(``weight_decouple=False``, the reference's default: an L2 penalty)}          \\
        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}
              \quad\text{(``weight_decouple=True``, the paper's; } (1-\lambda)\theta
              \text{ with ``fixed_decay=True``)}                                                       \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2   \\
        m_{2,t} &= \beta_3(t)\, m_{2,t-1} + (1-\beta_3(t))\, g_t                   \\
        \theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t + \alpha_t\, m_{2,t}}
                    {\sqrt{\hat v_t} + \varepsilon}

    m̂_t = m_t/(1−β₁^t) and v̂_t = v_t/(1−β₂^t) as Adam's (the paper writes m as m₁); the slow average m₂
    (``exp_avg_slow``, β₃ = 0.9999: a memory of about 10 000 steps) is *not* bias-corrected and is added with
    weight α (5 by default).
    With ``t_alpha_beta3`` = T the paper's warm-up schedulers apply: α_t = min(tα/T, α)
    (:func:`ademamix_alpha`) and β₃(t) (:func:`ademamix_beta3`); without it α_t = α and β₃(t) = β₃.

    Paper and reference: the paper's Algorithm 1 decays the weights AdamW-style, θ ← θ − η(… + λθ), which is
    ``weight_decouple=True`` (the same update: (1 − ηλ)θ − ηu = θ − η(u + λθ)); the reference,
    ``pytorch_optimizer.AdEMAMix`` (4.1), defaults to ``weight_decouple=False``, Adam's L2 penalty added to
    the gradient (then the decay also enters m, v and m₂). The reference changes ``param.grad`` in place
    (maximize, L2 penalty); this rule changes nothing. State: ``step`` t (the reference keeps it per param
    group), ``exp_avg`` m_t, ``exp_avg_sq`` v_t, ``exp_avg_slow`` m₂ (m_{2,t}).
    """
    beta1, beta2, beta3 = betas
    step = state["step"] + 1
    if maximize:
        grad = -grad
    if _nonzero(weight_decay):
        if weight_decouple:
            params = _scale(params, 1.0 - weight_decay * (1.0 if fixed_decay else lr))
        else:
            grad = _add(grad, params, weight_decay)  # g + λθ
    alpha_t = ademamix_alpha(step, alpha, t_alpha_beta3)
    beta3_t = ademamix_beta3(step, beta1, beta3, t_alpha_beta3)
    exp_avg, exp_avg_sq, bias_correction1, bias_correction2 = adam_moments(
        state["exp_avg"], state["exp_avg_sq"], grad, beta1, beta2, step)  # m_t, v_t, 1 − β₁ᵗ, 1 − β₂ᵗ
    exp_avg_slow = _ema(state["exp_avg_slow"], grad, beta3_t)  # m₂ (m_{2,t})
    denom = adam_denominator(exp_avg_sq, bias_correction2, eps)  # √v̂_t + ε
    direction = _add(exp_avg / bias_correction1, exp_avg_slow, alpha_t)  # m̂_t + α_t m₂ (m_{2,t})
    return _addcdiv(params, direction, denom, -lr), {**state, "step": step, "exp_avg": exp_avg,
                                                     "exp_avg_sq": exp_avg_sq, "exp_avg_slow": exp_avg_slow}


def ademamix_init(params, **_):
    return {"step": 0, "exp_avg": zeros_like(params), "exp_avg_sq": zeros_like(params),
            "exp_avg_slow": zeros_like(params)}


def ademamix(lr=1e-3, betas=(0.9, 0.999, 0.9999), weight_decay=0.0, weight_decouple=False, fixed_decay=False,
             alpha=5.0, t_alpha_beta3=None, eps=1e-8, *, maximize=False) -> Rule:
    """AdEMAMix: see :func:`ademamix_update`. Defaults of ``pytorch_optimizer.AdEMAMix``.

    Its checks, as ``ValueError`` naming the argument (the reference raises its own ``NegativeLRError`` for a
    negative lr): η, λ, ε, α ≥ 0; 0 ≤ β₁, β₂ < 1 and 0 ≤ β₃ ≤ 1; and, where the reference would fail at its
    first step with a ZeroDivisionError or a math domain error, ``t_alpha_beta3`` must be None or > 0 and
    then β₁ > 0.
    """
    _check_lr_tensor(lr)
    lr = as_number(lr)
    check_common_hyperparams(lr, weight_decay, eps)
    if len(betas) != 3:
        raise ValueError(f"Invalid betas: expected three decay rates (beta1, beta2, beta3), got {betas!r}")
    beta1, beta2, beta3 = (as_number(b) for b in betas)
    check_hyperparams(**{
        "beta parameter at index 0": (beta1, (np.asarray(beta1) >= 0) & (np.asarray(beta1) < 1)),
        "beta parameter at index 1": (beta2, (np.asarray(beta2) >= 0) & (np.asarray(beta2) < 1)),
        "beta parameter at index 2": (beta3, (np.asarray(beta3) >= 0) & (np.asarray(beta3) <= 1)),
        "alpha value": (alpha, np.asarray(alpha) >= 0),
    })
    if t_alpha_beta3 is not None:
        _require("Invalid t_alpha_beta3: {} (the number of warm-up steps T of alpha and beta3: None or > 0)",
                 t_alpha_beta3, np.asarray(t_alpha_beta3) > 0)
        _require("Invalid beta parameter at index 0: {} (the beta3 scheduler of t_alpha_beta3 takes log(beta1), "
                 "so beta1 must be > 0)", beta1, np.asarray(beta1) > 0)
    hyper = dict(lr=lr, betas=(beta1, beta2, beta3), weight_decay=weight_decay, weight_decouple=weight_decouple,
                 fixed_decay=fixed_decay, alpha=alpha, t_alpha_beta3=t_alpha_beta3, eps=eps, maximize=maximize)
    return Rule("ademamix", hyper, ademamix_update, ademamix_init, factory=ademamix)


# ---- SOAP: NumPy and torch alike (tensordot, eigh, QR) ---------------------------------------------------------------
def _tensordot(a, b, axes_a, axes_b):
    """Contract ``axes_a`` of ``a`` with ``axes_b`` of ``b`` (torch's ``tensordot``, NumPy's)."""
    if hasattr(a, "new_full"):
        import torch

        return torch.tensordot(a, b, dims=[list(axes_a), list(axes_b)])
    return np.tensordot(a, b, axes=(list(axes_a), list(axes_b)))


def _first_axis_last(x):
    """x with its first axis moved to the end (the identity's turn in SOAP's projection)."""
    order = [*range(1, np.ndim(x)), 0]
    return x.permute(order) if hasattr(x, "permute") else np.transpose(x, order)


def _take(x, index, axis):
    """x with the entries along ``axis`` reordered by ``index``."""
    return x.index_select(axis, index) if hasattr(x, "index_select") else np.take(x, index, axis=axis)


def _eigenvectors_descending(matrix):
    """The eigenvectors of a symmetric matrix, as columns, by decreasing eigenvalue (``eigh`` then flipped).

    As the reference, ``eigh`` of matrix + 10⁻³⁰ I (which changes nothing in float32 or float64 arithmetic); where
    ``eigh`` has no kernel for the dtype (bfloat16, float16), in float64 and cast back, as the reference falls back.
    """
    if hasattr(matrix, "new_full"):
        import torch

        dtype = matrix.dtype
        if dtype in (torch.bfloat16, torch.float16):
            matrix = matrix.double()
        eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
        return torch.linalg.eigh(matrix + 1e-30 * eye)[1].flip(1).to(dtype)
    return np.linalg.eigh(matrix + 1e-30 * np.eye(matrix.shape[0]))[1][:, ::-1]


def _qr_q_float32(matrix):
    """The Q of a QR factorisation, computed in float32 as the reference does (then back to the matrix's dtype)."""
    if hasattr(matrix, "new_full"):
        import torch

        return torch.linalg.qr(matrix.to(torch.float32))[0].to(matrix.dtype)
    return np.linalg.qr(np.asarray(matrix, dtype=np.float32))[0].astype(np.asarray(matrix).dtype)


def _argsort_descending(x):
    return x.argsort(descending=True) if hasattr(x, "new_full") else np.argsort(-x, kind="stable")


def soap_project(x, Q, *, backward=False):
    r"""Rotate x into the eigenbases: Q^{(i)ᵀ} along each axis i (``backward=True``: back, with Q^{(i)}).

    For a matrix, forward is Q^{(1)ᵀ} X Q^{(2)} and backward Q^{(1)} X Q^{(2)ᵀ}. An axis whose entry in ``Q`` is
    ``[]`` (not preconditioned) is left as it is.
    """
    for basis in Q:
        if isinstance(basis, list):  # [] : the identity on this axis
            x = _first_axis_last(x)
        else:
            x = _tensordot(x, basis, [0], [1 if backward else 0])
    return x


def _soap_statistics(GG, grad, shampoo_beta):
    """F^{(i)} ← β_s F^{(i)} + (1 − β_s) g_(i) g_(i)ᵀ for each preconditioned axis i, with g_(i) the gradient's axis i
    against all others (``[]`` entries stay)."""
    updated = []
    for axis, factor in enumerate(GG):
        if isinstance(factor, list):
            updated.append(factor)
            continue
        others = [a for a in range(np.ndim(grad)) if a != axis]
        if np.ndim(grad) == 1:  # g gᵀ
            outer = grad.unsqueeze(1) @ grad.unsqueeze(0) if hasattr(grad, "unsqueeze") else np.outer(grad, grad)
        else:
            outer = _tensordot(grad, grad, others, others)
        updated.append(_lerp(factor, outer, 1 - shampoo_beta))
    return updated


def _soap_power_iteration_qr(GG, Q, exp_avg_sq):
    """The reference's refresh: one power iteration F Q per axis, its columns sorted by the estimated eigenvalues
    diag(Qᵀ F Q), then QR; v's entries are reordered with the columns."""
    bases = []
    for axis, (factor, basis) in enumerate(zip(GG, Q)):
        if isinstance(factor, list):
            bases.append([])
            continue
        product = factor @ basis
        estimated = (basis * product).sum(0)
        order = _argsort_descending(estimated)
        exp_avg_sq = _take(exp_avg_sq, order, axis)
        bases.append(_qr_q_float32(_take(product, order, 1)))
    return bases, exp_avg_sq


def soap_update(params, grad, state, *, lr, betas, shampoo_beta, weight_decay,
                precondition_frequency, max_precondition_dim, precondition_1d, correct_bias,
                normalize_gradient, eps, maximize, eigenbasis_refresh):
    r"""SOAP (Vyas et al., 2024): Adam run in the eigenbasis of Shampoo's preconditioner, as
    ``pytorch_optimizer.SOAP`` (4.1) computes it.

    Every axis i of the parameter (of length d_i) has a Kronecker factor F^{(i)}, a d_i × d_i moving average of
    the gradient's products along that axis (the paper's and Shampoo's L and R for a matrix: F^{(1)} averages
    g gᵀ, F^{(2)} averages gᵀ g), and its eigenbasis Q^{(i)}, the eigenvectors by decreasing eigenvalue. For a
    matrix (m × n), with Q^{(1)}, Q^{(2)} the bases of step t − 1:

    .. math::

        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t
              \quad\text{(in the original basis)}                                                     \\
        v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, \bigl(Q^{(1)\top} g_t\, Q^{(2)}\bigr)^{2}
              \quad\text{(in the eigenbasis, element-wise square)}                                    \\
        N_t &= Q^{(1)} \Bigl( \frac{Q^{(1)\top} m_t\, Q^{(2)}}{\sqrt{v_t} + \varepsilon} \Bigr) Q^{(2)\top},
              \qquad \theta_t = (1-\eta\lambda)\Bigl(\theta_{t-1} - \eta\,
              \frac{\sqrt{1-\beta_2^{\,t-1}}}{1-\beta_1^{\,t-1}}\, N_t\Bigr)                        \\
        F^{(1)}_t &= \beta_s F^{(1)}_{t-1} + (1-\beta_s)\, g_t g_t^\top, \qquad
        F^{(2)}_t = \beta_s F^{(2)}_{t-1} + (1-\beta_s)\, g_t^\top g_t

    with β_s = ``shampoo_beta`` (β₂ when None). Every ``precondition_frequency`` = k steps (after step t
    with (t − 1) mod k = 0, t > 1) the bases are refreshed. Axes longer than ``max_precondition_dim``, and
    vectors unless ``precondition_1d``, keep the identity (their ``GG`` and ``Q`` entries are ``[]``); a vector
    with no factor runs Adam (with decoupled decay) from step 2 on. ``normalize_gradient`` divides N_t by
    RMS(N_t) + ε; ``correct_bias=False`` drops the factor √(1−β₂^{t−1})/(1−β₁^{t−1}). Weight decay is
    decoupled (AdamW's) and applied after the step, as in the reference.

    What the reference does (as the authors' code), beyond the paper's Algorithm 3:

    * step 1 only initialises: F_1 from g_1 and Q from its ``eigh``; θ does not move, and every later
      step counts Adam's steps from there (t − 1 in the bias correction);
    * the refresh (``eigenbasis_refresh="qr"``, the default) is one power iteration and a QR factorisation,
      Q ← QR(F Q), its columns sorted by the estimated eigenvalues diag(Qᵀ F Q) with v's entries reordered
      alike, computed in float32 even for float64 parameters (as the reference does);
      ``eigenbasis_refresh="eigh"`` recomputes the eigenvectors instead, Q ← eigh(F) sorted by decreasing
      eigenvalue (the exact Eigenvectors(L), Eigenvectors(R) that Algorithm 3 calls for; the power iteration
      and QR is a cheap way to track them), with v left as it is;
    * the factors F are updated *after* the step, with the gradient of this step.

    On a factor with a repeated eigenvalue (F_1 = (1 − β_s) g gᵀ of an m × n matrix with m > n + 1 has a
    repeated 0) the eigenvectors are any basis of that eigenspace, the one the LAPACK in use picks: NumPy's and
    torch's pick differently, and the steps until the next refresh depend on the pick. ``shampoo_beta`` and
    ``precondition_frequency`` are read from the state (set at the first step), as the reference keeps them
    there. A leading axis is a tensor axis with its own factor, never a batch of runs: the hyperparameters are
    numbers. State: ``step`` (the reference keeps it per param group), ``exp_avg`` m_t, ``exp_avg_sq`` v_t (in
    the eigenbasis), ``GG`` (the factors F^{(i)}), ``Q`` (their eigenbases; None before the first step),
    ``precondition_frequency``, ``shampoo_beta``.
    """
    beta1, beta2 = betas
    step = state["step"] + 1
    if maximize:
        grad = -grad
    GG, Q, exp_avg, exp_avg_sq = state["GG"], state.get("Q"), state["exp_avg"], state["exp_avg_sq"]
    shampoo_beta, frequency = state["shampoo_beta"], state["precondition_frequency"]

    def precondition(GG, Q, exp_avg_sq, statistic_step):  # the statistics, then the bases when they are due
        GG = _soap_statistics(GG, grad, shampoo_beta)
        if Q is None:
            Q = [[] if isinstance(factor, list) else _eigenvectors_descending(factor) for factor in GG]
        if statistic_step > 0 and statistic_step % frequency == 0:
            if eigenbasis_refresh == "qr":
                Q, exp_avg_sq = _soap_power_iteration_qr(GG, Q, exp_avg_sq)
            else:
                Q = [[] if isinstance(factor, list) else _eigenvectors_descending(factor) for factor in GG]
        return GG, Q, exp_avg_sq

    if Q is None:  # the first step of this tensor: statistics and bases only
        GG, Q, exp_avg_sq = precondition(GG, Q, exp_avg_sq, step - 1)
        if step == 1:
            return params, {**state, "step": step, "GG": GG, "Q": Q, "exp_avg_sq": exp_avg_sq}
    exp_avg = _ema(exp_avg, grad, beta1)  # m_t, in the original basis
    projected = soap_project(grad, Q)  # Q^{(1)ᵀ} g Q^{(2)}
    exp_avg_sq = _ema(exp_avg_sq, projected * projected, beta2)  # v_t, in the eigenbasis
    direction = soap_project(soap_project(exp_avg, Q) / (sqrt(exp_avg_sq) + eps), Q, backward=True)  # N_t
    if normalize_gradient:
        direction = direction / (sqrt((direction * direction).mean()) + eps)
    step_size = lr
    if correct_bias:
        step_size = lr * (math.sqrt(1 - beta2 ** (step - 1)) / (1 - beta1 ** (step - 1)))
    params = _add(params, direction, -step_size)
    if weight_decay != 0:
        params = _scale(params, 1.0 - weight_decay * lr)
    GG, Q, exp_avg_sq = precondition(GG, Q, exp_avg_sq, step - 1)
    return params, {**state, "step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "GG": GG, "Q": Q}


def soap_init(params, *, betas=(0.95, 0.95), shampoo_beta=None, precondition_frequency=10,
              max_precondition_dim=10000, precondition_1d=False, **_):
    """SOAP's first state: zero moments, zero factors for the preconditioned axes (``[]`` for the others), no Q."""
    shape = np.shape(params)
    if len(shape) == 0:
        raise ValueError("SOAP needs a parameter with at least one axis (a vector, matrix or tensor), got a scalar")
    if len(shape) == 1:
        sizes = [shape[0] if precondition_1d and shape[0] <= max_precondition_dim else None]
    else:
        sizes = [size if size <= max_precondition_dim else None for size in shape]
    GG = []
    for size in sizes:
        if size is None:
            GG.append([])
        elif hasattr(params, "new_zeros"):
            GG.append(params.new_zeros(size, size))
        else:
            GG.append(np.zeros((size, size), dtype=np.asarray(params).dtype))
    return {"step": 0, "exp_avg": zeros_like(params), "exp_avg_sq": zeros_like(params), "GG": GG, "Q": None,
            "precondition_frequency": precondition_frequency,
            "shampoo_beta": betas[1] if shampoo_beta is None else shampoo_beta}


#: The ways SOAP refreshes its eigenbases (:func:`soap_update`).
SOAP_EIGENBASIS_REFRESH = ("qr", "eigh")


def soap(lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, weight_decay=1e-2, precondition_frequency=10,
         max_precondition_dim=10000, precondition_1d=False, correct_bias=True, normalize_gradient=False, eps=1e-8,
         *, maximize=False, eigenbasis_refresh="qr") -> Rule:
    """SOAP: see :func:`soap_update`. Defaults of ``pytorch_optimizer.SOAP`` (4.1).

    Its checks, as ``ValueError`` naming the argument: η, λ, ε, ``shampoo_beta`` ≥ 0; 0 ≤ β₁, β₂ < 1;
    ``precondition_frequency`` and ``max_precondition_dim`` positive integers; and, beyond the reference's,
    ``shampoo_beta`` ≤ 1 and every hyperparameter a number (SOAP's factors belong to one tensor: no arrays of
    hyperparameters, no batched runs). ``eigenbasis_refresh`` is ``"qr"`` (the reference's) or ``"eigh"``.
    """
    _check_lr_tensor(lr)
    lr = as_number(lr)
    values = dict(lr=lr, weight_decay=weight_decay, eps=eps, shampoo_beta=shampoo_beta)
    for name, value in (*values.items(), *(("betas", b) for b in betas)):
        if value is not None and np.ndim(value) != 0:
            raise ValueError(f"Invalid {name}: {value!r}: SOAP takes numbers, not arrays (its factors and eigenbases "
                             "belong to one tensor; it has no batch of runs)")
    check_common_hyperparams(lr, weight_decay, eps)
    beta1, beta2 = check_betas(betas)
    if shampoo_beta is not None:
        _require("Invalid shampoo_beta value: {} (expected 0 <= shampoo_beta <= 1, or None for beta2)",
                 shampoo_beta, 0 <= as_number(shampoo_beta) <= 1)
    for name, value in (("precondition_frequency", precondition_frequency),
                        ("max_precondition_dim", max_precondition_dim)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"Invalid {name}: {value!r} (expected a positive integer)")
    if eigenbasis_refresh not in SOAP_EIGENBASIS_REFRESH:
        raise ValueError(f"Invalid eigenbasis_refresh: {eigenbasis_refresh!r} (expected 'qr', the reference's power "
                         "iteration and QR, or 'eigh', a fresh eigendecomposition)")
    hyper = dict(lr=lr, betas=(beta1, beta2), shampoo_beta=shampoo_beta, weight_decay=weight_decay,
                 precondition_frequency=int(precondition_frequency), max_precondition_dim=int(max_precondition_dim),
                 precondition_1d=precondition_1d, correct_bias=correct_bias, normalize_gradient=normalize_gradient,
                 eps=eps, maximize=maximize, eigenbasis_refresh=eigenbasis_refresh)
    return Rule("soap", hyper, soap_update, soap_init, factory=soap)


# ======================================================================================================================
# Shampoo: Kronecker-factored preconditioning, grafted to a diagonal method's step size
# ======================================================================================================================
class ShampooGraft(IntEnum):
    """Whose step length Shampoo's direction borrows, layer by layer (``graft_type``).

    0-4 are pytorch-optimizer's ``LayerWiseGrafting`` numbers; ``ADAM`` (5) is the course's addition, the graft of
    the distributed implementation of Shi et al. (2023): RMSProp's statistics with the second moment bias-corrected.
    """

    NONE = 0  # no rescaling: Shampoo's own step length
    SGD = 1  # ‖g‖
    ADAGRAD = 2  # ‖g / (√(Σ g²) + ε)‖
    RMSPROP = 3  # ‖g / (√v + ε)‖, v = β₂v + (1 − β₂)g²
    SQRTN = 4  # ‖sign g‖ = √(number of non-zero entries)
    ADAM = 5  # ‖g / (√(v/(1 − β₂ᵗ)) + ε)‖: torch.optim.Adam's direction with β₁ = 0


#: pytorch-optimizer's ``PreConditionerType``: which axes get a Kronecker factor.
SHAMPOO_PRECONDITION_ALL, SHAMPOO_PRECONDITION_INPUT, SHAMPOO_PRECONDITION_OUTPUT = 0, 1, 2


def _is_torch(x) -> bool:
    return hasattr(x, "new_full")


def inverse_root(matrix, power, eps=0.0):
    r"""(A + εI)^{-1/p} of a symmetric positive semi-definite matrix A (or a stack of them), by its eigenvalues.

    With A = Q diag(h_1, …, h_n) Qᵀ (``eigh``), (A + εI)^{-1/p} = Q diag((|h_i| + ε)^{-1/p}) Qᵀ. The |h_i| are
    A's singular values, so the result is the one an SVD gives (U diag(s^{-1/p}) Vᵀ, pytorch-optimizer's
    ``use_svd=True``); for a PSD matrix |h_i| = h_i, and taking the absolute value only keeps an eigenvalue that
    rounding made slightly negative from giving NaN. A zero eigenvalue with ε = 0 gives an infinite entry, as the SVD
    does. Shampoo uses p = 4 for a matrix's two factors (p = 2·rank in general). NumPy arrays and torch tensors.
    """
    if not power > 0:
        raise ValueError(f"Invalid power: {power} (inverse_root computes A^(-1/power); power must be > 0)")
    if np.ndim(matrix) < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"inverse_root needs a square matrix (or a stack of them); got shape "
                         f"{tuple(np.shape(matrix))}")
    if _is_torch(matrix):
        import torch

        eigenvalues, vectors = torch.linalg.eigh(matrix)
        scale = (eigenvalues.abs() + eps) ** (-1.0 / power)
        return (vectors * scale.unsqueeze(-2)) @ vectors.transpose(-1, -2)
    eigenvalues, vectors = np.linalg.eigh(np.asarray(matrix))
    with np.errstate(divide="ignore"):
        scale = (np.abs(eigenvalues) + eps) ** (-1.0 / power)
    return (vectors * scale[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def schur_newton_inverse_root(matrix, power, ridge_epsilon=1e-6, max_iters=100, error_tolerance=1e-3,
                              max_error_ratio=1.2):
    r"""(A + h_max ε I)^{-1/p} approximately, by the coupled Newton iteration of Guo & Higham (2006), no eigenvectors.

    The ridge is ε = ``ridge_epsilon`` times A's largest eigenvalue h_max. With z = (1 + p)/(2‖A + h_max ε I‖_F),
    X_0 = z^{1/p} I and M_0 = z (A + h_max ε I), each step takes T_k = (1 + 1/p) I − M_k/p and

    .. math::

        X_{k+1} = X_k T_k, \qquad M_{k+1} = T_k^{\,p} M_k,

    which keeps X_k^{-p} (A + h_max ε I)^{-1} ... = M_k and drives M_k to I, so X_k to the inverse root. It stops when
    max|M_{k+1} − I| ≤ ``error_tolerance`` (returning X_{k+1}), or when that error grew by more than
    ``max_error_ratio`` (returning X_k), after at most ``max_iters`` steps: an approximation to within about the
    tolerance, cheaper than an eigendecomposition on accelerators (matrix products only). This is
    pytorch-optimizer's ``compute_power_schur_newton`` (``use_svd=False``). For torch tensors h_max is, as there,
    the estimate of 100 power iterations started at ``torch.randn`` (the global generator: a run draws the random
    numbers the reference's draws, so that dropout and shuffling stay in step with it); for NumPy arrays it is
    exact (``eigvalsh``), which changes the ridge by that estimate's relative error times ε. A 1 × 1 matrix a gives
    (a + ε max(a, 10⁻¹⁶))^{-1/p}.
    """
    p = int(power)
    if p != power or p < 1:
        raise ValueError(f"Invalid power: {power} (the Schur-Newton iteration takes a whole power >= 1)")
    if np.ndim(matrix) != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"schur_newton_inverse_root needs one square matrix; got shape {tuple(np.shape(matrix))}")
    size = matrix.shape[0]
    if _is_torch(matrix):
        import torch

        linalg, eye = torch.linalg, torch.eye(size, dtype=matrix.dtype, device=matrix.device)
        if size == 1:
            return (matrix + ridge_epsilon * matrix.clamp_min(1e-16)) ** (-1.0 / p)
        vector = torch.randn(size, dtype=matrix.dtype, device=matrix.device)  # as the reference: its random numbers
        for _ in range(100):  # power iteration: h_max
            vector = matrix @ vector
            vector = vector / linalg.vector_norm(vector).clamp_min(torch.finfo(vector.dtype).tiny)
        largest = (vector @ (matrix @ vector)).clamp_min(1e-16)
    else:
        linalg, eye = np.linalg, np.eye(size, dtype=matrix.dtype)
        if size == 1:
            return (matrix + ridge_epsilon * np.maximum(matrix, 1e-16)) ** (-1.0 / p)
        largest = max(np.linalg.eigvalsh(matrix)[-1], 1e-16)
    matrix = matrix + largest * ridge_epsilon * eye
    z = (1 + p) / (2 * linalg.norm(matrix))
    root, m = eye * z ** (1.0 / p), matrix * z
    error = abs(m - eye).max()
    for _ in range(max_iters):
        step = (1.0 + 1.0 / p) * eye - m / p
        new_root, new_m = root @ step, linalg.matrix_power(step, p) @ m
        new_error = abs(new_m - eye).max()
        if new_error > error * max_error_ratio:
            return root
        if new_error <= error_tolerance:
            return new_root
        root, m, error = new_root, new_m, new_error
    return root


def _shampoo_shape(shape, block_size, shape_interpretation):
    """The shape Shampoo preconditions: the parameter's own, or neighbouring axes merged while their product fits in
    ``block_size`` (pytorch-optimizer's ``merge_small_dims``: a (64, 32, 3, 3) kernel is read as 64 × 288; a shape
    whose whole product fits is one axis, read as [1], and gets no factor)."""
    if not shape_interpretation:
        return list(shape)
    groups, current = [], 1  # groups of neighbouring axes, each with a product ≤ block_size (a big axis alone)
    for size in shape:
        if current * size > block_size:
            groups.append(current)
            current = size
        else:
            current *= size
    groups.append(current)
    return groups if len(groups) > 1 else [1]


def shampoo_layout(shape, *, block_size=512, skip_preconditioning_rank_lt=1,
                    no_preconditioning_for_layers_with_dim_gt=8192, shape_interpretation=True,
                    pre_conditioner_type=SHAMPOO_PRECONDITION_ALL, inverse_exponent_override=0, **_):
    """How Shampoo preconditions a parameter of this shape: ``(shape read, which axes get a factor, exponent p,
    blocks)``, or ``None`` where it gets no factor and its step is the graft's (a vector, a small tensor, a skipped
    one). Takes the rule's hyperparameters (``shampoo_layout(p.shape, **rule.hyperparams)``).

    ``blocks`` are tuples of slices of the shape read: an axis longer than ``block_size`` (> 0) is cut into pieces of
    ``block_size`` (the last one shorter), and every combination of pieces is a block with its own factors, in the
    reference's order (the first axis slowest). Without such an axis there is one block, the whole tensor."""
    shape = tuple(int(size) for size in shape)
    read = _shampoo_shape(shape, block_size, shape_interpretation)
    skipped = len(shape) < skip_preconditioning_rank_lt or any(
        size > no_preconditioning_for_layers_with_dim_gt for size in shape)
    if len(read) < 2 or skipped:
        return None
    if pre_conditioner_type == SHAMPOO_PRECONDITION_INPUT:
        axes = [True] * (len(read) - 1) + [False]
    elif pre_conditioner_type == SHAMPOO_PRECONDITION_OUTPUT:
        axes = [False] * (len(read) - 1) + [True]
    else:
        axes = [True] * len(read)
    exponent = inverse_exponent_override if inverse_exponent_override > 0 else 2 * sum(axes)
    pieces = []
    for size in read:
        length = block_size if 0 < block_size < size else size
        pieces.append([slice(start, min(start + length, size)) for start in range(0, size, length)])
    return read, axes, exponent, list(itertools.product(*pieces))


def _contract(a, b, axes):
    if _is_torch(a):
        import torch

        return torch.tensordot(a, b, dims=axes)
    return np.tensordot(a, b, axes=axes)


def _frobenius(x):
    """‖x‖ over all entries (a 0-d tensor for tensors, as torch.linalg.norm returns)."""
    if _is_torch(x):
        import torch

        return torch.linalg.vector_norm(x)
    return np.sqrt(np.sum(x * x))


def _factor_dtype_array(x):
    """x in the dtype of the Kronecker factors: float64 for float64 parameters, float32 otherwise."""
    if _is_torch(x):
        import torch

        return x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    return np.asarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)


def _identity_like(params, size):
    """The size × size identity in the factors' dtype (float64 for float64 parameters, float32 otherwise)."""
    if _is_torch(params):
        import torch

        dtype = torch.float64 if params.dtype == torch.float64 else torch.float32
        return torch.eye(size, dtype=dtype, device=params.device)
    return np.eye(size, dtype=np.float64 if np.asarray(params).dtype == np.float64 else np.float32)


def _precondition_block(x, factors, axes):
    """Each axis of ``x`` in turn contracted with its factor (or, without one, moved to the end)."""
    roll = (*range(1, np.ndim(x)), 0)
    factors = iter(factors)
    for chosen in axes:
        if chosen:
            x = _contract(x, next(factors), ([0], [0]))  # contract axis 0, the factor's axis goes last
        else:
            x = x.permute(roll) if _is_torch(x) else np.transpose(x, roll)
    return x


def shampoo_precondition(grad, pre_conditioners, axes, shape, blocks=None):
    r"""The factors' roots applied to g: for a matrix S^{-1/4} G T^{-1/4}; for a tensor each chosen axis times its root.

    ``grad`` is read as ``shape``; each axis in turn is contracted with its factor (or, without one, moved to the
    end), so after all axes the order is back to the start: G ×₁ P₁ ×₂ P₂ … (the factors are symmetric). With
    ``blocks`` (:func:`shampoo_layout`) every block is preconditioned with its own roots, ``sum(axes)`` per block.
    """
    x = _factor_dtype_array(grad).reshape(tuple(shape))
    if blocks is None or len(blocks) == 1:
        x = _precondition_block(x, pre_conditioners, axes)
    else:
        rank, whole = sum(axes), x
        x = whole.new_zeros(whole.shape) if _is_torch(whole) else np.zeros_like(whole)
        for index, block in enumerate(blocks):
            x[block] = _precondition_block(whole[block], pre_conditioners[index * rank:(index + 1) * rank], axes)
    x = x.reshape(tuple(grad.shape))
    return x.to(grad.dtype) if _is_torch(x) else x.astype(grad.dtype)


def _graft_direction(grad, graft_statistics, graft_type, step, beta2, diagonal_eps):
    """The grafted method's direction (its step divided by η, before momentum)."""
    if graft_type in (ShampooGraft.ADAGRAD, ShampooGraft.RMSPROP):
        return grad / (sqrt(graft_statistics) + diagonal_eps)
    if graft_type == ShampooGraft.ADAM:
        return grad / (sqrt(graft_statistics) / (1 - beta2**step) ** 0.5 + diagonal_eps)  # as torch.optim.Adam
    if graft_type == ShampooGraft.SQRTN:
        return _sign(grad)
    return grad * 1.0  # NONE, SGD: the gradient itself


def shampoo_update(params, grad, state, *, lr, betas, moving_average_for_momentum,
                   weight_decay, decoupled_weight_decay, decoupled_learning_rate,
                   inverse_exponent_override, start_preconditioning_step, preconditioning_compute_steps,
                   statistics_compute_steps, block_size, skip_preconditioning_rank_lt,
                   no_preconditioning_for_layers_with_dim_gt, shape_interpretation,
                   graft_type, pre_conditioner_type, nesterov,
                   diagonal_eps, matrix_eps, use_svd, maximize):
    r"""Shampoo (Gupta et al., 2018) with grafting (Anil et al., 2020), as ``pytorch_optimizer.ScalableShampoo``.

    For a matrix parameter θ ∈ ℝ^{m×n} with gradient G_t = g_t (the "left" and "right" factors are written
    𝓛_t ∈ ℝ^{m×m} and 𝓡_t ∈ ℝ^{n×n}, script letters: L is the course's smoothness constant):

    .. math::

        \mathcal{L}_t &= \beta_2 \mathcal{L}_{t-1} + (1-\beta_2)\, G_t G_t^\top, \qquad
        \mathcal{R}_t = \beta_2 \mathcal{R}_{t-1} + (1-\beta_2)\, G_t^\top G_t, \qquad
        \mathcal{L}_0 = \varepsilon_M I,\ \mathcal{R}_0 = \varepsilon_M I \\
        P^{\mathcal{L}}, P^{\mathcal{R}} &= \mathcal{L}_t^{-1/4},\ \mathcal{R}_t^{-1/4}
            \quad\text{recomputed every } k \text{ steps (} t \bmod k = 0
                   \text{; } I \text{ before the first time)}                                            \\
        D_t &= P^{\mathcal{L}} G_t P^{\mathcal{R}}
               \cdot \frac{\lVert A_t \rVert}{\lVert P^{\mathcal{L}} G_t P^{\mathcal{R}} \rVert + 10^{-16}}, \qquad
        A_t = \text{the grafted method's direction (its step over } \eta\text{)}                        \\
        M_t &= \beta_1 M_{t-1} + D_t, \qquad N_t = \beta_1 N_{t-1} + A_t                                \\
        \theta_t &= \theta_{t-1} - \eta\, (\beta_1 M_t + D_t) \quad\text{(Nesterov; } M_t \text{ without)}
                    \quad\text{once } t \ge t_0, \qquad
        \theta_t = \theta_{t-1} - \eta\, (\beta_1 N_t + A_t) \quad\text{before}

    Shampoo's direction is a matrix form of AdaGrad's g/√(Σg²): full-matrix AdaGrad would multiply vec(G) by
    𝓖^{-1/2}, 𝓖 = Σ vec(G)vec(G)ᵀ the mn × mn matrix of the flattened gradients; Shampoo puts (𝓛 ⊗ 𝓡)^{1/2} in 𝓖's
    place (for sums of gradients of rank at most r, 𝓖/r ⪯ (𝓛 ⊗ 𝓡)^{1/2}: Gupta et al., 2018, Lemma 8), and
    (𝓛 ⊗ 𝓡)^{-1/4} vec(G) = vec(𝓛^{-1/4} G 𝓡^{-1/4}) (row-major vec, symmetric factors) costs an m × m and an n × n
    root instead of one mn × mn root. A tensor of k axes has a factor per axis and the roots −1/(2k). Grafting
    keeps the direction and takes the step *length* of a diagonal method, per layer: ``graft_type``
    (:class:`ShampooGraft`) SGD ‖g‖, AdaGrad, RMSProp, SQRTN ‖sign g‖, NONE (Shampoo's own length), or **Adam**
    (5: A_t = g_t/(√(v_t/(1−β₂ᵗ)) + ε) with v_t = β₂v_{t−1} + (1−β₂)g_t², ε = ``diagonal_eps``), the course's
    recommendation: the length of torch.optim.Adam's step with β₁ = 0 (the distributed implementation of Shi et al.,
    2023). RMSProp's graft, without the bias correction, takes steps 1/√(1−β₂ᵗ) times longer early on (31× at
    t = 1 for β₂ = 0.999). Before ``start_preconditioning_step`` t₀ the step is the graft's own (with its own
    momentum N_t), while 𝓛, 𝓡 and M already accumulate.

    The rest follows the reference operation by operation: ``moving_average_for_momentum`` uses
    M ← β₁M + (1−β₁)D (and lerp for Nesterov); ``decoupled_learning_rate=False`` multiplies D and A by η instead
    of the step; weight decay is added to D and A after grafting (coupled: + λθ) or shrinks θ ← (1 − ηλ)θ
    (``decoupled_weight_decay``); 𝓛 and 𝓡 are updated every ``statistics_compute_steps`` steps; a parameter
    with fewer than two axes as read (:func:`shampoo_layout`; with ``shape_interpretation`` small neighbouring
    axes are merged up to ``block_size``, and a tensor whose product fits is one axis) has no factors and follows
    the graft; an axis longer than ``block_size`` is cut into blocks, each with its own factors. The roots are
    exact with ``use_svd=True`` (:func:`inverse_root`), approximate by :func:`schur_newton_inverse_root` otherwise
    (the reference's default). A leading batch axis of toy runs would be read as a matrix
    axis: this rule has no batched form.

    State: ``step``, ``momentum`` M, ``graft_momentum`` N, ``graft_statistics`` (AdaGrad's Σg², RMSProp's and
    Adam's v; absent for the other grafts), ``statistics`` (𝓛, 𝓡, …) and ``pre_conditioners`` (their roots),
    two tuples (block by block, axis by axis) that are empty for a parameter without factors.
    """
    beta1, beta2 = betas
    step = state["step"] + 1
    if maximize:
        grad = -grad
    new_state = {**state, "step": step}
    # the graft's statistics, every step
    graft_statistics = state.get("graft_statistics")
    if graft_type == ShampooGraft.ADAGRAD:
        graft_statistics = _addcmul(graft_statistics, grad, grad, 1)  # Σ g²
    elif graft_type in (ShampooGraft.RMSPROP, ShampooGraft.ADAM):
        graft_statistics = _addcmul(_scale(graft_statistics, beta2), grad, grad, 1 - beta2)  # v
    if graft_statistics is not None:
        new_state["graft_statistics"] = graft_statistics
    # the Kronecker factors and their inverse roots
    statistics, roots = tuple(state["statistics"]), tuple(state["pre_conditioners"])
    if statistics:
        shape, axes, exponent, blocks = shampoo_layout(
            np.shape(params), block_size=block_size, skip_preconditioning_rank_lt=skip_preconditioning_rank_lt,
            no_preconditioning_for_layers_with_dim_gt=no_preconditioning_for_layers_with_dim_gt,
            shape_interpretation=shape_interpretation, pre_conditioner_type=pre_conditioner_type,
            inverse_exponent_override=inverse_exponent_override)
        if step % statistics_compute_steps == 0:
            reshaped = _factor_dtype_array(grad).reshape(tuple(shape))
            chosen = [axis for axis, yes in enumerate(axes) if yes]
            weight = 1.0 if beta2 == 1.0 else 1.0 - beta2
            products = [_contract(reshaped[block], reshaped[block], (others, others)) for block in blocks
                        for others in ([a for a in range(len(shape)) if a != axis] for axis in chosen)]
            statistics = tuple(_add(_scale(factor, beta2), product, weight)
                               for factor, product in zip(statistics, products))
            new_state["statistics"] = statistics
        if step % preconditioning_compute_steps == 0:
            if use_svd:
                roots = tuple(inverse_root(factor, exponent) for factor in statistics)
            else:
                roots = tuple(schur_newton_inverse_root(factor, exponent, ridge_epsilon=matrix_eps)
                              for factor in statistics)
            new_state["pre_conditioners"] = roots
    # the directions: the graft's A and Shampoo's D (scaled to A's length)
    scale = 1.0 if decoupled_learning_rate else lr
    graft_direction = _graft_direction(grad, graft_statistics, graft_type, step, beta2, diagonal_eps) * scale
    if statistics:
        direction = shampoo_precondition(grad, roots, axes, shape, blocks) * scale
    else:
        direction = graft_direction * 1.0
    if graft_type != ShampooGraft.NONE:
        direction = direction * (_frobenius(graft_direction) / (_frobenius(direction) + 1e-16))
    if _nonzero(weight_decay):
        if decoupled_weight_decay:
            params = _scale(params, 1.0 - weight_decay * lr)
        else:
            graft_direction = _add(graft_direction, params, weight_decay)
            direction = _add(direction, params, weight_decay)
    # momentum of both, the update of one
    averaged = 1.0 - beta1 if moving_average_for_momentum else 1.0
    if moving_average_for_momentum:
        momentum = _lerp(state["momentum"], direction, averaged)
    else:
        momentum = _add(_scale(state["momentum"], beta1), direction, 1.0)
    graft_momentum = _add(_scale(state["graft_momentum"], beta1), graft_direction, averaged)
    new_state.update(momentum=momentum, graft_momentum=graft_momentum)
    preconditioning = step >= start_preconditioning_step
    update = momentum if preconditioning else graft_momentum
    if nesterov:
        current = direction if preconditioning else graft_direction
        if moving_average_for_momentum:
            update = _lerp(update, current, averaged)
        else:
            update = _add(_scale(update, beta1), current, 1.0)
    return _add(params, update, -(lr if decoupled_learning_rate else 1.0)), new_state


def shampoo_init(params, *, graft_type=ShampooGraft.SGD, matrix_eps=1e-6, **layout):
    """Shampoo's first state: zero momenta, ε_M·I factors and identity roots (none for a vector)."""
    state = {"step": 0, "momentum": zeros_like(params), "graft_momentum": zeros_like(params)}
    if graft_type in (ShampooGraft.ADAGRAD, ShampooGraft.RMSPROP, ShampooGraft.ADAM):
        state["graft_statistics"] = zeros_like(params)
    found = shampoo_layout(np.shape(params), **layout)
    if found is None:
        state["statistics"], state["pre_conditioners"] = (), ()
        return state
    _, axes, _, blocks = found
    eyes = [_identity_like(params, piece.stop - piece.start) for block in blocks
            for piece, chosen in zip(block, axes) if chosen]
    state["statistics"] = tuple(eye * matrix_eps for eye in eyes)
    state["pre_conditioners"] = tuple(eyes)
    return state


def shampoo(lr=1e-3, betas=(0.9, 0.999), moving_average_for_momentum=False, weight_decay=0.0,
            decoupled_weight_decay=False, decoupled_learning_rate=True, inverse_exponent_override=0,
            start_preconditioning_step=25, preconditioning_compute_steps=1000, statistics_compute_steps=1,
            block_size=512, skip_preconditioning_rank_lt=1, no_preconditioning_for_layers_with_dim_gt=8192,
            shape_interpretation=True, graft_type=ShampooGraft.SGD, pre_conditioner_type=SHAMPOO_PRECONDITION_ALL,
            nesterov=True, diagonal_eps=1e-10, matrix_eps=1e-6, use_svd=False, maximize=False) -> Rule:
    """Shampoo: see :func:`shampoo_update`. Defaults of ``pytorch_optimizer.ScalableShampoo`` (4.1).

    ``use_svd=False`` (the reference's default) computes the roots by :func:`schur_newton_inverse_root`, an
    approximation; ``use_svd=True`` exactly (:func:`inverse_root`). The course recommends
    ``graft_type=ShampooGraft.ADAM`` (5), which the reference does not have; the default stays the reference's SGD
    graft so that the defaults are the reference's.
    """
    _check_lr_tensor(lr)
    lr = as_number(lr)
    check_common_hyperparams(lr, weight_decay, diagonal_eps)
    beta1, beta2 = _beta_pair(betas)
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        _require(f"Invalid {name}: {{}} (Shampoo needs 0 <= {name} < 1)", value, 0 <= value < 1)
    for name, value in (("start_preconditioning_step", start_preconditioning_step),
                        ("preconditioning_compute_steps", preconditioning_compute_steps),
                        ("statistics_compute_steps", statistics_compute_steps)):
        _require(f"Invalid {name}: {{}} (a whole number of steps >= 1)", value,
                 isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1)
    for name, value in (("inverse_exponent_override", inverse_exponent_override),
                        ("skip_preconditioning_rank_lt", skip_preconditioning_rank_lt),
                        ("no_preconditioning_for_layers_with_dim_gt", no_preconditioning_for_layers_with_dim_gt),
                        ("block_size", block_size)):
        _require(f"Invalid {name}: {{}} (a whole number >= 0)", value,
                 isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0)
    _require("Invalid matrix_eps: {} (must be >= 0)", matrix_eps, np.asarray(matrix_eps) >= 0)
    _require(f"Invalid graft_type: {{}} (one of {', '.join(f'{g.value} {g.name}' for g in ShampooGraft)})",
             graft_type, isinstance(graft_type, (int, np.integer)) and not isinstance(graft_type, bool)
             and 0 <= graft_type <= max(ShampooGraft))
    _require("Invalid pre_conditioner_type: {} (0 ALL, 1 INPUT or 2 OUTPUT)", pre_conditioner_type,
             pre_conditioner_type in (0, 1, 2) and not isinstance(pre_conditioner_type, bool))
    hyper = dict(lr=lr, betas=(beta1, beta2), moving_average_for_momentum=moving_average_for_momentum,
                 weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                 decoupled_learning_rate=decoupled_learning_rate, inverse_exponent_override=inverse_exponent_override,
                 start_preconditioning_step=start_preconditioning_step,
                 preconditioning_compute_steps=preconditioning_compute_steps,
                 statistics_compute_steps=statistics_compute_steps, block_size=block_size,
                 skip_preconditioning_rank_lt=skip_preconditioning_rank_lt,
                 no_preconditioning_for_layers_with_dim_gt=no_preconditioning_for_layers_with_dim_gt,
                 shape_interpretation=shape_interpretation, graft_type=ShampooGraft(graft_type),
                 pre_conditioner_type=pre_conditioner_type, nesterov=nesterov, diagonal_eps=diagonal_eps,
                 matrix_eps=matrix_eps, use_svd=use_svd, maximize=maximize)
    return Rule("shampoo", hyper, shampoo_update, shampoo_init, factory=shampoo)


#: The factories by name (``rules.RULES["adam"](lr=0.1)``), in course order: every factory a row of
#: :data:`course_lib.methods.METHODS` names. Every rule also carries its own ``factory``.
RULES: dict[str, Callable[..., Rule]] = {method.rule: globals()[method.rule] for method in METHODS.values()}
