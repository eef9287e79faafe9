"""Notebook 12: which optimizer, on problems where the choice matters — the comparison protocol and its sweeps.

The protocol (in the spirit of AlgoPerf, Dahl et al. 2023, at a laptop's scale)
--------------------------------------------------------------------------------
* **Same budget.** Every run of a workload takes the same number of optimizer steps on the same minibatches
  (the batch order depends on the seed only, not on the optimizer); the seeds are paired (the same initial
  weights and minibatches for every optimizer).
* **Same tuning effort, counted.** Every optimizer's learning rate η is found by the same two-stage search
  (``experiments/where_it_matters.py``), every run of which counts: a coarse grid of one η per decade, 10⁻⁴ … 1,
  on seed 0 (:data:`COARSE_KS`), then three η per decade around each optimizer's coarse best on every seed
  (:data:`FINE_OFFSETS`). The search space is shared: while any optimizer's best sits at an end of its grid, the
  grid grows there for every optimizer of the workload (the coarse grid by a decade, the fine offsets by a point,
  up to :data:`FINE_REACH`), so every optimizer gets the same number of runs. Every other
  hyperparameter is fixed in advance at its usual value (:data:`OPTIMIZERS`); one η serves all of an optimizer's
  parameters (no optimizer gets per-group learning rates: Muon's AdamW half runs at Muon's η).
* **The same recipe for all**: linear warm-up from 0 then cosine decay to 0 (``warmup_cosine``); no gradient
  clipping (the norm is logged); weight decay with one **timescale** τ = T steps (the run's length) for every
  optimizer, SGD included: the recipe shrinks the decaying weights (matrices, filters, embeddings; never biases or
  norms) by 1 − f(k)/τ before each step, which is decoupled decay λ = 1/(ητ) at each optimizer's own η (Wang &
  Aitchison 2024), so that every optimizer loses the same share of its weights to decay; Adam-type β₂ = 0.95 on
  the transformer (0.999 elsewhere). Schedule-Free AdamW keeps its own warm-up and no schedule, decays inside its
  step with the same total decay, and is evaluated at its averaged point x (``eval()``).
* **What is reported:** per run, the validation curve (every ``eval_every`` steps), its best point, the steps to a
  target fixed per workload before the comparison, the held-out test loss at the end (never used to choose), and
  the gradient norms; per optimizer, the η chosen by :func:`course_lib.benchmark.select` (the lowest mean over
  seeds of the final validation loss, a diverged run counting as the worst) and the spread over seeds there; the
  time per step as a ratio to AdamW's, measured apart from the sweep (:func:`step_time_ratios`).

The optimizers are the references (``torch.optim``, ``lion_pytorch.Lion``, ``schedulefree.AdamWScheduleFree``,
``pytorch_optimizer``'s AdEMAMix and SOAP); ``course_lib.optim``'s classes equal them (notebooks 06–11). Muon
updates the hidden weight matrices (on the CNN its conv filters, flattened to matrices) and AdamW the rest
(embeddings, head, norms, biases), at one shared η through Muon's ``adjust_lr_fn="match_rms_adamw"``.

Results file (``course_lib/results/where_it_matters.json``, schema ``where_it_matters/2``)
-------------------------------------------------------------------------------------------
::

    {"schema": "where_it_matters/2", "created_by": "experiments/where_it_matters.py",
     "config": {"seeds": [...], "device": str, "torch": str, "numpy": str, "python": str, "threads": int,
                "workers": int, "tiny": bool, "seconds": {"sweep": float, "timing": float}},
     "workloads": {NAME: {
         "title": str, "description": str, "parameters": int, "steps": int, "warmup_steps": int,
         "batch_size": int, "eval_every": int, "eval_steps": [0, ...], "target": {"metric": "val_loss",
         "value": float}, "betas": [β₁, β₂], "clip_norm": null, "decay_timescale": τ, "decay_multiplier": ∏(1 − f/τ),
         "reference_losses": {...},            # the LM: entropy rate, unigram entropy, ln V
         "token_bins": {...},                  # the LM: size and share of the frequent and rare bins
         "optimizers": {OPT: {"title": str, "options": {...}, "coarse_grid": [η...], "center_lr": η,
                              "lr_grid": [η...]}},        # the fine grid, run on every seed
         "coarse_runs": [RUN, ...],            # seed 0 on the coarse grid
         "runs": [RUN, ...],                   # the fine grid × seeds (a coarse run at a fine η appears in both)
         # RUN = {"optimizer": OPT, "lr": η, "seed": int, "diverged": bool,
         #        "val_loss": [...], "val_accuracy": [...],        # one per eval step (null after divergence)
         #        "val_loss_frequent": [...], "val_loss_rare": [...],   # the LM only (its token bins)
         #        "best_val_loss": float|null, "best_val_accuracy": float|null, "final_val_loss": float|null,
         #        "test_loss": float|null, "test_accuracy": float|null, "steps_to_target": int|null,
         #        "seconds": float, "step_seconds": float, "grad_norm_median": float|null,
         #        "grad_norm_max": float|null, "clipped_fraction": float}
         "summary": {OPT: {"best_lr": η, "best_lr_at_edge": bool, "best_val_loss_mean": float,
                           "best_val_loss_std": float, "final_val_loss_mean": float, "test_loss_mean": float,
                           "best_val_accuracy_mean": float, "steps_to_target_median": int|null,
                           "reached_target": int, "lrs_within_0.05": int}},
         "step_time_ratio": {"baseline": "adamw", "steps": int, "rounds": int, "threads": int,
                             "ratios": {OPT: float}},
         "protocol": {...}}}}                  # course_lib.benchmark.Protocol.to_dict(): fine grids, seeds, the
                                               # coarse runs as pilot runs, selection metric, budget per optimizer

Seconds are wall-clock on the machine that ran the script (``config``): compare them within one file only.

Controls file (``course_lib/results/controls.json``, schema ``where_it_matters_controls/1``, ``make controls``)
----------------------------------------------------------------------------------------------------------------
Runs that change one thing of the protocol each (``experiments/controls.py`` says which), at the seeds and best η
of the results file, so that each pairs with the stored run of its seed (:func:`check_controls`)::

    {"schema": ..., "created_by": "experiments/controls.py",
     "config": {"seeds": [...], "tiny": bool, "workers": int, "threads": int, "torch": str, "numpy": str,
                "python": str, "device": str, "seconds": float, "main_results": str, "psi_constant": float, ...},
     "uniform_workload": {"reference_losses": {...}, "token_bins": {...}, "corpus": {...}},
     "decay_multipliers": {WORKLOAD: {"decay_timescale": τ, "multiplier": ∏(1 − f(k)/τ)}},
     "runs": [{"control": str, "workload": "lm"|"cnn"|"lm_uniform", "variant": {...make_optimizers options},
               ...the keys of a run above}]}
"""

from __future__ import annotations

import importlib.resources
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import torch
from torch.nn import functional as F

from .. import benchmark, methods, models, sweep
from ..training import backward_step, param_groups, seed_everything, warmup_cosine

__all__ = ["OptimizerSpec", "OPTIMIZERS", "Workload", "lr_grid", "split_hidden", "make_optimizers",
           "lm_workload", "bin_floors", "cnn_workload", "train_run", "summarize", "SCHEMA"]

SCHEMA = "where_it_matters/2"


lr_grid = sweep.lr_grid


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer of the comparison: its title, its reference class (``build``, a dotted path), the options
    fixed in advance for every workload (``options``) and those that depend on the workload (``per_workload``,
    a function of the :class:`Workload`), and whether it takes the workload's Adam betas (``adam_betas``)."""

    title: str
    build: str
    options: dict = field(default_factory=dict)
    adam_betas: bool = False
    per_workload: Callable[[Workload], dict] | None = None

    def options_for(self, workload: Workload) -> dict:
        """The constructor options of this optimizer on ``workload`` (learning rate and decay aside)."""
        options = dict(self.options)
        if self.adam_betas:
            options["betas"] = workload.betas
        if self.per_workload is not None:
            options.update(self.per_workload(workload))
        return options


def _compared(name: str, options: dict | None = None, *, title: str | None = None, **recipe) -> OptimizerSpec:
    """The spec of method ``name`` of :mod:`course_lib.methods`: its title, reference and options, then ``options``
    and the recipe's switches."""
    method = methods.get(name)
    return OptimizerSpec(title or method.title, method.reference, {**method.options, **(options or {})}, **recipe)


def _lion_betas(workload: Workload) -> dict:
    """Lion's paper (Chen et al. 2023) trains language models with β₁ = 0.95, β₂ = 0.98 (its default 0.9, 0.99
    elsewhere)."""
    return {"betas": (0.95, 0.98)} if workload.name.startswith("lm") else {}


def _ademamix_timescales(workload: Workload) -> dict:
    """AdEMAMix sized to the run: the slow average's timescale 1/(1 − β₃) a quarter of the run (the paper's
    β₃ = 0.9999 is 10,000 steps, longer than these runs), and α and β₃ warmed up over the whole run, T_{α,β₃} = T
    (the paper's recommendation)."""
    return {"betas": (*workload.betas, 1 - 4 / workload.steps), "t_alpha_beta3": workload.steps}


NADAMW_PSI = 1e9
"""NAdamW's ψ: torch's NAdam with momentum_decay ψ has μ_t = β₁(1 − ½·0.96^{tψ}); at ψ = 10⁹, 0.96^{tψ} is 0 in
float64 from the first step, so μ_t = β₁ exactly (constant β₁, as AlgoPerf's NAdamW baseline)."""

OPTIMIZERS = {
    "momentum": _compared("momentum"),
    "nesterov": _compared("nesterov"),
    "adamw": _compared("adamw", adam_betas=True),
    "nadam": _compared("nadam", {"decoupled_weight_decay": True}, adam_betas=True),
    "nadamw": _compared("nadam", {"decoupled_weight_decay": True, "momentum_decay": NADAMW_PSI},
                        title="NAdamW (constant β₁)", adam_betas=True),
    "radam": _compared("radam", {"decoupled_weight_decay": True}, adam_betas=True),
    "adafactor": _compared("adafactor"),
    "lion": _compared("lion", per_workload=_lion_betas),
    "muon": _compared("muon", {"adjust_lr_fn": "match_rms_adamw"}),
    "schedule_free": _compared("schedule_free", adam_betas=True),
    "ademamix": _compared("ademamix", per_workload=_ademamix_timescales),
    "soap": _compared("soap"),
}
"""The optimizers compared, by name. Every other hyperparameter is fixed in advance at its usual value; weight
decay is the recipe's (:func:`train_run`), so every constructor gets ``weight_decay=0`` (Schedule-Free aside)."""


def split_hidden(groups: list[dict], model: torch.nn.Module, hidden: Callable[[str, torch.Tensor], bool]
                 ) -> tuple[list[torch.Tensor], list[dict]]:
    """Take the parameters ``hidden(name, p)`` picks (Muon's matrices) out of :func:`training.param_groups`'
    ``groups``: returns those and the groups without them (empty groups dropped)."""
    picked = [p for name, p in model.named_parameters() if hidden(name, p)]
    ids = {id(p) for p in picked}
    rest = [{**g, "params": [p for p in g["params"] if id(p) not in ids]} for g in groups]
    return picked, [g for g in rest if g["params"]]


def _hand_gradients(tensors: list[torch.Tensor], matrices: list[torch.Tensor]):
    """A step pre-hook that gives each 2-D ``matrices[i]`` (a leaf sharing storage with ``tensors[i]``: a conv
    filter bank (out, in, k) seen as the matrix (out, in·k), the flattening Muon's users apply to convolutions)
    its tensor's gradient, and clears the tensor's (no optimizer owns it)."""
    def hand_over(optimizer, args, kwargs):
        for tensor, matrix in zip(tensors, matrices):
            matrix.grad = None if tensor.grad is None else tensor.grad.view(matrix.shape)
            tensor.grad = None

    return hand_over


def schedule_free_decay(workload: Workload) -> float:
    r"""Schedule-Free's λ under the recipe's decay: Schedule-Free has no schedule (η_k = η·min(1, k/W) after its
    own warm-up) and decays inside its step, so λ is set for the same total decay Σ_k η_k λ = Σ_k f(k)/τ as the
    others, whatever its η: λ·η = Σ_k f(k) / (τ Σ_k min(1, k/W)) (returned for η = 1; divide by η)."""
    factor = warmup_cosine(workload.warmup_steps, workload.steps)
    total = sum(factor(k) for k in range(workload.steps))
    warm = sum(min(1.0, (k + 1) / workload.warmup_steps) for k in range(workload.steps))
    return total / (workload.decay_timescale * warm)


def make_optimizers(name: str, model: torch.nn.Module, lr: float, workload: Workload, *,
                    rest_lr: float | None = None, options: dict | None = None,
                    decay_timescale: float | None = None) -> list[torch.optim.Optimizer]:
    """The optimizer(s) of ``name`` for ``model`` under the recipe: one, or Muon and AdamW for Muon.

    Every constructor gets ``weight_decay=0``: the recipe decays the weights itself (:func:`train_run`), the
    same for every optimizer. Schedule-Free is the exception (its decay acts inside its step): it gets the λ
    of :func:`schedule_free_decay` (none when ``decay_timescale`` is ``math.inf``).

    The controls of ``experiments/controls.py`` change one thing each (default None: the recipe's):

    * ``rest_lr``: η for the parameters that are not the hidden matrices ``workload.hidden`` picks (embeddings,
      head, norms, biases), which then form their own param groups; ``lr`` stays the hidden matrices' η. For
      Muon this is its AdamW half's η (the recipe: one shared η).
    * ``options``: more constructor options, over the spec's; for Muon they go to Muon's part.
    * ``decay_timescale``: τ in steps (see :func:`train_run`; only Schedule-Free's λ depends on it here).
    """
    spec = OPTIMIZERS[name]
    if rest_lr is not None and not (isinstance(rest_lr, (int, float)) and rest_lr > 0):
        raise ValueError(f"Invalid rest_lr value: {rest_lr} (expected a number > 0 or None)")
    options = {**spec.options_for(workload), **(options or {})}
    groups = param_groups(model, 0.0)
    if name == "schedule_free":
        tau = workload.decay_timescale if decay_timescale is None else decay_timescale
        decay = 0.0 if math.isinf(tau) else schedule_free_decay(replace(workload, decay_timescale=tau)) / lr
        return [methods.load(spec.build)(param_groups(model, decay), lr=lr, warmup_steps=workload.warmup_steps,
                                         **options)]
    if name == "muon":
        hidden, rest = split_hidden(groups, model, workload.hidden)
        filters = [p for p in hidden if p.dim() != 2]
        matrices = [torch.nn.Parameter(p.detach().view(p.shape[0], -1)) for p in filters]
        muon = methods.load(spec.build)([p for p in hidden if p.dim() == 2] + matrices, lr=lr, weight_decay=0.0,
                                        **options)
        if filters:
            muon.register_step_pre_hook(_hand_gradients(filters, matrices))
        adamw = methods.get("adamw").reference_class()(rest, lr=lr if rest_lr is None else rest_lr,
                                                       betas=workload.betas, weight_decay=0.0)
        return [muon, adamw]
    if rest_lr is not None:
        hidden, rest = split_hidden(groups, model, workload.hidden)
        groups = ([{"params": hidden, "weight_decay": 0.0}] if hidden else []) + [
            {**group, "lr": rest_lr} for group in rest]
    return [methods.load(spec.build)(groups, lr=lr, weight_decay=0.0, **options)]


@dataclass
class Workload:
    """A training problem of the comparison: model, data, evaluation, budget and grids (see the module docstring).

    ``model(seed)`` builds a fresh model; ``batch(generator)`` draws one training minibatch (inputs, targets);
    ``evaluate(model)`` returns a dict with ``val_loss`` and ``val_accuracy`` (and more); ``test(model)`` the same
    on the held-out test split, as ``test_loss`` and ``test_accuracy`` (used once, at the end of a run);
    ``loss(output, targets)`` is the training loss; ``hidden(name, p)`` picks the matrices (and conv filters)
    Muon updates. ``decay_timescale`` is the recipe's weight-decay timescale τ in steps (default: the run's
    length, ``steps``); ``clip_norm`` a global gradient-norm threshold (default None: no clipping).
    """

    name: str
    title: str
    description: str
    model: Callable[[int], torch.nn.Module]
    batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    evaluate: Callable[[torch.nn.Module], dict]
    test: Callable[[torch.nn.Module], dict]
    loss: Callable
    hidden: Callable[[str, torch.Tensor], bool]
    steps: int
    warmup_steps: int
    batch_size: int
    eval_every: int
    target: float
    grids: dict[str, list[float]] = field(default_factory=dict)
    betas: tuple[float, float] = (0.9, 0.999)
    clip_norm: float | None = None
    decay_timescale: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.decay_timescale is None:
            self.decay_timescale = float(self.steps)
        if not self.decay_timescale > 0:
            raise ValueError(f"Invalid decay_timescale: {self.decay_timescale} (expected steps > 0, or math.inf)")

    @property
    def eval_steps(self) -> list[int]:
        return list(range(0, self.steps + 1, self.eval_every))


# --------------------------------------------------------------------------------------
# The language-model workload
# --------------------------------------------------------------------------------------
COARSE_KS = (-12, -9, -6, -3, 0)
"""The coarse stage's grid, as k of η = 10^(k/3): one η per decade, 10⁻⁴ … 1, on one seed."""
COARSE_EXTENSIONS = 2
"""Decades the coarse grid may grow beyond :data:`COARSE_KS` at either end, while an optimizer's best sits at that
end (the grid grows for every optimizer of the workload)."""
FINE_OFFSETS = (-1, 0, 1)
"""The fine stage's grid around the coarse best k*: k* − 1, k*, k* + 1 (three η per decade), on every seed."""
FINE_REACH = 4
"""How far (in thirds of a decade) the fine offsets may grow from k* while an optimizer's best sits at an edge (they
grow for every optimizer of the workload)."""


def lm_workload(*, steps: int = 240, warmup_steps: int = 24, batch_size: int = 16, context: int = 32,
                width: int = 32, depth: int = 2, heads: int = 2, eval_every: int = 10, eval_windows: int = 128,
                test_windows: int = 256, target: float = 3.8, grids: dict | None = None, corpus=None,
                device="cpu") -> Workload:
    """The small transformer (:class:`course_lib.models.TinyTransformerLM`) on the Zipfian Markov language
    (:func:`course_lib.data.zipf_markov_corpus`), next-token loss in nats.

    Validation: ``eval_windows`` fixed windows of ``context`` tokens from the first half of the corpus's held-out
    chains; besides the loss and the accuracy, the loss on targets in the corpus's frequent bin (the 10 % most
    frequent tokens) and in its rare bin (the 50 % least frequent). Test: ``test_windows`` windows from the
    other half (chains no validation window touches), used once per run, at its end.
    """
    from ..data import zipf_markov_corpus

    corpus = zipf_markov_corpus() if corpus is None else corpus
    vocab = corpus.vocab_size
    train = corpus.train.to(device)
    generator = torch.Generator().manual_seed(12345)
    half = corpus.val.shape[0] // 2

    def windows(first_row, last_row, count):
        rows = torch.randint(first_row, last_row, (count,), generator=generator)
        starts = torch.randint(0, corpus.val.shape[1] - context, (count,), generator=generator)
        chosen = corpus.val[rows[:, None], starts[:, None] + torch.arange(context + 1)].to(device)
        return chosen[:, :-1], chosen[:, 1:]

    val_x, val_y = windows(0, half, eval_windows)
    test_x, test_y = windows(half, corpus.val.shape[0], test_windows)
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

    @torch.no_grad()
    def test(net):
        logits = net(test_x)
        return {"test_loss": F.cross_entropy(logits.reshape(-1, vocab), test_y.reshape(-1)).item(),
                "test_accuracy": (logits.argmax(-1) == test_y).float().mean().item()}

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
                   "train_tokens": int(corpus.train.numel()), "val_tokens": int(corpus.val.numel()),
                   "validation_chains": [0, half], "test_chains": [half, int(corpus.val.shape[0])]},
        "model": {"context": context, "width": width, "depth": depth, "heads": heads, "tied": True},
    }
    params = sum(p.numel() for p in models.TinyTransformerLM(vocab, context, width, depth, heads).parameters())
    return Workload("lm", "Transformer LM", f"TinyTransformerLM ({depth} blocks, width {width}, {heads} heads, "
                    f"context {context}, {params:,} parameters) on a Zipfian Markov language, V = {vocab}",
                    model, batch, evaluate, test, loss, hidden, steps, warmup_steps, batch_size, eval_every, target,
                    dict(grids or {}), betas=(0.9, 0.95), extra=extra)


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
def cnn_workload(*, steps: int = 400, warmup_steps: int = 20, batch_size: int = 100, eval_every: int = 20,
                 target: float = 0.8, grids: dict | None = None, dataset=None, device="cpu") -> Workload:
    """The MNIST-1D authors' CNN (:class:`course_lib.models.ConvNet1d`, 5,210 parameters) on MNIST-1D
    (:func:`course_lib.data.mnist1d`: 3,200 training, 800 validation and 1,000 test signals, 10 classes),
    cross-entropy.

    Muon updates the three conv filter banks, each (out, in, k) flattened to the matrix (out, in·k), as Muon's
    users do for convolutions; AdamW the output layer and the biases (:func:`make_optimizers`).
    """
    from ..data import mnist1d

    dataset = mnist1d() if dataset is None else dataset
    train_x, train_y = (t.to(device) for t in dataset.train)
    val_x, val_y = (t.to(device) for t in dataset.val)
    test_x, test_y = (t.to(device) for t in dataset.test)

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

    @torch.no_grad()
    def test(net):
        logits = net(test_x)
        return {"test_loss": F.cross_entropy(logits, test_y).item(),
                "test_accuracy": (logits.argmax(-1) == test_y).float().mean().item()}

    def hidden(name, parameter):
        return name.startswith("conv") and parameter.dim() == 3

    grids = dict(grids or {})
    params = sum(p.numel() for p in models.ConvNet1d().parameters())
    return Workload("cnn", "MNIST-1D CNN", f"ConvNet1d (three 1-D convolutions and a linear layer, {params:,} "
                    f"parameters) on MNIST-1D, 10 classes", model, batch, evaluate, test, F.cross_entropy, hidden,
                    steps, warmup_steps, batch_size, eval_every, target, grids,
                    extra={"data": {"train": len(train_y), "val": len(val_y), "test": len(test_y), "classes": 10}})


# --------------------------------------------------------------------------------------
# One run, and the summary of many
# --------------------------------------------------------------------------------------
def _set_mode(optimizers, mode: str) -> None:
    for optimizer in optimizers:
        if "train_mode" in optimizer.param_groups[0]:  # Schedule-Free: evaluate at x, train at y
            getattr(optimizer, mode)()


@torch.no_grad()
def _scale_in_place(tensors: list[torch.Tensor], multiplier: float) -> None:
    """θ ← multiplier·θ for each of ``tensors``: the recipe's decay, 1 − f(k)/τ, before the optimizers' step."""
    torch._foreach_mul_(tensors, multiplier)


def decaying_parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    """The weights the recipe decays: those :func:`course_lib.training.param_groups` puts in its decaying group
    (matrices, conv filters and embeddings; never biases or norms)."""
    return [p for group in param_groups(model, 1.0) if group["weight_decay"] > 0 for p in group["params"]]


def train_run(workload: Workload, optimizer: str, lr: float, seed: int, *, stop_after: int | None = None,
              clock=time.perf_counter, **variant) -> dict:
    """Train one model of ``workload`` with ``optimizer`` at ``lr`` from ``seed``; return its record (schema above).

    The loop, top to bottom: draw the seed's minibatch, forward, then :func:`course_lib.training.backward_step`
    (the step :func:`~course_lib.training.fit` takes too): backward, log the gradient's global norm (and clip it
    if the workload says so), decay the weights θ ← θ·(1 − f(k)/τ), step, advance the schedule f; every
    ``workload.eval_every`` steps, evaluate. The decay is the recipe's, one timescale τ =
    ``workload.decay_timescale`` steps for every optimizer: it equals decoupled weight decay λ = 1/(ητ) at peak η
    (AdamW's θ ← θ(1 − η_k λ) with η_k = η f(k)), so every optimizer loses the same share of its weights to decay
    whatever its η (Wang & Aitchison 2024). Schedule-Free decays inside its step instead (:func:`make_optimizers`).

    A run whose training loss turns non-finite stops there: ``diverged`` is true and its later points are None.
    ``stop_after`` (default: run all ``workload.steps``) stops the run after that many steps, its later points
    None (the schedule still spans ``workload.steps``). ``variant`` (``rest_lr``, ``options``,
    ``decay_timescale``, ``clip_norm``) changes one thing of the recipe and goes into the record as ``"variant"``.
    ``clock`` times the steps (``step_seconds``): wall-clock by default; :func:`step_time_ratios` passes the
    thread's CPU time, which other processes' load does not inflate.
    """
    if stop_after is not None and not (int(stop_after) == stop_after and 0 <= stop_after <= workload.steps):
        raise ValueError(f"Invalid stop_after: {stop_after} (an integer from 0 to {workload.steps}, the steps)")
    last_step = workload.steps if stop_after is None else int(stop_after)
    tau = variant.get("decay_timescale", workload.decay_timescale)
    if tau is None or not tau > 0:
        raise ValueError(f"Invalid decay_timescale: {tau} (expected steps > 0, or math.inf)")
    clip_norm = variant.get("clip_norm", workload.clip_norm)
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"Invalid clip_norm: {clip_norm} (expected a norm > 0, or None for no clipping)")
    model = workload.model(seed)
    model.train()
    optimizers = make_optimizers(optimizer, model, lr, workload,
                                 **{key: value for key, value in variant.items() if key != "clip_norm"})
    factor = warmup_cosine(workload.warmup_steps, workload.steps)
    schedules = [] if optimizer == "schedule_free" else [
        torch.optim.lr_scheduler.LambdaLR(o, factor) for o in optimizers]
    decaying = [] if optimizer == "schedule_free" or math.isinf(tau) else decaying_parameters(model)
    generator = torch.Generator().manual_seed(1000 + seed)
    params = [p for p in model.parameters()]
    record = {"optimizer": optimizer, "lr": lr, "seed": seed, "diverged": False}
    if variant:
        record["variant"] = variant
    curves: dict[str, list] = {}
    norms = []
    start = time.perf_counter()
    step_seconds = 0.0
    steps_to_target = None

    def log(step):
        nonlocal steps_to_target
        _set_mode(optimizers, "eval")
        model.eval()
        metrics = workload.evaluate(model)
        model.train()
        _set_mode(optimizers, "train")
        for key, value in metrics.items():
            curves.setdefault(key, []).append(value if math.isfinite(value) else None)
        if steps_to_target is None and math.isfinite(metrics["val_loss"]) and metrics["val_loss"] <= workload.target:
            steps_to_target = step

    _set_mode(optimizers, "train")
    log(0)
    for step in range(1, last_step + 1):
        tick = clock()
        inputs, targets = workload.batch(generator)
        loss = workload.loss(model(inputs), targets)
        if not torch.isfinite(loss):
            record["diverged"] = True
            break
        decay = partial(_scale_in_place, decaying, 1 - factor(step - 1) / tau) if decaying else None
        norm = backward_step(loss, optimizers, parameters=params, before_step=decay, schedulers=schedules,
                             clip_grad_norm=math.inf if clip_norm is None else clip_norm)
        norms.append(norm.item())
        step_seconds += clock() - tick
        if step % workload.eval_every == 0:
            log(step)
    evals = len(workload.eval_steps)
    for key in curves:
        curves[key] += [None] * (evals - len(curves[key]))
    record.update(curves)
    losses = [v for v in curves["val_loss"] if v is not None]
    accuracies = [v for v in curves["val_accuracy"] if v is not None]
    finished = not record["diverged"] and last_step == workload.steps
    if finished:
        _set_mode(optimizers, "eval")
        model.eval()
        test = workload.test(model)
    finite = np.isfinite(norms)
    record.update({
        "best_val_loss": min(losses) if losses and not record["diverged"] else None,
        "best_val_accuracy": max(accuracies) if accuracies and not record["diverged"] else None,
        "final_val_loss": curves["val_loss"][-1],
        "test_loss": test["test_loss"] if finished and math.isfinite(test["test_loss"]) else None,
        "test_accuracy": test["test_accuracy"] if finished else None,
        "steps_to_target": steps_to_target,
        "seconds": time.perf_counter() - start, "step_seconds": step_seconds,
        "grad_norm_median": float(np.median(np.asarray(norms)[finite])) if finite.any() else None,
        "grad_norm_max": float(np.max(np.asarray(norms)[finite])) if finite.any() else None,
        "clipped_fraction": (0.0 if clip_norm is None or not norms else float(np.mean(np.asarray(norms) > clip_norm))),
    })
    return record


def decay_multiplier(workload: Workload, decay_timescale: float | None = None) -> float:
    r"""The factor by which the recipe's weight decay alone multiplies a decaying weight over one run of
    ``workload`` with timescale τ = ``decay_timescale`` (default: the workload's):

    .. math::  \prod_{k=0}^{T-1} \bigl(1 - f(k)/\tau\bigr) \approx e^{-\sum_k f(k)/\tau},

    f the recipe's warm-up–cosine factor (:func:`course_lib.training.warmup_cosine`; step k + 1 uses f(k)) and
    T = ``workload.steps``. It is the same for every optimizer: decoupled decay λ at a peak η shrinks by
    1 − η f(k) λ, so a fixed λ decays an optimizer tuned to a 100× larger η 100× faster; a fixed τ = 1/(ηλ)
    does not (Wang & Aitchison 2024)."""
    tau = workload.decay_timescale if decay_timescale is None else decay_timescale
    factor = warmup_cosine(workload.warmup_steps, workload.steps)
    return float(np.prod([1 - factor(k) / tau for k in range(workload.steps)]))


STEP_CLOCK = {True: "the thread's CPU time (time.thread_time)", False: "wall clock, synchronised (GPU)"}
"""What :func:`step_time_ratios` times with, on the CPU (True) and on a GPU (False): recorded in the results."""


def _synchronized_clock() -> float:
    torch.cuda.synchronize()
    return time.perf_counter()


def step_time_ratios(workload: Workload, lrs: dict[str, float], *, steps: int = 20, rounds: int = 15,
                     baseline: str = "adamw") -> dict[str, float]:
    """Time per training step (draw, forward, backward, decay, optimizer step; evaluations excluded: a run's
    ``step_seconds``) of each optimizer of ``lrs`` (name → η) on ``workload``, as a ratio to ``baseline``'s:
    ``rounds`` interleaved rounds of ``steps`` steps from seed 0 each, each optimizer's time the minimum over
    rounds. The clock is the calling thread's CPU time (``time.thread_time``: with one torch thread the steps run
    on it), so other processes on the machine do not count; on a GPU, whose work the CPU clock cannot see, the
    wall clock after synchronising. Run it apart from the sweep (whose seconds carry whatever else the machine
    does)."""
    on_gpu = any(p.is_cuda for p in workload.model(0).parameters())
    clock = _synchronized_clock if on_gpu else time.thread_time
    best = {name: math.inf for name in lrs}
    for _ in range(rounds):
        for name, lr in lrs.items():
            best[name] = min(best[name], train_run(workload, name, lr, 0, stop_after=steps,
                                                   clock=clock)["step_seconds"])
    return {name: best[name] / best[baseline] for name in lrs}


def summarize(runs: list[dict], grids: dict[str, list[float]], *, width_tolerance: float = 0.05) -> dict:
    """Per optimizer: the η chosen by :func:`course_lib.benchmark.select` (the lowest mean over seeds of the final
    validation loss, a diverged run counting as +∞; the statistic notebook 09 uses too), the spread over seeds
    there, its held-out test loss, and how many grid points come within ``width_tolerance`` nats of it by the
    same statistic."""
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
            "test_loss_mean": benchmark.seed_statistic([r.get("test_loss") for r in best]),
            "best_val_accuracy_mean": float(np.mean([0.0 if r["best_val_accuracy"] is None else r["best_val_accuracy"]
                                                     for r in best])),
            "steps_to_target_median": int(np.median(reached)) if len(reached) == len(best) else None,
            "reached_target": len(reached),
            f"lrs_within_{width_tolerance}": sum(score <= choice.score + width_tolerance for score in choice.scores),
        }
    return summary


RUN_KEYS = {"optimizer": str, "lr": float, "seed": int, "diverged": bool, "val_loss": list, "val_accuracy": list,
            "best_val_loss": (float, type(None)), "best_val_accuracy": (float, type(None)),
            "final_val_loss": (float, type(None)), "test_loss": (float, type(None)),
            "test_accuracy": (float, type(None)), "steps_to_target": (int, type(None)), "seconds": float,
            "step_seconds": float, "grad_norm_median": (float, type(None)), "grad_norm_max": (float, type(None)),
            "clipped_fraction": float}
WORKLOAD_KEYS = ("title", "description", "parameters", "steps", "warmup_steps", "batch_size", "eval_every",
                 "eval_steps", "target", "betas", "clip_norm", "decay_timescale", "decay_multiplier", "optimizers",
                 "coarse_runs", "runs", "summary", "protocol")


def check_results(results: dict) -> None:
    """Raise ``ValueError`` saying what is wrong unless ``results`` follows the schema of this module's docstring:
    every key and type, one curve point per evaluation step, every (optimizer, η, seed) of the fine grids run
    once, the coarse runs on seed 0 each η once, and a protocol whose grids, seeds and budget match the runs."""
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
        coarse = [(run["optimizer"], run["lr"], run["seed"]) for run in workload["coarse_runs"]]
        expected_coarse = {(opt, lr, seeds[0]) for opt, spec in workload["optimizers"].items()
                           for lr in spec["coarse_grid"]}
        if sorted(coarse) != sorted(expected_coarse):
            fail(f"workload {name!r}: the coarse runs are not the coarse grids on seed {seeds[0]}, each once")
        curves = [key for key in workload["runs"][0] if key.startswith("val_")]
        for run in workload["runs"] + workload["coarse_runs"]:
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
        protocol = benchmark.Protocol.from_dict(workload["protocol"])
        if protocol.grids != {opt: spec["lr_grid"] for opt, spec in workload["optimizers"].items()}:
            fail(f"workload {name!r}: the protocol's grids are not the optimizers' lr_grid")
        if list(protocol.seeds) != list(seeds) or workload["protocol"].get("budget") != protocol.budget():
            fail(f"workload {name!r}: the protocol's seeds or budget do not match the runs")
        for opt, spec in workload["optimizers"].items():
            fine = set(spec["lr_grid"])
            distinct = len(spec["lr_grid"]) * len(seeds) + len(set(spec["coarse_grid"]) - fine)
            if protocol.budget()[opt] != distinct:
                fail(f"workload {name!r}: {opt}'s budget {protocol.budget()[opt]} is not its {distinct} distinct runs")


SEARCH_NOTE = ("two stages, every run counted, one search space for every optimizer of a workload: a coarse grid of "
               "one η per decade on seed 0, then three η per decade around each optimizer's coarse best on every "
               "seed; while any optimizer's best sits at an edge, the grid grows there for all (the coarse grid by a "
               "decade, the fine offsets by a point), so the budgets are equal; a coarse run at an η of the fine "
               "grid is reused there, not rerun")
"""What the committed protocol says of its search (``pilot_runs``: the coarse runs not reused)."""


def protocol_record(grids: dict[str, list[float]], coarse: dict[str, list[float]], seeds, extra=None) -> dict:
    """The ``protocol`` entry of a workload in the results file: :class:`course_lib.benchmark.Protocol` with the
    fine grids, the seeds, the coarse runs not reused in the fine grid as pilot runs, the selection rule and the
    budget per optimizer (every distinct run)."""
    pilot = {name: len(set(coarse[name]) - set(grid)) for name, grid in grids.items()}
    return benchmark.Protocol({name: list(grid) for name, grid in grids.items()}, tuple(seeds), pilot_runs=pilot,
                              notes=SEARCH_NOTE, extra=dict(extra or {})).to_dict()


__all__ += ["decaying_parameters", "decay_multiplier", "schedule_free_decay", "step_time_ratios", "check_results",
            "RUN_KEYS", "WORKLOAD_KEYS", "protocol_record", "NADAMW_PSI", "SEARCH_NOTE", "STEP_CLOCK"]


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


VARIANT_OF = {"nadamw": "nadam"}
"""Optimizers of this comparison that are a variant of a course method: drawn in that method's colour, dashed."""


def line_style(name: str) -> dict:
    """Matplotlib keywords for optimizer ``name``: the course's colour of its method, dashed for a variant."""
    from .. import plotting

    if name in VARIANT_OF:
        return {"color": plotting.method_color(VARIANT_OF[name]), "linestyle": "--"}
    return {"color": plotting.method_color(name)}


def curve_band(runs: list[dict], key: str = "val_loss") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, minimum and maximum over seeds of the curve ``key`` (NaN where a run had diverged)."""
    values = np.array([[np.nan if v is None else v for v in r[key]] for r in runs], dtype=float)
    return np.median(values, axis=0), values.min(axis=0), values.max(axis=0)


def plot_learning_curves(workload: dict, ax, key: str = "val_loss", optimizers=None, band: bool = True):
    """``key`` against steps for each optimizer at its best η: the median over seeds, the band from min to max."""

    steps = workload["eval_steps"]
    for name in optimizers or workload["optimizers"]:
        median, low, high = curve_band(runs_at(workload, name), key)
        style = line_style(name)
        ax.plot(steps, median, label=workload["optimizers"][name]["title"], **style)
        if band:
            ax.fill_between(steps, low, high, color=style["color"], alpha=0.2, linewidth=0)
    ax.set_xlabel("step t")
    return ax


def plot_lr_sensitivity(workload: dict, ax, optimizers=None, key: str = "best_val_loss"):
    """The best validation loss against η for each optimizer: mean over seeds (a diverged run is left out and its
    point drawn at the top of the axes as ×). The η axis is logarithmic, with a tick per decade and no minor ticks."""

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
        style = line_style(name)
        ax.semilogx(lrs, means, marker="o", label=workload["optimizers"][name]["title"], markersize=4,
                    **{"linestyle": "-", **style})
        if failed and top is not None:
            ax.semilogx(failed, [top] * len(failed), "x", color=style["color"])
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

    middle = (len(profile.optimizers) - 1) / 2
    for k, (name, rho) in enumerate(zip(profile.optimizers, profile.rho)):
        ax.step(profile.taus, rho + (k - middle) * offset, where="post", **line_style(name),
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
            ax.plot(steps, [np.nan if v is None else v for v in run[key]], ":", color=plotting.method_color("adamw"),
                    linewidth=1)
        for run in runs_at(workload, optimizer, lr):
            ax.plot(steps, [np.nan if v is None else v for v in run[key]], **line_style(optimizer))
        ax.axhline(workload["reference_losses"]["entropy_rate"], color="0.5", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("step t")
    axes[0].set_ylabel("validation loss (nats)")
    axes[0].set_ylim(0, workload["reference_losses"]["uniform"] + 2.5)
    best = workload["summary"]["adamw"]["best_lr"]
    fig.suptitle(f"{workload['optimizers'][optimizer]['title']} at η = {lr:g} (3 seeds) and AdamW at its "
                 f"best η = {best:g} (dotted); grey: the entropy rate")
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
            "paired_against", "excess_losses", "plot_performance_profile", "VARIANT_OF", "line_style",
            "lm_playground_figure",
            "results_playground"]


# --------------------------------------------------------------------------------------
# The controls (experiments/controls.py → course_lib/results/controls.json; notebook 12's last section)
# --------------------------------------------------------------------------------------
CONTROLS_SCHEMA = "where_it_matters_controls/1"
CONTROLS_PATH = importlib.resources.files("course_lib") / "results" / "controls.json"
"""The committed controls (package data, like :data:`RESULTS_PATH`); ``make controls`` rewrites it."""

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
    for workload, entry in controls["decay_multipliers"].items():
        if not 0 < entry["multiplier"] <= 1:
            fail(f"decay multiplier on {workload} is {entry['multiplier']}, expected in (0, 1]")


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


def quick_controls(results: dict, *, steps: int = 60, seed: int = 0) -> list[dict]:
    """Four of ``experiments/controls.py``'s controls, small enough to rerun in a notebook in seconds: one seed,
    ``steps`` steps (the schedule spans them), each optimizer at its best η of ``results`` (the main file). Each
    entry: ``{"control": label, "candidate": final loss, "baseline": final loss, "difference": candidate −
    baseline}``. A shorter run is another experiment: its differences need not match the full controls'."""
    from ..data import zipf_markov_corpus

    best = {key: {name: s["best_lr"] for name, s in w["summary"].items()} for key, w in results["workloads"].items()}
    small = {"steps": steps, "warmup_steps": max(1, steps // 10), "eval_every": steps}
    lm, cnn = lm_workload(**small), cnn_workload(**small)
    uniform = lm_workload(corpus=zipf_markov_corpus(exponent=0.0), **small)
    pairs = [
        ("AdamW with Muon's split − AdamW (LM)", (lm, "adamw", best["lm"]["adamw"], {"rest_lr": best["lm"]["muon"]}),
         (lm, "adamw", best["lm"]["adamw"], {})),
        ("Muon without decay − with (LM)", (lm, "muon", best["lm"]["muon"], {"decay_timescale": math.inf}),
         (lm, "muon", best["lm"]["muon"], {})),
        ("SGD + Nesterov clipped at 1 − unclipped (CNN)",
         (cnn, "nesterov", best["cnn"]["nesterov"], {"clip_norm": 1.0}),
         (cnn, "nesterov", best["cnn"]["nesterov"], {})),
        ("SGD + Nesterov − AdamW (uniform language)", (uniform, "nesterov", best["lm"]["nesterov"], {}),
         (uniform, "adamw", best["lm"]["adamw"], {})),
    ]
    out = []
    for label, (w1, o1, lr1, v1), (w2, o2, lr2, v2) in pairs:
        a = train_run(w1, o1, lr1, seed, **v1)["final_val_loss"]
        b = train_run(w2, o2, lr2, seed, **v2)["final_val_loss"]
        out.append({"control": label, "candidate": a, "baseline": b,
                    "difference": None if a is None or b is None else a - b})
    return out


__all__ += ["quick_controls", "CONTROLS_SCHEMA", "CONTROLS_PATH", "check_controls", "load_controls", "control_runs",
            "paired_runs", "gap_by_bin"]
