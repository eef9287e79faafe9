"""Notebook 12: which optimizer, on problems where the choice matters — the comparison protocol and its sweeps.

The protocol (in the spirit of AlgoPerf, Dahl et al. 2023, at a laptop's scale)
--------------------------------------------------------------------------------
* **Same budget.** Every run of a workload takes the same number of optimizer steps on the same minibatches
  (the batch order depends on the seed only, not on the optimizer).
* **Same tuning effort.** Every optimizer gets the same number of tuning runs: its learning rate η on a grid of
  3 points per decade, η = 10^(k/3), over a window of ``len(grid)`` points placed where that optimizer works
  (a winner at the window's edge is reported, see :func:`summarize`), and ``len(seeds)`` seeds at each η.
  Every other hyperparameter is fixed in advance at its usual value (:data:`OPTIMIZERS`).
* **The same recipe for all** (``course_lib.training``'s helpers): linear warm-up from 0 then cosine decay to 0
  (``warmup_cosine``), gradient clipping at global norm 1 (the norm before clipping is logged), no weight
  decay on biases and norms (``param_groups``); decoupled weight decay λ = 0.1 for the optimizers that have
  it (AdamW and its relatives; Adam and SGD run without decay, their torch defaults); Adam-type β₂ = 0.95
  on the transformer (0.999 elsewhere). Schedule-Free AdamW keeps its own warm-up and no schedule, and is
  evaluated at its averaged point x (``eval()``).
* **What is reported:** per run, the validation curve, its best point, and the steps (and seconds) to reach a
  target fixed per workload before the comparison; per optimizer, the η chosen by
  :func:`course_lib.benchmark.select` (the lowest mean over seeds of the final validation loss, a diverged run
  counting as the worst), and the spread over seeds there.

The optimizers are the references (``torch.optim``, ``lion_pytorch.Lion``, ``schedulefree.AdamWScheduleFree``);
``course_lib.optim``'s classes equal them (notebooks 06–10). Muon updates the hidden weight matrices and AdamW
the rest (embeddings, head, norms, biases), at one shared η through Muon's ``adjust_lr_fn="match_rms_adamw"``.

Results file (``course_lib/results/where_it_matters.json``, schema ``where_it_matters/1``)
-------------------------------------------------------------------------------------------
::

    {"schema": "where_it_matters/1", "created_by": "experiments/where_it_matters.py",
     "config": {"seeds": [...], "device": str, "torch": str, "threads": int, "workers": int, "tiny": bool,
                "seconds": {NAME: float}},          # the script's wall-clock time per workload
     "workloads": {NAME: {
         "title": str, "description": str, "parameters": int, "steps": int, "warmup_steps": int,
         "batch_size": int, "eval_every": int, "eval_steps": [0, ...], "target": {"metric": "val_loss",
         "value": float}, "betas": [β₁, β₂], "clip_norm": float, "weight_decay": float,
         "reference_losses": {...},            # the LM: entropy rate, unigram entropy, ln V
         "token_bins": {...},                  # the LM: size and share of the frequent and rare bins
         "optimizers": {OPT: {"title": str, "lr_grid": [η...]}},
         "runs": [{"optimizer": OPT, "lr": η, "seed": int, "diverged": bool,
                   "val_loss": [...], "val_accuracy": [...],        # one per eval step (null after divergence)
                   "val_loss_frequent": [...], "val_loss_rare": [...],   # the LM only (its token bins)
                   "best_val_loss": float|null, "best_val_accuracy": float|null, "final_val_loss": float|null,
                   "steps_to_target": int|null, "seconds_to_target": float|null, "seconds": float,
                   "grad_norm_median": float|null, "clipped_fraction": float}],
         "summary": {OPT: {"best_lr": η, "best_lr_at_edge": bool, "best_val_loss_mean": float,
                           "best_val_loss_std": float, "final_val_loss_mean": float,
                           "best_val_accuracy_mean": float, "steps_to_target_median": int|null,
                           "reached_target": int, "lrs_within_0.05": int},
         "protocol": {...}}}}                  # optional: course_lib.benchmark.Protocol.to_dict() (grids, seeds,
                                               # pilot runs, selection metric and statistic, budget per optimizer)

Seconds are wall-clock on the machine that ran the script (``config``): compare them within one file only.

Controls file (``course_lib/results/controls.json``, schema ``where_it_matters_controls/1``, ``make controls``)
----------------------------------------------------------------------------------------------------------------
Runs that change one thing of the protocol each (``experiments/controls.py`` says which), at the seeds and best η
of the results file, so that each pairs with the stored run of its seed (:func:`check_controls`)::

    {"schema": ..., "created_by": "experiments/controls.py",
     "config": {"seeds": [...], "tiny": bool, "workers": int, "threads": int, "torch": str, "numpy": str,
                "python": str, "device": str, "seconds": float, "main_results": str, "psi_constant": float, ...},
     "uniform_workload": {"reference_losses": {...}, "token_bins": {...}, "corpus": {...}},
     "decay_multipliers": {WORKLOAD: {OPT: {"lr": η, "weight_decay": λ, "multiplier": ∏(1 − η_t λ)}}},
     "runs": [{"control": str, "workload": "lm"|"cnn"|"lm_uniform", "variant": {...make_optimizers options},
               ...the keys of a run above}]}
"""

from __future__ import annotations

import importlib.resources
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from .. import benchmark, methods, models, sweep
from ..training import param_groups, seed_everything, warmup_cosine

__all__ = ["OptimizerSpec", "OPTIMIZERS", "Workload", "lr_grid", "split_hidden", "make_optimizers",
           "lm_workload", "bin_floors", "cnn_workload", "train_run", "summarize", "SCHEMA"]

SCHEMA = "where_it_matters/1"


lr_grid = sweep.lr_grid


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer of the comparison: its title, its reference class (``build``, a dotted path) and the fixed
    options it gets."""

    title: str
    build: str
    options: dict = field(default_factory=dict)
    adam_betas: bool = False  # takes the workload's betas
    decay: bool = True  # gets the recipe's decoupled weight decay λ


def _compared(name: str, options: dict | None = None, **recipe) -> OptimizerSpec:
    """The spec of method ``name`` of :mod:`course_lib.methods`: its title, reference and options, then ``options``
    and the recipe's switches."""
    method = methods.get(name)
    return OptimizerSpec(method.title, method.reference, {**method.options, **(options or {})}, **recipe)


OPTIMIZERS = {
    "momentum": _compared("momentum", decay=False),
    "nesterov": _compared("nesterov", decay=False),
    "adam": _compared("adam", adam_betas=True, decay=False),
    "adamw": _compared("adamw", adam_betas=True),
    "nadam": _compared("nadam", {"decoupled_weight_decay": True}, adam_betas=True),
    "radam": _compared("radam", {"decoupled_weight_decay": True}, adam_betas=True),
    "adafactor": _compared("adafactor"),
    "lion": _compared("lion"),
    "muon": _compared("muon", {"adjust_lr_fn": "match_rms_adamw"}, adam_betas=True),
    "schedule_free": _compared("schedule_free", adam_betas=True),
}


def split_hidden(groups: list[dict], model: torch.nn.Module, hidden: Callable[[str, torch.Tensor], bool]
                 ) -> tuple[list[torch.Tensor], list[dict]]:
    """Take the parameters ``hidden(name, p)`` picks (Muon's matrices) out of :func:`training.param_groups`'
    ``groups``: returns those and the groups without them (empty groups dropped)."""
    picked = [p for name, p in model.named_parameters() if hidden(name, p)]
    ids = {id(p) for p in picked}
    rest = [{**g, "params": [p for p in g["params"] if id(p) not in ids]} for g in groups]
    return picked, [g for g in rest if g["params"]]


def make_optimizers(name: str, model: torch.nn.Module, lr: float, workload: Workload, *,
                    weight_decay: float | None = None, rest_lr: float | None = None,
                    options: dict | None = None) -> list[torch.optim.Optimizer]:
    """The optimizer(s) of ``name`` for ``model`` under the recipe: one, or Muon and AdamW for Muon.

    The controls of ``experiments/controls.py`` change one thing each (default None: the recipe's):

    * ``weight_decay``: λ for the weights that decay (the recipe: ``workload.weight_decay`` for the optimizers
      with decoupled decay, 0 for the others); biases and norms never decay.
    * ``rest_lr``: η for the parameters that are not the hidden matrices ``workload.hidden`` picks (embeddings,
      head, norms, biases), which then form their own param groups; ``lr`` stays the hidden matrices' η. For
      Muon this is its AdamW half's η (the recipe: one shared η).
    * ``options``: more constructor options (e.g. NAdam's ``momentum_decay`` ψ), over the spec's; for Muon they
      go to Muon's part.
    """
    spec = OPTIMIZERS[name]
    if weight_decay is None:
        decay = workload.weight_decay if spec.decay else 0.0
    elif isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (expected a number >= 0 or None)")
    else:
        decay = float(weight_decay)
    if rest_lr is not None and not (isinstance(rest_lr, (int, float)) and rest_lr > 0):
        raise ValueError(f"Invalid rest_lr value: {rest_lr} (expected a number > 0 or None)")
    options = {**spec.options, **(options or {})}
    if spec.adam_betas and name != "muon":  # Muon's own part has momentum, not betas
        options["betas"] = workload.betas
    if name == "schedule_free":
        options["warmup_steps"] = workload.warmup_steps
    groups = param_groups(model, decay)
    if name == "muon":
        hidden, rest = split_hidden(groups, model, workload.hidden)
        muon = methods.load(spec.build)(hidden, lr=lr, weight_decay=decay, **options)
        return [muon, methods.get("adamw").reference_class()(rest, lr=lr if rest_lr is None else rest_lr,
                                                              betas=workload.betas)]
    if rest_lr is not None:
        hidden, rest = split_hidden(groups, model, workload.hidden)
        groups = ([{"params": hidden, "weight_decay": decay}] if hidden else []) + [
            {**group, "lr": rest_lr} for group in rest]
    return [methods.load(spec.build)(groups, lr=lr, **options)]


@dataclass
class Workload:
    """A training problem of the comparison: model, data, evaluation, budget and grids (see the module docstring).

    ``model(seed)`` builds a fresh model; ``batch(generator)`` draws one training minibatch (inputs, targets);
    ``evaluate(model)`` returns a dict with ``val_loss`` and ``val_accuracy`` (and more); ``loss(output,
    targets)`` is the training loss; ``hidden(name, p)`` picks the matrices Muon updates.
    """

    name: str
    title: str
    description: str
    model: Callable[[int], torch.nn.Module]
    batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    evaluate: Callable[[torch.nn.Module], dict]
    loss: Callable
    hidden: Callable[[str, torch.Tensor], bool]
    steps: int
    warmup_steps: int
    batch_size: int
    eval_every: int
    target: float
    grids: dict[str, list[float]]
    betas: tuple[float, float] = (0.9, 0.999)
    clip_norm: float = 1.0
    weight_decay: float = 0.1
    extra: dict = field(default_factory=dict)

    @property
    def eval_steps(self) -> list[int]:
        return list(range(0, self.steps + 1, self.eval_every))


# --------------------------------------------------------------------------------------
# The language-model workload
# --------------------------------------------------------------------------------------
LM_GRIDS = {  # η = 10^(k/3) for five consecutive k each (1⅔ decades), placed by a one-seed pilot sweep
    "momentum": lr_grid(-2, 5),
    "nesterov": lr_grid(-2, 5),
    "adam": lr_grid(-9, 5),
    "adamw": lr_grid(-9, 5),
    "nadam": lr_grid(-9, 5),
    "radam": lr_grid(-9, 5),
    "adafactor": lr_grid(-4, 5),
    "lion": lr_grid(-11, 5),
    "muon": lr_grid(-5, 5),
    "schedule_free": lr_grid(-8, 5),
}


def lm_workload(*, steps: int = 240, warmup_steps: int = 24, batch_size: int = 16, context: int = 32,
                width: int = 32, depth: int = 2, heads: int = 2, eval_every: int = 20, eval_windows: int = 128,
                target: float = 3.8, grids: dict | None = None, corpus=None, device="cpu") -> Workload:
    """The small transformer (:class:`course_lib.models.TinyTransformerLM`) on the Zipfian Markov language
    (:func:`course_lib.data.zipf_markov_corpus`), next-token loss in nats.

    Validation: ``eval_windows`` fixed windows of ``context`` tokens from the validation chains; besides the loss
    and the accuracy, the loss on targets in the corpus's frequent bin (the 10 % most frequent tokens) and in
    its rare bin (the 50 % least frequent).
    """
    from ..data import zipf_markov_corpus

    corpus = zipf_markov_corpus() if corpus is None else corpus
    vocab = corpus.vocab_size
    train = corpus.train.to(device)
    generator = torch.Generator().manual_seed(12345)
    rows = torch.randint(0, corpus.val.shape[0], (eval_windows,), generator=generator)
    starts = torch.randint(0, corpus.val.shape[1] - context, (eval_windows,), generator=generator)
    windows = corpus.val[rows[:, None], starts[:, None] + torch.arange(context + 1)].to(device)
    val_x, val_y = windows[:, :-1], windows[:, 1:]
    bins = corpus.frequency_bins()
    in_bin = {key: torch.as_tensor(mask, device=device)[val_y] for key, mask in bins.items()}

    def model(seed):
        seed_everything(seed)
        return models.TinyTransformerLM(vocab, context, width, depth, heads).to(device)

    def batch(gen):
        row = torch.randint(0, train.shape[0], (batch_size,), generator=gen).to(device)
        start = torch.randint(0, train.shape[1] - context, (batch_size,), generator=gen).to(device)
        seq = train[row[:, None], start[:, None] + torch.arange(context + 1, device=device)]
        return seq[:, :-1], seq[:, 1:]

    def loss(logits, targets):
        return F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))

    @torch.no_grad()
    def evaluate(net):
        logits = net(val_x)
        per_token = F.cross_entropy(logits.reshape(-1, vocab), val_y.reshape(-1), reduction="none").view_as(val_y)
        out = {"val_loss": per_token.mean().item(),
               "val_accuracy": (logits.argmax(-1) == val_y).float().mean().item()}
        for key, mask in in_bin.items():
            out[f"val_loss_{key}"] = per_token[mask].mean().item()
        return out

    def hidden(name, parameter):
        return name.startswith("blocks.") and parameter.dim() == 2

    counts = corpus.token_counts
    extra = {
        "reference_losses": {"entropy_rate": corpus.entropy_rate, "unigram_entropy": corpus.unigram_entropy,
                             "uniform": math.log(vocab)},
        "token_bins": {key: {"tokens": int(mask.sum()), "share_of_train": float(counts[mask].sum() / counts.sum()),
                             "share_of_val_targets": float(in_bin[key].float().mean().item())}
                       for key, mask in bins.items()},
        "corpus": {"vocab_size": vocab, "successors": 8, "zipf_exponent": 1.0, "seed": corpus.seed,
                   "train_tokens": int(corpus.train.numel()), "val_tokens": int(corpus.val.numel())},
        "model": {"context": context, "width": width, "depth": depth, "heads": heads, "tied": True},
    }
    params = sum(p.numel() for p in models.TinyTransformerLM(vocab, context, width, depth, heads).parameters())
    return Workload("lm", "Transformer LM", f"TinyTransformerLM ({depth} blocks, width {width}, {heads} heads, "
                    f"context {context}, {params:,} parameters) on a Zipfian Markov language, V = {vocab}",
                    model, batch, evaluate, loss, hidden, steps, warmup_steps, batch_size, eval_every, target,
                    dict(LM_GRIDS if grids is None else grids), betas=(0.9, 0.95), extra=extra)


def bin_floors(corpus, mask) -> dict[str, float]:
    r"""The expected loss on the target tokens in ``mask`` (a boolean mask over the vocabulary) of two models:

    * ``"entropy_rate"``, the true chain P:  Σ_a π_a Σ_{b∈mask} P_ab (−ln P_ab) / Σ_a π_a Σ_{b∈mask} P_ab, the best
      any model can do on those tokens;
    * ``"unigram"``, the best context-free model π:  Σ_{b∈mask} π_b (−ln π_b) / Σ_{b∈mask} π_b;

    and ``"uniform"``, ln V. (Targets b follow π, since the chain is stationary.)
    """
    P, pi = corpus.transition, corpus.stationary
    mass = (pi[:, None] * P)[:, mask]
    return {"entropy_rate": float((mass * -np.log(P[:, mask])).sum() / mass.sum()),
            "unigram": float((pi[mask] * -np.log(pi[mask])).sum() / pi[mask].sum()),
            "uniform": math.log(len(pi))}


# --------------------------------------------------------------------------------------
# The convolutional workload
# --------------------------------------------------------------------------------------
CNN_GRIDS = {  # η = 10^(k/3), five consecutive k each, placed by a one-seed pilot sweep; Muon has no matrix here
    "momentum": lr_grid(-5, 5),
    "nesterov": lr_grid(-5, 5),
    "adam": lr_grid(-6, 5),
    "adamw": lr_grid(-6, 5),
    "nadam": lr_grid(-6, 5),
    "radam": lr_grid(-6, 5),
    "adafactor": lr_grid(-4, 5),
    "lion": lr_grid(-8, 5),
    "schedule_free": lr_grid(-6, 5),
}


def cnn_workload(*, steps: int = 400, warmup_steps: int = 20, batch_size: int = 100, eval_every: int = 40,
                 target: float = 0.8, grids: dict | None = None, dataset=None, device="cpu") -> Workload:
    """The MNIST-1D authors' CNN (:class:`course_lib.models.ConvNet1d`, 5,210 parameters) on MNIST-1D
    (:func:`course_lib.data.mnist1d`: 3,200 training and 800 validation signals, 10 classes), cross-entropy.

    Muon is left out: torch's Muon takes 2-D matrices only, and this network's only matrix is its output layer,
    which Muon's users leave to AdamW; "Muon + AdamW" would be AdamW.
    """
    from ..data import mnist1d

    dataset = mnist1d() if dataset is None else dataset
    train_x, train_y = (t.to(device) for t in dataset.train)
    val_x, val_y = (t.to(device) for t in dataset.val)

    def model(seed):
        seed_everything(seed)
        return models.ConvNet1d().to(device)

    def batch(gen):
        rows = torch.randint(0, len(train_y), (batch_size,), generator=gen).to(device)
        return train_x[rows], train_y[rows]

    @torch.no_grad()
    def evaluate(net):
        logits = net(val_x)
        return {"val_loss": F.cross_entropy(logits, val_y).item(),
                "val_accuracy": (logits.argmax(-1) == val_y).float().mean().item()}

    def hidden(name, parameter):
        return False

    grids = dict(CNN_GRIDS if grids is None else grids)
    params = sum(p.numel() for p in models.ConvNet1d().parameters())
    return Workload("cnn", "MNIST-1D CNN", f"ConvNet1d (three 1-D convolutions and a linear layer, {params:,} "
                    f"parameters) on MNIST-1D, 10 classes", model, batch, evaluate, F.cross_entropy, hidden, steps,
                    warmup_steps, batch_size, eval_every, target, grids,
                    extra={"data": {"train": len(train_y), "val": len(val_y), "classes": 10}})


# --------------------------------------------------------------------------------------
# One run, and the summary of many
# --------------------------------------------------------------------------------------
def _set_mode(optimizers, mode: str) -> None:
    for optimizer in optimizers:
        if "train_mode" in optimizer.param_groups[0]:  # Schedule-Free: evaluate at x, train at y
            getattr(optimizer, mode)()


def train_run(workload: Workload, optimizer: str, lr: float, seed: int, *, stop_after: int | None = None,
              **variant) -> dict:
    """Train one model of ``workload`` with ``optimizer`` at ``lr`` from ``seed``; return its record (schema above).

    A run whose training loss turns non-finite stops there: ``diverged`` is true and its later points are None.
    ``stop_after`` (default: run all ``workload.steps``) stops the run after that many steps, its later points
    None: the learning-rate schedule still spans ``workload.steps``, so the points it has are those of the full
    run (the first part of a stored run, redone more cheaply). ``variant`` (``weight_decay``, ``rest_lr``,
    ``options``) goes to :func:`make_optimizers` and, when given, into the record as ``"variant"``.
    """
    if stop_after is not None and not (int(stop_after) == stop_after and 0 <= stop_after <= workload.steps):
        raise ValueError(f"Invalid stop_after: {stop_after} (an integer from 0 to {workload.steps}, the steps)")
    last_step = workload.steps if stop_after is None else int(stop_after)
    model = workload.model(seed)
    model.train()
    optimizers = make_optimizers(optimizer, model, lr, workload, **variant)
    schedules = [] if optimizer == "schedule_free" else [
        torch.optim.lr_scheduler.LambdaLR(o, warmup_cosine(workload.warmup_steps, workload.steps)) for o in optimizers]
    generator = torch.Generator().manual_seed(1000 + seed)
    params = [p for p in model.parameters()]
    record = {"optimizer": optimizer, "lr": lr, "seed": seed, "diverged": False}
    if variant:
        record["variant"] = variant
    curves: dict[str, list] = {}
    norms = []
    start = time.perf_counter()
    steps_to_target = seconds_to_target = None

    def log(step):
        nonlocal steps_to_target, seconds_to_target
        _set_mode(optimizers, "eval")
        model.eval()
        metrics = workload.evaluate(model)
        model.train()
        _set_mode(optimizers, "train")
        for key, value in metrics.items():
            curves.setdefault(key, []).append(value if math.isfinite(value) else None)
        if steps_to_target is None and math.isfinite(metrics["val_loss"]) and metrics["val_loss"] <= workload.target:
            steps_to_target, seconds_to_target = step, time.perf_counter() - start

    _set_mode(optimizers, "train")
    log(0)
    for step in range(1, last_step + 1):
        inputs, targets = workload.batch(generator)
        loss = workload.loss(model(inputs), targets)
        if not torch.isfinite(loss):
            record["diverged"] = True
            break
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, workload.clip_norm).item())
        for o in optimizers:
            o.step()
        for s in schedules:
            s.step()
        if step % workload.eval_every == 0:
            log(step)
    evals = len(workload.eval_steps)
    for key in curves:
        curves[key] += [None] * (evals - len(curves[key]))
    record.update(curves)
    losses = [v for v in curves["val_loss"] if v is not None]
    accuracies = [v for v in curves["val_accuracy"] if v is not None]
    finite = np.isfinite(norms)
    record.update({
        "best_val_loss": min(losses) if losses and not record["diverged"] else None,
        "best_val_accuracy": max(accuracies) if accuracies and not record["diverged"] else None,
        "final_val_loss": curves["val_loss"][-1],
        "steps_to_target": steps_to_target, "seconds_to_target": seconds_to_target,
        "seconds": time.perf_counter() - start,
        "grad_norm_median": float(np.median(np.asarray(norms)[finite])) if finite.any() else None,
        "clipped_fraction": float(np.mean(np.asarray(norms) > workload.clip_norm)) if norms else 0.0,
    })
    return record


def decay_multiplier(workload: Workload, lr: float, weight_decay: float | None = None) -> float:
    r"""The factor by which decoupled weight decay alone multiplies a decaying weight over one run of
    ``workload`` at peak η = ``lr`` and λ = ``weight_decay`` (default: the workload's):

    .. math::  \prod_{k=0}^{T-1} \bigl(1 - \eta\, f(k)\, \lambda\bigr) \approx e^{-\eta\lambda \sum_k f(k)},

    f the recipe's warm-up–cosine factor (:func:`course_lib.training.warmup_cosine`; step k + 1 uses f(k)) and
    T = ``workload.steps``. AdamW, NAdam, RAdam, Lion, Adafactor and Muon all shrink by 1 − η_t λ before their
    step, so at the same λ an optimizer tuned to a 100× larger η decays its weights 100× faster (the timescale
    τ = 1/(ηλ) steps of Wang & Aitchison 2024, not λ, is what is comparable)."""
    lam = workload.weight_decay if weight_decay is None else weight_decay
    factor = warmup_cosine(workload.warmup_steps, workload.steps)
    return float(np.prod([1 - lr * factor(k) * lam for k in range(workload.steps)]))


def summarize(runs: list[dict], grids: dict[str, list[float]], *, width_tolerance: float = 0.05) -> dict:
    """Per optimizer: the η chosen by :func:`course_lib.benchmark.select` (the lowest mean over seeds of the final
    validation loss, a diverged run counting as +∞; the statistic notebook 09 uses too), the spread over seeds
    there, and how many grid points come within ``width_tolerance`` nats of it by the same statistic."""
    summary = {}
    for name, choice in benchmark.select(runs, grids).items():
        best = runs_at({"runs": runs}, name, choice.lr)
        best_losses = [math.inf if r["best_val_loss"] is None else r["best_val_loss"] for r in best]
        reached = [r["steps_to_target"] for r in best if r["steps_to_target"] is not None]
        summary[name] = {
            "best_lr": choice.lr,
            "best_lr_at_edge": choice.at_edge,
            "best_val_loss_mean": float(np.mean(best_losses)),
            "best_val_loss_std": float(np.std(best_losses, ddof=1)) if len(best) > 1 else 0.0,
            "final_val_loss_mean": choice.score,
            "best_val_accuracy_mean": float(np.mean([0.0 if r["best_val_accuracy"] is None else r["best_val_accuracy"]
                                                     for r in best])),
            "steps_to_target_median": int(np.median(reached)) if len(reached) == len(best) else None,
            "reached_target": len(reached),
            f"lrs_within_{width_tolerance}": sum(score <= choice.score + width_tolerance for score in choice.scores),
        }
    return summary


RUN_KEYS = {"optimizer": str, "lr": float, "seed": int, "diverged": bool, "val_loss": list, "val_accuracy": list,
            "best_val_loss": (float, type(None)), "best_val_accuracy": (float, type(None)),
            "final_val_loss": (float, type(None)), "steps_to_target": (int, type(None)),
            "seconds_to_target": (float, type(None)), "seconds": float, "grad_norm_median": (float, type(None)),
            "clipped_fraction": float}
WORKLOAD_KEYS = ("title", "description", "parameters", "steps", "warmup_steps", "batch_size", "eval_every",
                 "eval_steps", "target", "betas", "clip_norm", "weight_decay", "optimizers", "runs", "summary")


def check_results(results: dict) -> None:
    """Raise ``ValueError`` saying what is wrong unless ``results`` follows the schema of this module's docstring:
    every key and type, one curve point per evaluation step, and every (optimizer, η, seed) of the grids run once."""
    def fail(message):
        raise ValueError(f"where_it_matters results: {message}")

    if results.get("schema") != SCHEMA:
        fail(f"schema is {results.get('schema')!r}, expected {SCHEMA!r}")
    seeds = results["config"]["seeds"]
    for name, workload in results["workloads"].items():
        missing = [key for key in WORKLOAD_KEYS if key not in workload]
        if missing:
            fail(f"workload {name!r} lacks {missing}")
        evals = len(workload["eval_steps"])
        if workload["eval_steps"] != list(range(0, workload["steps"] + 1, workload["eval_every"])):
            fail(f"workload {name!r}: eval_steps do not match steps and eval_every")
        expected = {(opt, lr, seed) for opt, spec in workload["optimizers"].items() for lr in spec["lr_grid"]
                    for seed in seeds}
        found = [(run["optimizer"], run["lr"], run["seed"]) for run in workload["runs"]]
        if sorted(found) != sorted(expected):
            fail(f"workload {name!r}: the runs are not the grids × seeds, each once")
        curves = [key for key in workload["runs"][0] if key.startswith("val_")]
        for run in workload["runs"]:
            for key, kind in RUN_KEYS.items():
                value = run.get(key, "missing")
                if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
                    if not (kind is float and isinstance(value, int) and not isinstance(value, bool)):
                        fail(f"workload {name!r}, run {run.get('optimizer')} η={run.get('lr')}: {key} = {value!r}")
            for key in curves:
                if len(run[key]) != evals:
                    fail(f"workload {name!r}: {key} has {len(run[key])} points, expected {evals}")
        if set(workload["summary"]) != set(workload["optimizers"]):
            fail(f"workload {name!r}: the summary does not cover every optimizer")
        if "protocol" in workload:
            protocol = benchmark.Protocol.from_dict(workload["protocol"])
            if protocol.grids != {opt: spec["lr_grid"] for opt, spec in workload["optimizers"].items()}:
                fail(f"workload {name!r}: the protocol's grids are not the optimizers' lr_grid")
            if list(protocol.seeds) != list(seeds) or workload["protocol"].get("budget") != protocol.budget():
                fail(f"workload {name!r}: the protocol's seeds or budget do not match the runs")


PILOT_NOTE = ("each optimizer's window of η was placed by a one-seed pilot sweep whose runs were not recorded: "
              "the budget counts the sweep's runs only")
"""What the committed protocol says of the pilot runs (``pilot_runs`` is None: not counted)."""


def protocol_record(grids: dict[str, list[float]], seeds) -> dict:
    """The ``protocol`` entry of a workload in the results file: :class:`course_lib.benchmark.Protocol` with the
    grids run, the seeds, the selection rule and the budget per optimizer (pilot runs not recorded)."""
    return benchmark.Protocol({name: list(grid) for name, grid in grids.items()}, tuple(seeds),
                              notes=PILOT_NOTE).to_dict()


__all__ += ["decay_multiplier", "check_results", "RUN_KEYS", "WORKLOAD_KEYS", "protocol_record"]


# --------------------------------------------------------------------------------------
# Reading the results file, and its figures (notebook 12)
# --------------------------------------------------------------------------------------
RESULTS_PATH = importlib.resources.files("course_lib") / "results" / "where_it_matters.json"
"""The committed results: package data of course_lib (found wherever it is installed, never from the working
directory); ``make experiments`` rewrites the repository's copy."""


def load_results(path=None) -> dict:
    """The results at ``path`` (default: the committed :data:`RESULTS_PATH`), checked by :func:`check_results`."""
    import json
    from pathlib import Path

    results = json.loads(Path(RESULTS_PATH if path is None else path).read_text())
    check_results(results)
    return results


def runs_at(workload: dict, optimizer: str, lr: float | None = None) -> list[dict]:
    """The runs (one per seed) of ``optimizer`` at ``lr`` (default: its best η in the summary), in seed order."""
    lr = workload["summary"][optimizer]["best_lr"] if lr is None else lr
    return sorted((r for r in workload["runs"] if r["optimizer"] == optimizer and r["lr"] == lr),
                  key=lambda r: r["seed"])


def curve_band(runs: list[dict], key: str = "val_loss") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, minimum and maximum over seeds of the curve ``key`` (NaN where a run had diverged)."""
    values = np.array([[np.nan if v is None else v for v in r[key]] for r in runs], dtype=float)
    return np.median(values, axis=0), values.min(axis=0), values.max(axis=0)


def plot_learning_curves(workload: dict, ax, key: str = "val_loss", optimizers=None, band: bool = True):
    """``key`` against steps for each optimizer at its best η: the median over seeds, the band from min to max."""
    from .. import plotting

    steps = workload["eval_steps"]
    for name in optimizers or workload["optimizers"]:
        median, low, high = curve_band(runs_at(workload, name), key)
        color = plotting.method_color(name)
        ax.plot(steps, median, color=color, label=workload["optimizers"][name]["title"])
        if band:
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("step t")
    return ax


def plot_lr_sensitivity(workload: dict, ax, optimizers=None, key: str = "best_val_loss"):
    """The best validation loss against η for each optimizer: mean over seeds (a diverged run is left out and its
    point drawn at the top of the axes as ×). The η axis is logarithmic, with a tick per decade and no minor ticks."""
    from .. import plotting

    top = workload.get("reference_losses", {}).get("uniform")
    for name in optimizers or workload["optimizers"]:
        lrs, means, failed = [], [], []
        for lr in workload["optimizers"][name]["lr_grid"]:
            values = [r[key] for r in runs_at(workload, name, lr)]
            if any(v is None for v in values):
                failed.append(lr)
            else:
                lrs.append(lr)
                means.append(float(np.mean(values)))
        color = plotting.method_color(name)
        ax.semilogx(lrs, means, "o-", color=color, label=workload["optimizers"][name]["title"], markersize=4)
        if failed and top is not None:
            ax.semilogx(failed, [top] * len(failed), "x", color=color)
    ax.set_xlabel("learning rate η")
    ax.minorticks_off()  # the decades read the same; minor ticks cost about a third of the figure's drawing
    return ax


def paired_against(workload: dict, baseline: str = "adamw", metric: str = benchmark.METRIC,
                   confidence: float = 0.95) -> dict[str, benchmark.Paired]:
    """Every other optimizer of ``workload`` against ``baseline``, each at its best η of the summary, seed by seed
    (:func:`course_lib.benchmark.paired_differences` of ``metric``: candidate − baseline, a t-interval at
    ``confidence``). The seeds are paired: the same initial weights and minibatches for every optimizer."""
    def per_seed(name):
        return {r["seed"]: r[metric] for r in runs_at(workload, name)}

    base = per_seed(baseline)
    return {name: benchmark.paired_differences(per_seed(name), base, confidence=confidence)
            for name in workload["optimizers"] if name != baseline}


def excess_losses(results: dict, metric: str = benchmark.METRIC) -> dict[str, dict[str, float | None]]:
    """{optimizer: {workload: cost}} for :func:`course_lib.benchmark.performance_profile`: the mean over seeds of
    ``metric`` at the optimizer's best η minus the workload's floor (the language model's entropy rate, the best
    loss any model can reach; 0 for the CNN, whose floor is unknown); None where the optimizer was not run."""
    names = list(dict.fromkeys(name for w in results["workloads"].values() for name in w["optimizers"]))
    costs = {name: {} for name in names}
    for key, workload in results["workloads"].items():
        floor = workload.get("reference_losses", {}).get("entropy_rate", 0.0)
        for name in names:
            if name in workload["optimizers"]:
                costs[name][key] = benchmark.seed_statistic([r[metric] for r in runs_at(workload, name)]) - floor
            else:
                costs[name][key] = None
    return costs


def plot_performance_profile(profile: benchmark.Profile, ax, titles: dict | None = None, offset: float = 0.0):
    """ρ(τ) against τ for each optimizer of ``profile`` (a step function: the share of workloads on which its
    cost is within a factor τ of the best), in the course's colours. ``offset`` shifts the k-th of n curves up by
    (k − (n − 1)/2) · offset, so that curves with equal values can be told apart (say so in the figure)."""
    from .. import plotting

    middle = (len(profile.optimizers) - 1) / 2
    for k, (name, rho) in enumerate(zip(profile.optimizers, profile.rho)):
        ax.step(profile.taus, rho + (k - middle) * offset, where="post", color=plotting.method_color(name),
                label=(titles or {}).get(name, name))
    ax.set(xlabel="τ (cost within a factor τ of the best)", ylabel="ρ(τ): share of workloads",
           ylim=(-0.05 - middle * offset, 1.05 + middle * offset))
    return ax


def lm_playground_figure(workload: dict, optimizer: str = "adamw", lr_index: int = 2):
    """One optimizer at one η of its grid (index into the grid): its validation loss, and its loss on frequent and
    on rare tokens, every seed, next to AdamW at its best η (dashed). Returns the figure."""
    import matplotlib.pyplot as plt

    from .. import plotting

    grid = workload["optimizers"][optimizer]["lr_grid"]
    lr = grid[max(0, min(lr_index, len(grid) - 1))]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    steps = workload["eval_steps"]
    for ax, key, title in zip(axes, ("val_loss", "val_loss_frequent", "val_loss_rare"),
                              ("all tokens", "frequent tokens", "rare tokens")):
        for run in runs_at(workload, "adamw"):
            ax.plot(steps, [np.nan if v is None else v for v in run[key]], "--", color=plotting.method_color("adamw"),
                    linewidth=1)
        for run in runs_at(workload, optimizer, lr):
            ax.plot(steps, [np.nan if v is None else v for v in run[key]], color=plotting.method_color(optimizer))
        ax.axhline(workload["reference_losses"]["entropy_rate"], color="0.5", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("step t")
    axes[0].set_ylabel("validation loss (nats)")
    axes[0].set_ylim(0, workload["reference_losses"]["uniform"] + 2.5)
    best = workload["summary"]["adamw"]["best_lr"]
    fig.suptitle(f"{workload['optimizers'][optimizer]['title']} at η = {lr:g} (solid, 3 seeds) and AdamW at its "
                 f"best η = {best:g} (dashed); grey: the entropy rate")
    return fig


def results_playground(workload: dict):
    """Notebook 12's playground: pick an optimizer and an η of its grid; the callback is
    :func:`lm_playground_figure` (stored runs, nothing is retrained)."""
    import ipywidgets

    from ..widgets import playground

    return playground(
        lambda optimizer, lr_index: lm_playground_figure(workload, optimizer, lr_index),
        optimizer=ipywidgets.Dropdown(options=[(spec["title"], name) for name, spec in workload["optimizers"].items()],
                                      value="momentum", description="optimizer"),
        lr_index=ipywidgets.IntSlider(value=2, min=0, max=len(workload["optimizers"]["adamw"]["lr_grid"]) - 1,
                                      description="η index", continuous_update=False),
    )


__all__ += ["load_results", "runs_at", "curve_band", "plot_learning_curves", "plot_lr_sensitivity",
            "paired_against", "excess_losses", "plot_performance_profile", "lm_playground_figure",
            "results_playground"]


# --------------------------------------------------------------------------------------
# The controls (experiments/controls.py → course_lib/results/controls.json; notebook 12's last section)
# --------------------------------------------------------------------------------------
CONTROLS_SCHEMA = "where_it_matters_controls/1"
CONTROLS_PATH = importlib.resources.files("course_lib") / "results" / "controls.json"
"""The committed controls (package data, like :data:`RESULTS_PATH`); ``make controls`` rewrites it."""

DECAYING = tuple(name for name, spec in OPTIMIZERS.items() if spec.decay and name != "schedule_free")
"""The optimizers whose decoupled decay follows the recipe's schedule (Schedule-Free has none)."""

CONTROL_RUN_KEYS = {"control": str, "workload": str, "variant": dict, "optimizer": str, "lr": float, "seed": int,
                    "diverged": bool, "val_loss": list, "final_val_loss": (float, type(None))}


def check_controls(controls: dict) -> None:
    """Raise ``ValueError`` saying what is wrong unless ``controls`` is a controls file (schema
    :data:`CONTROLS_SCHEMA`, written by ``experiments/controls.py``): its keys and types, every (control,
    workload, optimizer, η, variant) run at each of its seeds once, and a decay multiplier in (0, 1] per entry."""
    def fail(message):
        raise ValueError(f"controls results: {message}")

    if controls.get("schema") != CONTROLS_SCHEMA:
        fail(f"schema is {controls.get('schema')!r}, expected {CONTROLS_SCHEMA!r}")
    for key in ("config", "uniform_workload", "decay_multipliers", "runs"):
        if key not in controls:
            fail(f"lacks {key!r}")
    seeds = controls["config"]["seeds"]
    groups: dict = {}
    for run in controls["runs"]:
        for key, kind in CONTROL_RUN_KEYS.items():
            value = run.get(key, "missing")
            if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
                fail(f"run {run.get('control')} {run.get('optimizer')}: {key} = {value!r}")
        if run["seed"] not in seeds:
            fail(f"run {run['control']} {run['optimizer']}: seed {run['seed']} is not one of {seeds}")
        group = (run["control"], run["workload"], run["optimizer"], run["lr"], repr(sorted(run["variant"].items())))
        groups.setdefault(group, []).append(run["seed"])
    for group, found in groups.items():
        if len(found) != len(set(found)) or (group[0] != "reproduce" and sorted(found) != sorted(seeds)):
            fail(f"{group[:4]}: seeds {sorted(found)}, expected {seeds} each once")
    for workload, entries in controls["decay_multipliers"].items():
        for name, entry in entries.items():
            if not 0 < entry["multiplier"] <= 1:
                fail(f"decay multiplier of {name} on {workload} is {entry['multiplier']}, expected in (0, 1]")


def load_controls(path=None) -> dict:
    """The controls at ``path`` (default: the committed :data:`CONTROLS_PATH`), checked by :func:`check_controls`."""
    import json
    from pathlib import Path

    controls = json.loads(Path(CONTROLS_PATH if path is None else path).read_text())
    check_controls(controls)
    return controls


def control_runs(controls: dict, control: str, optimizer: str, *, workload: str = "lm", lr: float | None = None
                 ) -> list[dict]:
    """The runs (in seed order) of ``optimizer`` in ``control`` on ``workload`` (at ``lr``; default: the one η it
    was run at, an error if several)."""
    runs = [r for r in controls["runs"] if r["control"] == control and r["optimizer"] == optimizer
            and r["workload"] == workload and (lr is None or r["lr"] == lr)]
    if len({r["lr"] for r in runs}) != 1:
        raise ValueError(f"Invalid control: {control}/{optimizer} on {workload} has η {sorted({r['lr'] for r in runs})}"
                         " (expected exactly one; pass lr)")
    return sorted(runs, key=lambda r: r["seed"])


def paired_runs(candidate: list[dict], baseline: list[dict], metric: str = benchmark.METRIC,
                confidence: float = 0.95) -> benchmark.Paired:
    """:func:`course_lib.benchmark.paired_differences` of ``metric`` between two lists of runs, seed by seed."""
    return benchmark.paired_differences({r["seed"]: r[metric] for r in candidate},
                                        {r["seed"]: r[metric] for r in baseline}, confidence=confidence)


def gap_by_bin(workload: dict, optimizer: str, baseline: str = "adamw") -> dict[str, dict[str, float]]:
    r"""Split the gap of final validation loss between ``optimizer`` and ``baseline`` (each at its best η, mean
    over seeds) by the frequency bin of the target token. With w_b the share of validation targets in bin b
    (frequent, middle, rare; the middle bin is the rest) and L_b the loss on them, L = Σ_b w_b L_b, so

    .. math::  L^{opt} - L^{base} = \sum_b w_b\,(L_b^{opt} - L_b^{base}),

    and the middle bin's loss follows from the others: L_middle = (L − w_F L_F − w_R L_R) / w_M. Returns
    {bin: {"tokens", "weight" w_b, "gap" L_b^{opt} − L_b^{base}, "contribution" w_b·gap, "share" of the total}}
    and "total"."""
    bins = workload["token_bins"]
    vocab = workload["corpus"]["vocab_size"]
    w = {"frequent": bins["frequent"]["share_of_val_targets"], "rare": bins["rare"]["share_of_val_targets"]}
    w["middle"] = 1 - w["frequent"] - w["rare"]
    tokens = {"frequent": bins["frequent"]["tokens"], "rare": bins["rare"]["tokens"]}
    tokens["middle"] = vocab - tokens["frequent"] - tokens["rare"]

    def per_bin(name):
        runs = runs_at(workload, name)
        final = {key: np.array([r[key][-1] for r in runs]) for key in ("val_loss", "val_loss_frequent",
                                                                        "val_loss_rare")}
        middle = (final["val_loss"] - w["frequent"] * final["val_loss_frequent"]
                  - w["rare"] * final["val_loss_rare"]) / w["middle"]
        return {"frequent": final["val_loss_frequent"].mean(), "middle": middle.mean(),
                "rare": final["val_loss_rare"].mean(), "all": final["val_loss"].mean()}

    a, b = per_bin(optimizer), per_bin(baseline)
    total = float(a["all"] - b["all"])
    out = {key: {"tokens": tokens[key], "weight": float(w[key]), "gap": float(a[key] - b[key]),
                 "contribution": float(w[key] * (a[key] - b[key]))} for key in ("frequent", "middle", "rare")}
    for entry in out.values():
        entry["share"] = entry["contribution"] / total
    out["total"] = {"gap": total}
    return out


__all__ += ["CONTROLS_SCHEMA", "CONTROLS_PATH", "DECAYING", "check_controls", "load_controls", "control_runs",
            "paired_runs", "gap_by_bin"]
