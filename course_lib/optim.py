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

Three ways to run one rule
--------------------------
The same rule function runs in one of three ways, chosen per param group with
torch's keywords ``foreach=`` and ``fused=``, which mean what they mean in
torch.optim (notebook 14 measures the three):

* **per tensor** (``foreach=False``; also ``fused=False``): the rule once per
  parameter tensor, the reference path. The rules use torch.optim's own
  operations (``lerp``, ``addcmul``, ``addcdiv``, ``add`` with ``alpha``; seven
  for Adam), and θ and the state are handed over to the rule
  (:class:`course_lib.rules.donating`) so that it writes them in place: the
  step costs what torch.optim's for-loop costs, and float32 results equal it bit
  for bit (a state dict moves between the two and training continues
  identically). The ``step`` counters stay tensors; under ``torch.compile`` the
  rule computes with them (no ``.item()``, no graph break). SGD, whose step is
  three operations per tensor, runs the rule's in-place twin
  (:func:`course_lib.rules.sgd_update_`, tested equal to the rule bit for bit):
  the Python around a few small kernels is what such a step costs.
* **multi-tensor** (``foreach=True``): the rule once per group on
  :class:`course_lib.fast_paths.TensorList` s, lists of tensors whose arithmetic is one
  ``torch._foreach_*`` call per operation, over all tensors at once.
* **flat** (``fused=True``): parameters, gradients and state are views into one
  contiguous buffer per dtype and device (``param.data`` and ``param.grad``
  become views of it), and the rule, traced once into a graph of tensor
  operations, is compiled by ``torch.compile`` into one fused kernel that reads
  θ, g and the state once and writes θ and the state once
  (:func:`course_lib.fast_paths.compile_rule`). The hyperparameters enter the kernel as values, so an
  lr scheduler (``OneCycleLR`` cycling ``momentum`` or ``betas`` too) never
  recompiles it; only whether a term exists (a zero ``weight_decay``, say) is
  part of what is compiled. Where compilation is unavailable (no C++ compiler
  for the CPU, no triton for the GPU, an unsupported Python), or for buffers
  below :data:`course_lib.fast_paths.COMPILE_MIN_ELEMENTS` numbers
  (:func:`course_lib.fast_paths.compile_min_elements`), the flat path runs the rule eagerly, and a
  :class:`course_lib.fast_paths.CompileFallbackWarning` says so, once, when compilation is unavailable.

The default (``foreach=None, fused=None``) is torch.optim's: the multi-tensor
path where torch would take its ``foreach`` implementation (every parameter on
a device with foreach kernels, such as CUDA), the per-tensor path otherwise (on
the CPU). The flat path is never a default, because it rebinds every
``param.data`` and ``param.grad``: it is opt-in with ``fused=True``.
``foreach=True`` together with ``fused=True`` is refused as torch refuses it.

The multi-tensor and flat paths are functions of tensors in
:mod:`course_lib.fast_paths` (``TensorList``, ``compile_rule`` and the rest live
there); this module keeps the classes, the reference path, the checks of the
arguments, the choice between paths, and the optimizer's state: only these
classes read and write ``self.state`` and ``param_groups``.
Every path gives torch.optim's numbers (tested in float64 to 1e-10, and in
bfloat16 and float16 to those types' precision); the eager paths give the
reference path's numbers bit for bit.

Where these classes differ from torch.optim on purpose: ``capturable=True``
(CUDA-graph capture) and ``differentiable=True`` (gradients through the step)
are refused with an error that says so; complex parameters and sparse gradients
are refused; hyperparameters of a param group are checked as those given to the
constructor are (torch checks only the latter); and ``foreach`` and ``fused``
must be ``True``, ``False`` or ``None``. Arrays of hyperparameters (batched runs)
are a feature of :mod:`course_lib.rules`, not of these classes, which take
numbers (or one-element tensors where torch does).

How the flat path keeps torch's semantics: ``zero_grad()`` (``set_to_none=True``)
still sets gradients to ``None``, so parameters that receive no gradient are
skipped exactly as in torch; fresh gradients are gathered into the flat buffer
(one copy) at the next step. With ``zero_grad(set_to_none=False)`` the gradient
views stay attached and autograd accumulates straight into the flat buffer.
Move a model to its device and dtype *before* building the optimizer (as torch
asks); if parameters are re-bound later the flat buffers are rebuilt.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import methods, rules

__all__ = [
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "NAdam",
    "RAdam",
    "Adafactor",
    "Muon",
    "Lion",
    "AdamWScheduleFree",
    "AdEMAMix",
    "SOAP",
    "Shampoo",
    "RuleOptimizer",
    "OPTIMIZERS",
]


def _fast_paths():
    """:mod:`course_lib.fast_paths`, imported the first time a param group takes the multi-tensor or flat path."""
    global _FAST_PATHS
    if _FAST_PATHS is None:  # (an import statement costs microseconds at every step: the module is kept here)
        from . import fast_paths as _FAST_PATHS
    return _FAST_PATHS


_FAST_PATHS = None


def _step_dtype():
    """The dtype torch.optim uses for its ``step`` counters."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


#: torch.optim's execution keywords: how a step runs, not what it computes.
EXECUTION_KEYWORDS = ("foreach", "capturable", "differentiable", "fused")


def _check_execution(foreach, fused, where="", capturable=False, differentiable=False, owner="",
                     no_fused=None) -> None:
    """The one check of torch.optim's execution keywords (every class, constructor and added param groups alike):
    torch's errors for invalid values and for ``foreach`` with ``fused``; ``NotImplementedError`` for
    ``capturable``/``differentiable`` set to True; ``ValueError`` for ``fused=True`` where the class's rule cannot
    run on a flat buffer (``no_fused`` says why)."""
    for name, value in (("foreach", foreach), ("fused", fused)):
        if value not in (None, True, False):
            raise ValueError(f"Invalid {name} value{where}: {value!r} (expected True, False or None)")
    if fused and no_fused:
        raise ValueError(f"{owner} does not support fused=True{where}: {no_fused}")
    if foreach and fused:
        raise RuntimeError(f"`fused` and `foreach` cannot be `True` together{where}: choose foreach=True for the "
                           "multi-tensor path or fused=True for the flat, compiled path")
    reasons = {"capturable": "capturing the step in a CUDA graph",
               "differentiable": "letting gradients flow through the step, which runs under torch.no_grad()"}
    for name, value in (("capturable", capturable), ("differentiable", differentiable)):
        if value not in (None, True, False):
            raise ValueError(f"Invalid {name} value{where}: {value!r} (expected True or False)")
        if value:
            raise NotImplementedError(f"{owner} does not support {name}=True{where} ({reasons[name]}); "
                                      f"pass {name}=False, or use torch.optim where it supports it")


def _check_tensor_hyperparam(name, value, where="") -> None:
    """torch.optim's rule for hyperparameters given as tensors (one element), and no arrays or lists here."""
    if isinstance(value, tuple):
        for i, element in enumerate(value):
            _check_tensor_hyperparam(f"{name}[{i}]", element, where)
    elif isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element{where}")
    elif isinstance(value, (list, np.ndarray)):
        raise ValueError(f"Invalid {name}{where}: {value!r}: these optimizers take a number (or a one-element "
                         "tensor); arrays of hyperparameters are for batched runs of course_lib.rules")


try:
    from torch.utils import _foreach_utils
except ImportError:  # an older or newer torch
    _foreach_utils = None


def _foreach_devices() -> list[str]:
    """The device types with foreach kernels, as torch.optim decides its default."""
    supported = getattr(_foreach_utils, "_get_foreach_kernels_supported_devices", None)
    if supported is None:  # an older or newer torch: its list as of 2.13
        return ["cuda", "xpu", "mtia", torch._C._get_privateuse1_backend_name()]
    return supported()


_UNSET_OR_FALSE = (None, False)  # execution keywords that choose nothing
_NONE_TYPE = type(None)
logger = logging.getLogger("course_lib.optim")


@dataclass(eq=False)
class _FlatGroup:
    """The flat layout of one param group: its :class:`~course_lib.fast_paths.FlatBuffers` (one per dtype and
    device), the parameters left out of them, and per buffer the common state signature and the path it ran."""

    params_list: list
    buckets: list
    loose: list  # parameters that do not require grad at build time (or are not real floating point)
    signatures: list
    paths: list

    def matches(self, group) -> bool:
        return group["params"] is self.params_list and len(group["params"]) == self.size

    @property
    def size(self):
        return sum(len(buffers.params) for buffers in self.buckets) + len(self.loose)


class RuleOptimizer(torch.optim.Optimizer):
    """A :class:`torch.optim.Optimizer` whose update is a rule from :mod:`course_lib.rules`.

    Subclasses set ``rule_factory`` (``rules.adam``, say) and pass its keyword
    arguments as ``defaults``, with the execution keywords ``foreach``, ``fused``,
    ``capturable`` and ``differentiable`` that their constructor takes. Parameters
    whose ``.grad`` is ``None`` are skipped: they get no state and no step.
    ``foreach`` and ``fused`` choose how the rule runs (see the module docstring);
    a param group may override them. The multi-tensor and flat paths are functions of tensors
    in :mod:`course_lib.fast_paths` (imported the first time a group takes one); this class
    hands them the tensors and writes what they return into :attr:`state`, its only owner.
    Every param group, the constructor's and those added later, is checked
    (:meth:`check_group`) before it is registered.
    """

    rule_factory: Callable[..., rules.Rule]
    #: The execution keywords that torch's twin class keeps in ``defaults`` (its state dicts carry them); by
    #: default those among :data:`EXECUTION_KEYWORDS` that the subclass's constructor takes.
    _torch_execution_keys: tuple[str, ...] | None = None
    #: True where torch's twin keeps its for-loop by default for a tensor ``lr`` (Adam, AdamW).
    _tensor_lr_keeps_for_loop = False
    #: Why ``fused=True`` is refused (a ``ValueError`` naming it), or None where the rule runs on a flat buffer.
    _no_fused: str | None = None
    #: Rule state kept once per param group (in ``param_groups``, as the reference keeps it), not per parameter:
    #: each step hands it to the rule beside every parameter's own state, then :meth:`advance_group` moves it on.
    group_state_names: tuple[str, ...] = ()

    def __init__(self, params, defaults, *, foreach=None, fused=None, capturable=False, differentiable=False):
        self._execution_defaults = {"foreach": foreach, "fused": fused, "capturable": capturable,
                                    "differentiable": differentiable}
        self.check_group(defaults)  # torch.optim's errors, before the parameters are looked at
        self._flat: dict[int, _FlatGroup] = {}  # param group index -> its flat layout
        self._rules: dict[int, tuple] = {}
        defaults = {**defaults, **{key: self._execution_defaults[key] for key in self._torch_keys()}}
        super().__init__(params, defaults)

    @classmethod
    def _torch_keys(cls) -> tuple[str, ...]:
        if cls._torch_execution_keys is None:
            taken = inspect.signature(cls.__init__).parameters
            return tuple(key for key in EXECUTION_KEYWORDS if key in taken)
        return cls._torch_execution_keys

    def _group_execution(self, group) -> dict:
        """The execution keywords of a param group (the constructor's where the group does not set them)."""
        defaults = self.__dict__.get("_execution_defaults", {})
        return {key: group.get(key, defaults.get(key)) for key in EXECUTION_KEYWORDS}

    def check_group(self, group, where="") -> None:
        """Raise torch.optim's error for a param group's invalid hyperparameters or execution keywords.

        ``group`` maps names to values (``params`` is not looked at); a missing hyperparameter takes the
        rule's default, a missing execution keyword the constructor's.
        """
        hyper = {name: group[name] for name in self._hyper_names() if name in group}
        for name, value in hyper.items():
            _check_tensor_hyperparam(name, value, where)
        # ranges: torch's ValueError
        self.rule_factory(**{name: rules.as_number(value) for name, value in hyper.items()})
        execution = self._group_execution(group)
        _check_execution(execution["foreach"], execution["fused"], where, execution["capturable"],
                         execution["differentiable"], type(self).__name__, self._no_fused)

    @classmethod
    def _hyper_names(cls) -> tuple[str, ...]:
        if "_hyper_names_cache" not in cls.__dict__:
            cls._hyper_names_cache = tuple(inspect.signature(cls.rule_factory).parameters)
        return cls._hyper_names_cache

    def __getstate__(self):
        return {**super().__getstate__(), "_execution_defaults": self._execution_defaults}

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for name, value in self.defaults.items():
                group.setdefault(name, value)
        execution = self.__dict__.setdefault("_execution_defaults", {})
        for key in EXECUTION_KEYWORDS:
            execution.setdefault(key, self.defaults.get(key, False if key in ("capturable", "differentiable")
                                                          else None))
        self._flat = {}  # loaded state is not in the flat buffers yet: rebuild them at the next step
        self._rules = {}

    def add_param_group(self, param_group):
        """Check the group as the constructor's (torch's errors), then register it (torch's own checks)."""
        if isinstance(param_group, dict):
            self.check_group({**self.defaults, **param_group}, where=f" in param group {len(self.param_groups)}")
        super().add_param_group(param_group)
        self.__dict__.setdefault("_flat", {}).clear()
        self.__dict__.setdefault("_rules", {}).clear()

    def rule_for(self, group) -> rules.Rule:
        """The rule with this param group's current hyperparameters (an lr scheduler may have changed them)."""
        return self.rule_factory(**{name: rules.as_number(group[name]) for name in self._hyper_names()})

    def _rule(self, index, group):
        """``rule_for(group)``, rebuilt only when a hyperparameter changed, and a dict to cache what goes with it
        (the flat path keeps the rule's split for its compiled kernel there)."""
        names = self._hyper_names()
        given = [group[name] for name in names]
        cached = self._rules.get(index)
        if cached is not None and cached[3] is not None and all(map(operator.is_, given, cached[3])):
            return cached[1], cached[2]  # the very same numbers as last step (no tensor among them): nothing to do
        key, plain = tuple(given), True
        if any(isinstance(value, (torch.Tensor, np.ndarray)) or (isinstance(value, tuple) and any(
                isinstance(v, (torch.Tensor, np.ndarray)) for v in value)) for value in key):
            key, plain = tuple(rules.as_number(value) for value in key), False  # a tensor lr may change in place
        if cached is None or cached[0] != key:
            rule = self.rule_factory(**{name: rules.as_number(value) for name, value in zip(names, key)})
            cached = (key, rule, {})
        self._rules[index] = (*cached[:3], given if plain else None)
        return cached[1], cached[2]

    # ---- choosing a path ---------------------------------------------------------------------------------
    def _execution(self, group):
        execution = self._group_execution(group)
        return execution["foreach"], execution["fused"]

    def path_for(self, group) -> str:
        """``"per-tensor"``, ``"multi-tensor"`` or ``"flat"``: the path this param group takes.

        As in torch.optim: ``fused=True`` the flat path, ``foreach=True`` the multi-tensor path, and with
        neither set the multi-tensor path where torch would choose its foreach implementation (every
        parameter with a gradient on a device with foreach kernels: CUDA, not the CPU), else per tensor.
        """
        defaults = self.__dict__.get("_execution_defaults", {})
        foreach, fused = group.get("foreach", defaults.get("foreach")), group.get("fused", defaults.get("fused"))
        if (group.get("capturable", defaults.get("capturable")) in _UNSET_OR_FALSE
                and group.get("differentiable", defaults.get("differentiable")) in _UNSET_OR_FALSE):
            if fused is True and foreach in _UNSET_OR_FALSE:  # asked for, and nothing to refuse: the usual cases
                return "flat"
            if foreach is True and fused in _UNSET_OR_FALSE:
                return "multi-tensor"
        execution = self._group_execution(group)
        if (foreach in _UNSET_OR_FALSE and fused in _UNSET_OR_FALSE and execution["capturable"] in _UNSET_OR_FALSE
                and execution["differentiable"] in _UNSET_OR_FALSE):  # the usual case: nothing to refuse
            if foreach is None and fused is None and self._torch_would_use_foreach(group):
                return "multi-tensor"
            return "per-tensor"
        _check_execution(foreach, fused, "", execution["capturable"], execution["differentiable"],
                         type(self).__name__)
        if fused:
            return "flat"
        if foreach:
            return "multi-tensor"
        if foreach is None and fused is None and self._torch_would_use_foreach(group):
            return "multi-tensor"
        return "per-tensor"

    def _torch_would_use_foreach(self, group) -> bool:
        """torch.optim's default (``_default_to_fused_or_foreach``) for the parameters that have gradients."""
        if self._tensor_lr_keeps_for_loop and isinstance(group.get("lr"), torch.Tensor):
            return False
        devices, any_gradient = _foreach_devices(), False
        for param in group["params"]:
            if param.grad is None:
                continue
            if not (type(param) in (torch.Tensor, torch.nn.Parameter) and param.device.type in devices):
                return False  # on the CPU: at the first parameter
            any_gradient = True
        return any_gradient

    @property
    def paths(self) -> list[str]:
        """One line per param group (and per dtype/device inside a flat group): the path it ran last step."""
        lines = []
        for index, group in enumerate(self.param_groups):
            path = self.path_for(group)
            layout = self._flat.get(index)
            if path != "flat" or layout is None:
                lines.append(f"group {index}: {path}")
                continue
            for buffers, ran in zip(layout.buckets, layout.paths):
                lines.append(f"group {index}: {ran or 'flat (not stepped yet)'} "
                             f"({len(buffers.params)} tensors, {buffers.numel:,} {str(buffers.dtype)[6:]} numbers "
                             f"on {buffers.device.type})")
        return lines

    # ---- the step -------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """Perform a single optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = _evaluate(closure)
        for index, group in enumerate(self.param_groups):
            rule, cache = self._rule(index, group)
            path = self.path_for(group)
            if path == "flat":
                if "split" not in cache:
                    cache["split"] = _fast_paths().split_hyperparams(rule.hyperparams)
                self._step_flat(index, group, rule, cache["split"])
                continue
            self._flat.pop(index, None)
            shared = {name: group[name] for name in self.group_state_names}
            if path == "multi-tensor":
                self._step_multi_tensor(rule, [param for param in group["params"] if param.grad is not None],
                                        shared=shared)
            else:
                self._step_per_tensor(group, rule, shared)
            if shared:
                self.advance_group(group, rule, shared)
        return loss

    def advance_group(self, group, rule, shared) -> None:
        """After a group's step: move the rule state kept per group (:attr:`group_state_names`, read into
        ``shared`` before the step) to its next values. Nothing to do unless a subclass keeps such state."""

    def zero_grad(self, set_to_none: bool = True):
        """Reset the gradients; ``set_to_none=False`` zeroes each flat gradient buffer in one operation."""
        if set_to_none or not self._flat:
            return super().zero_grad(set_to_none)
        in_buffers = set()
        for layout in self._flat.values():
            for buffers in layout.buckets:
                in_buffers |= buffers.zero_grad()
        for group in self.param_groups:  # gradients outside the buffers, zeroed as torch.optim zeroes them
            for param in group["params"]:
                if param.grad is not None and id(param) not in in_buffers:
                    if param.grad.grad_fn is not None:
                        param.grad.detach_()
                    else:
                        param.grad.requires_grad_(False)
                    param.grad.zero_()
        return None

    def _step_multi_tensor(self, rule, params, buffers=None, shared=None):
        """Path 2: the rule once per (device, dtype, step) on lists of those tensors
        (:func:`course_lib.fast_paths.multi_tensor_update`).

        With ``buffers`` (the flat path when only some parameters have gradients) the parameters' state lives in
        those :class:`~course_lib.fast_paths.FlatBuffers`, and new values are written into its views.
        """
        fast_paths, all_states, check = _fast_paths(), self.state, self.check_param
        states = [all_states[param] for param in params]
        for param, state in zip(params, states):
            if param.grad.is_sparse or param.is_complex():
                check(param)  # raises torch's error
            if not state:
                if buffers is None:
                    self.store_state(state, self._init_state(rule, param))
                else:
                    state.update(buffers.entries(buffers.index[id(param)]))
        stepped = [state["step"] for state in states if "step" in state]
        # the step counts as numbers: one stack for many tensors, a few item() calls (cheaper) for a few
        steps = iter(torch.stack(stepped).tolist() if len(stepped) > 8 else [step.item() for step in stepped])
        batches: dict = {}
        for param, state in zip(params, states):
            step = int(next(steps)) if "step" in state else None
            none_names = (tuple(name for name, value in state.items() if value is None)
                          if _NONE_TYPE in map(type, state.values()) else ())  # (``None in``: tensor == None, slow)
            batches.setdefault((param.device, param.dtype, step, none_names), []).append((param, state))
        for (_, _, step, none_names), members in batches.items():
            batch, batch_states = [param for param, _ in members], [state for _, state in members]
            rule_state = {name: None if name in none_names else [state[name] for state in batch_states]
                          for name in batch_states[0]}
            if shared:
                rule_state.update(shared)
            new_state = fast_paths.multi_tensor_update(rule, batch, [param.grad for param in batch], rule_state,
                                                       step=step)
            for name, value in new_state.items():
                if value is None or value is rule_state.get(name) or (shared and name in shared):
                    continue  # (a list written in place: stored already; the group's own state: advance_group)
                if buffers is not None:
                    value = buffers.store([buffers.index[id(param)] for param in batch], name, value)
                for state, tensor in zip(batch_states, value):
                    state[name] = tensor

    def _step_flat(self, index, group, rule, split):
        """Path 3: the rule once over each flat buffer of param group ``index`` (compiled when wanted and possible).

        The group's :class:`~course_lib.fast_paths.FlatBuffers` (one per dtype and device) are built at its first
        flat step, and again when its parameters changed; a buffer whose parameters all have gradients and the same
        state runs :meth:`~course_lib.fast_paths.FlatBuffers.update`, otherwise its parameters with gradients take the
        multi-tensor path with their state in the buffer's views. ``split`` is
        :func:`~course_lib.fast_paths.split_hyperparams` of the rule.
        """
        layout = self._flat.get(index)
        if layout is None or not layout.matches(group) or not all(b.intact() for b in layout.buckets):
            layout = self._flat[index] = self._build_flat(group, rule)
        owner = type(self).__name__
        for k, buffers in enumerate(layout.buckets):
            active = buffers.take_gradients(owner)
            if active is None and layout.signatures[k] is not None:
                self._flat_whole_step(layout, k, rule, split, index)
                continue
            params = buffers.params if active is None else [buffers.params[i] for i in active]
            if params:
                self._step_multi_tensor(rule, params, buffers)
            layout.signatures[k] = self._flat_signature(buffers)
        loose = [param for param in layout.loose if param.grad is not None]
        if loose:
            self._step_multi_tensor(rule, loose)

    def _flat_whole_step(self, layout, k, rule, split, index):
        """One step over buffer ``k`` of ``layout``: every parameter has a gradient and the same state."""
        buffers, signature = layout.buckets[k], layout.signatures[k]
        fresh = signature == "fresh"
        step, none_names = (0, tuple(name for name in buffers.state_names if name not in buffers.state)) \
            if fresh else signature
        path = buffers.update(rule, step, none_names, split)
        new_none = tuple(name for name in buffers.state_names if name not in buffers.state)
        if fresh or new_none != none_names:  # point torch.optim's state at the buffers' views
            for i, param in enumerate(buffers.params):
                self.state[param].update(buffers.entries(i))
        layout.signatures[k] = (step + 1, new_none)
        if path != layout.paths[k]:
            layout.paths[k] = path
            logger.info("%s, param group %d: %s (%d tensors, %d %s numbers on %s)", type(self).__name__, index,
                        path, len(buffers.params), buffers.numel, buffers.dtype, buffers.device)

    def _build_flat(self, group, rule) -> _FlatGroup:
        """The flat layout of a param group; state saved earlier or loaded from a state dict moves into it."""
        fast_paths, by_kind, loose = _fast_paths(), {}, []
        for param in group["params"]:
            if param.requires_grad and param.is_floating_point() and param.numel() > 0:
                by_kind.setdefault((param.device, param.dtype), []).append(param)
            else:
                loose.append(param)
        buckets = []
        for params in by_kind.values():
            buffers = fast_paths.FlatBuffers(params, rule)
            for i, param in enumerate(params):
                if self.state[param]:
                    self.state[param].update(buffers.load(i, self.state[param]))
            buckets.append(buffers)
        return _FlatGroup(group["params"], buckets, loose, [self._flat_signature(b) for b in buckets],
                          [None] * len(buckets))

    def _flat_signature(self, buffers):
        """The common (step, entries that are None) of a buffer's parameters, ``"fresh"`` when none has state yet,
        or None when they differ (then the buffer steps through the multi-tensor path)."""
        signatures = set()
        for param in buffers.params:
            state = self.state[param]
            if not state:
                signatures.add("fresh")
            else:
                step = int(state["step"]) if buffers.has_step else 0
                signatures.add((step, tuple(name for name in buffers.state_names if state.get(name) is None)))
        return signatures.pop() if len(signatures) == 1 else None

    def _step_per_tensor(self, group, rule, shared=None):
        """Path 1, the reference: the rule once per parameter tensor.

        As in torch.optim's for-loop: the rule computes with the step count as a Python number (torch's ``.item()``),
        except under ``torch.compile``, where it gets the ``step`` tensor itself (no host sync, no graph break);
        the ``step`` tensor is updated in place, the other state entries are the tensors the rule returns.
        """
        update, hyperparams = rule.update_fn, rule.hyperparams
        compiling = torch.compiler.is_compiling()
        if rule.update_in_place_fn is not None and not compiling:
            self._step_per_tensor_in_place(group, rule)
            return
        if shared:
            self._step_per_tensor_shared(group, rule, shared)
            return
        active, handed = [], []
        for param, grad, state in self._with_state(group, rule):
            active.append((param, grad, state))
            handed.append(param)
            handed += state.values()
        # θ and the state are replaced by the rule's results: let it write them in place (the compiler removes the
        # copies itself)
        with contextlib.nullcontext() if compiling else rules.donating(handed):
            for param, grad, state in active:
                step = state.get("step")
                if step is None:
                    new_param, new_state = update(param, grad, state, **hyperparams)
                else:
                    new_param, new_state = update(param, grad, {**state, "step": step if compiling else step.item()},
                                                  **hyperparams)
                if new_param is not param:
                    param.copy_(new_param)
                if step is not None and type(step) is not torch.Tensor:
                    self.store_state(state, new_state)  # a step count to make a tensor of
                    continue
                for name, value in new_state.items():  # store_state's work, inline: this runs for every tensor
                    if name == "step":
                        step.copy_(value) if compiling else step.fill_(value)
                    elif value is not None:
                        state[name] = value

    def _step_per_tensor_shared(self, group, rule, shared):
        """Path 1 for a rule with state kept per group (:attr:`group_state_names`): each parameter's state with the
        group's beside it, the group's left to :meth:`advance_group`."""
        update, hyperparams = rule.update_fn, rule.hyperparams
        active = list(self._with_state(group, rule))
        with rules.donating([tensor for param, _, state in active for tensor in (param, *state.values())]):
            for param, grad, state in active:
                new_param, new_state = update(param, grad, {**shared, **state}, **hyperparams)
                if new_param is not param:
                    param.copy_(new_param)
                for name in state:
                    state[name] = new_state[name]

    def _step_per_tensor_in_place(self, group, rule):
        """Path 1 with the rule's in-place twin (SGD's: :func:`course_lib.rules.sgd_update_`), which writes θ and
        torch.optim's state dict itself: the fewest Python operations around a step of few kernels."""
        update_in_place, hyperparams = rule.update_in_place_fn, rule.hyperparams
        for param, grad, state in self._with_state(group, rule):
            update_in_place(param, grad, state, **hyperparams)

    def _with_state(self, group, rule):
        """(param, grad, state) for each parameter of ``group`` that has a gradient, in order: checked
        (:meth:`check_param`), its state made by ``rule.init`` on its first step."""
        states = self.state
        for param in group["params"]:
            grad = param.grad
            if grad is None:
                continue
            self.check_param(param)
            state = states[param]
            if not state:
                self.store_state(state, self._init_state(rule, param))
            yield param, grad, state

    def _init_state(self, rule, param) -> dict:
        """``rule.init(param)`` less the entries kept per param group (:attr:`group_state_names`)."""
        fresh = rule.init(param)
        if self.group_state_names:
            fresh = {name: value for name, value in fresh.items() if name not in self.group_state_names}
        return fresh

    def check_param(self, param):
        """Raise torch.optim's ``RuntimeError`` for a parameter this optimizer cannot step (sparse grad, complex)."""
        if param.grad.is_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        if param.is_complex():
            raise RuntimeError(f"{type(self).__name__} supports real-valued parameters only")

    @staticmethod
    def store_state(state, new_state) -> None:
        """Write a rule's new state into torch.optim's per-parameter ``state`` (``step`` a tensor, as torch keeps it).

        An existing ``step`` tensor is updated in place (as torch.optim does, and as ``torch.compile`` needs);
        entries that are ``None`` (a momentum buffer before the first step) are not stored.
        """
        for name, value in new_state.items():
            if value is None:
                continue
            if name == "step":
                step = state.get("step")
                if not isinstance(step, torch.Tensor) or step.dim() != 0:
                    state["step"] = torch.tensor(float(value), dtype=_step_dtype())
                elif isinstance(value, torch.Tensor):
                    step.copy_(value)
                else:
                    step.fill_(value)
            else:
                state[name] = value


class SGD(RuleOptimizer):
    """Gradient descent, optionally with momentum or Nesterov momentum (:func:`course_lib.rules.sgd_update`)."""

    rule_factory = staticmethod(rules.sgd)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize),
                         foreach=foreach, fused=fused, differentiable=differentiable)


class Adagrad(RuleOptimizer):
    """AdaGrad (:func:`course_lib.rules.adagrad_update`)."""

    rule_factory = staticmethod(rules.adagrad)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize),
                         foreach=foreach, fused=fused, differentiable=differentiable)


class RMSprop(RuleOptimizer):
    """RMSProp, optionally centered and with momentum (:func:`course_lib.rules.rmsprop_update`).

    torch.optim.RMSprop has no ``fused``; here it selects the flat path as for the other classes.
    """

    rule_factory = staticmethod(rules.rmsprop)
    _torch_execution_keys = ("foreach", "capturable", "differentiable")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, *, fused=None):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize),
                         foreach=foreach, fused=fused, capturable=capturable, differentiable=differentiable)


class _AdamChecks:
    """torch.optim.Adam's own rules for a tensor ``lr`` and tensor ``betas``, in torch's order (Adam, AdamW)."""

    _tensor_lr_keeps_for_loop = True

    def check_group(self, group, where=""):
        foreach, capturable = (self._group_execution(group)[key] for key in ("foreach", "capturable"))
        if isinstance(group.get("lr"), torch.Tensor) and foreach and not capturable:
            raise ValueError(f"lr as a Tensor is not supported for capturable=False and foreach=True{where}")
        super().check_group(group, where)
        betas = group.get("betas", (0.9, 0.999))
        if not (all(isinstance(beta, float) for beta in betas)
                or all(isinstance(beta, torch.Tensor) for beta in betas)):
            raise ValueError(f"betas must be either both floats or both Tensors{where}")
        for i, beta in enumerate(betas):
            if isinstance(beta, torch.Tensor) and foreach and not capturable:
                raise ValueError(f"betas[{i}] as a Tensor is not supported for capturable=False and foreach=True"
                                 f"{where}")


class Adam(_AdamChecks, RuleOptimizer):
    """Adam, with ``amsgrad`` and L2 or decoupled weight decay (:func:`course_lib.rules.adam_update`)."""

    rule_factory = staticmethod(rules.adam)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay),
                         foreach=foreach, fused=fused, capturable=capturable, differentiable=differentiable)


class AdamW(_AdamChecks, RuleOptimizer):
    """AdamW: Adam with decoupled weight decay θ ← (1 − ηλ)θ (:func:`course_lib.rules.adamw`)."""

    rule_factory = staticmethod(rules.adamw)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=True),  # kept, as torch does
                         foreach=foreach, fused=fused, capturable=capturable, differentiable=differentiable)


# ======================================================================================================================
# Beyond Adam: NAdam, RAdam, Adafactor, Muon (torch.optim's twins), Lion (lion-pytorch's), AdamWScheduleFree
# (schedulefree's)
# ======================================================================================================================
class _PerTensorRuleOptimizer(RuleOptimizer):
    """A :class:`RuleOptimizer` whose rule always runs per tensor (the reference path).

    Used where a rule cannot run on a flat buffer or a list of tensors as written: Adafactor and Muon act on
    each parameter's matrix shape (rows, columns, products of matrices), NAdam keeps a per-tensor number
    (``mu_product``), RAdam branches on the step. ``foreach`` is accepted where torch's class has it and
    changes nothing (the same numbers as torch's multi-tensor code, to rounding); ``fused=True`` is refused.
    """

    _per_tensor_reason = "its rule runs per tensor"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._no_fused = (f"{cls._per_tensor_reason}, so it cannot run on one flat buffer; leave fused unset (it runs "
                         "per tensor)")

    def path_for(self, group) -> str:
        return "per-tensor"

    def check_param(self, param):
        if param.grad.is_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        if param.is_complex():
            raise RuntimeError(f"{type(self).__name__} does not support complex parameters")


class NAdam(_PerTensorRuleOptimizer):
    """NAdam: Adam with Nesterov momentum (:func:`course_lib.rules.nadam_update`). torch.optim.NAdam's twin.

    ``capturable`` and ``differentiable`` are torch's switches for CUDA graphs and for differentiating through
    the step; only their default ``False`` is supported. Runs per tensor (``foreach`` changes nothing).
    """

    rule_factory = staticmethod(rules.nadam)
    _torch_execution_keys = ("foreach",)
    _per_tensor_reason = "its state holds one number per tensor (mu_product), not one per parameter entry"

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize),
                         foreach=foreach, fused=fused, capturable=capturable, differentiable=differentiable)


class RAdam(_PerTensorRuleOptimizer):
    """RAdam: rectified Adam (:func:`course_lib.rules.radam_update`). torch.optim.RAdam's twin.

    Only ``capturable=False`` and ``differentiable=False`` are supported. Runs per tensor.
    """

    rule_factory = staticmethod(rules.radam)
    _torch_execution_keys = ("foreach",)
    _per_tensor_reason = "its rule branches on the step count (the rectification starts when rho_t > 5)"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize),
                         foreach=foreach, fused=fused, capturable=capturable, differentiable=differentiable)


class Adafactor(_PerTensorRuleOptimizer):
    """Adafactor: factored second moments, relative step (:func:`course_lib.rules.adafactor_update`).

    torch.optim.Adafactor's twin: a parameter of two or more dimensions keeps a row and a column factor
    (``row_var``, ``col_var``), a vector keeps ``variance``. Runs per tensor (``foreach`` changes nothing);
    ``fused=True`` is refused: the factors belong to each parameter's matrix shape, which a flat buffer loses.
    """

    rule_factory = staticmethod(rules.adafactor)
    _torch_execution_keys = ("foreach",)
    _per_tensor_reason = ("its second moments are factored over each parameter's rows and columns, "
                          "which a flat buffer does not have")

    @classmethod
    def _hyper_names(cls) -> tuple[str, ...]:
        return tuple(name for name in super()._hyper_names() if name != "batch_axes")  # one parameter per tensor

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 foreach=None, maximize=False, fused=None):
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                                      maximize=maximize),
                         foreach=foreach, fused=fused)


class Muon(_PerTensorRuleOptimizer):
    """Muon: momentum, then an orthogonalized update per matrix (:func:`course_lib.rules.muon_update`).

    torch.optim.Muon's twin: every parameter must be a matrix (torch's ``ValueError`` otherwise; optimize
    biases, embeddings and gains with AdamW). The Newton–Schulz iteration runs in bfloat16, as torch's.
    ``fused=True`` is refused: the orthogonalization needs each parameter's matrix.
    """

    rule_factory = staticmethod(rules.muon)
    _torch_execution_keys = ()
    _per_tensor_reason = "it orthogonalizes each parameter's matrix, which a flat buffer does not have"

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=rules.MUON_NS_COEFFICIENTS, eps=rules.MUON_EPS, ns_steps=rules.MUON_NS_STEPS,
                 adjust_lr_fn=None, *, fused=None):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                                      adjust_lr_fn=adjust_lr_fn),
                         fused=fused)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        for param in self.param_groups[-1]["params"]:
            if param.ndim != 2:
                self.param_groups.pop()
                raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: "
                                 f"{param.size()}")


class Lion(RuleOptimizer):
    """Lion: the sign of an interpolation of momentum and gradient (:func:`course_lib.rules.lion_update`).

    ``lion_pytorch.Lion``'s twin: its signature, defaults and state (``exp_avg`` only). With
    ``decoupled_weight_decay=True`` the decay is divided by the learning rate given here (``init_lr`` in
    every param group, as lion-pytorch keeps it), also for groups with their own lr. lion-pytorch's
    ``use_triton=True`` (its CUDA kernel) is refused: use ``fused=True`` for one compiled kernel instead.
    Lion is element-wise, so all three paths run it (``foreach``, ``fused`` as for :class:`Adam`).
    """

    rule_factory = staticmethod(rules.lion)
    _torch_execution_keys = ()

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, use_triton=False,
                 decoupled_weight_decay=False, *, foreach=None, fused=None):
        if use_triton:
            raise ValueError("use_triton=True is not supported: it selects lion-pytorch's own Triton kernel for "
                             "CUDA GPUs; course_lib's Lion runs the same rule through torch (fused=True compiles it "
                             "into one kernel with torch.compile)")
        if not rules.as_number(lr) > 0:  # lion-pytorch asserts lr > 0 here; a scheduler may set 0 later
            raise ValueError(f"Invalid learning rate: {lr} (Lion needs lr > 0)")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, init_lr=rules.as_number(lr)),
                         foreach=foreach, fused=fused)


_HAS_FOREACH = hasattr(torch, "_foreach_mul_")  # schedulefree's default for foreach


class AdamWScheduleFree(RuleOptimizer):
    """Schedule-Free AdamW (:func:`course_lib.rules.schedule_free_adamw_update`): schedulefree's AdamWScheduleFree.

    Its signature, defaults, state (``z``, ``exp_avg_sq`` per parameter; ``k``, ``train_mode``,
    ``weight_sum``, ``lr_max``, ``scheduled_lr`` per param group) and its two modes: the parameters hold y
    (where gradients are taken) in train mode and x (the average to evaluate) in eval mode. Call
    :meth:`train` before training steps and :meth:`eval` before evaluating or saving a checkpoint, as the
    package requires (:func:`course_lib.training.fit` and :func:`~course_lib.training.evaluate` do it). Like
    the package, a new optimizer starts in eval mode and :meth:`step` in eval mode raises. ``foreach``
    chooses per tensor or multi-tensor, as the package's does; ``fused=True`` is refused (the package has
    no fused path). Unlike the package, :meth:`step` leaves ``param.grad`` as it was (the package overwrites
    it with the normalized gradient).
    """

    rule_factory = staticmethod(rules.schedule_free_adamw)
    _torch_execution_keys = ("foreach",)
    #: The package's per-group counters and their starting values.
    group_counters = {"k": 0, "train_mode": False, "weight_sum": 0.0, "lr_max": -1.0, "scheduled_lr": 0.0}
    #: The counters the rule reads (:func:`course_lib.rules.schedule_free_adamw_update`), kept per group.
    group_state_names = ("k", "weight_sum", "lr_max")

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0, foreach=_HAS_FOREACH, *, fused=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power),
                         foreach=foreach, fused=fused)
        self.defaults.update(self.group_counters)  # as the package's defaults: every new group starts there

    _no_fused = ("schedulefree has no fused path (its step is short and per group); use foreach=True "
                 "(multi-tensor) or foreach=False (per tensor)")

    def add_param_group(self, param_group):
        for name, value in self.group_counters.items():
            param_group.setdefault(name, value)
        super().add_param_group(param_group)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for name, value in self.group_counters.items():
                group.setdefault(name, value)

    def path_for(self, group) -> str:
        return "multi-tensor" if self._execution(group)[0] else "per-tensor"

    @torch.no_grad()
    def eval(self):
        """Move the parameters to x, the average (what to evaluate, save or ship): x = y + (1 − 1/β₁)(z − y)."""
        self._switch(train_mode=False, move=rules.schedule_free_eval)

    @torch.no_grad()
    def train(self):
        """Move the parameters to y, where training takes gradients: y = (1 − β₁) z + β₁ x."""
        self._switch(train_mode=True, move=rules.schedule_free_train)

    def _switch(self, train_mode, move):
        for group in self.param_groups:
            if group["train_mode"] == train_mode:
                continue
            for param in group["params"]:
                state = self.state[param]
                if "z" in state:
                    param.copy_(move(param, {"z": state["z"].to(param.device)}, betas=group["betas"]))
            group["train_mode"] = train_mode

    def step(self, closure=None):
        """One step on y (train mode only, as the package: in eval mode it raises)."""
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError("Optimizer was not in train mode when step is called. Please insert .train() and "
                               ".eval() calls on the optimizer. See documentation for details. (AdamWScheduleFree "
                               "keeps two sequences: call optimizer.train() before training steps and "
                               "optimizer.eval() before evaluating or saving; course_lib.training.fit does both.)")
        return super().step(closure)

    def advance_group(self, group, rule, shared) -> None:
        """The package's per-group counters after a step: k + 1, Σw and max η (and the scheduled η it reports)."""
        schedule = rules.schedule_free_schedule(shared, **rule.hyperparams)
        group.update(k=shared["k"] + 1, weight_sum=schedule["weight_sum"], lr_max=schedule["lr_max"],
                     scheduled_lr=schedule["lr"])


# ======================================================================================================================
# AdEMAMix, SOAP and Shampoo (pytorch_optimizer's twins): per tensor, with the step count kept per param group
# ======================================================================================================================
class _GroupStepRuleOptimizer(_PerTensorRuleOptimizer):
    """Per tensor, with the step count kept in each param group (``group["step"]``), as pytorch_optimizer keeps it.

    The rule gets the group's count as its ``step`` and every other state entry per parameter; the count goes
    up once per :meth:`step` for the whole group (whether or not a parameter has a gradient), so that state
    dicts move between these classes and pytorch_optimizer's (AdEMAMix, SOAP; ScalableShampoo pickles
    objects instead). ``param.grad`` is left as it was (the reference negates it for ``maximize`` and adds the
    L2 penalty to it in place). Extra keyword arguments, which
    pytorch_optimizer accepts and mostly ignores, are refused unless listed in ``_ignored_kwargs`` with a value
    that changes nothing.
    """

    _torch_execution_keys = ()
    #: Extra keywords the reference takes (``**kwargs``) that may be passed with the value that changes nothing.
    _ignored_kwargs: dict = {}
    #: True where the rule is element-wise and may run on :class:`TensorList` s (``foreach``, as torch decides).
    _multi_tensor = False

    def __init__(self, params, defaults, *, foreach=None, fused=None, kwargs=None):
        for name, value in (kwargs or {}).items():
            if name not in self._ignored_kwargs or value != self._ignored_kwargs[name]:
                known = ", ".join(f"{key}={value!r}" for key, value in self._ignored_kwargs.items()) or "none"
                raise ValueError(f"{type(self).__name__} does not implement {name}={value!r} (an option the reference "
                                 f"takes through **kwargs); the extra options accepted here, with the value that "
                                 f"changes nothing: {known}")
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    @torch.no_grad()
    def step(self, closure=None):
        """One step of every param group; ``closure`` re-evaluates the model and returns the loss."""
        loss = _evaluate(closure)
        for index, group in enumerate(self.param_groups):
            rule, _ = self._rule(index, group)
            count = group.get("step", 0)
            group["step"] = count + 1
            active = [param for param in group["params"] if param.grad is not None]
            for param in active:
                self.check_param(param)
                state = self.state[param]
                if not state:
                    self.store_state(state, {k: v for k, v in rule.init(param).items() if k != "step"})
            if self.path_for(group) == "multi-tensor":
                self._step_group_multi_tensor(rule, count, active)
                continue
            for param in active:
                state = self.state[param]
                new_param, new_state = rule.update(param, param.grad, {**state, "step": count})
                param.copy_(new_param)
                self.store_state(state, {k: v for k, v in new_state.items() if k != "step"})
        return loss

    def path_for(self, group) -> str:
        """``"multi-tensor"`` where the rule is element-wise and ``foreach`` asks for it (or, unset, torch would
        choose it: on CUDA), else ``"per-tensor"``."""
        return RuleOptimizer.path_for(self, group) if self._multi_tensor else "per-tensor"

    def _step_group_multi_tensor(self, rule, count, params):
        """The rule once per (device, dtype) on :class:`TensorList` s of the parameters, their gradients and states."""
        TensorList = _fast_paths().TensorList

        batches: dict = {}
        for param in params:
            batches.setdefault((param.device, param.dtype), []).append(param)
        for batch in batches.values():
            names = list(self.state[batch[0]])
            state = {name: TensorList([self.state[param][name] for param in batch]) for name in names}
            new_params, new_state = rule.update(TensorList(batch), TensorList([param.grad for param in batch]),
                                                {**state, "step": count})
            torch._foreach_copy_(batch, new_params.tensors)
            for name in names:
                for param, tensor in zip(batch, new_state[name]):
                    self.state[param][name] = tensor


class AdEMAMix(_GroupStepRuleOptimizer):
    """AdEMAMix: Adam plus a slow moving average of gradients (:func:`course_lib.rules.ademamix_update`).

    ``pytorch_optimizer.AdEMAMix``'s twin (version 4.1): its signature, defaults, state (``exp_avg``,
    ``exp_avg_sq``, ``exp_avg_slow`` per parameter, ``step`` per param group) and numbers. ``foreach=True`` runs
    the rule once per param group on :class:`TensorList` s (the multi-tensor path), ``foreach=False`` per
    tensor; unset, torch's choice (multi-tensor on CUDA, per tensor on the CPU; the reference's unset
    ``foreach`` takes its multi-tensor code on the CPU too: the same numbers to rounding). The flat path
    (``fused=True``) is not offered: the step count lives in the param group. Of the reference's extra options
    (``**kwargs``), ``cautious`` and ``stable_adamw`` are refused unless False.
    """

    rule_factory = staticmethod(rules.ademamix)
    _torch_execution_keys = ("foreach",)
    _per_tensor_reason = "its step count lives in the param group (the flat path keeps one per tensor)"
    _multi_tensor = True
    _ignored_kwargs = {"cautious": False, "stable_adamw": False}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999, 0.9999), weight_decay=0.0, weight_decouple=False,
                 fixed_decay=False, alpha=5.0, t_alpha_beta3=None, eps=1e-8, maximize=False, foreach=None, **kwargs):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, weight_decouple=weight_decouple,
                                      fixed_decay=fixed_decay, alpha=alpha, t_alpha_beta3=t_alpha_beta3, eps=eps,
                                      maximize=maximize),
                         foreach=foreach, kwargs=kwargs)


class SOAP(_GroupStepRuleOptimizer):
    """SOAP: Adam in the eigenbasis of Shampoo's Kronecker factors (:func:`course_lib.rules.soap_update`).

    ``pytorch_optimizer.SOAP``'s twin (version 4.1): its signature, defaults, state (``exp_avg``, ``exp_avg_sq``,
    ``GG``, ``Q``, ``precondition_frequency``, ``shampoo_beta`` per parameter, ``step`` per param group) and
    numbers, with the reference's power-iteration-and-QR refresh (the rule's ``eigenbasis_refresh="qr"``).
    Refused: ``merge_dims=True`` (the reference's merging of small axes; on a tensor whose axes all fit in
    ``max_precondition_dim`` it reshapes to one entry and fails), and extra keyword arguments, which the
    reference silently ignores. ``data_format`` only matters with ``merge_dims=True``; it is checked and kept.
    Runs per tensor: the factors and eigenbases belong to each parameter's shape.
    """

    rule_factory = staticmethod(rules.soap)
    _per_tensor_reason = "its factors and eigenbases belong to each parameter's shape, which a flat buffer loses"

    @classmethod
    def _hyper_names(cls) -> tuple[str, ...]:
        return tuple(name for name in super()._hyper_names() if name != "eigenbasis_refresh")  # the rule's own

    def __init__(self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, weight_decay=1e-2,
                 precondition_frequency=10, max_precondition_dim=10000, merge_dims=False, precondition_1d=False,
                 correct_bias=True, normalize_gradient=False, data_format="channels_first", eps=1e-8, maximize=False,
                 **kwargs):
        if merge_dims:
            raise ValueError("SOAP: merge_dims=True is not supported (the reference's merging of small axes into "
                             "larger ones before preconditioning); leave merge_dims=False: every axis up to "
                             "max_precondition_dim gets its own factor")
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"Invalid data_format: {data_format!r} (expected 'channels_first' or 'channels_last'; "
                             "it only matters with merge_dims=True)")
        self.data_format = data_format
        super().__init__(params, dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, weight_decay=weight_decay,
                                      precondition_frequency=precondition_frequency,
                                      max_precondition_dim=max_precondition_dim, merge_dims=merge_dims,
                                      precondition_1d=precondition_1d, correct_bias=correct_bias,
                                      normalize_gradient=normalize_gradient, eps=eps, maximize=maximize),
                         kwargs=kwargs)

    def check_group(self, group, where=""):
        if group.get("merge_dims"):
            raise ValueError(f"SOAP: merge_dims=True is not supported{where}")
        super().check_group({key: value for key, value in group.items() if key != "merge_dims"}, where)


class Shampoo(_GroupStepRuleOptimizer):
    """Shampoo with grafting (:func:`course_lib.rules.shampoo_update`): ``pytorch_optimizer.ScalableShampoo``'s twin.

    The reference's constructor (names, order, defaults; its ``graft_type`` and ``pre_conditioner_type`` numbers,
    :class:`course_lib.rules.ShampooGraft`), and like it a ``step`` counter per param group (``group["step"]``,
    set at the first step): every parameter of a group uses the group's count, also one that missed steps.
    Per parameter the state is ``momentum``, ``graft_momentum``, ``graft_statistics`` (AdaGrad, RMSProp and Adam
    grafts) and the tuples ``statistics`` (the Kronecker factors) and ``pre_conditioners`` (their inverse roots).
    The reference keeps the last four inside objects (``PreConditioner``, ``Graft``) that its state dict pickles,
    so state dicts do not move between the two; this class's own state dict loads and training continues
    identically. Every option is a param-group entry here (the reference keeps most on the optimizer).

    ``use_svd=False`` (the default, as the reference's) takes the roots by the coupled Schur–Newton iteration,
    drawing its power iteration's start from torch's global generator as the reference does;
    ``use_svd=True`` takes them exactly. Unknown keywords raise a ``TypeError`` (the reference ignores them).
    Recommended: ``graft_type=ShampooGraft.ADAM`` (5), the length of Adam's step per layer, which the reference
    lacks; the default stays its SGD graft, so that the defaults are ``ScalableShampoo``'s. Runs per tensor (the
    roots belong to each parameter's matrix); ``fused=True`` is refused.
    """

    rule_factory = staticmethod(rules.shampoo)
    _torch_execution_keys = ()
    _per_tensor_reason = "its Kronecker factors belong to each parameter's matrix shape, which a flat buffer loses"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), moving_average_for_momentum=False, weight_decay=0.0,
                 decoupled_weight_decay=False, decoupled_learning_rate=True, inverse_exponent_override=0,
                 start_preconditioning_step=25, preconditioning_compute_steps=1000, statistics_compute_steps=1,
                 block_size=512, skip_preconditioning_rank_lt=1, no_preconditioning_for_layers_with_dim_gt=8192,
                 shape_interpretation=True, graft_type=rules.ShampooGraft.SGD,
                 pre_conditioner_type=rules.SHAMPOO_PRECONDITION_ALL, nesterov=True, diagonal_eps=1e-10,
                 matrix_eps=1e-6, use_svd=False, maximize=False, *, fused=None):
        super().__init__(params, dict(
            lr=lr, betas=betas, moving_average_for_momentum=moving_average_for_momentum, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, decoupled_learning_rate=decoupled_learning_rate,
            inverse_exponent_override=inverse_exponent_override, start_preconditioning_step=start_preconditioning_step,
            preconditioning_compute_steps=preconditioning_compute_steps,
            statistics_compute_steps=statistics_compute_steps, block_size=block_size,
            skip_preconditioning_rank_lt=skip_preconditioning_rank_lt,
            no_preconditioning_for_layers_with_dim_gt=no_preconditioning_for_layers_with_dim_gt,
            shape_interpretation=shape_interpretation, graft_type=graft_type,
            pre_conditioner_type=pre_conditioner_type, nesterov=nesterov, diagonal_eps=diagonal_eps,
            matrix_eps=matrix_eps, use_svd=use_svd, maximize=maximize), fused=fused)


def _evaluate(closure):
    """The loss ``closure()`` returns, computed with gradients enabled (``None`` without a closure), as torch.optim's
    ``step`` does before it steps."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


#: The class of every method (and alias) that is its class at the class's defaults, in course order: ``"gd"`` and
#: ``"sgd"`` → :class:`SGD`, ``"adam"`` → :class:`Adam`, ``"schedule_free"`` → :class:`AdamWScheduleFree`, ...
#: (momentum, Nesterov and AMSGrad are SGD and Adam with options: ``methods.get(name).make_optimizer(params)``).
OPTIMIZERS: dict[str, type[RuleOptimizer]] = {
    name: globals()[methods.get(name).optimizer] for name in methods.names(with_aliases=True)
    if not methods.get(name).options}
