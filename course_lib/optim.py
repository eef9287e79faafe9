"""Drop-in ``torch.optim`` optimizers built on the pure rules of :mod:`course_lib.rules`.

Each class has the constructor signature, defaults, state names and error
messages of its torch.optim twin, supports param groups, ``state_dict()`` /
``load_state_dict()`` (a torch.optim state dict loads and training continues
identically), closures, ``maximize`` and ``torch.optim.lr_scheduler``. The math
lives in one place only, the rule function: these classes just walk the
parameters, call the rule, and write the results back.

>>> import torch
>>> from course_lib.optim import Adam
>>> model = torch.nn.Linear(8, 1)
>>> optimizer = Adam(model.parameters(), lr=1e-3)   # exactly like torch.optim.Adam
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from . import rules

__all__ = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "RuleOptimizer"]


def _scalar_dtype():
    """The dtype torch.optim uses for its ``step`` counters."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _plain(value):
    """0-d tensors (a tensor ``lr``, say) as Python floats, tuples element-wise."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


class RuleOptimizer(torch.optim.Optimizer):
    """A :class:`torch.optim.Optimizer` whose update is a rule from :mod:`course_lib.rules`.

    Subclasses set ``rule_factory`` (``rules.adam``, say) and pass its keyword
    arguments as ``defaults``. Parameters whose ``.grad`` is ``None`` are skipped:
    they get no state and no step.
    """

    rule_factory: Callable[..., rules.Rule]

    def __init__(self, params, defaults):
        self.rule_factory(**defaults)  # torch.optim's ValueError for bad hyperparameters
        super().__init__(params, defaults)

    @classmethod
    def _hyper_names(cls) -> list[str]:
        return list(inspect.signature(cls.rule_factory).parameters)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for name, value in self.defaults.items():
                group.setdefault(name, value)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        self.rule_for(self.param_groups[-1])  # check the group's own hyperparameters too

    def rule_for(self, group) -> rules.Rule:
        """The rule with this param group's current hyperparameters (an lr scheduler may have changed them)."""
        return self.rule_factory(**{name: _plain(group[name]) for name in self._hyper_names()})

    @torch.no_grad()
    def step(self, closure=None):
        """Perform a single optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            rule = self.rule_for(group)
            for param in group["params"]:
                if param.grad is None:
                    continue
                self._check(param)
                state = self.state[param]
                if not state:
                    self._store(state, rule.init(param))
                new_param, new_state = rule.update(param, param.grad, self._rule_state(state))
                param.copy_(new_param)
                self._store(state, new_state)
        return loss

    def _check(self, param):
        if param.grad.is_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        if torch.is_complex(param):
            raise RuntimeError(f"{type(self).__name__} supports real-valued parameters only")

    @staticmethod
    def _rule_state(state) -> dict:
        """torch's state (``step`` as a tensor) in the form the rules take (``step`` as an int)."""
        rule_state = dict(state)
        if "step" in rule_state:
            rule_state["step"] = int(rule_state["step"].item())
        return rule_state

    @staticmethod
    def _store(state, new_state) -> None:
        for name, value in new_state.items():
            if value is None:
                continue
            if name == "step":
                state["step"] = torch.tensor(float(value), dtype=_scalar_dtype())
            else:
                state[name] = value


class SGD(RuleOptimizer):
    """Gradient descent, optionally with momentum or Nesterov momentum (:func:`course_lib.rules.sgd_update`)."""

    rule_factory = staticmethod(rules.sgd)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))


class Adagrad(RuleOptimizer):
    """AdaGrad (:func:`course_lib.rules.adagrad_update`)."""

    rule_factory = staticmethod(rules.adagrad)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))


class RMSprop(RuleOptimizer):
    """RMSProp, optionally centered and with momentum (:func:`course_lib.rules.rmsprop_update`)."""

    rule_factory = staticmethod(rules.rmsprop)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))


class Adam(RuleOptimizer):
    """Adam, with ``amsgrad`` and L2 or decoupled weight decay (:func:`course_lib.rules.adam_update`)."""

    rule_factory = staticmethod(rules.adam)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))


class AdamW(RuleOptimizer):
    """AdamW: Adam with decoupled weight decay θ ← (1 − ηλ)θ (:func:`course_lib.rules.adamw`)."""

    rule_factory = staticmethod(rules.adamw)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
