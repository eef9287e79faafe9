"""The two fast ways to run a rule: on lists of tensors, and over one flat buffer, compiled.

:mod:`course_lib.optim` runs every rule per tensor in its reference path (the
default on the CPU, as in torch.optim); this module holds the other two paths,
as functions of tensors in the style of torch's ``_multi_tensor_adam`` and
``_fused_adam``: they take parameters, gradients, state tensors and the rule
(with its hyperparameters), update the tensors handed to them in place and
return the new state. They never see an optimizer: only the classes of
:mod:`course_lib.optim` read and write ``optimizer.state`` and ``param_groups``
(``optim`` imports this module only when a group takes one of these paths).
Notebook 14 explains and measures them.

* :class:`TensorList`: a list of tensors whose arithmetic is one
  ``torch._foreach_*`` call per operation, so a rule written for one tensor
  runs unchanged on all the tensors of a param group;
  :func:`multi_tensor_update` is the multi-tensor path (``foreach=True``, and
  the default where torch.optim defaults to foreach).
* :class:`FlatBuffers`: parameters, gradients and state as views into one
  contiguous buffer per dtype and device, so the rule runs once on a single long
  tensor (:meth:`FlatBuffers.update`): :func:`compile_rule` traces the rule into
  a graph of tensor operations and compiles it with ``torch.compile`` into one
  fused kernel (the flat path, ``fused=True``), with an eager fallback
  (:func:`flat_update`) that says so once (:class:`CompileFallbackWarning`).
  Hyperparameters enter the kernel as values, so schedulers never recompile it;
  :func:`compilations` counts the compilations, and at most
  :data:`KERNEL_CACHE_SIZE` kernels are kept (:func:`cache_info` tells what is
  kept, :func:`clear_caches` forgets it).

Where ``torch.compile`` cannot build a kernel (no C++ compiler for the CPU, no
triton for the GPU, an unsupported Python or CPU capability), :func:`compile_rule`
does not raise: it returns the traced rule run eagerly (``fallback_reason`` says
why, ``kernel_count()`` is 0) and warns once. Set the environment variable
``COURSE_NO_COMPILE=1`` to force that fallback on a machine where compilation
works (to see, or test, what a learner without a compiler gets); inside
``with compile_disabled():`` the same happens without a warning (to time the flat
path eagerly, say).

There is no second copy of any update rule here: every path calls the rule
functions of :mod:`course_lib.rules`.
"""


from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from unittest import mock

import torch

from . import rules

__all__ = [
    "multi_tensor_update",
    "flat_update",
    "FlatBuffers",
    "split_hyperparams",
    "TensorList",
    "CompiledRule",
    "compile_rule",
    "compile_unavailable_reason",
    "NO_COMPILE_VARIABLE",
    "compile_disabled",
    "CompileFallbackWarning",
    "COMPILE_MIN_ELEMENTS",
    "EAGER_CHUNK_ELEMENTS",
    "compile_min_elements",
    "compilations",
    "cache_info",
    "clear_caches",
    "CacheInfo",
    "KERNEL_CACHE_SIZE",
    "PATHS",
]

logger = logging.getLogger("course_lib.optim")  # the optimizers' log, whichever module writes it

#: The flat path (``fused=True``) compiles a flat buffer holding at least this many numbers, and runs smaller
#: ones eagerly: 0, every buffer is compiled; ``math.inf`` (:func:`compile_min_elements`), none is. 0, because with
#: the generated code called directly (:class:`CompiledRule`) the compiled Adam step beats the eager one at every
#: size measured on the 2-core course machine (one thread, 4 tensors: 26 µs against 52 µs at 320 numbers, 30 against
#: 101 at 30,000): there is no crossover to dispatch on.
COMPILE_MIN_ELEMENTS = 0

#: How many compiled kernels :func:`compile_rule` keeps (the least recently used one goes first).
KERNEL_CACHE_SIZE = 32

#: On the CPU the eager flat path runs the rule on slices of this many numbers (temporaries that fit in L2).
EAGER_CHUNK_ELEMENTS = 2**17

#: The names of the execution paths, as :attr:`RuleOptimizer.paths` reports them.
PATHS = ("per-tensor", "multi-tensor", "flat, eager", "flat, compiled")



class CompileFallbackWarning(UserWarning):
    """torch.compile was wanted for the flat path but is unavailable; the rule runs eagerly instead."""






# --------------------------------------------------------------------------------------
# Path 2: a list of tensors that does arithmetic like one tensor
# --------------------------------------------------------------------------------------
class TensorList:
    """Tensors that do arithmetic together: every operation is one ``torch._foreach_*`` call.

    ``a + b``, ``0.9 * a``, ``a * a``, ``-a``, ``a / b``, ``a.sqrt()``, ``a.maximum(b)``, ``a.sign()`` act
    element-wise on each tensor of the list (``b`` another TensorList of the same length, a number, or a 0-d tensor),
    which is all a rule of :mod:`course_lib.rules` needs. So the rule written for one tensor runs
    unchanged on every tensor of a param group at once:

    >>> params = TensorList([torch.ones(2), torch.ones(3)])
    >>> (params - 0.5 * params).tensors
    [tensor([0.5000, 0.5000]), tensor([0.5000, 0.5000, 0.5000])]
    """

    __slots__ = ("tensors",)
    __array_ufunc__ = None  # NumPy scalars on the left hand the operation to us instead of iterating

    def __init__(self, tensors):
        self.tensors = list(tensors)

    def __len__(self):
        return len(self.tensors)

    def __iter__(self):
        return iter(self.tensors)

    def __getitem__(self, index):
        return self.tensors[index]

    def __repr__(self):
        return f"TensorList({len(self.tensors)} tensors)"

    @staticmethod
    def _operand(other):
        if isinstance(other, TensorList):
            return other.tensors
        if isinstance(other, (int, float, torch.Tensor)) and not isinstance(other, bool):
            return other
        return NotImplemented

    def _binary(self, op, other):
        operand = self._operand(other)
        if operand is NotImplemented:
            return NotImplemented
        return TensorList(op(self.tensors, operand))

    def __add__(self, other):
        return self._binary(torch._foreach_add, other)

    def __sub__(self, other):
        return self._binary(torch._foreach_sub, other)

    def __mul__(self, other):
        return self._binary(torch._foreach_mul, other)

    def __truediv__(self, other):
        return self._binary(torch._foreach_div, other)

    def __pow__(self, other):
        return self._binary(torch._foreach_pow, other)

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):  # other − self
        return (-self)._binary(torch._foreach_add, other)

    def __rtruediv__(self, other):  # other / self
        return TensorList(torch._foreach_reciprocal(self.tensors))._binary(torch._foreach_mul, other)

    def __neg__(self):
        return TensorList(torch._foreach_neg(self.tensors))

    def __abs__(self):
        return TensorList(torch._foreach_abs(self.tensors))

    def sqrt(self):
        return TensorList(torch._foreach_sqrt(self.tensors))

    def maximum(self, other):
        return self._binary(torch._foreach_maximum, other)

    def sign(self):
        return TensorList(torch._foreach_sign(self.tensors))

    # torch's fused forms, which the rules use for tensors (see course_lib.rules._add and its neighbours)
    def add(self, other, *, alpha=1):
        return TensorList(torch._foreach_add(self.tensors, self._operand(other), alpha=alpha))

    def lerp(self, end, weight):
        return TensorList(torch._foreach_lerp(self.tensors, end.tensors, weight))

    def addcmul(self, a, b, *, value=1):
        return TensorList(torch._foreach_addcmul(self.tensors, a.tensors, b.tensors, value=value))

    def addcdiv(self, a, b, *, value=1):
        return TensorList(torch._foreach_addcdiv(self.tensors, a.tensors, b.tensors, value=value))

    # ... and their in-place forms, for a list handed over with course_lib.rules.donating (the multi-tensor path)
    def mul_(self, other):
        torch._foreach_mul_(self.tensors, self._operand(other))
        return self

    def div_(self, other):
        torch._foreach_div_(self.tensors, self._operand(other))
        return self

    def add_(self, other, *, alpha=1):
        operand = self._operand(other)
        if isinstance(operand, (int, float)):  # a number: torch's form has no alpha
            torch._foreach_add_(self.tensors, operand * alpha if alpha != 1 else operand)
        else:
            torch._foreach_add_(self.tensors, operand, alpha=alpha)
        return self

    def lerp_(self, end, weight):
        torch._foreach_lerp_(self.tensors, end.tensors, weight)
        return self

    def addcmul_(self, a, b, *, value=1):
        torch._foreach_addcmul_(self.tensors, a.tensors, b.tensors, value=value)
        return self

    def addcdiv_(self, a, b, *, value=1):
        torch._foreach_addcdiv_(self.tensors, a.tensors, b.tensors, value=value)
        return self


# --------------------------------------------------------------------------------------
# Path 3: the rule traced once and compiled into one kernel over flat buffers
# --------------------------------------------------------------------------------------
# Every number among the hyperparameters is fed to the compiled kernel as a one-element tensor, so an lr
# scheduler changes lr, momentum, betas, weight decay or eps at every step without recompiling. Only whether a
# term exists is fixed when the rule is traced: a hyperparameter that is zero (no weight decay, no momentum) is
# a constant of the trace, and the rules' ``if _nonzero(weight_decay): ...`` drop its term. A nonzero one is a
# tensor whose example value, when the rule is traced, is nonzero too, so the same ``if`` keeps its term.
def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def split_hyperparams(hyperparams):
    """``(static, layout, values)``: what is fixed at trace time, and the numbers fed in as tensors.

    ``static`` holds the switches (booleans, ...) and the hyperparameters that are zero; ``layout`` lists
    ``(name, count)`` for the tensor-fed hyperparameters (``count`` is ``None`` for a number and the length
    for a tuple such as ``betas``); ``values`` are their numbers, flattened. A tuple with a zero in it is static.
    """
    static, layout, values = {}, [], []
    for name, value in hyperparams.items():
        if _is_number(value) and value != 0:
            layout.append((name, None))
            values.append(float(value))
        elif isinstance(value, tuple) and value and all(_is_number(v) and v != 0 for v in value):
            layout.append((name, len(value)))
            values.extend(float(v) for v in value)
        else:
            static[name] = value
    return static, tuple(layout), values


def _unflatten(layout, tensors):
    """The keyword arguments of a rule from the flat list of hyperparameter tensors."""
    hyper, position = {}, 0
    for name, count in layout:
        if count is None:
            hyper[name] = tensors[position]
            position += 1
        else:
            hyper[name] = tuple(tensors[position:position + count])
            position += count
    return hyper


def _hyper_dtype(dtype):
    """Hyperparameters and step counters in float64 for float64 buffers, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass(eq=False)
class CompiledRule:
    """A rule of :mod:`course_lib.rules` traced into tensor operations and compiled by ``torch.compile``.

    Call it as ``compiled(param, grad, *state, *hyperparameters)`` with 1-D buffers for the parameters,
    the gradient and each state entry (in the order of ``state_names``; ``step`` is a one-element tensor
    holding the number of steps taken so far) and one-element tensors for the hyperparameters (in the order
    of ``hyper_layout``): it updates ``param`` and the state in place, in one pass over memory. (One-element
    rather than 0-d tensors: torch.compile 2.13 silently drops in-place writes to 0-d float64 CPU inputs.)

    ``graph`` is the traced rule: ``print(compiled.graph.code)`` shows the tensor operations that remain
    once the rule's Python ``if`` s were decided by ``static``; ``source`` is the code ``torch.compile``
    generated from it, and :meth:`kernel_count` counts the kernels in it. On the CPU the operations on
    single numbers (β₁ᵗ, the learning rate over the bias correction, ...) form a ``prologue``, compiled into
    a small kernel of its own (``prologue_source``) that runs before the element-wise kernel, which then only
    reads its results. There, both are called through the code inductor generated (``direct``), without
    torch.compile's per-call guards and wrappers (about 25 µs a call, as long as a whole step of a small network).

    ``fallback_reason`` is ``None`` for a compiled kernel; where ``torch.compile`` could not build one it says
    why, ``kernel`` is the traced graph run eagerly (same numbers, one operation at a time) and ``source`` is
    empty.
    """

    name: str
    static: dict
    state_names: tuple
    hyper_layout: tuple
    dtype: torch.dtype
    device: torch.device
    graph: torch.fx.GraphModule = field(repr=False)
    kernel: Callable = field(repr=False)
    source: str = field(default="", repr=False)
    compile_seconds: float = 0.0
    prologue: Callable | None = field(default=None, repr=False)
    scalar_positions: list = field(default_factory=list, repr=False)
    vector_positions: list = field(default_factory=list, repr=False)
    fallback_reason: str | None = None
    #: The code generated for the prologue (``source`` is the kernel's), on the CPU.
    prologue_source: str = field(default="", repr=False)
    #: The generated code's own entry points, called without torch.compile's per-call machinery (see
    #: :func:`_direct_call`): ``(prologue call, its inputs, kernel call, its inputs)``, or None.
    direct: tuple | None = field(default=None, repr=False)

    def __call__(self, *tensors):
        if self.direct is not None:
            prologue, prologue_inputs, kernel, kernel_inputs = self.direct
            pool = tensors + tuple(prologue([tensors[i] for i in prologue_inputs])) + (tensors[0].numel(),)
            kernel([pool[i] for i in kernel_inputs])
            return None
        if self.prologue is None:
            return self.kernel(*tensors)
        values = self.prologue(*[tensors[i] for i in self.scalar_positions])
        return self.kernel(*[tensors[i] for i in self.vector_positions], *values)

    def kernel_count(self) -> int:
        """The kernels in the generated code: C++ loops for the CPU, triton kernels for a GPU."""
        return self.source.count("async_compile.cpp_pybinding(") + self.source.count("async_compile.triton(")

    def operation_count(self) -> int:
        """The tensor operations of the traced rule, in-place writes included."""
        return sum(node.op == "call_function" for node in self.graph.graph.nodes)


class _KernelCache(OrderedDict):
    """The compiled kernels by what they depend on: at most :data:`KERNEL_CACHE_SIZE`, least recently used out.

    Every kernel stored is one compilation (:func:`compilations` counts them).
    """

    stored = 0

    def __getitem__(self, key):
        self.move_to_end(key)
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        _KernelCache.stored += 1
        while len(self) > KERNEL_CACHE_SIZE:
            self.popitem(last=False)


def compilations() -> int:
    """How many kernels :func:`compile_rule` has compiled in this process (one per distinct structure of a rule).

    An lr scheduler, however it changes the hyperparameters, adds none as long as no term appears or vanishes.
    """
    return _KernelCache.stored


_COMPILED: dict = _KernelCache()
_COMPILE_ERRORS: dict = {}
_FALLBACKS: dict = {}
_UNAVAILABLE: dict = {}
_WARNED: set = set()

class CacheInfo(NamedTuple):
    """What :func:`compile_rule` remembers (:func:`cache_info`), named as ``functools.lru_cache`` names its own."""

    kernels: int  #: compiled kernels kept now (at most ``maxsize``)
    maxsize: int  #: :data:`KERNEL_CACHE_SIZE`
    compilations: int  #: kernels compiled in this process, evicted ones included (:func:`compilations`)
    fallbacks: int  #: eager fallbacks kept (one per rule structure and reason)
    failed: int  #: rule structures whose compilation failed (not tried again)
    probed: dict  #: device type → why torch.compile is unavailable there (``None``: available), as probed
    warned: int  #: fallback warnings given (each is given once)


def cache_info() -> CacheInfo:
    """How many kernels, fallbacks and failures :func:`compile_rule` keeps, and what it probed and warned."""
    return CacheInfo(len(_COMPILED), KERNEL_CACHE_SIZE, compilations(), len(_FALLBACKS), len(_COMPILE_ERRORS),
                     dict(_UNAVAILABLE), len(_WARNED))


def clear_caches() -> None:
    """Forget every kernel, fallback, failure, probe and warning, so that :func:`compile_rule` decides afresh (and
    warns again); :func:`compilations` keeps counting. The next flat step of each rule compiles it again."""
    for cache in (_COMPILED, _FALLBACKS, _COMPILE_ERRORS, _UNAVAILABLE, _WARNED):
        cache.clear()


#: Set this environment variable (to anything but "" or "0") to run without torch.compile, as on a machine without
#: a C++ compiler: :func:`compile_rule` then returns its eager fallback.
NO_COMPILE_VARIABLE = "COURSE_NO_COMPILE"


_DISABLED_REASON = "compilation switched off by compile_disabled()"
_DISABLED: list = []  # non-empty inside ``with compile_disabled():``


@contextlib.contextmanager
def compile_disabled():
    """Inside this block :func:`compile_rule` returns its eager fallback without a warning, so ``fused=True``
    builds the flat path eagerly (for timing it against the compiled kernel); outside, nothing changes."""
    _DISABLED.append(True)
    try:
        yield
    finally:
        _DISABLED.pop()


def compile_unavailable_reason(device="cpu") -> str | None:
    """Why ``torch.compile`` cannot build kernels for ``device`` here, or ``None`` when it can.

    Checked once per device type (is there a C++ compiler, triton, a supported Python?), except the switches
    ``COURSE_NO_COMPILE`` and :func:`compile_disabled`, read at every call. A compilation can still fail where
    this says ``None`` (torch 2.13 with ``ATEN_CPU_CAPABILITY=default`` generates C++ that does not compile):
    :func:`compile_rule` falls back then too, and its ``fallback_reason`` says why.
    """
    if _DISABLED:
        return _DISABLED_REASON
    if os.environ.get(NO_COMPILE_VARIABLE, "") not in ("", "0"):
        return f"{NO_COMPILE_VARIABLE} is set: compilation switched off on purpose"
    device_type = torch.device(device).type
    if device_type not in _UNAVAILABLE:
        _UNAVAILABLE[device_type] = _probe_compile(device_type)
    return _UNAVAILABLE[device_type]


def _probe_compile(device_type: str) -> str | None:
    if not hasattr(torch, "compile"):
        return "this version of torch has no torch.compile"
    try:
        from torch._dynamo import is_dynamo_supported

        if not is_dynamo_supported():
            return "torch.compile does not support this Python version or platform"
        if device_type == "cpu":
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
    except Exception as error:  # noqa: BLE001 - any failure means "not available here"
        if device_type == "cpu":
            return f"no working C++ compiler was found (torch.compile needs one for CPU kernels): {error!r}"
        return f"torch.compile cannot start: {error!r}"
    if device_type == "cuda" and importlib.util.find_spec("triton") is None:
        return "triton is not installed (torch.compile needs it for GPU kernels)"
    return None


def compile_rule(rule: rules.Rule, dtype=torch.float32, device="cpu") -> CompiledRule:
    """The rule compiled into one kernel over flat buffers of ``dtype`` on ``device`` (cached).

    The rule is traced once with ``make_fx``: its Python control flow (``if amsgrad``, ``if
    _nonzero(weight_decay)``, ...) runs for real and disappears, leaving only tensor operations, whose
    inputs are the buffers and the numeric hyperparameters as one-element tensors. ``torch.compile`` (inductor)
    fuses that graph into one kernel, compiled for every buffer length at once (``dynamic=True``). The
    cache key holds what the graph depends on: the rule, its switches (booleans, and which hyperparameters
    are zero), dtype and device; the values of the hyperparameters may change freely.

    Where compilation is unavailable or fails (:func:`compile_unavailable_reason`, ``COURSE_NO_COMPILE=1``), the
    result is the traced graph run eagerly, with ``fallback_reason`` set and a :class:`CompileFallbackWarning`
    (once per reason); it never raises for want of a compiler.
    """
    device = torch.device(device)
    static, layout, _ = split_hyperparams(rule.hyperparams)
    state_names = tuple(rule.init(torch.zeros(2, dtype=dtype, device=device)))
    key = (rule.update_fn, tuple(static.items()), layout, state_names, dtype, str(device))
    reason = compile_unavailable_reason(device)
    if reason is None and key in _COMPILED:
        return _COMPILED[key]
    if reason is None and key not in _COMPILE_ERRORS:
        try:
            _COMPILED[key] = _trace_and_compile(rule, static, layout, state_names, dtype, device)
            return _COMPILED[key]
        except Exception as error:  # noqa: BLE001 - fall back, and say so
            detail = " ".join(line.strip() for line in str(error).splitlines()[:2] if line.strip())
            _COMPILE_ERRORS[key] = f"compiling {rule.name} failed: {type(error).__name__}: {detail}"
    reason = reason or _COMPILE_ERRORS[key]
    if (key, reason) not in _FALLBACKS:
        graph, _, _ = _trace(rule, static, layout, state_names, dtype, device)
        _FALLBACKS[(key, reason)] = CompiledRule(rule.name, dict(static), state_names, layout, dtype, device,
                                                 graph, graph, fallback_reason=reason)
    message = (f"course_lib.optim: torch.compile is unavailable for {device.type} ({reason}); the flat path runs "
               "the rule eagerly (same rule and results, one kernel per operation instead of one fused kernel)")
    if reason != _DISABLED_REASON and message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, CompileFallbackWarning, stacklevel=2)
    return _FALLBACKS[(key, reason)]


def _trace(rule, static, layout, state_names, dtype, device):
    """``(graph, examples, scalar_positions)``: the rule traced by ``make_fx`` into tensor operations that update
    the flat buffers in place, the example inputs it was traced on, and which of them are one-number tensors."""
    from torch.fx.experimental.proxy_tensor import make_fx

    update_fn, n_state = rule.update_fn, len(state_names)

    def flat_step(param, grad, *tensors):
        state = dict(zip(state_names, tensors[:n_state]))
        new_param, new_state = update_fn(param, grad, state, **static, **_unflatten(layout, tensors[n_state:]))
        param.copy_(new_param)  # write the results back in place: the kernel's only stores
        for name in state_names:
            state[name].copy_(new_state[name])

    hyper_dtype = _hyper_dtype(dtype)
    n_hyper = sum(1 if count is None else count for _, count in layout)
    examples = [torch.ones(4, dtype=dtype, device=device), torch.ones(4, dtype=dtype, device=device)]
    examples += [torch.zeros(1, dtype=hyper_dtype, device=device) if name == "step"
                 else torch.ones(4, dtype=dtype, device=device) for name in state_names]
    examples += [torch.full((1,), 0.5, dtype=hyper_dtype, device=device) for _ in range(n_hyper)]
    scalar_positions = [i for i, example in enumerate(examples) if example.numel() == 1]
    graph = make_fx(flat_step)(*[example.clone() for example in examples])
    return graph, examples, scalar_positions


def _trace_and_compile(rule, static, layout, state_names, dtype, device) -> CompiledRule:
    import time

    import torch._inductor.config
    from torch._inductor.graph import GraphLowering

    start = time.perf_counter()
    graph, examples, scalar_positions = _trace(rule, static, layout, state_names, dtype, device)
    prologue, main, vector_positions = None, graph, list(range(len(examples)))
    if device.type == "cpu":
        # A C++ loop recomputes every expression for each chunk of 16 numbers, β₁ᵗ and β₂ᵗ included (it cannot
        # prove them loop-invariant), so on the CPU the one-number operations run first, in a kernel of their own,
        # and the main kernel only reads their results. (GPU kernels compute them once per block of threads anyway.)
        prologue, main, vector_positions = _split_scalar_prologue(graph, scalar_positions)
    kernel = torch.compile(main, dynamic=True, fullgraph=True)
    if prologue is not None:
        prologue = torch.compile(prologue, dynamic=False, fullgraph=True)
    compiled = CompiledRule(rule.name, dict(static), state_names, layout, dtype, device, graph, kernel,
                            prologue=prologue, scalar_positions=scalar_positions, vector_positions=vector_positions)
    sources: list[str] = []
    # dynamic_threads: the CPU loop runs on torch.get_num_threads() threads, decided when it runs (without it,
    # a kernel compiled for every length is one serial loop). no_grad: optimizer steps run without autograd, and
    # torch.compile guards on grad mode, so a kernel compiled with it on would be compiled again at the first step.
    with mock.patch.object(GraphLowering, "save_output_code", sources.append), \
            torch._inductor.config.patch({"cpp.dynamic_threads": True}), torch.no_grad():
        compiled(*examples)  # compile now, on a tiny example; the kernel serves every length
    if prologue is not None and len(sources) == 2:  # the prologue is compiled first, at its first call
        compiled.prologue_source, sources = sources[0], sources[1:]
    compiled.source = "\n".join(sources)
    if prologue is not None:
        compiled.direct = _direct_call(compiled, examples)
    compiled.compile_seconds = time.perf_counter() - start
    return compiled


def _direct_call(compiled: CompiledRule, examples) -> tuple | None:
    """The compiled prologue's and kernel's own entry points (the ``call`` functions of the code inductor generated)
    and where each of their inputs comes from, found by watching one call; None where that cannot be done safely.

    A call through ``torch.compile`` evaluates dynamo's guards and AOTAutograd's wrappers around the generated
    code: about 25 µs per call on a CPU, as long as a whole step of torch's fused Adam for a small network. The
    generated ``call`` checks the sizes and strides of its inputs itself, and the flat path always calls with
    buffers of the kind the kernel was compiled for (the cache key holds the rule's structure, dtype and device),
    so the guards decide nothing there. The watched call runs on inputs of another length (13); any surprise (an
    input that is not one of ours, a number that is not the length) keeps ``torch.compile``'s calls, and so does a
    direct call whose results differ, by a single bit, from those of the calls through ``torch.compile``.
    """
    try:
        from torch._inductor.output_code import CompiledFxGraph
    except ImportError:  # an older or newer torch
        return None
    length = 13

    def fresh():
        generator = torch.Generator(device=examples[0].device).manual_seed(0)
        return [torch.rand(length if example.numel() > 1 else 1, dtype=example.dtype, device=example.device,
                           generator=generator) * 0.5 + 0.25 for example in examples]

    seen = []
    original = CompiledFxGraph.__call__

    def watch(self, inputs):
        given = list(inputs)
        result = original(self, inputs)
        seen.append((self.current_callable, given, list(result)))
        return result

    watched = fresh()
    try:
        with torch.no_grad(), mock.patch.object(CompiledFxGraph, "__call__", watch):
            compiled(*watched)
        if len(seen) != 2:
            return None
        (prologue_call, prologue_given, values), (kernel_call, kernel_given, _) = seen
        places = []
        for given, pools in ((prologue_given, (watched,)), (kernel_given, (watched, values))):
            where = []
            for value in given:
                if isinstance(value, torch.Tensor):
                    found = [offset + i for offset, pool in zip((0, len(watched)), pools)
                             for i, tensor in enumerate(pool) if tensor is value]
                    if not found:
                        return None
                    where.append(found[0])
                elif value == length and len(pools) == 2:
                    where.append(len(watched) + len(values))
                else:
                    return None
            places.append(where)
        direct = (prologue_call, places[0], kernel_call, places[1])
        by_compile, by_direct = fresh(), fresh()
        with torch.no_grad():
            compiled(*by_compile)
            saved, compiled.direct = compiled.direct, direct
            try:
                compiled(*by_direct)
            finally:
                compiled.direct = saved
        if not all(torch.equal(a, b) for a, b in zip(by_compile, by_direct)):
            return None
    except Exception:  # noqa: BLE001 - whatever went wrong, torch.compile's calls still work
        return None
    return direct


def _split_scalar_prologue(graph: torch.fx.GraphModule, scalar_positions):
    """Split a traced rule into its one-number operations (a prologue) and the element-wise rest.

    Returns ``(prologue, main, vector_positions)``: ``prologue(*scalar inputs)`` returns the one-number values
    that the element-wise operations use and that it computes, and ``main(*inputs at vector_positions, *those
    values)`` does the rest (the buffers, and the hyperparameters it uses as they are, are its own inputs: no
    result of the prologue is one of its inputs, so that its generated code can be called directly).
    """
    graph = copy.deepcopy(graph)  # the caller keeps the faithful trace
    placeholders = [node for node in graph.graph.nodes if node.op == "placeholder"]
    scalar = {placeholders[i] for i in scalar_positions}
    aten = torch.ops.aten
    for node in list(graph.graph.nodes):
        if node.op != "call_function":
            continue
        if node.all_input_nodes and all(n in scalar for n in node.all_input_nodes):
            scalar.add(node)
        elif node.target is aten.div.Tensor and node.args[1] in scalar:
            # x / c → x · (1/c): one reciprocal in the prologue instead of a division per number (≤ 1 ulp apart)
            with graph.graph.inserting_before(node):
                reciprocal = graph.graph.call_function(aten.reciprocal.default, (node.args[1],))
            scalar.add(reciprocal)
            node.target, node.args = aten.mul.Tensor, (node.args[0], reciprocal)
    element_wise = [node for node in graph.graph.nodes if node.op == "call_function" and node not in scalar]
    used = dict.fromkeys(n for node in element_wise for n in node.all_input_nodes if n in scalar)
    passed = {node for node in used if node.op == "placeholder"}  # hyperparameters the kernel reads as they are
    handed_over = [node for node in used if node not in passed]  # what the prologue computes for the kernel

    first, env = torch.fx.Graph(), {}
    for node in placeholders:
        if node in scalar:
            env[node] = first.placeholder(node.name)
    for node in graph.graph.nodes:
        if node.op == "call_function" and node in scalar:
            env[node] = first.node_copy(node, env.__getitem__)
    first.output(tuple(env[node] for node in handed_over))

    second, env = torch.fx.Graph(), {}
    for node in placeholders:
        if node not in scalar or node in passed:
            env[node] = second.placeholder(node.name)
    for node in handed_over:
        env[node] = second.placeholder(f"{node.name}_value")
    for node in element_wise:
        env[node] = second.node_copy(node, env.__getitem__)
    second.output(None)
    vector_positions = [i for i, node in enumerate(placeholders) if node not in scalar or node in passed]
    return torch.fx.GraphModule(graph, first), torch.fx.GraphModule(graph, second), vector_positions


@contextlib.contextmanager
def compile_min_elements(elements):
    """Temporarily change :data:`COMPILE_MIN_ELEMENTS` (``math.inf``: the flat path, ``fused=True``, runs eagerly)."""
    global COMPILE_MIN_ELEMENTS
    saved, COMPILE_MIN_ELEMENTS = COMPILE_MIN_ELEMENTS, elements
    try:
        yield
    finally:
        COMPILE_MIN_ELEMENTS = saved


# --------------------------------------------------------------------------------------
# The two paths as functions of tensors (course_lib.optim's classes call them and own the state)
# --------------------------------------------------------------------------------------
def multi_tensor_update(rule: rules.Rule, params: list, grads: list, state: dict, *, step: int | None = None) -> dict:
    """Path 2: one step of ``rule`` on lists of tensors, as torch's ``_multi_tensor_adam`` takes them.

    ``params`` and ``grads`` are lists of tensors (one device and dtype); ``state`` maps each state entry to a
    list of tensors (one per parameter) or to ``None`` (an entry not made yet, SGD's first momentum buffer);
    ``state["step"]``, where the rule counts steps, is the list of the parameters' 0-d step counters, which all
    hold ``step`` (read from the first when not given) and go up by one in place, as torch's do. θ and the state
    tensors are handed over to the rule (:class:`course_lib.rules.donating`), which writes them in place: the
    parameters hold θ_t after the call. Returns the new state: for each entry the list given when the rule wrote
    it in place, else the new tensors. Every arithmetic operation is one ``torch._foreach_*`` call.
    """
    steps = state.get("step")
    if steps is not None and step is None:
        step = int(steps[0].item())
    params_list, grads_list = TensorList(params), TensorList(grads)
    lists = {name: TensorList(value) for name, value in state.items() if name != "step" and isinstance(value, list)}
    rule_state = {name: step if name == "step" else lists.get(name, value) for name, value in state.items()}
    if rule.update_in_place_fn is not None:  # SGD's twin writes θ and the state dict itself
        new_params, new_state = params_list, dict(rule_state)
        rule.update_in_place_fn(params_list, grads_list, new_state, **rule.hyperparams)
    else:
        with rules.donating([params_list, *lists.values()]):
            new_params, new_state = rule.update(params_list, grads_list, rule_state)
    if new_params is not params_list:
        torch._foreach_copy_(params, new_params.tensors)
    if steps is not None:  # in place, as torch.optim does: one operation for all the counters
        torch._foreach_add_(steps, float(new_state["step"] - step))
    return {name: state[name] if name == "step" or (name in lists and value is lists[name])
            else value.tensors if isinstance(value, TensorList) else value for name, value in new_state.items()}


def flat_update(rule: rules.Rule, param: torch.Tensor, grad: torch.Tensor, state: dict, chunk: int | None = None):
    """Path 3, eagerly: one step of ``rule`` over flat buffers, in slices of ``chunk`` numbers (all at once: None).

    ``param`` and ``grad`` are 1-D buffers, ``state`` maps each entry to a 1-D buffer, ``None`` (not made yet)
    or, for ``step``, the steps taken so far. ``param`` and the state buffers are written in place; returns the
    new state: the buffers given, a new buffer for an entry that was ``None``, and the new step count.
    """
    numel = param.numel()
    chunk = numel if chunk is None else chunk
    new_state = dict(state)
    for start in range(0, numel, max(chunk, 1)):
        part = slice(start, start + chunk)
        rule_state = {name: value[part] if isinstance(value, torch.Tensor) else value for name, value in state.items()}
        new_param, result = rule.update(param[part], grad[part], rule_state)
        param[part].copy_(new_param)
        for name, value in result.items():
            if name == "step" or value is None:
                new_state[name] = value if name == "step" else new_state.get(name)
                continue
            if new_state.get(name) is None:  # an entry that starts as None (SGD's momentum buffer)
                new_state[name] = torch.empty_like(param)
            new_state[name][part].copy_(value)
    return new_state


class FlatBuffers:
    """Parameters of one dtype and device laid end to end, with their gradients and the rule's state.

    ``param.data`` and ``param.grad`` of every parameter become views of ``param`` and ``grad`` (1-D);
    ``state`` maps each state entry (``exp_avg``, ...) to one flat buffer (an entry that starts as ``None``,
    SGD's momentum buffer, gets its buffer when first written); ``steps`` holds one float32 step counter per
    parameter, as torch's fused optimizers keep them. This object holds tensors only: which tensors are whose
    state is the optimizer's business (:meth:`entries` gives parameter ``i``'s views, :meth:`load` copies a
    parameter's state in). :meth:`update` runs the rule once over the whole buffer, compiled where it can.
    """

    def __init__(self, params, rule: rules.Rule):
        self.params = list(params)
        self.index = {id(param): i for i, param in enumerate(self.params)}
        self.shapes = [param.shape for param in self.params]
        self.bounds = []
        start = 0
        for param in self.params:
            self.bounds.append((start, start + param.numel()))
            start += param.numel()
        self.numel = start
        self.dtype, self.device = self.params[0].dtype, self.params[0].device

        self.param = torch.cat([param.detach().reshape(-1) for param in self.params])
        for param, view in zip(self.params, self.views(self.param)):
            param.data = view
        self.param_pointers = [param.data_ptr() for param in self.params]
        self.grad = torch.zeros_like(self.param)
        self.grad_views = self.views(self.grad)
        self._gather([i for i, param in enumerate(self.params) if param.grad is not None])

        initial = rule.init(self.param)  # the rule's own initial state, for the whole buffer at once
        self.has_step = "step" in initial
        self.state_names = tuple(name for name in initial if name != "step")
        self.state = {name: value for name, value in initial.items()
                      if name != "step" and isinstance(value, torch.Tensor)}
        self.state_views = {name: self.views(value) for name, value in self.state.items()}
        self.steps = torch.zeros(len(self.params), dtype=torch.float32)  # torch's fused steps: float32 always
        self._kernel = _KernelInputs(self.dtype, self.device)

    # ---- layout --------------------------------------------------------------------------------------
    def views(self, flat) -> list:
        """Each parameter's part of a flat buffer, in the parameter's shape."""
        return [flat[start:stop].view(shape) for (start, stop), shape in zip(self.bounds, self.shapes)]

    def view(self, name, i):
        """Parameter ``i``'s view of state entry ``name`` (allocating the flat buffer, zeroed, on first use)."""
        if name not in self.state:
            self.state[name] = torch.zeros_like(self.param)
            self.state_views[name] = self.views(self.state[name])
        return self.state_views[name][i]

    def entries(self, i) -> dict:
        """Parameter ``i``'s state as torch.optim keeps it: its ``step`` (a 0-d view of ``steps``) and its views
        (``None`` for an entry without a buffer yet)."""
        entries = {"step": self.steps[i]} if self.has_step else {}
        for name in self.state_names:
            entries[name] = self.state_views[name][i] if name in self.state else None
        return entries

    def load(self, i, entries) -> dict:
        """Copy parameter ``i``'s state (saved earlier, or loaded from a state dict) into the buffers; returns the
        views that now hold it (with ``step``), to replace those entries."""
        loaded = {}
        if self.has_step and "step" in entries:
            self.steps[i] = float(entries["step"])
            loaded["step"] = self.steps[i]
        for name in self.state_names:
            value = entries.get(name)
            if isinstance(value, torch.Tensor):
                view = self.view(name, i)
                view.copy_(value)
                loaded[name] = view
        return loaded

    def store(self, indices, name, values) -> list:
        """Write new values of state entry ``name`` for parameters ``indices`` into their views; returns the views."""
        views = [self.view(name, i) for i in indices]
        pairs = [(view, value) for view, value in zip(views, values) if value is not view]
        if pairs:
            torch._foreach_copy_([view for view, _ in pairs], [value for _, value in pairs])
        return views

    def intact(self) -> bool:
        """False when a parameter was re-bound (``param.data = ...``, ``model.to(...)``) since the build."""
        return [param.data_ptr() for param in self.params] == self.param_pointers

    # ---- gradients ----------------------------------------------------------------------------------
    def take_gradients(self, owner: str):
        """Indices of the parameters that have a gradient, or ``None`` when all have one in the buffer.

        Gradients that autograd allocated (after ``zero_grad()`` set them to ``None``) are copied into the
        flat buffer and ``param.grad`` becomes the view again; ``None`` gradients are left alone (skipped).
        """
        if all(param.grad is view for param, view in zip(self.params, self.grad_views)):
            return None
        active, fresh = [], []
        for i, (param, view) in enumerate(zip(self.params, self.grad_views)):
            grad = param.grad
            if grad is None:
                continue
            if grad is not view:
                if grad.is_sparse:
                    raise RuntimeError(f"{owner} does not support sparse gradients")
                fresh.append(i)
            active.append(i)
        self._gather(fresh)
        return None if len(active) == len(self.params) else active

    def _gather(self, indices):
        if not indices:
            return
        if len(indices) == len(self.params):
            torch.cat([param.grad.reshape(-1) for param in self.params], out=self.grad)
        else:
            torch._foreach_copy_([self.grad_views[i] for i in indices], [self.params[i].grad for i in indices])
        for i in indices:
            self.params[i].grad = self.grad_views[i]

    def zero_grad(self) -> set:
        """Zero the gradient buffer (one operation); returns the ids of the parameters whose ``.grad`` is its view."""
        self.grad.zero_()
        return {id(param) for param, view in zip(self.params, self.grad_views) if param.grad is view}

    # ---- the step -----------------------------------------------------------------------------------
    def update(self, rule: rules.Rule, step: int, none_names: tuple, split) -> str:
        """One step of ``rule`` over the whole buffer, in place: every parameter has a gradient, has taken ``step``
        steps and lacks the entries ``none_names``. Compiled where a kernel is wanted and can be built, else eager
        in cache-sized slices (:func:`flat_update`). ``split`` is :func:`split_hyperparams` of the rule. Returns
        the path it took: ``"flat, compiled"`` or ``"flat, eager"``."""
        compiled = None if none_names else self._compiled(rule, split)
        if compiled is not None:
            self._kernel.run(compiled, self.param, self.grad, self.state, step, split[2])
            path = "flat, compiled"
        else:
            state = {"step": step} if self.has_step else {}
            state.update({name: None if name in none_names else self.state[name] for name in self.state_names})
            chunk = EAGER_CHUNK_ELEMENTS if self.device.type == "cpu" else None
            new_state = flat_update(rule, self.param, self.grad, state, chunk)
            for name in self.state_names:
                if new_state.get(name) is not None and name not in self.state:
                    self.state[name] = new_state[name]
                    self.state_views[name] = self.views(new_state[name])
            path = "flat, eager"
        if self.has_step:
            self.steps.add_(1)
        return path

    def _compiled(self, rule, split) -> CompiledRule | None:
        """The compiled kernel for this buffer, or None to run the rule eagerly."""
        if self.numel < COMPILE_MIN_ELEMENTS:
            return None
        static, layout, _ = split
        key = (rule.update_fn, tuple(static.items()), layout)
        if self._kernel.key != key:
            compiled = compile_rule(rule, self.dtype, self.device)  # warns once where it has to fall back
            # the chunked eager flat path beats the eager graph, so a fallback runs as no kernel at all
            self._kernel.key, self._kernel.compiled = key, None if compiled.fallback_reason else compiled
        return self._kernel.compiled


class _KernelInputs:
    """The one-element tensors a compiled kernel reads besides the buffers: the step count and the numeric
    hyperparameters, made once and refilled only when a number changes (an lr scheduler's)."""

    def __init__(self, dtype, device):
        self.dtype, self.device = _hyper_dtype(dtype), device
        self.step = torch.zeros(1, dtype=self.dtype, device=device)
        self.step_value = 0  # what ``step`` holds (the kernel adds one to it)
        self.hyper, self.values = [], []
        self.key, self.compiled = None, None

    def run(self, compiled: CompiledRule, param, grad, state, step, values):
        if len(values) != len(self.hyper):
            self.hyper = [torch.full((1,), v, dtype=self.dtype, device=self.device) for v in values]
            self.values = list(values)
        for i, value in enumerate(values):  # an lr scheduler changes a number here, not the kernel
            if value != self.values[i]:
                self.hyper[i].fill_(value)
                self.values[i] = value
        if self.step_value != step:
            self.step.fill_(step)
        compiled(param, grad, *[self.step if name == "step" else state[name] for name in compiled.state_names],
                 *self.hyper)
        self.step_value = step + 1
