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

import copy
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

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
    "save_checkpoint",
    "load_checkpoint",
    "LRRangeTest",
    "lr_range_test",
    "METHODS",
    "make_optimizer",
    "train_classifier",
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


def seed_classifier(in_features: int, hidden: int = 32) -> torch.nn.Sequential:
    """The seed article's network with ``in_features`` inputs: Linear(d, 32) + ReLU → Linear(32, 1).

    The last layer returns one logit z per sample; σ(z) is the probability of
    class 1, applied inside the loss (``BCEWithLogitsLoss``) and by
    ``torch.sigmoid`` when a probability is wanted. With d = 8 this is exactly the
    seed's Keras model (8·32 + 32 + 32 + 1 = 321 parameters).
    """
    if int(in_features) < 1 or int(hidden) < 1:
        raise ValueError(f"in_features and hidden must be positive; got {in_features} and {hidden}")
    return torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))


# --------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------
@dataclass
class History:
    """Per-epoch record of a :func:`fit` run.

    ``train_loss`` and ``train_accuracy`` are averages over the epoch's
    minibatches, measured as training went (what Keras prints); ``val_loss`` and
    ``val_accuracy`` are measured on the validation data after the epoch (NaN
    without validation data). ``seconds`` is each epoch's wall time, ``lr`` the
    first param group's learning rate at the end of the epoch, ``steps`` the
    optimizer steps taken so far, ``seed`` the shuffle seed (a resumed run keeps it).
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

    METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "lr", "steps")

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
        """One metric as an array, epoch 1 first (``'val_loss'``, ``'train_accuracy'``, …)."""
        if name not in self.METRICS:
            raise ValueError(f"unknown metric {name!r}; choose from {self.METRICS}")
        return np.asarray(getattr(self, name), dtype=float)

    def to_dict(self) -> dict:
        """Plain Python lists and numbers (what a checkpoint stores; loads with ``weights_only=True``)."""
        return {**{name: list(getattr(self, name)) for name in self.METRICS}, "seed": self.seed,
                "label": self.label}

    @classmethod
    def from_dict(cls, values: dict) -> History:
        return cls(**{name: list(values[name]) for name in cls.METRICS}, seed=int(values["seed"]),
                   label=str(values.get("label", "")))

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
            ax.set_ylabel({"loss": "loss (binary cross-entropy)", "accuracy": "accuracy"}.get(metric, metric))
            if metric == "loss":
                ax.set_yscale("log")
        return axes


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------
class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss. ``history`` holds the epochs completed before it."""

    def __init__(self, message: str, history: History | None = None):
        super().__init__(message)
        self.history = history


def _model_dtype(model) -> torch.dtype:
    for param in model.parameters():
        return param.dtype
    return torch.get_default_dtype()


def _check_pair(pair, name: str, dtype: torch.dtype, *, loader_allowed: bool = True):
    """``(X, y)`` as tensors of the model's dtype, after the checks ``fit`` promises.

    ``name`` says where the pair came from (``'train'``, ``'train batch 3'``…); a batch a DataLoader yielded
    or an argument that cannot be a DataLoader (``loader_allowed=False``) gets an error that says so.
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
        raise ValueError(f"{name} must be {expected}; got {what}")
    X, y = (torch.as_tensor(part) for part in pair)
    if X.ndim < 2:
        raise ValueError(f"{name} X must be 2-D (samples × features); got shape {tuple(X.shape)}")
    if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise ValueError(f"{name} y must have shape (n,) or (n, 1), one label per sample; got {tuple(y.shape)}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name} X and y have different lengths: {X.shape[0]} samples but {y.shape[0]} labels")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not (X.is_floating_point() or X.dtype in (torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise ValueError(f"{name} X must hold numbers; got dtype {X.dtype}")
    X = X.to(dtype)
    if not bool(torch.isfinite(X).all()):
        bad = torch.nonzero(~torch.isfinite(X))[0].tolist()
        raise ValueError(f"{name} X holds NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
                         "fill or drop them before training")
    y = y.reshape(-1).to(dtype)
    outside = ~((y == 0) | (y == 1))
    if bool(outside.any()):
        values = torch.unique(y[outside])[:5].tolist()
        raise ValueError(f"{name} y must hold labels 0 and 1 only; found {values} "
                         f"({int(outside.sum())} labels outside {{0, 1}})")
    return X, y


def _check_model_output(model, X: torch.Tensor, name: str) -> None:
    """One forward pass on two rows: the model must accept X and return one logit per sample."""
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
    _check_logits(out, min(2, X.shape[0]), name)


def _check_logits(logits: torch.Tensor, rows: int, name: str) -> None:
    """The model's output for ``rows`` samples of ``name`` must be one logit per sample."""
    if tuple(logits.shape) not in ((rows,), (rows, 1)):
        raise ValueError(f"the model returns shape {tuple(logits.shape)} for {rows} samples of {name}; expected "
                         f"one logit per sample, shape ({rows},) or ({rows}, 1) (a binary classifier's last layer "
                         "has one output)")


def _forward(model, inputs: torch.Tensor, targets: torch.Tensor, name: str) -> torch.Tensor:
    """The model's logits for a checked batch, shaped like ``targets``; a model that cannot take the batch or
    returns another shape raises ``ValueError`` naming the batch (DataLoader batches are only seen here)."""
    try:
        logits = model(inputs)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as error:
        raise ValueError(f"the model cannot take {name} X of shape {tuple(inputs.shape)}: {error}") from error
    _check_logits(logits, len(targets), name)
    return logits.reshape(targets.shape)


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
        not isinstance(data, (tuple, list, torch.Tensor)) and isinstance(data, Iterable))


def _lr_of(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _move_optimizer_state(optimizer, device) -> None:
    """Optimizer state tensors follow the parameters (except torch's CPU ``step`` counters)."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if key != "step" and isinstance(value, torch.Tensor) and value.device != device:
                state[key] = value.to(device)


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


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train, val=None, *, epochs: int = 50,
        batch_size: int | None = 32, loss: Callable | None = None, device=None, progress: bool = True,
        seed: int | None = None, history: History | None = None, checkpoint=None, label: str = "") -> History:
    r"""Train ``model`` (logits out) with ``optimizer`` for ``epochs`` epochs and return the :class:`History`.

    ``train`` and ``val`` are ``(X, y)`` pairs (X: samples × features, y: 0/1
    labels of shape (n,) or (n, 1)) or DataLoaders yielding such pairs. In-memory
    pairs move to ``device`` once; each epoch draws a permutation (from a CPU
    generator seeded by ``seed`` and the epoch number, the same on every
    device), gathers one shuffled copy and trains on consecutive slices of
    ``batch_size`` rows (``None``: the whole set, i.e. full-batch gradient
    descent; the last batch may be smaller). Each step is

    .. math::  \ell_b = \text{loss}(\text{model}(X_b), y_b), \qquad
               \theta \leftarrow \text{optimizer.step}(\nabla_\theta \ell_b)

    ``loss`` (default ``BCEWithLogitsLoss()``) must return the batch mean; a
    prediction counts as class 1 when its logit is > 0. ``seed`` defaults to a
    draw from torch's generator (so :func:`seed_everything` fixes it).
    ``history`` continues an earlier run (for ``epochs`` more epochs, with its
    shuffle seed); ``checkpoint`` (a path) saves model, optimizer and history after
    every epoch. ``progress`` shows a tqdm bar with epoch, loss and accuracy.

    Bad input raises ``ValueError`` before any step (a DataLoader's batches are
    checked as they come, each before its step); a ``device`` that is absent
    raises ``RuntimeError`` as :func:`pick_device` does for ``$COURSE_DEVICE``;
    a NaN or infinite loss raises :class:`DivergenceError` naming the epoch, the
    step and the learning rate.

    An optimizer with ``train()`` and ``eval()`` methods (Schedule-Free's, which keeps the point where
    gradients are taken apart from the average it returns) is switched to train mode before each epoch's
    steps and to eval mode after them, before validation and checkpoints: after ``fit`` the model holds
    the parameters to evaluate, and the optimizer is in eval mode.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer; got {epochs!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None (full batch); got {batch_size!r}")
    _check_model_and_optimizer(model, optimizer)
    if train is None:
        raise ValueError("train is None: fit needs training data, an (X, y) pair of tensors or a DataLoader")
    if loss is not None and not callable(loss):
        raise ValueError(f"loss must be callable, loss(logits, targets) -> the batch mean; got {type(loss).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}")
    if history is not None and not isinstance(history, History):
        raise ValueError(f"history must be the History of an earlier run (or None); got {type(history).__name__}")
    if checkpoint is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(checkpoint)))
        if not os.path.isdir(folder):
            raise ValueError(f"checkpoint={os.fspath(checkpoint)!r}: the folder {folder!r} does not exist")
    device = _device_argument(device)
    loss_fn = torch.nn.BCEWithLogitsLoss() if loss is None else loss
    dtype = _model_dtype(model)

    loaders = {}
    pairs = {}
    for name, data in (("train", train), ("val", val)):
        if data is None:
            continue
        if _is_loader(data):
            loaders[name] = data
        else:
            pairs[name] = _check_pair(data, name, dtype)
            _check_model_output(model, pairs[name][0], name)
    if history is None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        history = History(seed=int(seed), label=label)
    elif seed is not None and int(seed) != history.seed:
        raise ValueError(f"seed={seed} differs from the resumed history's shuffle seed {history.seed}")

    model.to(device)
    _move_optimizer_state(optimizer, device)
    pairs = {name: (X.to(device), y.to(device)) for name, (X, y) in pairs.items()}
    steps_done = history.steps[-1] if history.steps else 0

    from tqdm.auto import tqdm

    bar = tqdm(total=epochs, desc=label or "fit", unit="epoch", disable=not progress, leave=True)
    try:
        for epoch in range(history.epochs, history.epochs + epochs):
            started = time.perf_counter()
            model.train()
            _optimizer_mode(optimizer, "train")
            if "train" in pairs:
                step_losses, sizes, correct = _train_epoch_in_memory(
                    model, optimizer, loss_fn, *pairs["train"], batch_size, epoch_generator(history.seed, epoch))
            else:
                step_losses, sizes, correct = _train_epoch_loader(model, optimizer, loss_fn, loaders["train"],
                                                                  device, dtype)
            losses = step_losses.double().cpu()  # the one read-back of the epoch
            bad = torch.nonzero(~torch.isfinite(losses))
            if len(bad):
                step = int(bad[0]) + 1
                raise DivergenceError(
                    f"the training loss became {float(losses[step - 1])} at epoch {epoch + 1}, step {step} of "
                    f"{len(losses)} (optimizer step {steps_done + step}) with lr = {_lr_of(optimizer):g}. "
                    f"The learning rate is probably too large: try a smaller one, for example "
                    f"{_lr_of(optimizer) / 10:g}.", history)
            seen = float(sizes.sum())
            train_loss = float((losses * sizes).sum() / seen)
            train_accuracy = float(correct) / seen
            steps_done += len(losses)
            _optimizer_mode(optimizer, "eval")  # Schedule-Free: evaluate and save the average x, not y
            if "val" in pairs:
                val_loss, val_accuracy = _evaluate_tensors(model, *pairs["val"], loss_fn)
            elif "val" in loaders:
                val_loss, val_accuracy = evaluate(model, loaders["val"], loss=loss_fn, device=device)
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
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, history)
            if progress:
                postfix = {"loss": f"{train_loss:.4f}", "acc": f"{train_accuracy:.3f}"}
                if not math.isnan(val_loss):
                    postfix.update(val_loss=f"{val_loss:.4f}", val_acc=f"{val_accuracy:.3f}")
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
    finally:
        bar.close()
    return history


def _train_step(model, optimizer, loss_fn, inputs, targets, name="train batch"):
    """One optimizer step on one batch; returns the batch loss and the logits, both detached."""
    logits = _forward(model, inputs, targets, name)
    batch_loss = loss_fn(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    batch_loss.backward()
    optimizer.step()
    return batch_loss.detach(), logits.detach()


def _train_epoch_in_memory(model, optimizer, loss_fn, X, y, batch_size, generator):
    """One epoch over in-memory tensors: one gather, then slices. Nothing is read back to the host here."""
    n = X.shape[0]
    order = torch.randperm(n, generator=generator).to(X.device, non_blocking=True)
    X_epoch, y_epoch = X.index_select(0, order), y.index_select(0, order)
    batch = n if batch_size is None else min(int(batch_size), n)
    step_losses, step_logits = [], []
    for start in range(0, n, batch):
        inputs, targets = X_epoch[start:start + batch], y_epoch[start:start + batch]
        batch_loss, logits = _train_step(model, optimizer, loss_fn, inputs, targets)
        step_losses.append(batch_loss)
        step_logits.append(logits)
    sizes = torch.tensor([min(batch, n - start) for start in range(0, n, batch)], dtype=torch.float64)
    logits = torch.cat(step_logits)
    correct = ((logits > 0) == (y_epoch > 0.5)).sum()
    return torch.stack(step_losses), sizes, int(correct)


def _train_epoch_loader(model, optimizer, loss_fn, loader, device, dtype):
    """One epoch over a DataLoader (each batch is checked on the host, then moved to the device)."""
    step_losses, sizes, correct = [], [], 0
    counts = []
    for step, batch in enumerate(loader):
        inputs, targets = _check_pair(batch, f"train batch {step + 1}", dtype)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        batch_loss, logits = _train_step(model, optimizer, loss_fn, inputs, targets, f"train batch {step + 1}")
        step_losses.append(batch_loss)
        counts.append(((logits > 0) == (targets > 0.5)).sum())
        sizes.append(len(targets))
    if not step_losses:
        raise ValueError("the train DataLoader yielded no batches")
    correct = int(torch.stack(counts).sum())
    return torch.stack(step_losses), torch.tensor(sizes, dtype=torch.float64), correct


def evaluate(model: torch.nn.Module, data, *, loss: Callable | None = None, device=None,
             optimizer: torch.optim.Optimizer | None = None) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on ``data`` (an ``(X, y)`` pair or a DataLoader), in eval mode.

    The input is checked as in :func:`fit`; ``device`` defaults to the model's. Pass the ``optimizer`` when
    it has an ``eval()`` method (Schedule-Free): it is called first, so the model is evaluated at the
    average x rather than at the training point y (and stays there: call ``optimizer.train()`` to go on
    training by hand; :func:`fit` does).
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if data is None:
        raise ValueError("data is None: evaluate needs an (X, y) pair of tensors or a DataLoader")
    if optimizer is not None:
        _optimizer_mode(optimizer, "eval")
    loss_fn = torch.nn.BCEWithLogitsLoss() if loss is None else loss
    dtype = _model_dtype(model)
    if device is None:
        device = next((param.device for param in model.parameters()), torch.device("cpu"))
    else:
        device = _named_device(device, "device")
    if _is_loader(data):
        batches = ((f"evaluation batch {i + 1}", _check_pair(batch, f"evaluation batch {i + 1}", dtype))
                   for i, batch in enumerate(data))
    else:
        batches = [("evaluation data", _check_pair(data, "evaluation data", dtype))]
    total_loss, correct, seen = 0.0, 0, 0
    for name, (X, y) in batches:
        batch_loss, batch_accuracy = _evaluate_tensors(model, X.to(device), y.to(device), loss_fn, name)
        total_loss += batch_loss * len(y)
        correct += round(batch_accuracy * len(y))
        seen += len(y)
    if seen == 0:
        raise ValueError("evaluate: the data is empty")
    return total_loss / seen, correct / seen


def _optimizer_mode(optimizer, mode: str) -> None:
    """Call ``optimizer.train()`` or ``optimizer.eval()`` where the optimizer has it (Schedule-Free's do)."""
    switch = getattr(optimizer, mode, None)
    if callable(switch):
        switch()


@torch.no_grad()
def _evaluate_tensors(model, X, y, loss_fn, name="validation data") -> tuple[float, float]:
    """Loss and accuracy on checked tensors already on the model's device (one read-back)."""
    was_training = model.training
    model.eval()
    try:
        logits = _forward(model, X, y, name)
        both = torch.stack([loss_fn(logits, y).to(torch.float64),
                            ((logits > 0) == (y > 0.5)).sum().to(torch.float64)]).cpu()
    finally:
        model.train(was_training)
    return float(both[0]), float(both[1]) / len(y)


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------
def save_checkpoint(path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, history: History) -> None:
    """Save model weights, optimizer state, history and torch's random state to ``path`` (atomically).

    Everything stored is tensors and plain Python values, so
    :func:`load_checkpoint` reads it back with ``torch.load(weights_only=True)``.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history.to_dict(),
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


def load_checkpoint(path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                    restore_rng: bool = True) -> History:
    """Load a :func:`save_checkpoint` file into ``model`` (and ``optimizer``); return its :class:`History`.

    The file is read with ``weights_only=True`` (no code runs while loading).
    Pass the returned history to ``fit(..., history=...)`` to continue training
    exactly where the saved run stopped.
    """
    payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a course_lib.training checkpoint")
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if restore_rng:
        torch.set_rng_state(payload["torch_rng"])
        if payload["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"][: torch.cuda.device_count()])
    return History.from_dict(payload["history"])


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
                  loss: Callable | None = None, device=None, seed: int = 0, smoothing: float = 0.9,
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
    loss_fn = torch.nn.BCEWithLogitsLoss() if loss is None else loss
    X, y = _check_pair(train, "lr_range_test's train", _model_dtype(model), loader_allowed=False)
    _check_model_output(model, X, "train")
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
            batch_loss = loss_fn(_forward(model, inputs, targets, f"train batch {k + 1}"), targets)
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
