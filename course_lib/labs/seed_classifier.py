"""Notebook 08, training the seed classifier: its six optimizers, one run or a batched grid of runs, one run as a
figure, and the playground over it.

:data:`METHODS` names the six optimizers (full-batch GD, SGD, momentum, RMSProp, Adam, AdamW);
:func:`train_classifier` trains the seed network with one of them through :func:`course_lib.training.fit`;
:func:`train_classifiers` trains many runs at once as one batched network (notebook 08's grids).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import methods, optim, rules
from ..data import breast_cancer
from ..devices import device_argument, epoch_generator, seed_everything
from ..models import seed_classifier
from ..plotting import plot_history
from ..training import DivergenceError, History, fit

__all__ = ["Method", "METHODS", "METHOD_TITLES", "make_optimizer", "train_classifier", "train_classifiers",
           "update_ratios", "show_training_run", "training_playground"]


@dataclass(frozen=True)
class Method:
    """How notebook 08 trains with one optimizer: its class name in :mod:`course_lib.optim` and ``torch.optim``,
    the key of its update rule in :data:`course_lib.rules.RULES` (what :func:`train_classifiers` runs), fixed
    options and whether batches are full."""

    name: str
    optimizer: str
    rule: str
    options: dict = field(default_factory=dict)
    full_batch: bool = False


#: Notebook 08's optimizers, in its order: rows of the method table (:mod:`course_lib.methods`), "sgd" being gradient
#: descent on minibatches and "gd" on the full batch.
NAMES = ("gd", "sgd", "momentum", "rmsprop", "adam", "adamw")
FULL_BATCH = ("gd",)


def _method(name: str) -> Method:
    row = methods.get(name)
    return Method(name, row.optimizer, row.rule, dict(row.options), full_batch=name in FULL_BATCH)


METHODS = {name: _method(name) for name in NAMES}
#: How notebook 08 names them: the method table's titles ("SGD", "SGD + momentum"), full-batch GD said as such.
METHOD_TITLES = {name: "full-batch GD" if name in FULL_BATCH else methods.get(name).title for name in NAMES}


def make_optimizer(method: str, params, lr: float, *, library: str = "course",
                   options: dict | None = None) -> torch.optim.Optimizer:
    """The optimizer of ``method`` (a key of :data:`METHODS`) from ``course_lib.optim`` or ``torch.optim``.

    ``options`` (e.g. ``{"weight_decay": 1.0}``) override or extend the method's fixed options.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    if library == "course":
        module = optim
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


def update_ratios(dataset, method: str, lr: float, *, epochs: int = 50, batch_size: int = 32, seed: int = 0,
                  device=None):
    r"""Train exactly as :func:`train_classifier` and record every step's update-to-weight ratio per tensor.

    .. math::  r_t = \frac{\lVert \theta_t - \theta_{t-1} \rVert}{\lVert \theta_{t-1} \rVert}
               \quad\text{for each parameter tensor (each layer's weight and bias)}

    The ratios are read by the optimizer's step hooks (``register_step_pre_hook`` and
    ``register_step_post_hook``), which change nothing in the run. Returns ``(model, history, ratios)`` with
    ``ratios`` a dict from parameter name (``'0.weight'``, …) to an array of one ratio per optimizer step.
    """
    seed_everything(seed)
    model = seed_classifier(dataset.n_features)
    optimizer = make_optimizer(method, model.parameters(), lr)
    named = list(model.named_parameters())
    before, ratios = {}, {name: [] for name, _ in named}

    def remember(opt, args, kwargs):
        before.update({name: p.detach().clone() for name, p in named})

    def measure(opt, args, kwargs):
        for name, p in named:
            ratios[name].append((torch.linalg.vector_norm(p.detach() - before[name])
                                 / torch.linalg.vector_norm(before[name])).item())

    handles = [optimizer.register_step_pre_hook(remember), optimizer.register_step_post_hook(measure)]
    try:
        history = fit(model, optimizer, dataset.train, dataset.val, epochs=epochs,
                      batch_size=None if METHODS[method].full_batch else batch_size, device=device,
                      progress=False, seed=seed, label=f"{METHOD_TITLES[method]}, η = {lr:g}")
    finally:
        for handle in handles:
            handle.remove()
    return model, history, {name: np.array(values) for name, values in ratios.items()}


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
            groups.append([name, extra, rules.RULES[spec.rule](**{**spec.options, **extra}), [k]])
    device = device_argument(device)
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


def show_training_run(method: str = "adam", lr: float = 1e-3, epochs: int = 50, *, dataset=None, seed: int = 0,
                      device=None, history=None):
    """Train the seed classifier once and draw its learning curves (loss and accuracy); returns the figure.

    This is the view behind notebook 08's playground. ``dataset`` defaults to
    :func:`course_lib.data.breast_cancer`. A learning rate that makes training
    diverge is shown as a message on the figure instead of an error. Pass the
    ``history`` of a run already made with these settings to draw it without training again.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.8))
    colour_key = "gd" if method == "sgd" else method
    try:
        if history is None:
            dataset = dataset if dataset is not None else breast_cancer()
            _, history = train_classifier(dataset, method, lr, epochs=epochs, seed=seed, device=device)
    except DivergenceError as error:
        for ax in axes:
            ax.text(0.5, 0.5, "diverged:\n" + str(error).split(". ")[0], ha="center", va="center", wrap=True,
                    transform=ax.transAxes, fontsize=9)
        fig.suptitle(f"{METHOD_TITLES[method]}, η = {lr:g}: diverged")
        return fig
    plot_history(history, axes, method=colour_key, label=METHOD_TITLES[method])
    axes[1].legend(loc="lower right")
    fig.suptitle(f"{METHOD_TITLES[method]}, η = {lr:g}: validation accuracy {history.val_accuracy[-1]:.3f} "
                 f"after {history.epochs} epochs")
    return fig


def training_playground(dataset=None, *, device=None, history=None):
    """Notebook 08: pick an optimizer, a learning rate and a number of epochs; see the classifier's learning curves.

    The view is :func:`show_training_run` (each change trains the seed network once, a fraction of a second on a
    laptop CPU for the breast-cancer data). ``history``, the run of the first setting shown (Adam, η = 10⁻³,
    50 epochs, seed 0) when it was already made, is drawn for that setting instead of training it again.
    """
    import ipywidgets as ipw

    from ..widgets import playground

    dataset = dataset if dataset is not None else breast_cancer()

    def draw(method, lr, epochs):
        known = history if (method, lr, epochs) == ("adam", 1e-3, 50) else None
        return show_training_run(method, lr, epochs, dataset=dataset, device=device, history=known)

    return playground(
        draw,
        method=ipw.Dropdown(options=[(title, name) for name, title in METHOD_TITLES.items()], value="adam",
                            description="optimizer"),
        lr=ipw.FloatLogSlider(value=1e-3, base=10, min=-4, max=1, step=0.25, description="η",
                              continuous_update=False, readout_format=".1e"),
        epochs=ipw.IntSlider(value=50, min=1, max=200, description="epochs", continuous_update=False),
    )
