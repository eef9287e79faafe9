"""The conformance registry of course_lib.optim: one row per optimizer class, the way torch's ``optim_db``
(torch/testing/_internal/common_optimizers.py) drives torch's own optimizer tests.

A row (:class:`OptimInfo`) says what a class is proven equal to (its ``reference``, read from
:mod:`course_lib.methods`), on which option ``grid``, on which ``paths`` (``per-tensor``, ``multi-tensor``,
``flat``), to which ``tolerance``, and how to train it (its network, param groups, lr scheduler, steps). The tests of
tests/test_optim_conformance.py run every row: "equals the reference on every path it supports", "state dicts move
both ways", "same signature and defaults", "loads into an optimizer that has already stepped", "the path that ran is
the one asked for".

The classes and their references come from the method table (``OPTIM_DB`` has exactly one row per class that
``course_lib.methods`` names, ``test_every_class_of_the_method_table_has_a_row`` checks it); what is here is only how
to test them. A new optimizer with a reference is tested from its method-table row alone (lr = 0.01, a small dense
network, the paths it says it offers); an entry in ``ROWS`` below gives it its grid of options and its paths.

:func:`observed_path` tells which path a step really ran, from what can be seen from outside: a flat group's
parameters are views of one buffer (one storage), the multi-tensor path calls ``torch._foreach_*`` functions, the
per-tensor path neither. :func:`train_steps` is the training the optimizer tests share (minibatches through a closure,
an lr scheduler, the last step's path observed).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode

from course_lib import methods, optim, rules

PATHS = ("per-tensor", "multi-tensor", "flat")
#: The constructor keywords that ask for each path.
PATH_KEYWORDS = {"per-tensor": {"foreach": False}, "multi-tensor": {"foreach": True}, "flat": {"fused": True}}


# ---- networks (float64, input of 8 features, one output) -------------------------------------------------------------
class Dense(torch.nn.Module):
    """8 → ``hidden`` (tanh) → 1; without biases for Muon, which takes matrices only."""

    def __init__(self, seed=0, hidden=16, bias=True):
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = torch.nn.Linear(8, hidden, bias=bias)
        self.out = torch.nn.Linear(hidden, 1, bias=bias)
        self.double()

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


class Convolutional(torch.nn.Module):
    """A convolution (a 3-D weight, 3 × ``channels`` × 3), then two linear layers, biases: the preconditioners' net
    (SOAP and Shampoo read a kernel as a matrix or keep it as a tensor)."""

    def __init__(self, seed=0, channels=1):
        super().__init__()
        torch.manual_seed(seed)
        self.channels = channels
        self.conv = torch.nn.Conv1d(channels, 3, kernel_size=3)
        length = 8 // channels - 2
        self.hidden = torch.nn.Linear(3 * length, 4 if channels == 1 else 5)
        self.out = torch.nn.Linear(self.hidden.out_features, 1)
        self.double()

    def forward(self, x):
        x = torch.tanh(self.conv(x.reshape(len(x), self.channels, -1))).flatten(1)
        return self.out(torch.tanh(self.hidden(x)))


def data(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(64, 8, dtype=torch.float64, generator=generator),
            torch.randn(64, 1, dtype=torch.float64, generator=generator))


# ---- one row per class ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimInfo:
    """How to test one class of :mod:`course_lib.optim` against its reference.

    * ``name``: the class; ``reference``: the dotted path of the class it equals (from :mod:`course_lib.methods`);
      ``methods``: the method-table rows it implements;
    * ``grid``: constructor options, every option flipped somewhere (each run with two or three param groups whose
      lr differs, ``group_decay``: whose weight decay differs too);
    * ``paths``: the paths it offers; asking for another (``foreach=True`` of NAdam) runs per tensor;
    * ``tolerance``: the largest difference allowed from the reference in float64; ``steps`` trained;
    * ``network``: seed → a float64 module; ``scheduler``: optimizer → an lr scheduler, or ``None``;
    * ``extra_keywords``: constructor keywords the reference lacks (keyword-only here); ``same_order``: every
      parameter in the reference's order, not only the positional ones; ``skip_defaults``: ``defaults`` keys not
      compared;
    * ``reference_options``: path keywords → options for the reference (Schedule-Free has its own foreach);
    * ``state_visible``: the reference's state dict shows the state as tensors, so state dicts move between the two
      (ScalableShampoo keeps its factors in objects its state dict does not hold);
    * ``resumes_exactly``: a saved run resumes bit for bit (not NAdam: torch.optim's ``load_state_dict`` casts the
      float32 ``mu_product`` to the parameters' float64, and torch.optim.NAdam's own round trip differs by 1e-14);
    * ``train_mode``: call ``train()`` before stepping and ``eval()`` before saving (Schedule-Free's convention).
    """

    name: str
    reference: str
    methods: tuple[str, ...]
    grid: tuple[dict, ...]
    paths: tuple[str, ...] = ("per-tensor",)
    tolerance: float = 1e-10
    steps: int = 40
    network: Callable[[int], torch.nn.Module] = Dense
    scheduler: Callable | None = None
    group_decay: bool = False
    extra_keywords: frozenset = frozenset()
    same_order: bool = False
    skip_defaults: frozenset = frozenset()
    reference_options: Callable[[dict], dict] = field(default=lambda path_keywords: {})
    state_visible: bool = True
    resumes_exactly: bool = True
    train_mode: bool = False

    @property
    def optimizer_class(self) -> type:
        return getattr(optim, self.name)

    @property
    def reference_class(self) -> type:
        return methods.load(self.reference)

    def takes(self, keyword) -> bool:
        return keyword in inspect.signature(self.optimizer_class).parameters

    def path_keywords(self, path) -> dict:
        """The keywords that ask for ``path`` (none for the per-tensor path of a class without ``foreach``)."""
        keywords = PATH_KEYWORDS[path]
        return keywords if all(self.takes(k) for k in keywords) else {}

    def groups(self, model, kwargs):
        """One param group per layer: the constructor's options, then half the lr, then twice the lr (and, with
        ``group_decay``, 0.02 more weight decay and then none)."""
        lr, decay = kwargs.get("lr", 1e-3), kwargs.get("weight_decay", 0.0)
        layers = [module for module in model.children() if list(module.parameters())]
        groups = [{"params": list(layers[0].parameters())}]
        for i, (layer, factor) in enumerate(zip(layers[1:], (0.5, 2.0)), start=1):
            group = {"params": list(layer.parameters()), "lr": lr * factor}
            if self.group_decay:
                group["weight_decay"] = decay + 0.02 if i == 1 else 0.0
            groups.append(group)
        return groups

    def make(self, kwargs, path=None, *, reference=False, seed=0, model=None):
        """A fresh network (or ``model``), this class (or the reference) on its groups, and the scheduler."""
        model = self.network(seed) if model is None else model
        path_keywords = self.path_keywords(path) if path else {}
        if reference:
            options = {**kwargs, **self.reference_options(path_keywords)}
            optimizer = self.reference_class(self.groups(model, kwargs), **options)
        else:
            optimizer = self.optimizer_class(self.groups(model, kwargs), **kwargs, **path_keywords)
        return model, optimizer, (self.scheduler(optimizer) if self.scheduler else None)


def _lambda_schedule(optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + 0.05 * step))


def _step_schedule(optimizer):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.7)


_SHAMPOO = dict(lr=0.01, use_svd=True, block_size=8, start_preconditioning_step=3, preconditioning_compute_steps=1)
#: torch's switches that course_lib refuses (its NAdam and RAdam keep them out of ``defaults``).
_REFUSED = frozenset({"capturable", "differentiable"})
_TORCH = dict(paths=PATHS, steps=60, same_order=True)
#: NAdam, RAdam, Adafactor, Muon, Lion, Schedule-Free: a smaller network (Muon's without biases: matrices only, which
#: torch's bfloat16 Newton-Schulz products keep fast)
_BEYOND = dict(steps=60, network=lambda seed: Dense(seed, hidden=6), extra_keywords=frozenset({"fused"}))

#: How each class is tested (the class and its reference come from the method table).
ROWS = {
    "SGD": dict(_TORCH, grid=(
        dict(lr=0.05),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.5),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.5, weight_decay=0.1, nesterov=True, maximize=False),
        dict(lr=0.01, weight_decay=0.01, maximize=True),
    )),
    "Adagrad": dict(_TORCH, grid=(
        dict(lr=0.05),
        dict(lr=0.05, lr_decay=0.01),
        dict(lr=0.05, initial_accumulator_value=0.1, eps=1e-6),
        dict(lr=0.05, weight_decay=0.1, maximize=True),
    )),
    "RMSprop": dict(_TORCH, extra_keywords=frozenset({"fused"}), grid=(  # torch's RMSprop has no fused
        dict(lr=0.01),
        dict(lr=0.01, alpha=0.9, eps=1e-6),
        dict(lr=0.01, centered=True),
        dict(lr=0.005, momentum=0.9),
        dict(lr=0.005, momentum=0.9, centered=True, weight_decay=0.1),
        dict(lr=0.01, maximize=True),
    )),
    "Adam": dict(_TORCH, grid=(
        dict(lr=0.01),
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
        dict(lr=0.01, amsgrad=True),
        dict(lr=0.01, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True),
    )),
    "AdamW": dict(_TORCH, grid=(
        dict(lr=0.01),
        dict(lr=0.01, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, amsgrad=True),
        dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4, maximize=True),
    )),
    "NAdam": dict(_BEYOND, resumes_exactly=False, skip_defaults=_REFUSED, grid=(
        dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True))),
    "RAdam": dict(_BEYOND, skip_defaults=_REFUSED, grid=(
        dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True))),
    "Adafactor": dict(_BEYOND, grid=(
        dict(lr=0.01), dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0),
        dict(lr=0.01, weight_decay=0.1, maximize=True))),
    "Muon": dict(_BEYOND, network=lambda seed: Dense(seed, hidden=6, bias=False), grid=(
        dict(lr=0.02), dict(lr=0.02, momentum=0.9, nesterov=False, adjust_lr_fn="match_rms_adamw"))),
    "Lion": dict(_BEYOND, paths=PATHS, extra_keywords=frozenset({"foreach", "fused"}), grid=(
        dict(lr=1e-3), dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.1),
        dict(lr=1e-3, weight_decay=0.5, decoupled_weight_decay=True))),
    "AdamWScheduleFree": dict(
        _BEYOND, paths=("per-tensor", "multi-tensor"), train_mode=True,
        reference_options=lambda path_keywords: {"foreach": path_keywords.get("foreach", True)}, grid=(
            dict(lr=0.01), dict(lr=0.01, warmup_steps=10, weight_decay=0.05),
            dict(lr=0.02, betas=(0.8, 0.99), r=0.5, weight_lr_power=1.0, warmup_steps=5))),
    "AdEMAMix": dict(
        paths=("per-tensor", "multi-tensor"), network=Convolutional, scheduler=_lambda_schedule, group_decay=True,
        same_order=True, reference_options=lambda path_keywords: dict(path_keywords), grid=(
            dict(lr=0.01),
            dict(lr=0.01, betas=(0.8, 0.99, 0.999), alpha=2.0, t_alpha_beta3=20),
            dict(lr=0.01, weight_decay=0.1),  # the reference's default: an L2 penalty added to the gradient
            dict(lr=0.01, weight_decay=0.1, weight_decouple=True, t_alpha_beta3=25, maximize=True),
            dict(lr=0.02, weight_decay=0.05, weight_decouple=True, fixed_decay=True, eps=1e-6, alpha=0.0))),
    "SOAP": dict(network=Convolutional, scheduler=_lambda_schedule, group_decay=True, same_order=True, grid=(
        dict(lr=0.01),  # refreshes (QR) after steps 11, 21 and 31
        dict(lr=0.01, precondition_frequency=1, weight_decay=0.0),
        dict(lr=0.01, precondition_frequency=3, max_precondition_dim=5, precondition_1d=True),
        dict(lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.8, precondition_frequency=4, correct_bias=False),
        dict(lr=0.005, normalize_gradient=True, precondition_frequency=2, eps=1e-6, weight_decay=0.1, maximize=True),
        dict(lr=0.01, precondition_1d=True, max_precondition_dim=4, precondition_frequency=5, betas=(0.0, 0.5)))),
    # The full grid of Shampoo's layouts (blocks, merged axes, Schur-Newton roots) is in test_optim_shampoo.py.
    "Shampoo": dict(network=lambda seed: Convolutional(seed, channels=2), scheduler=_step_schedule,
                    state_visible=False, extra_keywords=frozenset({"fused"}), grid=(
        dict(_SHAMPOO),
        dict(_SHAMPOO, graft_type=rules.ShampooGraft.RMSPROP, moving_average_for_momentum=True),
        dict(_SHAMPOO, weight_decay=0.1, decoupled_weight_decay=True, shape_interpretation=False, block_size=512),
        dict(_SHAMPOO, betas=(0.0, 0.9), maximize=True, matrix_eps=0.0, diagonal_eps=1e-6))),
}


def _from_the_method_table() -> dict[str, OptimInfo]:
    rows = {}
    for method in methods.METHODS.values():
        if method.optimizer in rows:
            rows[method.optimizer]["methods"] += (method.name,)
            continue
        rows[method.optimizer] = {"methods": (method.name,), "reference": method.reference}
    # a class without an entry in ROWS is tested at lr = 0.01 on the paths it says it offers until it has one
    return {name: OptimInfo(name=name, **row, **ROWS.get(name, {"grid": (dict(lr=0.01),), "paths": _offered(name)}))
            for name, row in rows.items()}


def _offered(name) -> tuple[str, ...]:
    """The paths a class says it takes when asked for each (``path_for``); the tests then check that it does."""
    cls, offered = getattr(optim, name), ["per-tensor"]
    for path in PATHS[1:]:
        if not all(keyword in inspect.signature(cls).parameters for keyword in PATH_KEYWORDS[path]):
            continue
        try:
            optimizer = cls([torch.nn.Parameter(torch.zeros(2))], lr=0.01, **PATH_KEYWORDS[path])
        except (ValueError, NotImplementedError, RuntimeError):
            continue
        if optimizer.path_for(optimizer.param_groups[0]) == path:
            offered.append(path)
    return tuple(offered)


#: Every class of :mod:`course_lib.optim` that the method table names, with how to test it.
OPTIM_DB: dict[str, OptimInfo] = _from_the_method_table()


# ---- which path ran ------------------------------------------------------------------------------------------------
class _Calls(TorchFunctionMode):
    """Records the names of the torch functions called while it is active."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


def observed_path(optimizer, step: Callable[[], object]) -> str:
    """Run ``step()`` (one optimizer step) and say which path it really took, from what is visible outside.

    ``"flat"``: in every param group, the parameters of one dtype are views of a single buffer (one storage);
    ``"multi-tensor"``: ``torch._foreach_*`` functions ran; ``"per-tensor"``: neither. A flat step is not watched (a
    function mode around a compiled kernel would make it recompile): the buffers show it.
    """
    def storages(group):
        return {p.untyped_storage().data_ptr() for p in group["params"] if p.grad is not None}

    if all(group.get("fused") for group in optimizer.param_groups):
        step()
        shared = all(len(storages(group)) == 1 for group in optimizer.param_groups)
        return "flat" if shared else "per-tensor or multi-tensor, asked for flat"
    with _Calls() as calls:
        step()
    if any(len(storages(group)) == 1 and len(group["params"]) > 1 for group in optimizer.param_groups):
        return "flat"
    return "multi-tensor" if any(name.startswith("_foreach_") for name in calls.names) else "per-tensor"


def train_steps(model, optimizer, steps, *, scheduler=None, start=0, train_mode=False) -> str:
    """``steps`` minibatch steps of a squared error; the path the last one took, as :func:`observed_path` sees it.

    Step ``start``, ``start + 1``, … takes 16 rows of :func:`data` (cycling through its 64), through a closure given
    to ``optimizer.step`` (which must return a finite loss), then steps ``scheduler`` if there is one. A run resumed
    at ``start`` sees the minibatches the uninterrupted run would have seen. ``train_mode``: call
    ``optimizer.train()`` first (Schedule-Free's optimizers). torch's seed is set to 7 first, because Shampoo's
    Schur-Newton iterations start at ``torch.randn``.
    """
    inputs, targets = data()
    if train_mode:
        optimizer.train()
    torch.manual_seed(7)
    path, losses = None, []
    for step in range(start, start + steps):
        rows = slice((step * 16) % 64, (step * 16) % 64 + 16)

        def closure(rows=rows):
            optimizer.zero_grad()
            loss = ((model(inputs[rows]) - targets[rows]) ** 2).mean()
            loss.backward()
            return loss

        if step == start + steps - 1:
            path = observed_path(optimizer, lambda: losses.append(optimizer.step(closure)))
        else:
            losses.append(optimizer.step(closure))
        assert torch.isfinite(losses[-1]), f"step {step}: the loss is {losses[-1]}"
        if scheduler is not None:
            scheduler.step()
    return path
