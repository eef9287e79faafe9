"""The course's training loop: :func:`fit`, :func:`evaluate`, the :class:`History` of a run, and checkpoints
that resume a run exactly.

:func:`fit` is a plain training loop made fast for in-memory tables: the data
moves to the device once, every epoch gathers one shuffled copy of it, and
minibatches are slices of that copy (no DataLoader round trip, no per-step
host/device synchronisation: losses are read back once per epoch). A
``torch.utils.data.DataLoader`` is accepted too. The model returns logits: one per sample for 0/1 labels
(``BCEWithLogitsLoss``, the default), or class logits for ``loss='cross_entropy'`` (classes or sequences).

>>> from course_lib import data, optim, training
>>> dataset = data.breast_cancer()
>>> training.seed_everything(0)
>>> model = training.seed_classifier(dataset.n_features)
>>> history = training.fit(model, optim.Adam(model.parameters(), lr=1e-3), dataset.train, dataset.val,
...                        epochs=50, batch_size=32, progress=False)

What it stands on is re-exported here: the device and seeds (:mod:`course_lib.devices`; ``COURSE_DEVICE``
forces a device), the argument checks and losses (:mod:`course_lib.inputs`), the schedules and parameter
groups (:mod:`course_lib.schedules`), and the learning-rate range test (:mod:`course_lib.range_test`).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .devices import (
    DEVICE_ENV,
    device_argument,
    epoch_generator,
    move_optimizer_state,
    named_device,
    pick_device,
    seed_everything,
)
from .inputs import (
    LOSSES,
    autocast_argument,
    batch_size_argument,
    check_classes,
    check_model_and_optimizer,
    check_model_output,
    check_pair,
    correct,
    cross_entropy,
    forward,
    is_loader,
    loss_argument,
    model_dtype,
    positive_int,
    precision,
    scheduler_argument,
)
from .models import seed_classifier  # noqa: F401  (it lived here; notebook 08 and its tests use training.seed_classifier)
from .range_test import LRRangeTest, range_test_lrs
from .schedules import DECAY_SHAPES, NORM_LAYERS, param_groups, warmup_cosine, warmup_stable_decay

__all__ = [
    "DEVICE_ENV",
    "pick_device",
    "seed_everything",
    "seed_classifier",
    "History",
    "DivergenceError",
    "fit",
    "backward_step",
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
    "range_test_lrs",
    "lr_range_test",
]

CHECKPOINT_FORMAT = "course_lib.training.checkpoint/1"


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


# --------------------------------------------------------------------------------------
# Losses and input checks
# --------------------------------------------------------------------------------------
class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss. ``history`` holds the epochs completed before it."""

    def __init__(self, message: str, history: History | None = None):
        super().__init__(message)
        self.history = history


def _lr_of(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------
def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train, val=None, *, epochs: int | None = None,
        batch_size: int | None = 32, loss: Callable | str | None = None, device=None, progress: bool = True,
        seed: int | None = None, history: History | None = None, checkpoint=None, label: str = "",
        max_steps: int | None = None, schedule=None, clip_grad_norm: float | None = None, autocast=None,
        early_stopping: int | None = None) -> History:
    r"""Train ``model`` (logits out) with ``optimizer`` and return the :class:`History`.

    ``train`` and ``val`` are ``(X, y)`` pairs or DataLoaders yielding such pairs; ``loss`` is ``'bce'``
    (default), ``'cross_entropy'`` or a callable (see :mod:`course_lib.inputs`). In-memory pairs move to
    ``device`` once; each epoch gathers one copy shuffled by :func:`epoch_generator` (``seed``, epoch) and
    trains on consecutive slices of ``batch_size`` rows (``None``: full batch). Each step is

    .. math::  \ell_b = \text{loss}(\text{model}(X_b), y_b), \qquad
               \theta \leftarrow \text{optimizer.step}(\nabla_\theta \ell_b)

    Budget: ``epochs`` more epochs (default 50), or ``max_steps`` optimizer steps in all (counting a resumed
    ``history``'s), whichever ends first; an epoch cut short by ``max_steps`` is recorded over its steps.
    The recipe (each optional): ``schedule``, a function ``factor(step)`` of the global step (e.g.
    :func:`~course_lib.schedules.warmup_cosine`; run as a ``LambdaLR`` that a resumed run continues) or a
    torch ``LRScheduler`` built on ``optimizer``, stepped after every step (refused for Schedule-Free);
    ``clip_grad_norm``, the global gradient norm's bound (the norm before clipping is logged in
    ``History.step_grad_norm``; ``math.inf`` logs without clipping); ``autocast=torch.bfloat16``, forward
    passes and losses under ``torch.autocast`` (float32 master weights); ``early_stopping=patience``, stop
    when the validation loss has not improved for ``patience`` epochs and put back the best epoch's weights.

    ``seed`` defaults to a draw from torch's generator. ``history`` continues an earlier run (its shuffle seed,
    early stopping's state); ``checkpoint`` (a path) saves model, optimizer, history, best weights and an
    ``LRScheduler``'s state after every epoch, so a run resumed from it (:func:`load_checkpoint`) ends bit
    for bit as the uninterrupted one. Ctrl-C (``KeyboardInterrupt``) is re-raised with the epochs completed
    so far as ``error.history``. Losses are read back once per epoch (no step waits for the host).

    Bad input raises ``ValueError`` before any step (a DataLoader's batches as they come); an absent
    ``device``, ``RuntimeError``; a NaN or infinite loss, :class:`DivergenceError` naming the epoch, the step
    and the learning rate. An optimizer with ``train()``/``eval()`` (Schedule-Free) is in train mode for the
    steps and in eval mode for validation, checkpoints and after ``fit`` (after an interrupt or error too).
    See docs/training.md.
    """
    run = _Run(model, optimizer, train, val, epochs=epochs, batch_size=batch_size, loss=loss, device=device,
               seed=seed, history=history, checkpoint=checkpoint, label=label, max_steps=max_steps,
               schedule=schedule, clip_grad_norm=clip_grad_norm, autocast=autocast, early_stopping=early_stopping)
    history = run.history
    from tqdm.auto import tqdm

    bar = tqdm(total=run.epochs, desc=label or "fit", unit="epoch", disable=not progress, leave=True)
    try:
        while run.budget_left():
            started = time.perf_counter()
            model.train()
            _optimizer_mode(optimizer, "train")
            record = run.train_epoch(run.batches(history.epochs))
            _optimizer_mode(optimizer, "eval")  # Schedule-Free: evaluate and save the average x, not y
            run.append(record, *run.validate(), seconds=time.perf_counter() - started)
            stop = early_stopping is not None and _early_stopping_step(history, model, early_stopping)
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, history, scheduler=run.saved_scheduler)
            _show_progress(bar, history)
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


def backward_step(loss: torch.Tensor, optimizers, *, parameters=None, clip_grad_norm: float | None = None,
                  before_step: Callable[[], None] | None = None, schedulers=()) -> torch.Tensor | None:
    r"""The step every training loop of the course takes after its forward pass: zero the gradients,
    ``loss.backward()``, the global gradient norm ‖g‖₂ over ``parameters`` (and g ← g·min(1, c/‖g‖₂) for
    c = ``clip_grad_norm``; ``math.inf`` measures without clipping), ``before_step()`` (notebook 12's weight decay
    θ ← θ·(1 − f(k)/τ)), ``step()`` of each of ``optimizers`` (Muon and AdamW, say), then of each of ``schedulers``
    (None skipped). Returns the norm before clipping, a 0-d tensor on the device (nothing here waits for the
    host), or None without ``clip_grad_norm``."""
    if clip_grad_norm is not None and parameters is None:
        raise ValueError("clip_grad_norm needs parameters: the tensors whose gradients' norm is measured")
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = None if clip_grad_norm is None else torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
    if before_step is not None:
        before_step()
    for optimizer in optimizers:
        optimizer.step()
    for scheduler in schedulers:
        if scheduler is not None:
            scheduler.step()
    return norm


def _early_stopping_step(history: History, model, patience: int) -> bool:
    """Record the last epoch's validation loss in early stopping's state; True when patience ran out."""
    if history.val_loss[-1] < history.best_val_loss:
        history.best_val_loss, history.epochs_since_best, history.best_epoch = history.val_loss[-1], 0, history.epochs
        history.best_weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return False
    history.epochs_since_best += 1
    return history.epochs_since_best >= patience


def _show_progress(bar, history: History) -> None:
    if bar.disable:
        return
    postfix = {"loss": f"{history.train_loss[-1]:.4f}", "acc": f"{history.train_accuracy[-1]:.3f}"}
    if not math.isnan(history.val_loss[-1]):
        postfix.update(val_loss=f"{history.val_loss[-1]:.4f}", val_acc=f"{history.val_accuracy[-1]:.3f}")
    bar.set_postfix(postfix, refresh=False)
    bar.update(1)


class _Run:
    """One ``fit`` call: its arguments checked (all in ``__init__``, before any step), its data on the device,
    and the pieces of its loop: the batches of an epoch, one step, one epoch, validation, the record."""

    def __init__(self, model, optimizer, train, val, *, epochs, batch_size, loss, device, seed, history,
                 checkpoint, label, max_steps, schedule, clip_grad_norm, autocast, early_stopping):
        self.epochs = positive_int(epochs, "epochs", allow_zero=True)
        self.max_steps = positive_int(max_steps, "max_steps")
        if self.epochs is None and self.max_steps is None:
            self.epochs = 50
        self.batch_size = batch_size_argument(batch_size)
        check_model_and_optimizer(model, optimizer)
        if train is None:
            raise ValueError("train is None: fit needs training data, an (X, y) pair of tensors or a DataLoader")
        self.objective = loss_argument(loss)
        self.loss = loss
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
            raise ValueError("clip_grad_norm must be a positive number (math.inf: log the norm, do not clip) or "
                             f"None; got {clip_grad_norm!r}")
        self.clip = None if clip_grad_norm is None else float(clip_grad_norm)
        if positive_int(early_stopping, "early_stopping") is not None and val is None:
            raise ValueError("early_stopping needs validation data: pass val=(X, y)")
        self.device = device_argument(device)
        self.autocast = autocast_argument(autocast, self.device)
        self.dtype, kind = model_dtype(model), self.objective.targets
        self.loaders, self.pairs = {}, {}
        for name, data in (("train", train), ("val", val)):
            if data is not None and is_loader(data):
                self.loaders[name] = data
            elif data is not None:
                self.pairs[name] = check_pair(data, name, self.dtype, targets=kind)
                check_model_output(model, self.pairs[name][0], name, self.pairs[name][1], kind)
        if history is None:
            seed = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else seed
            history = History(seed=int(seed), label=label, loss=self.objective.name)
        elif seed is not None and int(seed) != history.seed:
            raise ValueError(f"seed={seed} differs from the resumed history's shuffle seed {history.seed}")
        self.history, self.first_epoch = history, history.epochs
        self.steps_done = history.steps[-1] if history.steps else 0
        self.scheduler = scheduler_argument(schedule, optimizer, self.steps_done)
        self.saved_scheduler = schedule if isinstance(schedule, torch.optim.lr_scheduler.LRScheduler) else None
        model.to(self.device)
        move_optimizer_state(optimizer, self.device)
        self.pairs = {name: (X.to(self.device), y.to(self.device)) for name, (X, y) in self.pairs.items()}
        self.model, self.optimizer = model, optimizer
        self.parameters = [param for param in model.parameters() if param.requires_grad]

    def budget_left(self) -> bool:
        return ((self.epochs is None or self.history.epochs < self.first_epoch + self.epochs)
                and (self.max_steps is None or self.steps_done < self.max_steps))

    def batches(self, epoch: int):
        """The epoch's ``(inputs, targets, name)`` on the device, at most the steps left of ``max_steps``."""
        budget = None if self.max_steps is None else self.max_steps - self.steps_done
        if "train" in self.pairs:
            return _in_memory_batches(*self.pairs["train"], self.batch_size, epoch_generator(self.history.seed, epoch),
                                      budget)
        return self._loader_batches(self.loaders["train"], budget)

    def _loader_batches(self, loader, budget):
        """A DataLoader's batches, each checked on the host before its step."""
        kind, classes = self.objective.targets, None
        for step, batch in enumerate(loader):
            if budget is not None and step >= budget:
                break
            name = f"train batch {step + 1}"
            inputs, targets = check_pair(batch, name, self.dtype, targets=kind)
            if kind == "classes":  # a label ≥ C would stop cross-entropy with an index error (a device assert on CUDA)
                if classes is None:
                    classes = check_model_output(self.model, inputs.to(self.device), name, targets, kind)
                check_classes(targets, classes, name)
            yield (inputs.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True), name)

    def step(self, inputs, targets, name):
        """One optimizer step on one batch; returns the detached batch loss, the count of right predictions and
        the gradient norm before clipping (None without clipping), all still on the device."""
        with precision(self.device, self.autocast):
            logits = forward(self.model, inputs, targets, name, self.objective.targets)
            batch_loss = self.objective.function(logits, targets)
        norm = backward_step(batch_loss, [self.optimizer], parameters=self.parameters, clip_grad_norm=self.clip,
                             schedulers=[self.scheduler])
        return batch_loss.detach(), correct(logits.detach(), targets, self.objective.targets), norm

    def train_epoch(self, batches):
        """One epoch over ``batches``; one read-back at its end: losses, right predictions, gradient norms."""
        step_losses, counts, norms, sizes, lrs = [], [], [], [], []
        for inputs, targets, name in batches:
            lrs.append(_lr_of(self.optimizer))
            batch_loss, right, norm = self.step(inputs, targets, name)
            step_losses.append(batch_loss)
            counts.append(right)
            norms += [] if norm is None else [norm]
            sizes.append(targets.numel())
        if not step_losses:
            raise ValueError("the train DataLoader yielded no batches")
        parts = [torch.stack(step_losses).to(torch.float64), torch.stack(counts).to(torch.float64)]
        values = torch.cat(parts + ([torch.stack(norms).to(torch.float64)] if norms else [])).cpu()
        n = len(step_losses)
        return values[:n], torch.tensor(sizes, dtype=torch.float64), float(values[n:2 * n].sum()), lrs, \
            values[2 * n:].tolist()

    def validate(self) -> tuple[float, float]:
        """Validation loss and accuracy after an epoch (NaN without validation data)."""
        if "val" in self.pairs:
            return _evaluate_tensors(self.model, *self.pairs["val"], self.objective.function,
                                     kind=self.objective.targets, autocast=self.autocast)
        if "val" in self.loaders:
            return evaluate(self.model, self.loaders["val"], loss=self.loss, device=self.device,
                            autocast=self.autocast)
        return float("nan"), float("nan")

    def append(self, record, val_loss: float, val_accuracy: float, *, seconds: float) -> None:
        """The epoch's line of the history, after checking its losses are finite (else DivergenceError)."""
        losses, sizes, right, lrs, norms = record
        history, epoch = self.history, self.history.epochs + 1
        bad = torch.nonzero(~torch.isfinite(losses))
        if len(bad):
            step = int(bad[0]) + 1
            raise DivergenceError(
                f"the training loss became {float(losses[step - 1])} at epoch {epoch}, step {step} of "
                f"{len(losses)} (optimizer step {self.steps_done + step}) with lr = {lrs[step - 1]:g}. "
                f"The learning rate is probably too large: try a smaller one, for example "
                f"{lrs[step - 1] / 10:g}.", history)
        self.steps_done += len(losses)
        if ("val" in self.pairs or "val" in self.loaders) and not math.isfinite(val_loss):
            lr = _lr_of(self.optimizer)
            raise DivergenceError(
                f"the validation loss became {val_loss} after epoch {epoch} (optimizer step {self.steps_done}) "
                f"with lr = {lr:g}: the last steps blew the weights up. The learning rate is "
                f"probably too large: try a smaller one, for example {lr / 10:g}.", history)
        seen = float(sizes.sum())
        history.append(train_loss=float((losses * sizes).sum() / seen), train_accuracy=right / seen,
                       val_loss=val_loss, val_accuracy=val_accuracy, seconds=seconds, lr=_lr_of(self.optimizer),
                       steps=self.steps_done)
        history.step_loss.extend(losses.tolist())
        history.step_lr.extend(lrs)
        history.step_grad_norm.extend(norms)


def _in_memory_batches(X, y, batch_size, generator, budget):
    """One epoch's batches of in-memory tensors (at most ``budget``): one gather, then slices."""
    n = X.shape[0]
    order = torch.randperm(n, generator=generator).to(X.device, non_blocking=True)
    X_epoch, y_epoch = X.index_select(0, order), y.index_select(0, order)
    batch = n if batch_size is None else min(int(batch_size), n)
    for step, start in enumerate(range(0, n, batch)):
        if budget is not None and step >= budget:
            break
        yield X_epoch[start:start + batch], y_epoch[start:start + batch], "train batch"


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
    objective = loss_argument(loss)
    if optimizer is not None:
        _optimizer_mode(optimizer, "eval")
    dtype = model_dtype(model)
    if device is None:
        device = next((param.device for param in model.parameters()), torch.device("cpu"))
    else:
        device = named_device(device, "device")
    autocast = autocast_argument(autocast, device)
    kind = objective.targets
    if is_loader(data):
        batches = ((f"evaluation batch {i + 1}", check_pair(batch, f"evaluation batch {i + 1}", dtype, targets=kind))
                   for i, batch in enumerate(data))
    else:
        batches = [("evaluation data", check_pair(data, "evaluation data", dtype, targets=kind))]
    total_loss, correct, seen = 0.0, 0, 0
    for name, (X, y) in batches:
        if kind == "classes":
            check_model_output(model, X, name, y, kind)
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
        with precision(X.device, autocast):
            logits = forward(model, X, y, name, kind)
            value = loss_fn(logits, y)
        both = torch.stack([value.to(torch.float64), correct(logits, y, kind).to(torch.float64)]).cpu()
    finally:
        model.train(was_training)
    return float(both[0]), float(both[1]) / y.numel()


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
    (Gugger, 2018): :meth:`LRRangeTest.from_losses`. The loss falls once η is large
    enough to make progress and shoots up once η is too large; a good starting
    learning rate sits below the bottom of the curve. The test stops early when
    the loss is not finite or the smoothed loss exceeds ``diverge_factor`` times
    its lowest value. Minibatches are shuffled slices, as in :func:`fit`.

    The model's weights and the optimizer's state (learning rates included) are
    restored afterwards, so the test leaves no trace on them.
    """
    lrs = range_test_lrs(start_lr, end_lr, steps, smoothing=smoothing, diverge_factor=diverge_factor)
    check_model_and_optimizer(model, optimizer)
    device = device_argument(device)
    objective = loss_argument(loss)
    X, y = check_pair(train, "lr_range_test's train", model_dtype(model), loader_allowed=False,
                       targets=objective.targets)
    check_model_output(model, X, "train", y, objective.targets)
    batch_size_argument(batch_size)

    def measured_losses():  # loss k at η_k, then the step at η_k (none after the last loss read)
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
            batch_loss = objective.function(forward(model, inputs, targets, f"train batch {k + 1}",
                                                     objective.targets), targets)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            yield float(batch_loss.detach())
            optimizer.step()

    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_training = model.training
    n = X.shape[0]
    batch = n if batch_size is None else min(int(batch_size), n)
    try:
        model.to(device)
        move_optimizer_state(optimizer, device)
        X, y = X.to(device), y.to(device)
        model.train()
        return LRRangeTest.from_losses(lrs, measured_losses(), smoothing=smoothing, diverge_factor=diverge_factor)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(saved_training)
