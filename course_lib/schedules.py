"""The training recipe's pure parts: learning-rate schedules as functions of the step, and no-decay parameter groups.

Pass a schedule to ``training.fit(..., schedule=...)`` and the groups to an optimizer; ``fit`` does the rest of
the recipe (clipping, autocast, early stopping).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .inputs import positive_int

__all__ = ["warmup_cosine", "warmup_stable_decay", "DECAY_SHAPES", "param_groups", "NORM_LAYERS"]


def _check_schedule_steps(warmup_steps, total_steps, start_factor, final_factor, decay_steps=0) -> None:
    for name, value in (("warmup_steps", warmup_steps), ("decay_steps", decay_steps)):
        positive_int(value, name, allow_none=False, allow_zero=True)
    positive_int(total_steps, "total_steps", allow_none=False)
    if warmup_steps + decay_steps > total_steps or (decay_steps == 0 and warmup_steps >= total_steps):
        raise ValueError(f"need warmup_steps + decay_steps <= total_steps (and warmup_steps < total_steps); got "
                         f"warmup_steps={warmup_steps}, decay_steps={decay_steps}, total_steps={total_steps}")
    for name, value in (("start_factor", start_factor), ("final_factor", final_factor)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1]; got {value}")


def _warmup_factor(step: int, warmup_steps: int, start_factor: float) -> float:
    return start_factor + (1 - start_factor) * step / warmup_steps


def warmup_cosine(warmup_steps: int, total_steps: int, *, start_factor: float = 0.0,
                  final_factor: float = 0.0) -> Callable[[int], float]:
    r"""Linear warm-up over ``warmup_steps`` steps, then cosine decay to ``final_factor`` at ``total_steps``.

    Returns the pure function f(k), the factor of the initial learning rate at step k = 0, 1, …
    (pass it to ``fit(..., schedule=...)``), with W = ``warmup_steps``, T = ``total_steps``,
    s = ``start_factor``, f_T = ``final_factor``:

    .. math::  f(k) = \begin{cases} s + (1 - s)\,k / W & k < W \\
               f_T + (1 - f_T)\,\tfrac12\bigl(1 + \cos(\pi\,\tfrac{k - W}{T - W})\bigr) & W \le k \le T \\
               f_T & k > T \end{cases}

    This is torch's ``LinearLR(start_factor=s, total_iters=W)`` followed by
    ``CosineAnnealingLR(T_max=T − W, eta_min=f_T·η)`` under ``SequentialLR`` (which needs s > 0; with the
    default s = 0 the first step has η = 0, as Hugging Face's ``get_cosine_schedule_with_warmup``).
    """
    _check_schedule_steps(warmup_steps, total_steps, start_factor, final_factor)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return _warmup_factor(step, warmup_steps, start_factor)
        progress = min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


def warmup_stable_decay(warmup_steps: int, total_steps: int, decay_steps: int, *, start_factor: float = 0.0,
                        final_factor: float = 0.0, decay: str = "linear") -> Callable[[int], float]:
    r"""Warmup-stable-decay (WSD): linear warm-up, a constant learning rate, then a decay over the last steps.

    Returns the pure function f(k) of step k = 0, 1, … with W = ``warmup_steps``, T = ``total_steps``,
    D = ``decay_steps``, u = (k − (T − D)) / D the progress of the decay:

    .. math::  f(k) = \begin{cases} s + (1 - s)\,k / W & k < W \\ 1 & W \le k < T - D \\
               f_T + (1 - f_T)\,d(u) & T - D \le k \le T \\ f_T & k > T \end{cases}

    with d(u) = 1 − u (``'linear'``), ½(1 + cos πu) (``'cosine'``) or 1 − √u (``'1-sqrt'``, the shape
    Hägele et al. 2024 found best). The stable phase can run as long as wanted and a decay branch off it at
    any point (Hu et al. 2024, MiniCPM), which is why it replaced cosine in several recent runs.
    """
    _check_schedule_steps(warmup_steps, total_steps, start_factor, final_factor, decay_steps)
    if decay not in DECAY_SHAPES:
        raise ValueError(f"decay must be one of {DECAY_SHAPES}; got {decay!r}")
    shapes = {"linear": lambda u: 1 - u, "cosine": lambda u: 0.5 * (1 + math.cos(math.pi * u)),
              "1-sqrt": lambda u: 1 - math.sqrt(u)}
    shape = shapes[decay]
    decay_start = total_steps - decay_steps

    def factor(step: int) -> float:
        if step < warmup_steps:
            return _warmup_factor(step, warmup_steps, start_factor)
        if step < decay_start:
            return 1.0
        if decay_steps == 0:
            return final_factor
        return final_factor + (1 - final_factor) * shape(min(step - decay_start, decay_steps) / decay_steps)

    return factor


#: Normalization layers whose weights (scales) are kept out of weight decay by :func:`param_groups`.
NORM_LAYERS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm,
               torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d, torch.nn.LayerNorm,
               torch.nn.GroupNorm, torch.nn.RMSNorm)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two param groups for ``model``: weights that decay, and biases and norm weights that do not.

    The usual split (GPT-2/nanoGPT, timm, BERT): the weights of linear, convolution and embedding layers
    (tensors of 2 dimensions or more) get ``weight_decay``; biases, the scales of normalization layers
    (:data:`NORM_LAYERS`) and every other 0-D or 1-D parameter get ``weight_decay = 0``, because shrinking
    them towards 0 does not limit the model's capacity, it only biases a norm's output scale. Frozen
    parameters (``requires_grad=False``) are left out; an empty group is dropped. Pass the list to an
    optimizer in place of ``model.parameters()``: ``optim.AdamW(param_groups(model, 0.1), lr=...)``.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    in_norm = {id(param) for module in model.modules() if isinstance(module, NORM_LAYERS)
               for param in module.parameters(recurse=False)}
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or id(param) in in_norm else decay).append(param)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]
