"""The course's optimizers in one table: one row per method, everything else derived from it.

A row says what a method is called (its one ``name`` and its ``aliases``), how it is shown (``label``, ``title``,
``color``), what implements it (the factory ``rule`` in :mod:`course_lib.rules` and the class ``optimizer`` in
:mod:`course_lib.optim`, with the ``options`` that make them this method), what it is proven equal to
(``reference``), its ``family``, its ``toy`` defaults and the size of its state. The colours and labels of
:mod:`course_lib.plotting`, ``rules.RULES``, ``optim.OPTIMIZERS`` and the labs' tables are read from here.

>>> from course_lib import methods
>>> methods.get("momentum").make_rule(lr=0.1).hyperparams["momentum"]
0.9
>>> methods.label("sgd"), methods.get("sgd").name
('SGD', 'gd')

The module imports nothing but the standard library: implementations are named, not imported, and loaded when first
asked for (:meth:`Method.make_rule` loads :mod:`course_lib.rules`, :meth:`Method.optimizer_class` loads torch).

Add a method by adding a row to :data:`METHODS` (docs/contributing.md has the whole checklist).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from types import MappingProxyType
from typing import Any

__all__ = ["Method", "METHODS", "ALIASES", "FAMILIES", "get", "label", "color", "names", "load"]

#: The families, in course order: notebooks 01-04, 05, 06-07, 09-10 and 11 (preconditioners beyond the diagonal).
FAMILIES = ("gradient descent", "adaptive", "adam", "beyond adam", "preconditioning")


@dataclass(frozen=True)
class Method:
    """One optimizer of the course (a row of :data:`METHODS`).

    * ``name``: the one name the course uses for it: the rule's ``Rule.name``, the key of its colour and label;
    * ``label``: how legends and tables print it; ``title``: how it is named as a network's optimizer (its torch
      class and options, "SGD + momentum"), ``label`` unless given;
    * ``color``: its colour, the same in every notebook;
    * ``family``: one of :data:`FAMILIES`;
    * ``rule``: its factory in :mod:`course_lib.rules`; ``optimizer``: its class in :mod:`course_lib.optim`;
      ``options``: the options both take to be this method (momentum is ``sgd`` with ``momentum=0.9``);
    * ``reference``: the importable class (``"torch.optim.SGD"``) the tests prove :mod:`course_lib.optim`'s class
      equal to, with the same ``options``;
    * ``toy``: options added on the course's toy problems (no weight decay where the default has some);
    * ``aliases``: other names for the same method, each with its own label or ``None`` for the method's
      ("sgd" is gradient descent named as torch names it, labelled "SGD");
    * ``state_arrays``: arrays the size of a parameter in the optimizer's state (``None``: a state whose size
      depends on the parameter's shape, given by ``state_size``: Adafactor's factored second moment);
      ``counters``: 0-d tensors per parameter (``step``, ...);
    * ``factors``: besides those arrays, a Kronecker factor and its root or eigenbasis, each d × d, per axis of
      length d of a parameter with two or more axes (Shampoo, SOAP, at the row's options: no merged axes, no blocks,
      no factor for a vector); ``factors_in_float32``: kept in float32 for a float32, bfloat16 or float16 parameter
      (Shampoo, as its reference); :meth:`state_numbers` adds it all up.
    """

    name: str
    label: str
    color: str
    family: str
    rule: str
    optimizer: str
    reference: str
    options: Mapping[str, Any] = field(default_factory=dict)
    toy: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    aliases: Mapping[str, str | None] = field(default_factory=dict)
    state_arrays: int | None = 0
    counters: int = 1
    state_size: Callable[[tuple[int, ...]], int] | None = field(default=None, repr=False)
    factors: bool = False
    factors_in_float32: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"Invalid family: {self.family!r} (one of {', '.join(FAMILIES)})")
        if not self.title:
            object.__setattr__(self, "title", self.label)
        for name in ("options", "toy", "aliases"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if (self.state_arrays is None) != (self.state_size is not None):
            raise ValueError(f"method {self.name!r}: give state_size exactly when state_arrays is None")

    def state_numbers(self, shape) -> int:
        """The numbers of per-parameter state (no counters) the optimizer keeps for one parameter of ``shape``."""
        shape = tuple(int(d) for d in shape)
        if self.state_size is not None:
            return self.state_size(shape)
        return self.state_arrays * math.prod(shape) + self.factor_numbers(shape)

    def factor_numbers(self, shape) -> int:
        """The part of :meth:`state_numbers` in Kronecker factors and their roots or eigenbases (0 without)."""
        shape = tuple(int(d) for d in shape)
        return 2 * sum(d * d for d in shape) if self.factors and len(shape) >= 2 else 0

    def make_rule(self, **hyperparams):
        """This method's pure rule (:mod:`course_lib.rules`): its factory with ``options``, then ``hyperparams``."""
        factory = getattr(import_module(".rules", __package__), self.rule)
        return factory(**{**self.options, **hyperparams})

    def toy_rule(self, lr, **hyperparams):
        """The rule at learning rate ``lr`` (a number or an array of them) with the ``toy`` options."""
        return self.make_rule(**{**self.toy, "lr": lr, **hyperparams})

    def optimizer_class(self) -> type:
        """The ``torch.optim``-compatible class of :mod:`course_lib.optim` (imports torch)."""
        return getattr(import_module(".optim", __package__), self.optimizer)

    def reference_class(self) -> type:
        """The class this method's optimizer is proven equal to (imports its package)."""
        return load(self.reference)

    def make_optimizer(self, params, *, reference: bool = False, **hyperparams):
        """This method's optimizer (the reference's with ``reference=True``) for ``params``: ``options``, then
        ``hyperparams``."""
        cls = self.reference_class() if reference else self.optimizer_class()
        return cls(params, **{**self.options, **hyperparams})


def _factored(shape) -> int:
    """Adafactor: a row and a column factor per matrix (over its last two axes, for each leading index), v for a
    vector."""
    if len(shape) < 2:
        return math.prod(shape)
    return math.prod(shape[:-2]) * (shape[-2] + shape[-1])


_METHODS = (
    # Okabe–Ito colours (readable with every common form of colour blindness), notebooks 01-07:
    Method("gd", "gradient descent", "#0072B2", "gradient descent", "sgd", "SGD", "torch.optim.SGD",  # blue
           title="SGD", aliases={"sgd": "SGD"}, counters=0),
    Method("momentum", "momentum", "#E69F00", "gradient descent", "sgd", "SGD", "torch.optim.SGD",  # orange
           options={"momentum": 0.9}, title="SGD + momentum", state_arrays=1, counters=0),
    Method("nesterov", "Nesterov", "#D55E00", "gradient descent", "sgd", "SGD", "torch.optim.SGD",  # vermillion
           options={"momentum": 0.9, "nesterov": True}, title="SGD + Nesterov", state_arrays=1, counters=0),
    Method("adagrad", "AdaGrad", "#009E73", "adaptive", "adagrad", "Adagrad", "torch.optim.Adagrad",  # bluish green
           state_arrays=1),
    Method("rmsprop", "RMSProp", "#F0E442", "adaptive", "rmsprop", "RMSprop", "torch.optim.RMSprop",  # yellow
           state_arrays=1),
    Method("adam", "Adam", "#CC79A7", "adam", "adam", "Adam", "torch.optim.Adam", state_arrays=2),  # reddish purple
    Method("adamw", "AdamW", "#882255", "adam", "adamw", "AdamW", "torch.optim.AdamW",  # wine
           toy={"weight_decay": 0.0}, state_arrays=2),
    Method("amsgrad", "AMSGrad", "#999933", "adam", "adam", "Adam", "torch.optim.Adam",  # olive
           options={"amsgrad": True}, state_arrays=3),
    # Notebooks 09-10, from Paul Tol's colour-blind-safe palettes (distinct from the eight above):
    Method("nadam", "NAdam", "#332288", "beyond adam", "nadam", "NAdam", "torch.optim.NAdam",  # indigo
           state_arrays=2, counters=2),
    Method("radam", "RAdam", "#44AA99", "beyond adam", "radam", "RAdam", "torch.optim.RAdam",  # teal
           state_arrays=2),
    Method("adafactor", "Adafactor", "#DDCC77", "beyond adam", "adafactor", "Adafactor",  # sand
           "torch.optim.Adafactor", state_arrays=None, state_size=_factored),
    Method("lion", "Lion", "#117733", "beyond adam", "lion", "Lion", "lion_pytorch.Lion",  # green
           state_arrays=1, counters=0),
    Method("muon", "Muon", "#661100", "beyond adam", "muon", "Muon", "torch.optim.Muon",  # brown
           toy={"weight_decay": 0.0}, title="Muon + AdamW", state_arrays=1, counters=0),
    Method("schedule_free", "Schedule-Free AdamW", "#CC6677", "beyond adam", "schedule_free_adamw",  # rose
           "AdamWScheduleFree", "schedulefree.AdamWScheduleFree", state_arrays=2, counters=0),
    Method("ademamix", "AdEMAMix", "#AA4499", "beyond adam", "ademamix", "AdEMAMix",  # purple
           "pytorch_optimizer.AdEMAMix", state_arrays=3, counters=0),
    Method("soap", "SOAP", "#88CCEE", "preconditioning", "soap", "SOAP", "pytorch_optimizer.SOAP",  # cyan
           toy={"weight_decay": 0.0}, state_arrays=2, factors=True, counters=0),  # m, v
    # Shampoo with exact roots (use_svd, an eigendecomposition; the default is the Schur-Newton approximation), a factor
    # per matrix axis (shape_interpretation=False: a small matrix is not merged into one axis), RMSProp's step length
    # (graft_type 3: the reference has no Adam graft, which course_lib adds as 5 and recommends, and the row must
    # equal its reference), the first roots at step 4, then every 4 steps. Its state: the momentum, the graft's momentum
    # and RMSProp's v, and two factors and their roots per matrix (the reference keeps all but the momentum in objects
    # that its state dict does not show as tensors).
    Method("shampoo", "Shampoo", "#777777", "preconditioning", "shampoo", "Shampoo",  # dark grey
           "pytorch_optimizer.ScalableShampoo",
           options={"use_svd": True, "shape_interpretation": False, "graft_type": 3,
                    "start_preconditioning_step": 4, "preconditioning_compute_steps": 4},
           state_arrays=3, factors=True, factors_in_float32=True, counters=0),
)

#: Every method by its name, in course order (the order of the colour cycle).
METHODS: Mapping[str, Method] = MappingProxyType({method.name: method for method in _METHODS})

#: Every alias → the name of its method.
ALIASES: Mapping[str, str] = MappingProxyType({alias: method.name for method in _METHODS for alias in method.aliases})


def _check_table() -> None:
    taken = set()
    for method in _METHODS:
        for name in (method.name, *method.aliases):
            if name in taken:
                raise ValueError(f"the name {name!r} is given twice in course_lib.methods")
            taken.add(name)
    colors = [method.color.lower() for method in _METHODS]
    if len(set(colors)) != len(colors):
        raise ValueError("two methods of course_lib.methods share a colour")


_check_table()


def get(name: str) -> Method:
    """The method called ``name`` or one of its aliases; ``KeyError`` naming the known ones otherwise."""
    method = METHODS.get(ALIASES.get(name, name))
    if method is None:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(METHODS)} (aliases {', '.join(ALIASES)})")
    return method


def label(name: str) -> str:
    """How ``name`` is printed: the method's label, or the alias's own label ("sgd" → "SGD")."""
    method = get(name)
    return method.aliases.get(name) or method.label


def color(name: str) -> str:
    """The colour of the method called ``name`` (aliases share their method's colour)."""
    return get(name).color


def names(family: str | None = None, *, with_aliases: bool = False) -> tuple[str, ...]:
    """The methods' names in course order, of one ``family`` if given, their aliases after each if asked."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"Invalid family: {family!r} (one of {', '.join(FAMILIES)})")
    chosen = [method for method in _METHODS if family is None or method.family == family]
    return tuple(name for method in chosen for name in (method.name, *(method.aliases if with_aliases else ())))


def load(path: str):
    """The object a dotted ``path`` names, imported now (``"torch.optim.SGD"`` → the class)."""
    module, _, attribute = path.rpartition(".")
    if not module:
        raise ValueError(f"Invalid path: {path!r} (expected 'package.module.Name')")
    return getattr(import_module(module), attribute)
