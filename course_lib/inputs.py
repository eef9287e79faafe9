"""What a user hands to :func:`course_lib.training.fit`, ``evaluate`` and ``lr_range_test``, checked: data pairs,
losses, models, optimizers, budgets, precision. Each check raises ``ValueError`` naming the argument and what was
expected, before any step; :func:`forward` and :func:`correct` are the two pieces of a step that need the same
knowledge of the targets (one logit per sample, or class logits).

Losses (``loss=``):

* ``None`` or ``'bce'`` (default, ``BCEWithLogitsLoss()``): X of shape (n, features…), y 0/1 labels of
  shape (n,) or (n, 1), one logit per sample; a prediction is class 1 when its logit is > 0.
* ``'cross_entropy'`` (:func:`cross_entropy`): class logits (n, C) against class indices y of shape (n,),
  or a sequence model's (n, T, C) against (n, T) (next-token prediction: the loss and the accuracy are
  means over all n·T tokens); the predicted class is the arg-max. Integer X (token ids) stays int64.
  ``torch.nn.CrossEntropyLoss(...)`` modules (label smoothing…) are taken the same way.
* any callable ``loss(logits, targets)`` returning the batch mean, with binary targets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LOSSES", "cross_entropy", "Loss", "loss_argument", "model_dtype", "check_pair", "check_model_output",
           "check_classes", "forward", "correct", "check_model_and_optimizer", "is_loader", "positive_int",
           "batch_size_argument", "autocast_argument", "precision", "has_train_eval",
           "scheduler_argument"]


#: The losses ``fit``, ``evaluate`` and ``lr_range_test`` know by name.
LOSSES = ("bce", "cross_entropy")


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Mean cross-entropy of class logits: (N, C) against class indices (N,), or (N, T, C) against (N, T).

    .. math::  \ell = -\frac{1}{M}\sum_{i=1}^{M} \log \frac{e^{z_{i, y_i}}}{\sum_{c=1}^{C} e^{z_{i,c}}}

    over the M = N (or N·T: every token of every sequence) targets: ``torch.nn.functional.cross_entropy`` on
    the logits flattened to (M, C), so a sequence model's loss is the mean over its tokens.
    """
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@dataclass(frozen=True)
class Loss:
    """A loss and the targets it takes: ``'binary'`` (0/1 labels, one logit per sample) or ``'classes'``."""

    function: Callable
    targets: str
    name: str


def loss_argument(loss) -> Loss:
    """``loss=`` of fit, evaluate and lr_range_test: None or ``'bce'``, ``'cross_entropy'``, or a callable.

    A callable takes binary targets, except torch's ``CrossEntropyLoss`` and ``NLLLoss`` modules, which take
    class indices (and get (N, T, C) logits flattened as :func:`cross_entropy` does).
    """
    if loss is None or (isinstance(loss, str) and loss == "bce"):
        return Loss(torch.nn.BCEWithLogitsLoss(), "binary", "binary cross-entropy")
    if isinstance(loss, str) and loss == "cross_entropy":
        return Loss(cross_entropy, "classes", "cross-entropy")
    if isinstance(loss, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)):
        module = loss
        return Loss(lambda logits, targets: module(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)),
                     "classes", "cross-entropy")
    if isinstance(loss, str) or not callable(loss):
        raise ValueError(f"loss must be callable, loss(logits, targets) -> the batch mean, or one of {LOSSES}; "
                         f"got {loss!r}" if isinstance(loss, str) else
                         f"loss must be callable, loss(logits, targets) -> the batch mean, or one of {LOSSES}; "
                         f"got {type(loss).__name__}")
    return Loss(loss, "binary", "binary cross-entropy")


def model_dtype(model) -> torch.dtype:
    for param in model.parameters():
        return param.dtype
    return torch.get_default_dtype()


def check_pair(pair, name: str, dtype: torch.dtype, *, loader_allowed: bool = True, targets: str = "binary"):
    """``(X, y)`` as tensors, after the checks ``fit`` promises.

    ``name`` says where the pair came from (``'train'``, ``'train batch 3'``…); a batch a DataLoader yielded
    or an argument that cannot be a DataLoader (``loader_allowed=False``) gets an error that says so.
    ``targets='binary'``: X becomes the model's dtype, y 0/1 labels of the model's dtype, shape (n,).
    ``targets='classes'``: integer X (token ids) stays integer (int64), other X becomes the model's dtype;
    y becomes int64 class indices of shape (n,) or (n, T).
    """
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        what = type(pair).__name__ if not isinstance(pair, (tuple, list)) else f"a sequence of {len(pair)} items"
        if " batch " in name:
            raise ValueError(f"{name}: a DataLoader must yield pairs (X, y) of tensors; got {what}")
        if is_loader(pair) and not loader_allowed:
            raise ValueError(f"{name} must be an in-memory pair (X, y) of tensors here, not a {what} (the "
                             "minibatches are drawn from the tensors); for a TensorDataset pass "
                             "loader.dataset.tensors")
        expected = "a pair (X, y) of tensors or a DataLoader" if loader_allowed else "a pair (X, y) of tensors"
        hint = " (for a dict of arrays, pass its two arrays as a pair: (data['X'], data['y']))" if isinstance(
            pair, Mapping) else ""
        raise ValueError(f"{name} must be {expected}; got {what}{hint}")
    X, y = (_as_numbers(part, f"{name} {part_name}") for part, part_name in zip(pair, ("X", "y")))
    if X.ndim < 2:
        raise ValueError(f"{name} X must be 2-D (samples × features); got shape {tuple(X.shape)}")
    if targets == "binary" and not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise ValueError(f"{name} y must have shape (n,) or (n, 1), one label per sample; got {tuple(y.shape)}")
    if targets == "classes" and y.ndim not in (1, 2):
        raise ValueError(f"{name} y must have shape (n,) (one class per sample) or (n, T) (one class per token) "
                         f"for cross-entropy; got {tuple(y.shape)}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name} X and y have different lengths: {X.shape[0]} samples but {y.shape[0]} labels")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not (X.is_floating_point() or X.dtype in (torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise ValueError(f"{name} X must hold numbers; got dtype {X.dtype}")
    if targets == "classes" and X.dtype in (torch.int32, torch.int64, torch.uint8):
        X = X.long()  # token ids for an embedding
    else:
        X = X.to(dtype)
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        bad = torch.nonzero(~torch.isfinite(X))[0].tolist()
        raise ValueError(f"{name} X holds NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
                         "fill or drop them before training")
    if targets == "classes":
        return X, _class_indices(y, name)
    y = y.reshape(-1).to(dtype)
    outside = ~((y == 0) | (y == 1))
    if bool(outside.any()):
        values = torch.unique(y[outside])[:5].tolist()
        raise ValueError(f"{name} y must hold labels 0 and 1 only; found {values} "
                         f"({int(outside.sum())} labels outside {{0, 1}})")
    return X, y


def _as_numbers(values, name: str) -> torch.Tensor:
    """``values`` as a tensor; text (strings, object arrays) raises ``ValueError`` naming ``name``."""
    if isinstance(values, torch.Tensor):
        return values
    array = values if isinstance(values, np.ndarray) else None
    try:
        if array is None:
            array = np.asarray(values)
        if array.dtype.kind in "USO":
            raise TypeError
        return torch.as_tensor(array)
    except (TypeError, ValueError, RuntimeError):
        kind = f"dtype {array.dtype}" if array is not None else type(values).__name__
        first = array.flat[0] if array is not None and array.size else None
        example = "" if first is None else f" such as {first.item() if isinstance(first, np.generic) else first!r}"
        raise ValueError(f"{name} must hold numbers; got {kind}{example}: encode text as numbers first "
                         "(labels as 0 and 1, or class indices 0, …, C − 1)") from None


def _class_indices(y: torch.Tensor, name: str) -> torch.Tensor:
    """``y`` as int64 class indices ≥ 0 (whole-number floats are accepted)."""
    if y.is_floating_point():
        if not bool((torch.isfinite(y) & (y == y.round())).all()):
            raise ValueError(f"{name} y must hold class indices 0, 1, …, C − 1 for cross-entropy; found values "
                             "that are not whole numbers")
    elif y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{name} y must hold class indices 0, 1, …, C − 1 for cross-entropy; got dtype {y.dtype}")
    y = y.long()
    if bool((y < 0).any()):
        raise ValueError(f"{name} y must hold class indices 0, 1, …, C − 1 for cross-entropy; found "
                         f"{int(y.min())}")
    return y


def check_model_output(model, X: torch.Tensor, name: str, y: torch.Tensor | None = None,
                        targets: str = "binary") -> int | None:
    """One forward pass on two rows: the model must accept X and return one logit per sample (binary), or
    C class logits per target (``targets='classes'``, then every label of ``y`` must be below C: returns C)."""
    was_training = model.training
    device = next((param.device for param in model.parameters()), X.device)
    model.eval()
    try:
        with torch.no_grad():
            out = model(X[:2].to(device))
    except RuntimeError as error:
        raise ValueError(f"the model cannot take {name} X of shape {tuple(X.shape)}: {error}") from None
    finally:
        model.train(was_training)
    rows = min(2, X.shape[0])
    if targets == "binary":
        _check_logits(out, (rows,), name)
        return None
    _check_logits(out, (rows, *y.shape[1:]), name, targets)
    check_classes(y, out.shape[-1], name)
    return int(out.shape[-1])


def check_classes(y: torch.Tensor, classes: int, name: str) -> None:
    top = int(y.max())
    if top >= classes:
        raise ValueError(f"{name} y holds class {top}, but the model returns {classes} logits per target "
                         f"(classes 0 to {classes - 1})")


def _check_logits(logits: torch.Tensor, shape: tuple, name: str, targets: str = "binary") -> None:
    """The model's output for targets of ``shape`` must be one logit per sample, or C logits per target."""
    rows = shape[0]
    if targets == "binary":
        if tuple(logits.shape) not in ((rows,), (rows, 1)):
            raise ValueError(f"the model returns shape {tuple(logits.shape)} for {rows} samples of {name}; expected "
                             f"one logit per sample, shape ({rows},) or ({rows}, 1) (a binary classifier's last "
                             "layer has one output)")
    elif logits.ndim != len(shape) + 1 or tuple(logits.shape[:-1]) != tuple(shape):
        expected = ", ".join(str(n) for n in shape)
        raise ValueError(f"the model returns shape {tuple(logits.shape)} for targets of shape {tuple(shape)} of "
                         f"{name}; cross-entropy expects class logits of shape ({expected}, C)")


def forward(model, inputs: torch.Tensor, targets: torch.Tensor, name: str, kind: str = "binary") -> torch.Tensor:
    """The model's logits for a checked batch (binary: shaped like ``targets``); a model that cannot take the
    batch or returns another shape raises ``ValueError`` naming the batch (DataLoader batches are only seen here)."""
    try:
        logits = model(inputs)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as error:
        raise ValueError(f"the model cannot take {name} X of shape {tuple(inputs.shape)}: {error}") from error
    _check_logits(logits, tuple(targets.shape), name, kind)
    return logits.reshape(targets.shape) if kind == "binary" else logits


def correct(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """How many predictions are right (a device tensor): logit > 0 is class 1 (binary), else the arg-max class."""
    if kind == "binary":
        return ((logits > 0) == (targets > 0.5)).sum()
    return (logits.argmax(-1) == targets).sum()


def check_model_and_optimizer(model, optimizer) -> None:
    """``model`` is a module and ``optimizer`` a torch optimizer that updates at least one of its parameters."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    owned = {id(param) for group in optimizer.param_groups for param in group["params"]}
    trainable = [param for param in model.parameters() if param.requires_grad]
    if trainable and not any(id(param) in owned for param in trainable):
        raise ValueError("the optimizer holds none of the model's parameters, so training would change nothing: "
                         "build it from this model, e.g. optim.Adam(model.parameters())")


def batch_size_argument(batch_size) -> int | None:
    """``batch_size=`` of fit and lr_range_test: a positive integer, or None (the whole set: full batch)."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None (full batch); got {batch_size!r}")
    return batch_size


def is_loader(data) -> bool:
    return isinstance(data, torch.utils.data.DataLoader) or (
        not isinstance(data, (tuple, list, torch.Tensor, np.ndarray, str, bytes, Mapping))
        and isinstance(data, Iterable))


def positive_int(value, name: str, *, allow_none: bool = True, allow_zero: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} integer{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def autocast_argument(autocast, device: torch.device):
    """``autocast=`` of fit and evaluate: None (full precision) or ``torch.bfloat16``."""
    if autocast is None or autocast is False:
        return None
    if autocast is True:
        autocast = torch.bfloat16
    if autocast != torch.bfloat16:
        raise ValueError(f"autocast must be None or torch.bfloat16; got {autocast!r} (float16 would need a "
                         "torch.amp.GradScaler against underflowing gradients; bfloat16 has float32's range and "
                         "needs none)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"autocast=torch.bfloat16 runs on the CPU and on CUDA GPUs; the device is {device}")
    return autocast


def precision(device: torch.device, autocast):
    """The context of a forward pass: ``torch.autocast`` in ``autocast`` precision, or nothing."""
    if autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=autocast)


def has_train_eval(optimizer) -> bool:
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def scheduler_argument(schedule, optimizer, steps_done: int):
    """``schedule=`` of fit: None, a function factor(step) (→ ``LambdaLR``), or an ``LRScheduler`` of ``optimizer``."""
    if schedule is None:
        return None
    if has_train_eval(optimizer):
        raise ValueError(f"schedule must be None for {type(optimizer).__name__}: a Schedule-Free optimizer replaces "
                         "the learning-rate schedule by iterate averaging (its theory and its averaging weights "
                         "assume a constant lr; its own warmup_steps does the warm-up); pass schedule=None")
    scheduler_type = torch.optim.lr_scheduler.LRScheduler
    if isinstance(schedule, scheduler_type):
        if schedule.optimizer is not optimizer:
            raise ValueError("schedule is an LRScheduler of another optimizer: build it on the optimizer given to fit")
        return schedule
    if not callable(schedule):
        raise ValueError("schedule must be None, a function step -> factor of the initial lr (e.g. "
                         f"training.warmup_cosine(...)), or a torch LRScheduler; got {type(schedule).__name__}")
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule, last_epoch=steps_done - 1)
