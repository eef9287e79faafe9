r"""A real convex problem whose exact optimum is known: L2-regularized logistic regression.

Notebook 03 studies stochastic gradient descent on scikit-learn's bundled
breast cancer data (569 tumours, 30 features, no download). With the features
standardized and a column of ones appended for the intercept, each sample is a
row z_i ∈ R^{d+1} of the ``design`` matrix with a label y_i ∈ {−1, +1}, and the
objective over θ = (w, b) is

.. math::

    f(\theta) = \frac1n \sum_{i=1}^n \log\bigl(1 + e^{-y_i z_i^\top \theta}\bigr)
                + \frac\lambda2 \lVert w \rVert^2 ,

the mean logistic loss plus an L2 penalty λ (``weight_decay``) on the weights w
(not on the intercept b, as in scikit-learn). f is smooth and, thanks to λ,
strongly convex in w, so it has one minimizer θ* and a minimum f* that
:func:`reference_optimum` computes with scikit-learn's Newton solver.

``loss`` and ``grad`` take a point θ of shape (dim,) or a batch of points
(..., dim), NumPy arrays or torch tensors, and optionally the indices of a
minibatch 𝓑 of B samples (B, the batch size): then they are the minibatch
objective f_𝓑(θ) (the mean over 𝓑 plus the same penalty) and its gradient,
whose average over 𝓑 drawn uniformly is ∇f(θ). :func:`minibatch_sgd` (NumPy, many runs at once) and :func:`train`
(the PyTorch training loop, with any ``torch.optim`` optimizer and learning-rate
scheduler) run minibatch SGD on it with the same minibatches for a given seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..rules import sgd

__all__ = [
    "LogisticRegressionProblem",
    "breast_cancer",
    "reference_optimum",
    "epoch_batches",
    "minibatch_sgd",
    "train",
]


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


@dataclass(frozen=True, eq=False)
class LogisticRegressionProblem:
    """Mean logistic loss plus (λ/2)‖w‖² over θ = (w, b); see the module docstring.

    ``design`` is the (n, dim) matrix of samples z_i (its last column is ones,
    for the intercept) and ``labels`` the (n,) vector of y_i ∈ {−1, +1}.
    """

    name: str
    design: np.ndarray
    labels: np.ndarray
    weight_decay: float
    _tensors: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def n_samples(self) -> int:
        return self.design.shape[0]

    @property
    def dim(self) -> int:
        return self.design.shape[1]

    @property
    def penalized(self) -> np.ndarray:
        """1 for the weights w, 0 for the intercept b (not penalized)."""
        mask = np.ones(self.dim)
        mask[-1] = 0.0
        return mask

    @property
    def smoothness(self) -> float:
        """L = (largest eigenvalue of ZᵀZ)/(4n) + λ: an upper bound on every Hessian eigenvalue, at every θ.

        (The logistic loss has second derivative p(1 − p) ≤ 1/4, p the predicted
        probability; at θ = 0, where every p = ½, the bound is attained when the intercept column is
        orthogonal to the features, as with standardized features.) Gradient
        descent with η ≤ 1/L never increases f.
        """
        return float(np.linalg.eigvalsh(self.design.T @ self.design)[-1] / (4 * self.n_samples)
                     + self.weight_decay)

    def _data(self, params, batch):
        """(design, labels, mask) of the samples in ``batch``, as arrays or as tensors like ``params``."""
        if not _is_tensor(params):
            design, labels = self.design, self.labels
            if batch is not None:
                batch = np.asarray(batch)
                design, labels = design[batch], labels[batch]
            return design, labels, self.penalized
        import torch

        key = (params.dtype, params.device)
        if key not in self._tensors:  # one copy per dtype and device, made once
            self._tensors[key] = tuple(torch.as_tensor(a, dtype=params.dtype, device=params.device)
                                       for a in (self.design, self.labels, self.penalized))
        design, labels, mask = self._tensors[key]
        if batch is not None:
            batch = torch.as_tensor(np.asarray(batch), device=params.device)
            design, labels = design[batch], labels[batch]
        return design, labels, mask

    def _check(self, params):
        if params.shape[-1:] != (self.dim,):
            raise ValueError(f"params must have {self.dim} coordinates (last axis; {self.dim - 1} weights "
                             f"and the intercept); got shape {tuple(params.shape)}")
        return params

    @staticmethod
    def _margins(params, design, labels):
        """y_i z_iᵀθ for every sample: shape (..., m). ``design`` is (m, dim), or (..., m, dim) per run."""
        if design.ndim == 2:  # one matrix product for all points (a stacked matmul is much slower)
            flat = params.reshape(-1, params.shape[-1]) @ design.T
            return labels * flat.reshape(params.shape[:-1] + design.shape[:1])
        return labels * (design @ params[..., None])[..., 0]

    def loss(self, params, batch=None):
        """f(θ), or the minibatch objective f_𝓑(θ) on the samples ``batch``; shape (..., dim) in, (...) out.

        ``batch`` is an integer array of sample indices: shape (m,) for one
        minibatch shared by every point, or (..., m), one minibatch per point.
        """
        params = params if _is_tensor(params) else np.asarray(params, dtype=float)
        self._check(params)
        return self._loss_on(params, *self._data(params, batch))

    def _loss_on(self, params, design, labels, mask):
        """f_𝓑(θ) on the samples ``design`` (m, dim) or (..., m, dim) with their ``labels``."""
        margins = self._margins(params, design, labels)
        penalty = 0.5 * self.weight_decay * (mask * params**2).sum(-1)
        if _is_tensor(params):
            import torch

            return torch.logaddexp(torch.zeros_like(margins), -margins).mean(-1) + penalty
        return np.logaddexp(0.0, -margins).mean(-1) + penalty

    def grad(self, params, batch=None):
        """∇f(θ) = −(1/m) sum_i y_i sigmoid(−y_i z_iᵀθ) z_i + λ (w, 0), over all m samples or the minibatch ``batch``.

        Shapes as for :meth:`loss`, with a trailing axis of length dim on the result.
        """
        params = params if _is_tensor(params) else np.asarray(params, dtype=float)
        self._check(params)
        return self._grad_on(params, *self._data(params, batch))

    def _grad_on(self, params, design, labels, mask):
        """∇f_𝓑(θ) on the samples ``design`` (m, dim) or (..., m, dim) with their ``labels``."""
        margins = self._margins(params, design, labels)
        if _is_tensor(params):
            weights = -labels * (-margins).sigmoid()
        else:
            from scipy.special import expit

            weights = -labels * expit(-margins)
        if design.ndim == 2:
            data_term = weights @ design
        else:
            data_term = (weights[..., None, :] @ design)[..., 0, :]
        return data_term / design.shape[-2] + self.weight_decay * mask * params

    def sample_grads(self, params) -> np.ndarray:
        """The n per-sample gradients ∇f_i(θ) (penalty included), shape (n, dim); their mean is ∇f(θ)."""
        from scipy.special import expit

        params = self._check(np.asarray(params, dtype=float))
        margins = self.labels * (self.design @ params)
        weights = -self.labels * expit(-margins)
        return weights[:, None] * self.design + self.weight_decay * self.penalized * params

    def gradient_noise(self, params) -> float:
        """tr Σ(θ) = (1/n) sum_i ‖∇f_i(θ) − ∇f(θ)‖²: the variance of a one-sample gradient at θ.

        Σ(θ) is the gradient-noise covariance, (1/n) sum_i (∇f_i − ∇f)(∇f_i − ∇f)ᵀ,
        and this is its trace. A minibatch of B samples drawn independently
        (with replacement) has gradient covariance Σ / B and variance tr Σ / B.
        """
        grads = self.sample_grads(params)
        return float(((grads - grads.mean(0)) ** 2).sum(1).mean())

    def hessian(self, params) -> np.ndarray:
        """∇²f(θ) = (1/n) sum_i p_i (1 − p_i) z_i z_iᵀ + λ diag(1, …, 1, 0), with p_i = sigmoid(z_iᵀθ)."""
        from scipy.special import expit

        params = self._check(np.asarray(params, dtype=float))
        prob = expit(self.design @ params)
        curvature = prob * (1 - prob)
        return (self.design * curvature[:, None]).T @ self.design / self.n_samples + np.diag(
            self.weight_decay * self.penalized)


def breast_cancer(weight_decay: float = 1e-2) -> LogisticRegressionProblem:
    """Logistic regression on scikit-learn's breast cancer data (bundled, no download).

    569 samples, 30 features standardized to mean 0 and variance 1, plus an
    intercept: dim = 31. Label +1 is "benign", −1 "malignant".
    """
    if not weight_decay > 0:
        raise ValueError(f"Invalid weight_decay: {weight_decay} (must be positive for a unique optimum)")
    from ..data import breast_cancer_table

    features, target, _, _ = breast_cancer_table()
    features = (features - features.mean(0)) / features.std(0)
    design = np.hstack([features, np.ones((features.shape[0], 1))])
    labels = 2.0 * target - 1.0
    return LogisticRegressionProblem(f"breast cancer logistic regression, λ={weight_decay:g}", design, labels,
                                     float(weight_decay))


def reference_optimum(problem: LogisticRegressionProblem, tol: float = 1e-12) -> tuple[np.ndarray, float]:
    """θ* and f* = f(θ*) from scikit-learn's solver (Newton–Cholesky, tolerance ``tol``).

    scikit-learn minimizes C sum_i log(1 + e^{−y_i(xᵢᵀw + b)}) + ½‖w‖², the same
    problem as ours times C·n when C = 1/(nλ).
    """
    from sklearn.linear_model import LogisticRegression

    features, labels = problem.design[:, :-1], problem.labels
    model = LogisticRegression(C=1.0 / (problem.n_samples * problem.weight_decay), tol=tol, max_iter=1000,
                               solver="newton-cholesky")
    model.fit(features, labels)
    params = np.append(model.coef_.ravel(), model.intercept_)
    return params, float(problem.loss(params))


def _check_batch_size(batch_size, n_samples):
    if int(batch_size) != batch_size or not 1 <= batch_size <= n_samples:
        raise ValueError(f"Invalid batch_size: {batch_size} (an integer from 1 to n_samples = {n_samples})")
    return int(batch_size)


def epoch_batches(rng: np.random.Generator, n_samples: int, batch_size: int, replacement: bool = False):
    """The minibatches of one epoch: n sample indices cut into consecutive batches of ``batch_size``.

    The n indices are a random permutation (``replacement=False``: every sample
    once per epoch, like a shuffling ``DataLoader``) or n independent uniform
    draws (``replacement=True``). The last batch is smaller when ``batch_size``
    does not divide n. Every epoch thus costs exactly n per-sample gradients.
    """
    batch_size = _check_batch_size(batch_size, n_samples)
    order = _epoch_order(rng, n_samples, replacement)
    return [order[start:start + batch_size] for start in range(0, n_samples, batch_size)]


def _epoch_order(rng, n_samples, replacement):
    return rng.integers(0, n_samples, n_samples) if replacement else rng.permutation(n_samples)


def _check_epochs(epochs):
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"Invalid epochs: {epochs} (a non-negative integer)")
    return int(epochs)


def minibatch_sgd(problem: LogisticRegressionProblem, x0, lr, batch_size: int, epochs: int, seed=0,
                  replacement: bool = False, every="epoch") -> np.ndarray:
    """Minibatch SGD θ_t = θ_{t−1} − η ∇f_{𝓑_t}(θ_{t−1}) in NumPy; returns the recorded iterates.

    ``x0`` is a point (dim,) or a batch of starts (runs, dim); ``lr`` a number or
    an array (runs, 1) of learning rates, one per run. With one ``seed`` every
    run sees the same minibatches, those of :func:`epoch_batches` with
    ``np.random.default_rng(seed)``; with a sequence of seeds, one per run, run r
    draws its own minibatches from ``np.random.default_rng(seed[r])`` (independent
    repetitions, still advanced together, one array operation per step).
    ``batch_size`` = n is full-batch gradient descent. With one seed per run,
    ``replacement`` may also be a sequence of booleans, one per run (both ways of
    sampling advanced together); each run then equals the same run made alone.

    The result holds θ_0 and then the iterate after every epoch
    (``every="epoch"``), every step (``"step"``) or every k-th step (an int k):
    shape (records, *runs, dim).
    """
    if not (every in ("epoch", "step") or (isinstance(every, int) and every >= 1)):
        raise ValueError(f"Invalid every: {every!r} (use 'epoch', 'step' or a positive number of steps)")
    epochs = _check_epochs(epochs)
    batch_size = _check_batch_size(batch_size, problem.n_samples)
    record_every = 1 if every == "step" else every
    rule = sgd(lr=lr)
    step_size = rule.hyperparams["lr"]   # the rule's update, θ − η g, written out below (no per-step checks)
    mask = problem.penalized
    seeds = np.asarray(seed)
    rngs = [np.random.default_rng(int(s)) for s in seeds.ravel()]
    if np.ndim(replacement) and np.shape(replacement) != seeds.shape:
        raise ValueError(f"Invalid replacement: one boolean per run needs one seed per run, of the same shape; "
                         f"got {np.shape(replacement)} booleans and seed of shape {seeds.shape}")
    with_replacement = [bool(r) for r in np.broadcast_to(np.asarray(replacement, dtype=bool), seeds.shape).ravel()]
    x = np.asarray(x0, dtype=float)
    run_shape = np.broadcast_shapes(x.shape[:-1], np.shape(lr)[:-1], seeds.shape)
    x = np.broadcast_to(x, run_shape + (problem.dim,)).copy()
    records, step = [x], 0
    for _ in range(epochs):
        # the epoch's sample order: (n,) shared by all runs, or (runs, n) with one seed per run
        orders = np.stack([_epoch_order(rng, problem.n_samples, draws) for rng, draws in zip(rngs, with_replacement)])
        orders = orders[0] if seeds.ndim == 0 else orders
        design, labels = problem.design[orders], problem.labels[orders]   # the epoch's samples, gathered once
        for start in range(0, problem.n_samples, batch_size):
            batch = slice(start, start + batch_size)
            # copies, as the indexing they replace made: fresh, aligned arrays (a BLAS kernel may round by alignment)
            x = x - step_size * problem._grad_on(x, design[..., batch, :].copy(), labels[..., batch].copy(), mask)
            step += 1
            if record_every != "epoch" and step % record_every == 0:
                records.append(x)
        if record_every == "epoch":
            records.append(x)
    return np.stack(records)


def train(problem: LogisticRegressionProblem, params, optimizer, epochs: int, batch_size: int, seed: int = 0,
          replacement: bool = False, scheduler=None) -> tuple[np.ndarray, np.ndarray]:
    """The PyTorch training loop on ``problem``.

    ``params`` is the torch tensor (requires_grad) that ``optimizer`` updates.
    For each minibatch (the same ones as :func:`minibatch_sgd` with this seed):
    ``zero_grad()``, ``loss.backward()`` through autograd, ``optimizer.step()``
    (:func:`course_lib.training.backward_step`, the step of every loop of the course);
    after each epoch ``scheduler.step()`` when a learning-rate scheduler is given.

    Returns θ after every epoch, shape (epochs + 1, dim), θ_0 included, and the
    learning rate each epoch ran with (that of the first param group), shape (epochs,).

    Several runs on the same minibatches: pass lists of equal length for ``params``,
    ``optimizer`` and ``scheduler`` (entries may be ``None``), run k's tensor being the one
    its optimizer updates. The runs of each dtype and device are then stacked into one
    (runs, dim) tensor, each minibatch's losses computed for all of them at once, summed and
    backpropagated once (one pass of the autograd engine for all runs), which gives every run
    exactly the gradient of its own loss; the returns gain a run axis: (epochs + 1, runs, dim)
    and (epochs, runs). A run gives the same iterates, bit for bit, alone or with others.
    """
    epochs = _check_epochs(epochs)
    many = isinstance(params, (list, tuple))
    runs = list(params) if many else [params]
    optimizers = list(optimizer) if many else [optimizer]
    schedulers = (list(scheduler) if scheduler is not None else [None] * len(runs)) if many else [scheduler]
    if not runs or not len(runs) == len(optimizers) == len(schedulers):
        raise ValueError(f"params, optimizer and scheduler must be lists of equal length (one entry per run); "
                         f"got {len(runs)}, {len(optimizers)} and {len(schedulers)}")
    rng = np.random.default_rng(seed)
    import torch

    from ..training import backward_step

    def snapshot():
        return np.stack([run.detach().cpu().numpy().copy() for run in runs])

    groups, data = {}, {}                 # the runs by dtype and device, and the problem's data in that kind
    for run in runs:
        problem._check(run)
        key = (run.dtype, run.device)
        groups.setdefault(key, []).append(run)
        if key not in data:
            data[key] = problem._data(run, None)
    records, lrs = [snapshot()], []
    for _ in range(epochs):
        lrs.append([float(opt.param_groups[0]["lr"]) for opt in optimizers])
        batches = epoch_batches(rng, problem.n_samples, batch_size, replacement)
        order = np.concatenate(batches)
        samples = {}                      # the epoch's samples, gathered once per dtype and device of the runs
        for (dtype, device), (design, labels, mask) in data.items():
            index = torch.as_tensor(order, device=device)
            samples[dtype, device] = (design[index], labels[index], mask)
        start = 0
        for batch in batches:
            rows = slice(start, start + len(batch))
            start += len(batch)
            total = None
            for key, (design, labels, mask) in samples.items():
                losses = _run_losses(problem, torch.stack(groups[key]), design[rows].clone(), labels[rows].clone(),
                                     mask).sum()
                total = losses if total is None else total + losses
            backward_step(total, optimizers)   # zero_grad, backward (each run: its own loss's gradient), step
        for sched in schedulers:
            if sched is not None:
                sched.step()
        records.append(snapshot())
    path, lrs = np.stack(records), np.array(lrs)
    return (path, lrs) if many else (path[:, 0], lrs[:, 0])


def _run_losses(problem, params, design, labels, mask):
    """f_𝓑 for each of the runs ``params`` (runs, dim), torch, on one minibatch ``design`` (m, dim).

    The formula of :meth:`LogisticRegressionProblem.loss`, with the products z_iᵀθ as broadcast sums rather than
    a matrix product: a run's loss and gradient are then the same, bit for bit, whatever the number of runs, and
    these tiny products never wait for a BLAS thread.
    """
    import torch

    margins = labels * (params[:, None, :] * design).sum(-1)
    penalty = 0.5 * problem.weight_decay * (mask * params**2).sum(-1)
    return torch.logaddexp(torch.zeros_like(margins), -margins).mean(-1) + penalty


# --------------------------------------------------------------------------------------
# The view of notebook 03's playground, and the playground
# --------------------------------------------------------------------------------------
def show_minibatch_sgd(problem, optimum, lr: float = 0.05, batch_size: int = 16, epochs: int = 20,
                       replacement: bool = False, seed: int = 0):
    """Minibatch SGD against full-batch gradient descent on a problem of this module.

    Both start at θ_0 = 0. Draws f(θ_t) − f* at every step of SGD (against
    epochs, one epoch = n per-sample gradients), full-batch gradient descent
    with η = 1/L once per epoch, and the noise floor η tr Σ / (4B) that the
    small-η theory predicts for minibatches drawn with replacement (tr Σ, the
    one-sample gradient variance at θ*). ``optimum`` is the pair
    (θ*, f*) of :func:`reference_optimum`. This is the view
    behind notebook 03's playground; it returns the figure.
    """
    import matplotlib.pyplot as plt

    from ..plotting import batch_color, method_color

    params_star, minimum = optimum
    n = problem.n_samples
    path, gd = _view_runs(problem, lr, batch_size, epochs, replacement, seed)
    steps_per_epoch = -(-n // int(batch_size))
    floor = lr * problem.gradient_noise(params_star) / (4 * batch_size)

    fig, ax = plt.subplots(figsize=(8, 4.2))
    sampling = "with replacement" if replacement else "reshuffled"
    ax.plot(np.arange(len(path)) / steps_per_epoch, np.maximum(problem.loss(path) - minimum, 1e-16),
            color=batch_color(batch_size, n), lw=0.8, label=f"SGD, B = {batch_size}, η = {lr:.3g} ({sampling})")
    ax.plot(np.arange(epochs + 1), np.maximum(problem.loss(gd) - minimum, 1e-16), "-o", markersize=3,
            color=method_color("gd"), label="full-batch GD, η = 1/L")
    ax.axhline(floor, ls="--", color="k", lw=1, label="noise floor η tr Σ / (4B) (i.i.d. theory)")
    ax.set_yscale("log")
    ax.set_xlabel("epochs")
    ax.set_ylabel("gap to the minimum, f(θ_t) − f*")
    ax.set_title(f"{steps_per_epoch} steps per epoch")
    ax.legend(loc="upper right")
    return fig


@functools.lru_cache(maxsize=8)
def _view_runs(problem, lr, batch_size, epochs, replacement, seed):
    """The two runs :func:`show_minibatch_sgd` draws (read-only), kept for the last few settings: the playground's
    first view and the static figure after it are the same runs, computed once."""
    start = np.zeros(problem.dim)
    path = minibatch_sgd(problem, start, lr, batch_size, epochs, seed=seed, replacement=replacement, every="step")
    gd = minibatch_sgd(problem, start, 1 / problem.smoothness, problem.n_samples, epochs)
    for run in (path, gd):
        run.flags.writeable = False
    return path, gd


def sgd_playground(problem, optimum, epochs: int = 20):
    """Notebook 03: learning rate, batch size and sampling for minibatch SGD on a real problem.

    ``problem`` and ``optimum`` come from :func:`breast_cancer` and :func:`reference_optimum`; the view is
    :func:`show_minibatch_sgd`.
    """
    import ipywidgets as ipw

    from ..widgets import playground

    sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, problem.n_samples})
    return playground(
        lambda lr, batch_size, replacement: show_minibatch_sgd(problem, optimum, lr=lr, batch_size=batch_size,
                                                               epochs=epochs, replacement=replacement),
        lr=ipw.FloatLogSlider(value=0.05, base=10, min=-3, max=0.5, step=0.1, description="η",
                              continuous_update=False, readout_format=".3g"),
        batch_size=ipw.SelectionSlider(options=sizes, value=16, description="B", continuous_update=False),
        replacement=ipw.ToggleButtons(options=[("reshuffled", False), ("with replacement", True)], value=False,
                                      description="sampling"),
    )


__all__ += ["show_minibatch_sgd", "sgd_playground"]
