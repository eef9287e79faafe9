"""Train a small binary classifier on the CPU or a GPU: device, seeding, ``fit``, checkpoints, lr range test.

The course's network is the seed article's: d inputs → Linear(d, 32) + ReLU →
Linear(32, 1). It outputs a *logit* z (not a probability); the loss is
``torch.nn.BCEWithLogitsLoss``, the numerically stable form of "sigmoid, then
binary cross-entropy" (notebook 08 shows where the naive form fails).

:func:`fit` is a plain training loop made fast for in-memory tables: the data
moves to the device once, every epoch gathers one shuffled copy of it, and
minibatches are slices of that copy (no DataLoader round trip, no per-step
host/device synchronisation: losses are read back once per epoch). A
``torch.utils.data.DataLoader`` is accepted too. It returns a :class:`History`.

>>> from course_lib import data, optim, training
>>> dataset = data.breast_cancer()
>>> training.seed_everything(0)
>>> model = training.seed_classifier(dataset.n_features)
>>> history = training.fit(model, optim.Adam(model.parameters(), lr=1e-3), dataset.train, dataset.val,
...                        epochs=50, batch_size=32, progress=False)

The device is :func:`pick_device`'s choice unless given: CUDA, then Apple's MPS,
then the CPU; the environment variable ``COURSE_DEVICE`` (``cpu``, ``cuda``,
``cuda:1``, ``mps``) forces one.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .models import seed_classifier  # noqa: F401  (it lived here; notebook 08 and its tests use training.seed_classifier)

__all__ = [
    "DEVICE_ENV",
    "pick_device",
    "seed_everything",
    "seed_classifier",
    "History",
    "DivergenceError",
    "fit",
    "epoch_generator",
    "evaluate",
    "LOSSES",
    "cross_entropy",
    "warmup_cosine",
    "warmup_stable_decay",
    "DECAY_SHAPES",
    "param_groups",
    "NORM_LAYERS",
    "save_checkpoint",
    "load_checkpoint",
    "LRRangeTest",
    "lr_range_test",
    "METHODS",
    "make_optimizer",
    "train_classifier",
    "train_classifiers",
]

DEVICE_ENV = "COURSE_DEVICE"
CHECKPOINT_FORMAT = "course_lib.training.checkpoint/1"


# --------------------------------------------------------------------------------------
# Device and seeds
# --------------------------------------------------------------------------------------
def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index is None or device.index < torch.cuda.device_count())
    if device.type == "mps":
        return _mps_available()
    return False


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``preferred``, else ``$COURSE_DEVICE``, else CUDA, then MPS, then the CPU.

    A device that is asked for (by argument or environment variable) but not
    available raises ``RuntimeError`` instead of silently falling back, so a
    "GPU" run never quietly happens on the CPU.
    """
    if preferred is not None:
        return _named_device(preferred, "preferred")
    choice = os.environ.get(DEVICE_ENV, "").strip()
    if choice:
        return _named_device(choice, f"${DEVICE_ENV}")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _named_device(choice, source: str) -> torch.device:
    """The device named by ``choice`` (a string or ``torch.device``), checked to exist on this machine.

    ``source`` says where the name came from (``'device'``, ``'$COURSE_DEVICE'``…) so the error can point at it.
    """
    try:
        device = torch.device(choice)
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"{source}={str(choice)!r} is not a device name (try cpu, cuda, cuda:0 or mps)") from error
    if not _available(device):
        raise RuntimeError(f"{source}={str(choice)!r} asks for {device}, which is not available on this machine")
    return device


def _device_argument(device) -> torch.device:
    """``device=`` of fit, evaluate and lr_range_test: :func:`pick_device`'s choice when None, else checked."""
    return pick_device() if device is None else _named_device(device, "device")


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU). Returns ``seed``.

    After ``seed_everything(s)`` the same code draws the same numbers: the same
    initial weights, the same shuffles (``fit`` draws its shuffle seed from
    torch's generator when none is given).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))  # seeds CUDA and MPS generators too
    return int(seed)


# --------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------
@dataclass
class History:
    """Per-epoch and per-step record of a :func:`fit` run.

    Per epoch: ``train_loss`` and ``train_accuracy`` are averages over the epoch's
    minibatches, measured as training went (what Keras prints); ``val_loss`` and
    ``val_accuracy`` are measured on the validation data after the epoch (NaN
    without validation data). ``seconds`` is each epoch's wall time, ``lr`` the
    first param group's learning rate at the end of the epoch, ``steps`` the
    optimizer steps taken so far, ``seed`` the shuffle seed (a resumed run keeps it).
    An epoch cut short by ``max_steps`` is recorded like the others, over the steps it took.

    Per optimizer step (read back once per epoch, so recording them costs no host/device
    synchronisation): ``step_loss`` is the minibatch loss, ``step_lr`` the first param
    group's learning rate the step used, and ``step_grad_norm`` the global gradient norm
    ‖g‖₂ over all parameters *before* clipping (only when ``fit`` clips: ``clip_grad_norm``;
    ``math.inf`` logs it without clipping). ``best_epoch`` is the epoch (1-based) whose
    weights early stopping restored (0 without early stopping); ``stopped_early`` says
    whether its patience ran out. ``loss`` names the loss (for axis labels).

    Early stopping's state, so a resumed run stops where the uninterrupted one would: ``best_val_loss`` (the
    lowest validation loss so far, ``math.inf`` before any), ``epochs_since_best`` (the patience used up) and
    ``best_weights`` (a copy of the model's ``state_dict`` at ``best_epoch``; not in :meth:`to_dict`: a
    checkpoint stores it beside the history, and :func:`load_checkpoint` puts it back here).
    """

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    seed: int = 0
    label: str = ""
    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    step_grad_norm: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    loss: str = "binary cross-entropy"
    best_val_loss: float = math.inf
    epochs_since_best: int = 0
    best_weights: dict | None = field(default=None, repr=False, compare=False)

    METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "lr", "steps")
    STEP_METRICS = ("step_loss", "step_lr", "step_grad_norm")

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def __len__(self) -> int:
        return self.epochs

    def append(self, **values) -> None:
        for name in self.METRICS:
            getattr(self, name).append(values[name])

    def metric(self, name: str) -> np.ndarray:
        """One metric as an array: per epoch, epoch 1 first (``'val_loss'``, ``'train_accuracy'``, …), or per
        step, step 1 first (``'step_loss'``, ``'step_lr'``, ``'step_grad_norm'``)."""
        if name not in self.METRICS + self.STEP_METRICS:
            raise ValueError(f"unknown metric {name!r}; choose from {self.METRICS + self.STEP_METRICS}")
        return np.asarray(getattr(self, name), dtype=float)

    def to_dict(self) -> dict:
        """Plain Python lists and numbers (what a checkpoint stores; loads with ``weights_only=True``)."""
        return {**{name: list(getattr(self, name)) for name in self.METRICS + self.STEP_METRICS},
                "seed": self.seed, "label": self.label, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "loss": self.loss, "best_val_loss": self.best_val_loss,
                "epochs_since_best": self.epochs_since_best}

    @classmethod
    def from_dict(cls, values: dict) -> History:
        """The inverse of :meth:`to_dict` (dictionaries saved before the per-step metrics existed load too)."""
        return cls(**{name: list(values[name]) for name in cls.METRICS},
                   **{name: list(values.get(name, [])) for name in cls.STEP_METRICS},
                   seed=int(values["seed"]), label=str(values.get("label", "")),
                   best_epoch=int(values.get("best_epoch", 0)), stopped_early=bool(values.get("stopped_early", False)),
                   loss=str(values.get("loss", "binary cross-entropy")),
                   best_val_loss=float(values.get("best_val_loss", math.inf)),
                   epochs_since_best=int(values.get("epochs_since_best", 0)))

    def same_metrics(self, other: History, tolerance: float = 0.0) -> bool:
        """True when both runs have the same losses and accuracies epoch by epoch (``seconds`` ignored)."""
        names = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "steps")
        if self.epochs != other.epochs:
            return False
        return all(np.allclose(self.metric(n), other.metric(n), rtol=0, atol=tolerance, equal_nan=True)
                   for n in names)

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(0 epochs)"
        last = (f"train loss {self.train_loss[-1]:.4f}, train accuracy {self.train_accuracy[-1]:.4f}")
        if not math.isnan(self.val_loss[-1]):
            last += f", val loss {self.val_loss[-1]:.4f}, val accuracy {self.val_accuracy[-1]:.4f}"
        name = f"{self.label}: " if self.label else ""
        return f"History({name}{self.epochs} epochs, {self.steps[-1]} steps; after the last epoch {last})"

    def plot(self, axes=None, *, metrics=("loss", "accuracy"), splits=("train", "val"), label: str | None = None,
             method: str | None = None, color: str | None = None, linestyle: str | None = None):
        """Learning curves against epochs: one panel per metric, training solid, validation dashed.

        ``method`` picks the course colour (``'adam'``, ``'gd'``, …); the loss
        panel has a log scale. Pass the ``axes`` of an earlier call to overlay
        several runs. Returns the axes.
        """
        import matplotlib.pyplot as plt

        from .plotting import METHOD_LABELS, method_color

        if axes is None:
            _, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
            axes = axes[0]
        axes = np.atleast_1d(axes)
        if method is not None:
            color = color or method_color(method)
            label = label if label is not None else METHOD_LABELS.get(method, method)
        label = label if label is not None else (self.label or None)
        epochs = np.arange(1, self.epochs + 1)
        for ax, metric in zip(axes, metrics):
            for split in splits:
                values = self.metric(f"{split}_{metric}")
                if np.all(np.isnan(values)):
                    continue
                style = linestyle or ("-" if split == "train" else "--")
                text = None if label is None else (f"{label} ({split})" if len(splits) > 1 else label)
                ax.plot(epochs, values, style, color=color, label=text)
            ax.set_xlabel("epochs")
            ax.set_ylabel({"loss": f"loss ({self.loss})", "accuracy": "accuracy"}.get(metric, metric))
            if metric == "loss":
                ax.set_yscale("log")
        return axes


# --------------------------------------------------------------------------------------
# Losses and input checks
# --------------------------------------------------------------------------------------
class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss. ``history`` holds the epochs completed before it."""

    def __init__(self, message: str, history: History | None = None):
        super().__init__(message)
        self.history = history


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
class _Loss:
    """A loss and the targets it takes: ``'binary'`` (0/1 labels, one logit per sample) or ``'classes'``."""

    function: Callable
    targets: str
    name: str


def _loss_argument(loss) -> _Loss:
    """``loss=`` of fit, evaluate and lr_range_test: None or ``'bce'``, ``'cross_entropy'``, or a callable.

    A callable takes binary targets, except torch's ``CrossEntropyLoss`` and ``NLLLoss`` modules, which take
    class indices (and get (N, T, C) logits flattened as :func:`cross_entropy` does).
    """
    if loss is None or (isinstance(loss, str) and loss == "bce"):
        return _Loss(torch.nn.BCEWithLogitsLoss(), "binary", "binary cross-entropy")
    if isinstance(loss, str) and loss == "cross_entropy":
        return _Loss(cross_entropy, "classes", "cross-entropy")
    if isinstance(loss, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)):
        module = loss
        return _Loss(lambda logits, targets: module(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)),
                     "classes", "cross-entropy")
    if isinstance(loss, str) or not callable(loss):
        raise ValueError(f"loss must be callable, loss(logits, targets) -> the batch mean, or one of {LOSSES}; "
                         f"got {loss!r}" if isinstance(loss, str) else
                         f"loss must be callable, loss(logits, targets) -> the batch mean, or one of {LOSSES}; "
                         f"got {type(loss).__name__}")
    return _Loss(loss, "binary", "binary cross-entropy")


def _model_dtype(model) -> torch.dtype:
    for param in model.parameters():
        return param.dtype
    return torch.get_default_dtype()


def _check_pair(pair, name: str, dtype: torch.dtype, *, loader_allowed: bool = True, targets: str = "binary"):
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
        if _is_loader(pair) and not loader_allowed:
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


def _check_model_output(model, X: torch.Tensor, name: str, y: torch.Tensor | None = None,
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
    _check_classes(y, out.shape[-1], name)
    return int(out.shape[-1])


def _check_classes(y: torch.Tensor, classes: int, name: str) -> None:
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


def _forward(model, inputs: torch.Tensor, targets: torch.Tensor, name: str, kind: str = "binary") -> torch.Tensor:
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


def _correct(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """How many predictions are right (a device tensor): logit > 0 is class 1 (binary), else the arg-max class."""
    if kind == "binary":
        return ((logits > 0) == (targets > 0.5)).sum()
    return (logits.argmax(-1) == targets).sum()


def _check_model_and_optimizer(model, optimizer) -> None:
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


def _is_loader(data) -> bool:
    return isinstance(data, torch.utils.data.DataLoader) or (
        not isinstance(data, (tuple, list, torch.Tensor, np.ndarray, str, bytes, Mapping))
        and isinstance(data, Iterable))


def _lr_of(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _move_optimizer_state(optimizer, device) -> None:
    """Optimizer state tensors follow the parameters (except torch's CPU ``step`` counters)."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if key != "step" and isinstance(value, torch.Tensor) and value.device != device:
                state[key] = value.to(device)


def _positive_int(value, name: str, *, allow_none: bool = True, allow_zero: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} integer{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def _autocast_argument(autocast, device: torch.device):
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


def _precision(device: torch.device, autocast):
    """The context of a forward pass: ``torch.autocast`` in ``autocast`` precision, or nothing."""
    if autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=autocast)


def _has_train_eval(optimizer) -> bool:
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def _scheduler_argument(schedule, optimizer, steps_done: int):
    """``schedule=`` of fit: None, a function factor(step) (→ ``LambdaLR``), or an ``LRScheduler`` of ``optimizer``."""
    if schedule is None:
        return None
    if _has_train_eval(optimizer):
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


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------
def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator that shuffles epoch ``epoch`` (0-based) of a run with shuffle seed ``seed``.

    It depends only on (seed, epoch), so a resumed run shuffles exactly as an
    uninterrupted one, and the CPU and a GPU see the same batches. :func:`fit` and
    :func:`lr_range_test` draw their orders from it:
    ``torch.randperm(n, generator=epoch_generator(seed, epoch))``.
    """
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train, val=None, *, epochs: int | None = None,
        batch_size: int | None = 32, loss: Callable | str | None = None, device=None, progress: bool = True,
        seed: int | None = None, history: History | None = None, checkpoint=None, label: str = "",
        max_steps: int | None = None, schedule=None, clip_grad_norm: float | None = None, autocast=None,
        early_stopping: int | None = None) -> History:
    r"""Train ``model`` (logits out) with ``optimizer`` and return the :class:`History`.

    ``train`` and ``val`` are ``(X, y)`` pairs or DataLoaders yielding such pairs. In-memory
    pairs move to ``device`` once; each epoch draws a permutation (from a CPU
    generator seeded by ``seed`` and the epoch number, the same on every
    device), gathers one shuffled copy and trains on consecutive slices of
    ``batch_size`` rows (``None``: the whole set, i.e. full-batch gradient
    descent; the last batch may be smaller). Each step is

    .. math::  \ell_b = \text{loss}(\text{model}(X_b), y_b), \qquad
               \theta \leftarrow \text{optimizer.step}(\nabla_\theta \ell_b)

    ``loss`` says what the model predicts:

    * ``None`` or ``'bce'`` (default, ``BCEWithLogitsLoss()``): X of shape (n, features…), y 0/1 labels of
      shape (n,) or (n, 1), one logit per sample; a prediction is class 1 when its logit is > 0.
    * ``'cross_entropy'`` (:func:`cross_entropy`): class logits (n, C) against class indices y of shape (n,),
      or a sequence model's (n, T, C) against (n, T) (next-token prediction: the loss and the accuracy are
      means over all n·T tokens); the predicted class is the arg-max. Integer X (token ids) stays int64.
      ``torch.nn.CrossEntropyLoss(...)`` modules (label smoothing…) are taken the same way.
    * any callable ``loss(logits, targets)`` returning the batch mean, with binary targets.

    Budget: ``epochs`` more epochs (default 50), or ``max_steps`` optimizer steps in all (counting the steps of
    a resumed ``history``), whichever ends first; with ``max_steps`` alone the epochs are unlimited, and the
    last epoch may stop part-way (it is recorded over the steps it took; a run resumed after such an epoch
    starts the next epoch's shuffle, so it is not step for step the uninterrupted run).

    The recipe (each optional):

    * ``schedule``: a function ``factor(step)`` of the global step (0 for the first step), e.g.
      :func:`warmup_cosine` or :func:`warmup_stable_decay`: every param group's lr is its initial lr times
      the factor (a ``torch.optim.lr_scheduler.LambdaLR``, built so a resumed run continues the schedule);
      or a torch ``LRScheduler`` already built on ``optimizer``, stepped after every optimizer step. Refused
      for Schedule-Free optimizers (they replace the schedule).
    * ``clip_grad_norm``: rescale the gradients so their global norm is at most this
      (``torch.nn.utils.clip_grad_norm_``); the norm before clipping is logged in
      ``History.step_grad_norm``. ``math.inf`` logs the norm without clipping.
    * ``autocast=torch.bfloat16``: forward passes and losses (training and validation) run under
      ``torch.autocast`` in bfloat16 on the CPU or a CUDA GPU; parameters, gradients and optimizer state stay
      in the model's dtype (float32 master weights). No gradient scaler is needed for bfloat16.
    * ``early_stopping=patience``: stop when the validation loss has not improved for ``patience`` epochs
      in a row, and put back the weights of the best epoch (``History.best_epoch``; the optimizer state
      stays that of the last epoch). Needs ``val``.

    ``seed`` defaults to a draw from torch's generator (so :func:`seed_everything` fixes it).
    ``history`` continues an earlier run (with its shuffle seed and early stopping's state); ``checkpoint``
    (a path) saves model, optimizer, history, early stopping's best weights and a torch ``LRScheduler``'s
    state after every epoch: a run stopped at any point and resumed from its last checkpoint
    (:func:`load_checkpoint`, then ``fit`` with the same arguments, ``history=`` and the epochs left) ends
    bit for bit as the uninterrupted run. Ctrl-C (``KeyboardInterrupt``) is re-raised with the history of
    the epochs completed so far attached as ``error.history`` (the interrupted epoch is not recorded).
    ``progress`` shows a tqdm bar with epoch, loss and accuracy.
    Losses, accuracies and the per-step records are read back from the device once per epoch: no step
    waits for the host, with or without clipping. What the recipe costs per step is its own arithmetic:
    the gradient norm (one multi-tensor norm over the parameters, plus a rescale when clipping) and, for a
    schedule, one Python call of ``factor`` and ``LambdaLR``'s update of the param groups.

    Bad input raises ``ValueError`` before any step (a DataLoader's batches are
    checked as they come, each before its step); a ``device`` that is absent
    raises ``RuntimeError`` as :func:`pick_device` does for ``$COURSE_DEVICE``;
    a NaN or infinite loss raises :class:`DivergenceError` naming the epoch, the
    step and the learning rate.

    An optimizer with ``train()`` and ``eval()`` methods (Schedule-Free's, which keeps the point where
    gradients are taken apart from the average it returns) is switched to train mode before each epoch's
    steps and to eval mode after them, before validation and checkpoints: after ``fit`` the model holds
    the parameters to evaluate, and the optimizer is in eval mode (after an interrupt or an error too).
    """
    epochs = _positive_int(epochs, "epochs", allow_zero=True)
    max_steps = _positive_int(max_steps, "max_steps")
    if epochs is None and max_steps is None:
        epochs = 50
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None (full batch); got {batch_size!r}")
    _check_model_and_optimizer(model, optimizer)
    if train is None:
        raise ValueError("train is None: fit needs training data, an (X, y) pair of tensors or a DataLoader")
    objective = _loss_argument(loss)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}")
    if history is not None and not isinstance(history, History):
        raise ValueError(f"history must be the History of an earlier run (or None); got {type(history).__name__}")
    if checkpoint is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(checkpoint)))
        if not os.path.isdir(folder):
            raise ValueError(f"checkpoint={os.fspath(checkpoint)!r}: the folder {folder!r} does not exist")
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, (int, float, np.floating))
                                           and not isinstance(clip_grad_norm, bool) and clip_grad_norm > 0):
        raise ValueError(f"clip_grad_norm must be a positive number (math.inf: log the norm, do not clip) or None; "
                         f"got {clip_grad_norm!r}")
    early_stopping = _positive_int(early_stopping, "early_stopping")
    if early_stopping is not None and val is None:
        raise ValueError("early_stopping needs validation data: pass val=(X, y)")
    device = _device_argument(device)
    autocast = _autocast_argument(autocast, device)
    dtype = _model_dtype(model)
    kind = objective.targets

    loaders = {}
    pairs = {}
    for name, data in (("train", train), ("val", val)):
        if data is None:
            continue
        if _is_loader(data):
            loaders[name] = data
        else:
            pairs[name] = _check_pair(data, name, dtype, targets=kind)
            _check_model_output(model, pairs[name][0], name, pairs[name][1], kind)
    if history is None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        history = History(seed=int(seed), label=label, loss=objective.name)
    elif seed is not None and int(seed) != history.seed:
        raise ValueError(f"seed={seed} differs from the resumed history's shuffle seed {history.seed}")
    steps_done = history.steps[-1] if history.steps else 0
    scheduler = _scheduler_argument(schedule, optimizer, steps_done)

    model.to(device)
    _move_optimizer_state(optimizer, device)
    pairs = {name: (X.to(device), y.to(device)) for name, (X, y) in pairs.items()}
    run = _Run(model, optimizer, objective, device, dtype, autocast, scheduler,
               None if clip_grad_norm is None else float(clip_grad_norm))
    saved_scheduler = schedule if isinstance(schedule, torch.optim.lr_scheduler.LRScheduler) else None

    from tqdm.auto import tqdm

    bar = tqdm(total=epochs, desc=label or "fit", unit="epoch", disable=not progress, leave=True)
    try:
        epoch = first_epoch = history.epochs
        while (epochs is None or epoch < first_epoch + epochs) and (max_steps is None or steps_done < max_steps):
            started = time.perf_counter()
            model.train()
            _optimizer_mode(optimizer, "train")
            budget = None if max_steps is None else max_steps - steps_done
            if "train" in pairs:
                record = run.epoch_in_memory(*pairs["train"], batch_size, epoch_generator(history.seed, epoch),
                                             budget)
            else:
                record = run.epoch_loader(loaders["train"], budget)
            losses, sizes, correct, lrs, norms = record
            bad = torch.nonzero(~torch.isfinite(losses))
            if len(bad):
                step = int(bad[0]) + 1
                raise DivergenceError(
                    f"the training loss became {float(losses[step - 1])} at epoch {epoch + 1}, step {step} of "
                    f"{len(losses)} (optimizer step {steps_done + step}) with lr = {lrs[step - 1]:g}. "
                    f"The learning rate is probably too large: try a smaller one, for example "
                    f"{lrs[step - 1] / 10:g}.", history)
            seen = float(sizes.sum())
            train_loss = float((losses * sizes).sum() / seen)
            train_accuracy = float(correct) / seen
            steps_done += len(losses)
            _optimizer_mode(optimizer, "eval")  # Schedule-Free: evaluate and save the average x, not y
            if "val" in pairs:
                val_loss, val_accuracy = _evaluate_tensors(model, *pairs["val"], objective.function, kind=kind,
                                                           autocast=autocast)
            elif "val" in loaders:
                val_loss, val_accuracy = evaluate(model, loaders["val"], loss=loss, device=device,
                                                  autocast=autocast)
            else:
                val_loss = val_accuracy = float("nan")
            if ("val" in pairs or "val" in loaders) and not math.isfinite(val_loss):
                raise DivergenceError(
                    f"the validation loss became {val_loss} after epoch {epoch + 1} (optimizer step {steps_done}) "
                    f"with lr = {_lr_of(optimizer):g}: the last steps blew the weights up. The learning rate is "
                    f"probably too large: try a smaller one, for example {_lr_of(optimizer) / 10:g}.", history)
            history.append(train_loss=train_loss, train_accuracy=train_accuracy, val_loss=val_loss,
                           val_accuracy=val_accuracy, seconds=time.perf_counter() - started, lr=_lr_of(optimizer),
                           steps=steps_done)
            history.step_loss.extend(losses.tolist())
            history.step_lr.extend(lrs)
            history.step_grad_norm.extend(norms)
            epoch += 1
            stop = early_stopping is not None and _early_stopping_step(history, model, val_loss, early_stopping)
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, history, scheduler=saved_scheduler)
            if progress:
                postfix = {"loss": f"{train_loss:.4f}", "acc": f"{train_accuracy:.3f}"}
                if not math.isnan(val_loss):
                    postfix.update(val_loss=f"{val_loss:.4f}", val_acc=f"{val_accuracy:.3f}")
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
            if stop:
                history.stopped_early = True
                break
    except KeyboardInterrupt as interrupt:
        interrupt.history = history  # the epochs completed before Ctrl-C, as DivergenceError carries them
        raise
    finally:
        bar.close()
        _optimizer_mode(optimizer, "eval")  # also after an interrupt or an error: Schedule-Free's average x
    if early_stopping is not None and history.best_weights is not None and history.best_epoch != history.epochs:
        model.load_state_dict(history.best_weights)
    return history


def _early_stopping_step(history: History, model, val_loss: float, patience: int) -> bool:
    """Record epoch ``history.epochs``'s validation loss in early stopping's state; True when patience ran out."""
    if val_loss < history.best_val_loss:
        history.best_val_loss, history.epochs_since_best, history.best_epoch = val_loss, 0, history.epochs
        history.best_weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return False
    history.epochs_since_best += 1
    return history.epochs_since_best >= patience


class _Run:
    """What every step of one ``fit`` call needs; its two methods train one epoch and return its record."""

    def __init__(self, model, optimizer, objective: _Loss, device, dtype, autocast, scheduler, clip):
        self.model, self.optimizer, self.objective = model, optimizer, objective
        self.device, self.dtype, self.autocast, self.scheduler, self.clip = device, dtype, autocast, scheduler, clip
        self.parameters = [param for param in model.parameters() if param.requires_grad]

    def step(self, inputs, targets, name="train batch"):
        """One optimizer step on one batch; returns the detached batch loss, the count of right predictions and
        the gradient norm before clipping (None without clipping), all still on the device."""
        with _precision(self.device, self.autocast):
            logits = _forward(self.model, inputs, targets, name, self.objective.targets)
            batch_loss = self.objective.function(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        norm = None
        if self.clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return batch_loss.detach(), _correct(logits.detach(), targets, self.objective.targets), norm

    def _record(self, step_losses, counts, norms, sizes, lrs):
        """One read-back for the whole epoch: losses, right predictions and gradient norms."""
        parts = [torch.stack(step_losses).to(torch.float64), torch.stack(counts).to(torch.float64)]
        if norms:
            parts.append(torch.stack(norms).to(torch.float64))
        values = torch.cat(parts).cpu()
        n = len(step_losses)
        losses, correct = values[:n], float(values[n:2 * n].sum())
        return (losses, torch.tensor(sizes, dtype=torch.float64), correct, lrs,
                values[2 * n:].tolist() if norms else [])

    def epoch_in_memory(self, X, y, batch_size, generator, budget):
        """One epoch (or its first ``budget`` steps) over in-memory tensors: one gather, then slices."""
        n = X.shape[0]
        order = torch.randperm(n, generator=generator).to(X.device, non_blocking=True)
        X_epoch, y_epoch = X.index_select(0, order), y.index_select(0, order)
        batch = n if batch_size is None else min(int(batch_size), n)
        step_losses, counts, norms, sizes, lrs = [], [], [], [], []
        for start in range(0, n, batch):
            if budget is not None and len(step_losses) >= budget:
                break
            inputs, targets = X_epoch[start:start + batch], y_epoch[start:start + batch]
            lrs.append(_lr_of(self.optimizer))
            batch_loss, correct, norm = self.step(inputs, targets)
            step_losses.append(batch_loss)
            counts.append(correct)
            if norm is not None:
                norms.append(norm)
            sizes.append(targets.numel())
        return self._record(step_losses, counts, norms, sizes, lrs)

    def epoch_loader(self, loader, budget):
        """One epoch (or its first ``budget`` steps) over a DataLoader (each batch is checked on the host)."""
        step_losses, counts, norms, sizes, lrs = [], [], [], [], []
        kind, classes = self.objective.targets, None
        for step, batch in enumerate(loader):
            if budget is not None and step >= budget:
                break
            name = f"train batch {step + 1}"
            inputs, targets = _check_pair(batch, name, self.dtype, targets=kind)
            host_targets = targets
            inputs, targets = inputs.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)
            if kind == "classes":  # a label ≥ C would stop cross-entropy with an index error (a device assert on CUDA)
                if classes is None:
                    classes = _check_model_output(self.model, inputs, name, host_targets, kind)
                _check_classes(host_targets, classes, name)
            lrs.append(_lr_of(self.optimizer))
            batch_loss, correct, norm = self.step(inputs, targets, name)
            step_losses.append(batch_loss)
            counts.append(correct)
            if norm is not None:
                norms.append(norm)
            sizes.append(targets.numel())
        if not step_losses:
            raise ValueError("the train DataLoader yielded no batches")
        return self._record(step_losses, counts, norms, sizes, lrs)


def evaluate(model: torch.nn.Module, data, *, loss: Callable | str | None = None, device=None,
             optimizer: torch.optim.Optimizer | None = None, autocast=None) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on ``data`` (an ``(X, y)`` pair or a DataLoader), in eval mode.

    ``loss`` is as in :func:`fit` (binary cross-entropy by default, ``'cross_entropy'`` for class logits and
    sequences: then the mean and the accuracy are over every target, e.g. every token). The input is checked
    as in :func:`fit`; ``device`` defaults to the model's; ``autocast=torch.bfloat16`` evaluates under
    ``torch.autocast``. Pass the ``optimizer`` when
    it has an ``eval()`` method (Schedule-Free): it is called first, so the model is evaluated at the
    average x rather than at the training point y (and stays there: call ``optimizer.train()`` to go on
    training by hand; :func:`fit` does).
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if data is None:
        raise ValueError("data is None: evaluate needs an (X, y) pair of tensors or a DataLoader")
    objective = _loss_argument(loss)
    if optimizer is not None:
        _optimizer_mode(optimizer, "eval")
    dtype = _model_dtype(model)
    if device is None:
        device = next((param.device for param in model.parameters()), torch.device("cpu"))
    else:
        device = _named_device(device, "device")
    autocast = _autocast_argument(autocast, device)
    kind = objective.targets
    if _is_loader(data):
        batches = ((f"evaluation batch {i + 1}", _check_pair(batch, f"evaluation batch {i + 1}", dtype, targets=kind))
                   for i, batch in enumerate(data))
    else:
        batches = [("evaluation data", _check_pair(data, "evaluation data", dtype, targets=kind))]
    total_loss, correct, seen = 0.0, 0, 0
    for name, (X, y) in batches:
        if kind == "classes":
            _check_model_output(model, X, name, y, kind)
        batch_loss, batch_accuracy = _evaluate_tensors(model, X.to(device), y.to(device), objective.function, name,
                                                       kind=kind, autocast=autocast)
        total_loss += batch_loss * y.numel()
        correct += round(batch_accuracy * y.numel())
        seen += y.numel()
    if seen == 0:
        raise ValueError("evaluate: the data is empty")
    return total_loss / seen, correct / seen


def _optimizer_mode(optimizer, mode: str) -> None:
    """Call ``optimizer.train()`` or ``optimizer.eval()`` where the optimizer has it (Schedule-Free's do)."""
    switch = getattr(optimizer, mode, None)
    if callable(switch):
        switch()


@torch.no_grad()
def _evaluate_tensors(model, X, y, loss_fn, name="validation data", *, kind="binary",
                      autocast=None) -> tuple[float, float]:
    """Loss and accuracy on checked tensors already on the model's device (one read-back)."""
    was_training = model.training
    model.eval()
    try:
        with _precision(X.device, autocast):
            logits = _forward(model, X, y, name, kind)
            value = loss_fn(logits, y)
        both = torch.stack([value.to(torch.float64), _correct(logits, y, kind).to(torch.float64)]).cpu()
    finally:
        model.train(was_training)
    return float(both[0]), float(both[1]) / y.numel()


# --------------------------------------------------------------------------------------
# The training recipe: learning-rate schedules and parameter groups (fit does clipping, autocast, early stopping)
# --------------------------------------------------------------------------------------
def _check_schedule_steps(warmup_steps, total_steps, start_factor, final_factor, decay_steps=0) -> None:
    for name, value in (("warmup_steps", warmup_steps), ("decay_steps", decay_steps)):
        _positive_int(value, name, allow_none=False, allow_zero=True)
    _positive_int(total_steps, "total_steps", allow_none=False)
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


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------
def save_checkpoint(path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, history: History, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> None:
    """Save model weights, optimizer state, history (with early stopping's best weights), the ``scheduler``'s
    state when one is given, and torch's random state to ``path`` (atomically).

    Everything stored is tensors and plain Python values, so
    :func:`load_checkpoint` reads it back with ``torch.load(weights_only=True)``.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history.to_dict(),
        "best_weights": history.best_weights,
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".checkpoint-", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_checkpoint(path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, *,
                    restore_rng: bool = True) -> History:
    """Load a :func:`save_checkpoint` file into ``model`` (and ``optimizer``, ``scheduler``); return its
    :class:`History`, early stopping's state and best weights included.

    The file is read with ``weights_only=True`` (no code runs while loading).
    Pass the returned history (and the same ``schedule``, ``early_stopping``…) to ``fit(..., history=...)``
    to continue training exactly where the saved run stopped. A checkpoint of a run with a torch
    ``LRScheduler`` needs that scheduler, built anew on ``optimizer`` as before, so it continues rather than
    restarts: loading the optimizer without it raises ``ValueError``.
    """
    payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a course_lib.training checkpoint")
    saved_scheduler = payload.get("scheduler")
    if optimizer is not None and saved_scheduler is not None and scheduler is None:
        raise ValueError(f"{os.fspath(path)!r} holds a learning-rate scheduler's state: pass scheduler= (built on "
                         "the optimizer as in the saved run), or the schedule would silently restart")
    if scheduler is not None and saved_scheduler is None:
        raise ValueError(f"scheduler: {os.fspath(path)!r} holds no scheduler state (the saved run had none, or a "
                         "function schedule, which fit rebuilds from the step count)")
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(saved_scheduler)
    if restore_rng:
        torch.set_rng_state(payload["torch_rng"])
        if payload["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"][: torch.cuda.device_count()])
    history = History.from_dict(payload["history"])
    history.best_weights = payload.get("best_weights")
    return history


# --------------------------------------------------------------------------------------
# Learning-rate range test
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LRRangeTest:
    """The result of :func:`lr_range_test`: the loss measured at each learning rate η_k.

    ``losses[k]`` is the minibatch loss computed at step k, just before the step
    taken with ``lrs[k]``; ``smoothed`` is its bias-corrected exponential moving
    average. ``stopped_early`` is True when the loss exploded before the last step.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    stopped_early: bool

    def best_lr(self) -> float:
        """The learning rate at the lowest smoothed loss."""
        return float(self.lrs[int(np.nanargmin(self.smoothed))])

    def suggestion(self) -> float:
        """A starting learning rate: a tenth of :meth:`best_lr` (fastai's "minimum / 10" rule of thumb, not a law)."""
        return self.best_lr() / 10

    def plot(self, ax=None, *, method: str | None = None, label: str | None = None, color: str | None = None):
        """Smoothed loss against η on a log axis, the raw losses faint behind it."""
        import matplotlib.pyplot as plt

        from .plotting import METHOD_LABELS, method_color

        ax = ax if ax is not None else plt.gca()
        if method is not None:
            color = color or method_color(method)
            label = label if label is not None else METHOD_LABELS.get(method, method)
        ax.semilogx(self.lrs, self.losses, color=color, alpha=0.25, lw=1)
        ax.semilogx(self.lrs, self.smoothed, color=color, label=label)
        ax.set_xlabel("learning rate η")
        ax.set_ylabel("minibatch loss")
        return ax


def lr_range_test(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train, start_lr: float = 1e-6,
                  end_lr: float = 10.0, steps: int = 200, *, batch_size: int | None = 32,
                  loss: Callable | str | None = None, device=None, seed: int = 0, smoothing: float = 0.9,
                  diverge_factor: float = 4.0) -> LRRangeTest:
    r"""Train for ``steps`` minibatch steps while η grows exponentially from ``start_lr`` to ``end_lr``.

    .. math::  \eta_k = \eta_{\text{start}} \,(\eta_{\text{end}}/\eta_{\text{start}})^{k/(\text{steps}-1)},
               \quad k = 0, \dots, \text{steps}-1

    Smith ("Cyclical learning rates", 2017) introduced the range test with a
    linear ramp; the exponential ramp, the smoothed loss and the stop at
    ``diverge_factor`` = 4 times the lowest value are fastai's ``lr_find``
    (Gugger, 2018). The loss falls once η is large
    enough to make progress and shoots up once η is too large; a good starting
    learning rate sits below the bottom of the curve. The test stops early when
    the loss is not finite or the smoothed loss exceeds ``diverge_factor`` times
    its lowest value. Minibatches are shuffled slices, as in :func:`fit`.

    The model's weights and the optimizer's state (learning rates included) are
    restored afterwards, so the test leaves no trace on them.
    """
    if not (start_lr > 0 and end_lr > start_lr and math.isfinite(end_lr)):
        raise ValueError(f"need 0 < start_lr < end_lr; got start_lr={start_lr}, end_lr={end_lr}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2; got {steps!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor must be > 1; got {diverge_factor}")
    _check_model_and_optimizer(model, optimizer)
    device = _device_argument(device)
    objective = _loss_argument(loss)
    X, y = _check_pair(train, "lr_range_test's train", _model_dtype(model), loader_allowed=False,
                       targets=objective.targets)
    _check_model_output(model, X, "train", y, objective.targets)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None (full batch); got {batch_size!r}")

    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_training = model.training
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(steps) / (steps - 1))
    losses, smoothed = [], []
    average, best, stopped = 0.0, math.inf, False
    n = X.shape[0]
    batch = n if batch_size is None else min(int(batch_size), n)
    try:
        model.to(device)
        _move_optimizer_state(optimizer, device)
        X, y = X.to(device), y.to(device)
        model.train()
        epoch, position, order = 0, n, None
        for k, lr in enumerate(lrs):
            if position + batch > n:  # a fresh shuffle when the next full batch would run off the end
                order = torch.randperm(n, generator=epoch_generator(seed, epoch)).to(device)
                epoch, position = epoch + 1, 0
            rows = order[position:position + batch]
            position += batch
            for group in optimizer.param_groups:
                group["lr"] = float(lr)
            inputs, targets = X.index_select(0, rows), y.index_select(0, rows)
            batch_loss = objective.function(_forward(model, inputs, targets, f"train batch {k + 1}",
                                                     objective.targets), targets)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            value = float(batch_loss.detach())
            losses.append(value)
            average = smoothing * average + (1 - smoothing) * value
            smoothed.append(average / (1 - smoothing ** (k + 1)))
            if not math.isfinite(value) or smoothed[-1] > diverge_factor * best:
                stopped = k < steps - 1
                break
            best = min(best, smoothed[-1])
            optimizer.step()
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(saved_training)
    count = len(losses)
    return LRRangeTest(lrs[:count], np.asarray(losses), np.asarray(smoothed), stopped)


# --------------------------------------------------------------------------------------
# The six optimizers of notebooks 08 and 09 (notebook 08's figure and playground: course_lib.labs.seed_classifier)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """How notebook 08 trains with one optimizer: its class name, fixed options and whether batches are full."""

    name: str
    optimizer: str
    options: dict = field(default_factory=dict)
    full_batch: bool = False


METHODS = {
    "gd": Method("gd", "SGD", {}, full_batch=True),
    "sgd": Method("sgd", "SGD"),
    "momentum": Method("momentum", "SGD", {"momentum": 0.9}),
    "rmsprop": Method("rmsprop", "RMSprop"),
    "adam": Method("adam", "Adam"),
    "adamw": Method("adamw", "AdamW", {"weight_decay": 1e-2}),
}
METHOD_TITLES = {
    "gd": "full-batch GD",
    "sgd": "SGD",
    "momentum": "SGD + momentum",
    "rmsprop": "RMSProp",
    "adam": "Adam",
    "adamw": "AdamW",
}


def make_optimizer(method: str, params, lr: float, *, library: str = "course",
                   options: dict | None = None) -> torch.optim.Optimizer:
    """The optimizer of ``method`` (a key of :data:`METHODS`) from ``course_lib.optim`` or ``torch.optim``.

    ``options`` (e.g. ``{"weight_decay": 1.0}``) override or extend the method's fixed options.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    if library == "course":
        from . import optim as module
    elif library == "torch":
        module = torch.optim
    else:
        raise ValueError(f"library must be 'course' or 'torch'; got {library!r}")
    spec = METHODS[method]
    return getattr(module, spec.optimizer)(params, lr=lr, **{**spec.options, **(options or {})})


def train_classifier(dataset, method: str, lr: float, *, epochs: int = 50, batch_size: int = 32, seed: int = 0,
                     device=None, library: str = "course", progress: bool = False, options: dict | None = None):
    """Seed everything, build :func:`seed_classifier` and ``fit`` it with ``method`` at ``lr``.

    ``dataset`` is a :class:`course_lib.data.Dataset`; validation uses its
    ``val`` split. Full-batch methods (``'gd'``) ignore ``batch_size``.
    ``options`` go to the optimizer (see :func:`make_optimizer`).
    Returns ``(model, history)``.
    """
    seed_everything(seed)
    model = seed_classifier(dataset.n_features)
    optimizer = make_optimizer(method, model.parameters(), lr, library=library, options=options)
    history = fit(model, optimizer, dataset.train, dataset.val, epochs=epochs,
                  batch_size=None if METHODS[method].full_batch else batch_size, device=device,
                  progress=progress, seed=seed, label=f"{METHOD_TITLES[method]}, η = {lr:g}")
    return model, history


def train_classifiers(dataset, method, lrs, seeds, *, epochs: int = 50, batch_size: int = 32,
                      device=None, options=None) -> list:
    r"""Many runs of :func:`train_classifier` at once: run k trains at ``lrs[k]`` with ``seed=seeds[k]``.

    The K networks are stacked into one batched network (layer weights of shape K × out × in, one batched
    matrix product per layer), so a step costs about what one run's step costs. Each run k starts from the
    weights ``seed_everything(seeds[k])`` gives :func:`seed_classifier`, shuffles each epoch as :func:`fit`
    does with shuffle seed ``seeds[k]``, minimises its own mean loss

    .. math::  \ell_k = \text{BCE}(\text{model}_k(X_{k,b}), y_{k,b}), \qquad
               \theta_k \leftarrow \text{rule}_k(\theta_k, \nabla_{\theta_k} \ell_k;\ \eta = \eta_k)

    (the loss summed over k has the same gradients, since no weight is shared), with the update rule of its
    method from :mod:`course_lib.rules` (what :mod:`course_lib.optim` runs) and η a tensor with one entry
    per run. ``method`` is a key of :data:`METHODS` for every run, or a sequence of K keys, one per run
    (full-batch and minibatch methods cannot share a call: their steps differ); ``options`` (see
    :func:`make_optimizer`) is a dict for every run, or a sequence of K dicts (or ``None``), one per run.
    Runs with the same method and options share one application of their rule per step.
    ``device`` as in :func:`fit`. Returns one ``(model, History)`` per run, or ``None`` for a run
    that :func:`train_classifier` would stop with :class:`DivergenceError` (a non-finite training loss in an
    epoch, or a non-finite validation loss after it). The histories equal :func:`train_classifier`'s up to
    float rounding (a batched product rounds differently from ``Linear``: about 10⁻⁷ of the loss on this
    network, more in runs whose loss grows chaotically at large η); their ``seconds`` are
    the batched epoch's time divided by K.
    """
    from . import rules

    lrs, seeds = [float(lr) for lr in lrs], [int(seed) for seed in seeds]
    count = len(lrs)
    methods = [method] * count if isinstance(method, str) else list(method)
    run_options = [options] * count if options is None or isinstance(options, dict) else list(options)
    for name in methods:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; choose from {list(METHODS)}")
    if not lrs or len(lrs) != len(seeds):
        raise ValueError(f"lrs and seeds must be non-empty and of equal length; got {len(lrs)} and {len(seeds)}")
    if len(methods) != count or len(run_options) != count:
        raise ValueError(f"one method and one options dict per run, or one for all: got {len(methods)} methods "
                         f"and {len(run_options)} options for {count} runs")
    if len({METHODS[name].full_batch for name in methods}) > 1:
        raise ValueError("full-batch and minibatch methods cannot train in one call: their steps differ")
    full_batch = METHODS[methods[0]].full_batch
    groups = []                                               # [method, options, rule, run indices]
    for k, (name, extra) in enumerate(zip(methods, run_options)):
        extra = dict(extra or {})
        for group in groups:
            if group[0] == name and group[1] == extra:
                group[3].append(k)
                break
        else:
            spec = METHODS[name]
            groups.append([name, extra, rules.RULES[spec.optimizer.lower()](**{**spec.options, **extra}), [k]])
    device = _device_argument(device)
    X, y = (torch.as_tensor(part, dtype=torch.float32).to(device) for part in dataset.train)
    X_val, y_val = (torch.as_tensor(part, dtype=torch.float32).to(device) for part in dataset.val)
    y, y_val = y.reshape(-1), y_val.reshape(-1)
    n = X.shape[0]
    batch = n if full_batch else min(int(batch_size), n)

    starts = []
    for seed in seeds:
        seed_everything(seed)
        starts.append([param.detach() for param in seed_classifier(dataset.n_features).parameters()])
    layers = [torch.stack(layer) for layer in zip(*starts)]                                   # W1, b1, W2, b2
    # one flat K × P buffer holds every run's weights, so each step applies each (elementwise) rule once
    flat = torch.cat([layer.reshape(count, -1) for layer in layers], dim=1).to(device)
    ends = np.cumsum([0] + [layer[0].numel() for layer in layers])
    shapes = [layer.shape[1:] for layer in layers]

    def unflatten(buffer):                                    # W1, b1, W2, b2 of every run: views of the buffer
        return [buffer[:, begin:end].view(count, *shape) for begin, end, shape in zip(ends[:-1], ends[1:], shapes)]

    # the layers autograd differentiates: made once, they share the buffer's memory, so each step sees its update
    leaves = [layer.detach().requires_grad_(True) for layer in unflatten(flat)]
    step_lr = torch.tensor(lrs, dtype=torch.float32, device=device).reshape(-1, 1)
    updates = []                                              # each group's rows, rule, learning rates and state
    for _, _, rule, indices in groups:
        if indices == list(range(indices[0], indices[-1] + 1)):
            rows = slice(indices[0], indices[-1] + 1)         # contiguous runs: a view of the buffer
        else:
            rows = torch.tensor(indices, device=device)
        updates.append([rows, rule, {**rule.hyperparams, "lr": step_lr[rows]}, rule.init(flat[rows])])

    def logits_of(inputs, layers):                            # inputs: K × rows × features (or rows × features)
        W1, b1, W2, b2 = layers
        hidden = torch.baddbmm(b1.unsqueeze(1), inputs.expand(count, -1, -1), W1.transpose(1, 2)).relu()
        return torch.baddbmm(b2.unsqueeze(1), hidden, W2.transpose(1, 2)).squeeze(-1)

    loss_of = torch.nn.functional.binary_cross_entropy_with_logits
    histories = [History(seed=seed, label=f"{METHOD_TITLES[name]}, η = {rate:g}")
                 for name, rate, seed in zip(methods, lrs, seeds)]
    diverged = np.zeros(count, dtype=bool)
    sizes = torch.tensor([min(batch, n - start) for start in range(0, n, batch)], dtype=torch.float64)
    for epoch in range(epochs):
        started = time.perf_counter()
        shuffles = {seed: torch.randperm(n, generator=epoch_generator(seed, epoch)) for seed in dict.fromkeys(seeds)}
        orders = torch.stack([shuffles[seed] for seed in seeds]).to(device)
        picks = orders.reshape(-1)                            # one gather per epoch: K shuffled copies
        X_epoch, y_epoch = X.index_select(0, picks).view(count, n, -1), y.index_select(0, picks).view(count, n)
        step_losses, step_logits = [], []
        for start in range(0, n, batch):
            inputs, targets = X_epoch[:, start:start + batch], y_epoch[:, start:start + batch]
            logits = logits_of(inputs, leaves)
            losses = loss_of(logits, targets, reduction="none").mean(dim=1)
            grad = torch.cat([part.reshape(count, -1) for part in torch.autograd.grad(losses.sum(), leaves)], dim=1)
            with torch.no_grad():
                for update in updates:
                    rows, rule, hyperparams, state = update
                    new_rows, update[3] = rule.update_fn(flat[rows], grad[rows], state, **hyperparams)
                    if isinstance(rows, slice):
                        flat[rows] = new_rows
                    else:
                        flat.index_copy_(0, rows, new_rows)
            step_losses.append(losses.detach())
            step_logits.append(logits.detach())
        correct = ((torch.cat(step_logits, dim=1) > 0) == (y_epoch > 0.5)).sum(dim=1)   # right predictions, K
        losses = torch.stack(step_losses, dim=1).double().cpu()               # K × steps: one read-back
        with torch.no_grad():
            val_logits = logits_of(X_val, unflatten(flat))
            val_losses = loss_of(val_logits, y_val.expand(count, -1), reduction="none").mean(dim=1).double().cpu()
            val_correct = ((val_logits > 0) == (y_val > 0.5)).sum(dim=1).cpu()
        correct = correct.cpu()
        diverged |= (~torch.isfinite(losses).all(dim=1) | ~torch.isfinite(val_losses)).numpy()
        seconds = (time.perf_counter() - started) / count
        train_losses = ((losses * sizes).sum(dim=1) / n).tolist()
        columns = zip(train_losses, correct.tolist(), val_losses.tolist(), val_correct.tolist())
        for k, (history, (train_loss, right, val_loss, val_right)) in enumerate(zip(histories, columns)):
            history.append(train_loss=train_loss, train_accuracy=right / n, val_loss=val_loss,
                           val_accuracy=val_right / len(y_val), seconds=seconds, lr=lrs[k],
                           steps=(epoch + 1) * len(sizes))

    results = []
    for k, history in enumerate(histories):
        if diverged[k]:
            results.append(None)
            continue
        model = seed_classifier(dataset.n_features)
        with torch.no_grad():
            for param, stacked in zip(model.parameters(), unflatten(flat)):
                param.copy_(stacked[k])
        results.append((model.to(device), history))
    return results
