"""course_lib.training beyond binary classification, and the training recipe: cross-entropy for classes and
sequences, the max_steps budget, schedules (against torch.optim.lr_scheduler), gradient clipping (against
torch.nn.utils.clip_grad_norm_), no-decay parameter groups, bfloat16 autocast, early stopping."""

import math
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss

from course_lib import optim, training

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")

pytestmark = pytest.mark.usefixtures("one_thread")


def _classes(n=120, features=6, classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, features, generator=generator)
    y = (X[:, :classes] + 0.5 * torch.randn(n, classes, generator=generator)).argmax(1)
    return X, y


class _TinyLM(torch.nn.Module):
    """Embedding → LayerNorm → Linear: per-token class logits (N, T, V) for token ids (N, T)."""

    def __init__(self, vocabulary=11, width=8):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocabulary, width)
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, vocabulary)

    def forward(self, tokens):
        return self.head(self.norm(self.embedding(tokens)))


def _tokens(n=40, length=9, vocabulary=11, seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocabulary, (n, length + 1), generator=generator)
    return tokens[:, :-1], tokens[:, 1:]


def _mlp(features=6, classes=4, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(features, 16), torch.nn.ReLU(), torch.nn.Linear(16, classes))


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _hand_loop(model, optimizer, X, y, loss_fn, epochs, batch_size, seed, *, clip=None, scheduler=None,
               max_steps=None):
    """The textbook loop with fit's shuffles; returns the pre-clip gradient norms."""
    norms, step = [], 0
    for epoch in range(epochs):
        order = torch.randperm(len(X), generator=training.epoch_generator(seed, epoch))
        for start in range(0, len(X), batch_size):
            if max_steps is not None and step == max_steps:
                return norms
            rows = order[start:start + batch_size]
            loss = loss_fn(model(X[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            if clip is not None:
                norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
    return norms


# ------------------------------------------------------------------------------------------
# cross-entropy: classes and sequences
# ------------------------------------------------------------------------------------------
def test_cross_entropy_fit_equals_a_hand_written_loop_and_scikit_learn():
    X, y = _classes()
    ours, theirs = _mlp(), _mlp()
    history = training.fit(ours, optim.Adam(ours.parameters(), lr=0.01), (X[:90], y[:90]), (X[90:], y[90:]),
                           loss="cross_entropy", epochs=3, batch_size=16, device="cpu", progress=False, seed=2)
    _hand_loop(theirs, optim.Adam(theirs.parameters(), lr=0.01), X[:90], y[:90], torch.nn.CrossEntropyLoss(), 3,
               16, seed=2)
    assert _same(_params(ours), _params(theirs))
    with torch.no_grad():
        p = torch.softmax(ours(X[90:]).double(), 1).numpy()
    assert history.val_loss[-1] == pytest.approx(log_loss(y[90:].numpy(), p, labels=range(4)), abs=1e-6)
    assert history.val_accuracy[-1] == pytest.approx(accuracy_score(y[90:].numpy(), p.argmax(1)))
    assert training.evaluate(ours, (X[90:], y[90:]), loss="cross_entropy") == pytest.approx(
        (history.val_loss[-1], history.val_accuracy[-1]), abs=1e-9)
    assert history.loss == "cross-entropy"
    # a torch CrossEntropyLoss module is taken the same way, and float labels that are whole numbers too
    again = _mlp()
    other = training.fit(again, optim.Adam(again.parameters(), lr=0.01), (X[:90], y[:90].float()),
                         (X[90:], y[90:]), loss=torch.nn.CrossEntropyLoss(), epochs=3, batch_size=16, device="cpu",
                         progress=False, seed=2)
    assert other.same_metrics(history)


def test_sequence_loss_and_accuracy_are_per_token():
    """Logits (N, T, V) against (N, T): torch's own (N, V, T) form of cross-entropy, accuracy over N·T tokens."""
    X, y = _tokens()
    torch.manual_seed(0)
    ours = _TinyLM()
    theirs = _TinyLM()
    theirs.load_state_dict(ours.state_dict())

    def reference(logits, targets):
        return torch.nn.functional.cross_entropy(logits.permute(0, 2, 1), targets)

    history = training.fit(ours, optim.SGD(ours.parameters(), lr=0.5), (X[:30], y[:30]), (X[30:], y[30:]),
                           loss="cross_entropy", epochs=2, batch_size=8, device="cpu", progress=False, seed=1)
    _hand_loop(theirs, optim.SGD(theirs.parameters(), lr=0.5), X[:30], y[:30], reference, 2, 8, seed=1)
    # equal up to the order of the additions (torch reduces the (N, V, T) form in another order)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(_params(ours), _params(theirs)))
    assert not _same(_params(ours), _params(_TinyLM()))
    with torch.no_grad():
        logits = ours(X[30:])
        expected_loss = float(reference(logits, y[30:]))
        expected_accuracy = accuracy_score(y[30:].reshape(-1).numpy(), logits.argmax(-1).reshape(-1).numpy())
    assert history.val_loss[-1] == pytest.approx(expected_loss, rel=1e-6)
    assert history.val_accuracy[-1] == pytest.approx(expected_accuracy)
    assert history.val_accuracy[-1] * y[30:].numel() == pytest.approx(round(expected_accuracy * 90))


def test_training_accuracy_counts_every_token_of_the_epoch():
    """Full batch, SGD with lr 0: the epoch's training accuracy is the starting model's per-token accuracy."""
    X, y = _tokens()
    torch.manual_seed(3)
    model = _TinyLM()
    with torch.no_grad():
        expected = accuracy_score(y.reshape(-1).numpy(), model(X).argmax(-1).reshape(-1).numpy())
    history = training.fit(model, optim.SGD(model.parameters(), lr=0.0), (X, y), loss="cross_entropy", epochs=1,
                           batch_size=7, device="cpu", progress=False)
    assert history.train_accuracy[0] == pytest.approx(expected)


def test_cross_entropy_input_errors_are_named():
    X, y = _classes()
    model = _mlp()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    cases = [((X, y + 4), "holds class 7, but the model returns 4 logits"),
             ((X, torch.where(y == 3, 4, y)), r"holds class 4, but the model returns 4 logits per target \(classes 0 "
                                              r"to 3\)"),
             ((X, y - 1), "class indices 0, 1, …, C − 1 for cross-entropy; found -1"),
             ((X, y.float() + 0.5), "not whole numbers"),
             ((X, y[:, None, None]), r"shape \(n,\) \(one class per sample\) or \(n, T\)"),
             ((X, torch.stack([y, y], 1)), r"returns shape \(2, 4\) for targets of shape \(2, 2\)")]
    for train, words in cases:
        before = _params(model)
        with pytest.raises(ValueError, match=words):
            training.fit(model, optimizer, train, loss="cross_entropy", epochs=1, device="cpu", progress=False)
        assert _same(before, _params(model))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, torch.where(X[:, 0] > 2, 9, y)),
                                         batch_size=16)
    with pytest.raises(ValueError, match="train batch .* holds class 9"):
        training.fit(model, optimizer, loader, loss="cross_entropy", epochs=1, device="cpu", progress=False)


def test_cross_entropy_through_a_dataloader_equals_in_memory():
    X, y = _classes()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=32)
    a, b = _mlp(), _mlp()
    via_loader = training.fit(a, optim.SGD(a.parameters(), lr=0.1), loader, loader, loss="cross_entropy", epochs=2,
                              device="cpu", progress=False)
    opt = optim.SGD(b.parameters(), lr=0.1)
    for _ in range(2):
        for start in range(0, len(X), 32):
            loss = torch.nn.functional.cross_entropy(b(X[start:start + 32]), y[start:start + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert _same(_params(a), _params(b))
    assert via_loader.val_loss[-1] == pytest.approx(training.evaluate(b, (X, y), loss="cross_entropy")[0], rel=1e-6)


# ------------------------------------------------------------------------------------------
# the max_steps budget and the per-step record
# ------------------------------------------------------------------------------------------
def test_max_steps_stops_part_way_through_an_epoch():
    X, y = _classes()
    ours, theirs = _mlp(), _mlp()
    history = training.fit(ours, optim.Adam(ours.parameters(), lr=0.01), (X, y), loss="cross_entropy",
                           max_steps=19, batch_size=16, device="cpu", progress=False, seed=4)
    _hand_loop(theirs, optim.Adam(theirs.parameters(), lr=0.01), X, y, torch.nn.CrossEntropyLoss(), 3, 16, seed=4,
               max_steps=19)
    assert _same(_params(ours), _params(theirs))
    assert history.steps == [8, 16, 19] and len(history.step_loss) == 19 and len(history.step_lr) == 19
    assert history.step_grad_norm == []  # no clipping, no norms
    # epochs and max_steps together: whichever ends first
    short = _mlp()
    assert training.fit(short, optim.Adam(short.parameters()), (X, y), loss="cross_entropy", epochs=1,
                        max_steps=100, batch_size=16, device="cpu", progress=False).steps == [8]
    # a resumed run counts the steps it already has
    again = training.fit(ours, optim.Adam(ours.parameters()), (X, y), loss="cross_entropy", max_steps=30,
                         batch_size=16, device="cpu", progress=False, history=history)
    assert again.steps == [8, 16, 19, 27, 30]


def test_per_step_losses_weigh_into_the_epoch_loss():
    X, y = _classes()
    model = _mlp()
    history = training.fit(model, optim.SGD(model.parameters(), lr=0.05), (X, y), loss="cross_entropy", epochs=2,
                           batch_size=50, device="cpu", progress=False)
    first = np.array(history.step_loss[:3])
    assert history.train_loss[0] == pytest.approx(float(first @ [50, 50, 20]) / 120, rel=1e-12)
    assert history.metric("step_loss").shape == (6,)
    again = training.History.from_dict(history.to_dict())
    assert again.step_loss == history.step_loss and again.loss == "cross-entropy"
    old = {name: value for name, value in history.to_dict().items() if not name.startswith("step_")}
    assert training.History.from_dict(old).step_loss == []  # a checkpoint from before per-step metrics loads


def test_per_step_results_are_read_back_once_per_epoch(monkeypatch):
    """No step waits for the host: the number of device-to-host reads does not grow with the steps."""
    X, y = _classes(n=400)
    reads = []

    def counted(method):
        def read(self, *args, **kwargs):
            if sys._getframe(1).f_code.co_filename == training.__file__:  # fit's own reads, not the optimizer's
                reads.append(method)
            return method(self, *args, **kwargs)
        return read

    for name in ("cpu", "item", "tolist", "__float__", "__int__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))
    counts = []
    for batch_size in (100, 10):
        model = _mlp()
        reads.clear()
        training.fit(model, optim.Adam(model.parameters()), (X, y), (X[:50], y[:50]), loss="cross_entropy",
                     epochs=2, batch_size=batch_size, device="cpu", progress=False, seed=0, clip_grad_norm=1.0,
                     schedule=training.warmup_cosine(5, 80))
        counts.append(len(reads))
    assert counts[0] == counts[1]  # 4 and 40 steps per epoch: the same reads


# ------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------
def _torch_lrs(make_scheduler, steps, lr=0.1):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


@pytest.mark.parametrize("warmup, total, start, final", [(10, 50, 0.1, 0.0), (7, 31, 0.5, 0.2), (1, 20, 0.01, 0.1)])
def test_warmup_cosine_equals_torchs_linear_then_cosine(warmup, total, start, final):
    lr = 0.1
    expected = _torch_lrs(lambda opt: torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=final * lr)],
        milestones=[warmup]), total + 1, lr)
    factor = training.warmup_cosine(warmup, total, start_factor=start, final_factor=final)
    assert np.allclose([lr * factor(k) for k in range(total + 1)], expected, rtol=0, atol=1e-12)
    assert factor(total + 5) == pytest.approx(final)  # it stays at the end, where torch's cosine would rise again


def test_warmup_cosine_closed_form_from_zero():
    factor = training.warmup_cosine(4, 14)
    assert [factor(k) for k in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5, abs=1e-15)  # half-way through the cosine
    assert factor(14) == pytest.approx(0.0, abs=1e-15)
    assert all(factor(k) >= factor(k + 1) for k in range(4, 20))


@pytest.mark.parametrize("warmup, total, decay, start, final", [(5, 40, 10, 0.2, 0.0), (3, 20, 20 - 3, 0.5, 0.1)])
def test_warmup_stable_decay_equals_torchs_linear_constant_linear(warmup, total, decay, start, final):
    lr = 0.3
    expected = _torch_lrs(lambda opt: torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warmup),
        torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=total),
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=final, total_iters=decay)],
        milestones=[warmup, total - decay]), total + 1, lr)
    factor = training.warmup_stable_decay(warmup, total, decay, start_factor=start, final_factor=final)
    assert np.allclose([lr * factor(k) for k in range(total + 1)], expected, rtol=0, atol=1e-12)


def test_warmup_stable_decay_shapes_closed_form():
    cosine = training.warmup_stable_decay(2, 12, 4, decay="cosine", final_factor=0.1)
    root = training.warmup_stable_decay(2, 12, 4, decay="1-sqrt")
    assert [cosine(k) for k in range(9)] == [0.0, 0.5] + [1.0] * 7
    assert cosine(10) == pytest.approx(0.1 + 0.9 * 0.5) and cosine(12) == pytest.approx(0.1)
    assert root(9) == pytest.approx(1 - math.sqrt(0.25)) and root(12) == pytest.approx(0.0) and root(99) == 0.0


@pytest.mark.parametrize("arguments, words", [
    (dict(warmup_steps=10, total_steps=10), "warmup_steps"), (dict(warmup_steps=-1, total_steps=10), "warmup_steps"),
    (dict(warmup_steps=1, total_steps=0), "total_steps"), (dict(warmup_steps=1, total_steps=9, final_factor=2),
                                                           "final_factor"),
    (dict(warmup_steps=1, total_steps=9, start_factor=-0.1), "start_factor"),
])
def test_schedules_reject_bad_arguments(arguments, words):
    with pytest.raises(ValueError, match=words):
        training.warmup_cosine(**arguments)
    with pytest.raises(ValueError, match="decay_steps"):
        training.warmup_stable_decay(5, 10, 6)
    with pytest.raises(ValueError, match="decay must be one of"):
        training.warmup_stable_decay(1, 10, 3, decay="exponential")


def test_fit_follows_the_schedule_and_a_resumed_run_continues_it(tmp_path):
    X, y = _classes()
    factor = training.warmup_cosine(5, 40, start_factor=0.1)

    def fresh():
        model = _mlp()
        return model, optim.AdamW(model.parameters(), lr=0.02)

    model, optimizer = fresh()
    whole = training.fit(model, optimizer, (X, y), loss="cross_entropy", max_steps=40, batch_size=16,
                         schedule=factor, device="cpu", progress=False, seed=0)
    expected = _params(model)
    assert np.allclose(whole.step_lr, [0.02 * factor(k) for k in range(40)], rtol=1e-12, atol=0)
    # the hand loop with torch's LambdaLR gives the same weights
    reference, reference_optimizer = fresh()
    _hand_loop(reference, reference_optimizer, X, y, torch.nn.CrossEntropyLoss(), 5, 16, seed=0,
               scheduler=torch.optim.lr_scheduler.LambdaLR(reference_optimizer, factor), max_steps=40)
    assert _same(_params(reference), expected)
    # interrupted after 2 epochs (16 steps), resumed from the checkpoint
    model, optimizer = fresh()
    training.fit(model, optimizer, (X, y), loss="cross_entropy", epochs=2, batch_size=16, schedule=factor,
                 device="cpu", progress=False, seed=0, checkpoint=tmp_path / "run.pt")
    model, optimizer = fresh()
    history = training.load_checkpoint(tmp_path / "run.pt", model, optimizer)
    resumed = training.fit(model, optimizer, (X, y), loss="cross_entropy", max_steps=40, batch_size=16,
                           schedule=factor, device="cpu", progress=False, history=history)
    assert _same(_params(model), expected) and resumed.step_lr == whole.step_lr


def test_fit_steps_a_torch_scheduler_after_every_step():
    X, y = _classes()
    model = _mlp()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    history = training.fit(model, optimizer, (X, y), loss="cross_entropy", max_steps=8, batch_size=40,
                           schedule=scheduler, device="cpu", progress=False)
    assert np.allclose(history.step_lr, [0.1] * 3 + [0.05] * 3 + [0.025] * 2)
    other = optim.SGD(_mlp().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="another optimizer"):
        training.fit(model, optimizer, (X, y), loss="cross_entropy", epochs=1, progress=False, device="cpu",
                     schedule=torch.optim.lr_scheduler.StepLR(other, 3))


def test_schedule_free_refuses_a_schedule():
    X, y = _classes()
    for make in (lambda p: optim.AdamWScheduleFree(p, lr=0.01),):
        model = _mlp()
        with pytest.raises(ValueError, match="schedule must be None for AdamWScheduleFree"):
            training.fit(model, make(model.parameters()), (X, y), loss="cross_entropy", epochs=1, device="cpu",
                         progress=False, schedule=training.warmup_cosine(2, 10))
    schedulefree = pytest.importorskip("schedulefree")
    model = _mlp()
    with pytest.raises(ValueError, match="schedule must be None for AdamWScheduleFree"):
        training.fit(model, schedulefree.AdamWScheduleFree(model.parameters(), lr=0.01), (X, y),
                     loss="cross_entropy", epochs=1, device="cpu", progress=False,
                     schedule=training.warmup_cosine(2, 10))


# ------------------------------------------------------------------------------------------
# gradient clipping
# ------------------------------------------------------------------------------------------
def test_clipping_equals_torchs_clip_grad_norm_and_logs_the_norm_before_clipping():
    X, y = _classes()
    ours, theirs = _mlp(), _mlp()
    history = training.fit(ours, optim.SGD(ours.parameters(), lr=0.5), (X, y), loss="cross_entropy", epochs=2,
                           batch_size=16, clip_grad_norm=0.3, device="cpu", progress=False, seed=0)
    norms = _hand_loop(theirs, optim.SGD(theirs.parameters(), lr=0.5), X, y, torch.nn.CrossEntropyLoss(), 2, 16,
                       seed=0, clip=0.3)
    assert _same(_params(ours), _params(theirs))
    assert np.allclose(history.step_grad_norm, norms, rtol=1e-6, atol=0) and len(norms) == 16
    assert max(norms) > 0.3  # clipping acted


def test_backward_step_is_torchs_loop_with_a_hook_between_clipping_and_the_steps():
    """Two optimizers (one per layer), a scheduler on one, clipping and a decay hook, against the same loop written
    out with torch's calls: the same parameters bit for bit, the same norm; the hook sees clipped gradients and
    parameters not yet stepped."""
    X, y = _classes()
    ours, theirs = _mlp(), _mlp()
    loss_fn = torch.nn.CrossEntropyLoss()

    def make(model):
        first, last = model[0], model[-1]
        optimizers = [torch.optim.SGD(first.parameters(), lr=0.3, momentum=0.9), optim.Adam(last.parameters(), lr=0.01)]
        return optimizers, [torch.optim.lr_scheduler.StepLR(optimizers[1], step_size=2, gamma=0.5), None]

    (ours_opts, ours_scheds), (theirs_opts, theirs_scheds) = make(ours), make(theirs)
    seen = []

    def decay():  # what the hook sees: gradients already clipped, parameters not yet stepped
        grads = [p.grad for p in ours.parameters()]
        seen.append((float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))),
                     [p.detach().clone() for p in ours.parameters()]))
        with torch.no_grad():
            ours[0].weight.mul_(0.99)

    for step in range(5):
        rows = slice(16 * step, 16 * step + 16)
        before = _params(ours)
        norm = training.backward_step(loss_fn(ours(X[rows]), y[rows]), ours_opts, parameters=list(ours.parameters()),
                                      clip_grad_norm=0.3, before_step=decay, schedulers=ours_scheds)
        loss = loss_fn(theirs(X[rows]), y[rows])
        for optimizer in theirs_opts:
            optimizer.zero_grad()
        loss.backward()
        expected = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.3)
        with torch.no_grad():
            theirs[0].weight.mul_(0.99)
        for optimizer in theirs_opts:
            optimizer.step()
        theirs_scheds[0].step()
        assert torch.equal(norm, expected) and norm > 0.3  # the norm before clipping, and clipping acted
        assert seen[-1][0] == pytest.approx(0.3, rel=1e-5) and _same(seen[-1][1], before)
        assert _same(_params(ours), _params(theirs))
    assert ours_opts[1].param_groups[0]["lr"] == 0.01 * 0.5**2
    assert training.backward_step(loss_fn(ours(X), y), ours_opts) is None  # no clip_grad_norm: no norm
    with pytest.raises(ValueError, match="clip_grad_norm needs parameters"):
        training.backward_step(loss_fn(ours(X), y), ours_opts, clip_grad_norm=1.0)


def test_clipping_caps_the_global_norm_of_the_update():
    """SGD with lr 1 and no momentum: the update is the clipped gradient, so its global norm is
    min(‖g‖, max_norm)."""
    X, y = _classes()
    model = _mlp()
    before = _params(model)
    history = training.fit(model, optim.SGD(model.parameters(), lr=1.0), (X, y), loss="cross_entropy", max_steps=1,
                           batch_size=None, clip_grad_norm=0.05, device="cpu", progress=False)
    update = torch.cat([(b - a).reshape(-1) for a, b in zip(before, _params(model))])
    assert history.step_grad_norm[0] > 0.05
    assert float(torch.linalg.vector_norm(update)) == pytest.approx(0.05, rel=1e-5)


def test_infinite_max_norm_logs_without_clipping():
    X, y = _classes()
    a, b = _mlp(), _mlp()
    logged = training.fit(a, optim.SGD(a.parameters(), lr=0.5), (X, y), loss="cross_entropy", epochs=1,
                          batch_size=16, clip_grad_norm=math.inf, device="cpu", progress=False, seed=0)
    training.fit(b, optim.SGD(b.parameters(), lr=0.5), (X, y), loss="cross_entropy", epochs=1, batch_size=16,
                 device="cpu", progress=False, seed=0)
    assert _same(_params(a), _params(b)) and len(logged.step_grad_norm) == 8 and min(logged.step_grad_norm) > 0


# ------------------------------------------------------------------------------------------
# parameter groups without weight decay
# ------------------------------------------------------------------------------------------
class _Mixed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(5, 4)
        self.conv = torch.nn.Conv1d(4, 4, 3, padding=1)
        self.batch_norm = torch.nn.BatchNorm1d(4)
        self.layer_norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 3)
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)

    def forward(self, tokens):
        h = self.batch_norm(self.conv(self.embedding(tokens).transpose(1, 2))).transpose(1, 2)
        return self.head(self.layer_norm(h))


def test_param_groups_split_weights_from_biases_and_norms():
    model = _Mixed()
    decay, no_decay = training.param_groups(model, 0.1)
    named = {id(p): name for name, p in model.named_parameters()}
    assert sorted(named[id(p)] for p in decay["params"]) == ["conv.weight", "embedding.weight", "head.weight"]
    assert sorted(named[id(p)] for p in no_decay["params"]) == [
        "batch_norm.bias", "batch_norm.weight", "conv.bias", "head.bias", "layer_norm.bias", "layer_norm.weight"]
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    assert len(training.param_groups(torch.nn.Linear(3, 1, bias=False), 0.1)) == 1  # no empty group
    with pytest.raises(ValueError, match="Invalid weight_decay value"):
        training.param_groups(model, -1.0)


@pytest.mark.parametrize("make", [torch.optim.AdamW, optim.AdamW])
def test_no_decay_group_is_untouched_by_adamw_decay(make):
    """Zero gradients: AdamW's only change is the decoupled decay θ ← (1 − ηλ)θ, which must spare the no-decay
    group exactly and shrink the rest by exactly that factor."""
    torch.manual_seed(0)
    model = _Mixed()
    with torch.no_grad():
        for param in model.parameters():
            param.uniform_(0.5, 1.5)  # norms start at weight 1, bias 0: make every parameter visibly non-zero
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    lr, decay = 0.1, 5.0
    optimizer = make(training.param_groups(model, decay), lr=lr)
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    optimizer.step()
    decayed = {"conv.weight", "embedding.weight", "head.weight"}
    for name, param in model.named_parameters():
        if name in decayed:
            assert torch.allclose(param, before[name] * (1 - lr * decay), rtol=1e-6, atol=0), name
        else:
            assert torch.equal(param, before[name]), name


# ------------------------------------------------------------------------------------------
# mixed precision
# ------------------------------------------------------------------------------------------
def _bfloat16_fit(device):
    X, y = _tokens()
    torch.manual_seed(0)
    model = _TinyLM()
    seen = []
    model.head.register_forward_hook(lambda module, inputs, output: seen.append((len(output), output.dtype)))
    optimizer = optim.AdamW(model.parameters(), lr=0.01)
    history = training.fit(model, optimizer, (X[:30], y[:30]), (X[30:], y[30:]), loss="cross_entropy", epochs=2,
                           batch_size=10, autocast=torch.bfloat16, device=device, progress=False, seed=0)
    return model, optimizer, history, seen


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_autocast_runs_the_forward_in_bfloat16_and_keeps_float32_master_weights(device):
    model, optimizer, history, seen = _bfloat16_fit(device)
    # fit's two-row shape checks run in float32; every training and validation batch (10 rows) in bfloat16
    assert {dtype for rows, dtype in seen if rows == 10} == {torch.bfloat16}
    assert sum(rows == 10 for rows, _ in seen) == 2 * 3 + 2
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    assert all(v.dtype == torch.float32 for s in optimizer.state.values() for k, v in s.items() if k != "step")
    # the same run in float32 lands close by (bfloat16 keeps 8 significant bits)
    X, y = _tokens()
    torch.manual_seed(0)
    full = _TinyLM()
    reference = training.fit(full, optim.AdamW(full.parameters(), lr=0.01), (X[:30], y[:30]), (X[30:], y[30:]),
                             loss="cross_entropy", epochs=2, batch_size=10, device=device, progress=False, seed=0)
    assert history.val_loss[-1] == pytest.approx(reference.val_loss[-1], rel=0.02)
    assert history.val_loss[-1] != reference.val_loss[-1]  # it did run in another precision
    with pytest.raises(ValueError, match="autocast must be None or torch.bfloat16"):
        training.fit(full, optim.AdamW(full.parameters()), (X, y), loss="cross_entropy", epochs=1,
                     autocast=torch.float16, device=device, progress=False)


# ------------------------------------------------------------------------------------------
# early stopping
# ------------------------------------------------------------------------------------------
def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    """Validation labels are the training labels shifted by one class: the better the model fits the training
    data, the worse its validation loss, which rises after the first epochs."""
    X, y = _classes(n=200)
    val = (X[:100], (y[:100] + 1) % 4)

    def run(**arguments):
        model = _mlp()
        history = training.fit(model, optim.Adam(model.parameters(), lr=0.01), (X, y), val, loss="cross_entropy",
                               batch_size=20, device="cpu", progress=False, seed=0, **arguments)
        return model, history

    _, full = run(epochs=12)
    best = int(np.argmin(full.val_loss)) + 1
    assert best <= 4 and full.val_loss[-1] > full.val_loss[best - 1]  # the val loss rises: a real test case
    model, history = run(epochs=12, early_stopping=3)
    assert history.stopped_early and history.best_epoch == best and history.epochs == best + 3
    assert history.val_loss == full.val_loss[:best + 3]
    best_model, _ = run(epochs=best)
    assert _same(_params(model), _params(best_model))
    assert training.evaluate(model, val, loss="cross_entropy")[0] == pytest.approx(min(full.val_loss), rel=1e-6)
    # patience not exhausted: the run ends by its budget, with the best weights all the same
    model, history = run(epochs=best + 2, early_stopping=5)
    assert not history.stopped_early and history.epochs == best + 2 and _same(_params(model), _params(best_model))


# ------------------------------------------------------------------------------------------
# bad arguments
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arguments, words", [
    (dict(max_steps=0), "max_steps must be a positive integer"), (dict(max_steps=2.5), "max_steps"),
    (dict(epochs=None, max_steps=True), "max_steps"),
    (dict(clip_grad_norm=0.0), "clip_grad_norm must be a positive number"),
    (dict(clip_grad_norm=-1), "clip_grad_norm"), (dict(clip_grad_norm="1"), "clip_grad_norm"),
    (dict(early_stopping=3), "early_stopping needs validation data"), (dict(schedule=0.5), "schedule must be None"),
    (dict(autocast=torch.float16), "GradScaler"), (dict(loss="mse"), "one of \\('bce', 'cross_entropy'\\)"),
])
def test_bad_recipe_arguments_are_named_before_any_step(arguments, words):
    X, y = _classes()
    model = _mlp()
    before = _params(model)
    with pytest.raises(ValueError, match=words):
        training.fit(model, optim.SGD(model.parameters(), lr=0.1), (X, y), **{"loss": "cross_entropy", "epochs": 1,
                                                                               "device": "cpu", "progress": False,
                                                                               **arguments})
    assert _same(before, _params(model))


def test_lr_range_test_takes_cross_entropy_and_sequences():
    X, y = _tokens()
    torch.manual_seed(0)
    model = _TinyLM()
    with torch.no_grad():
        start = float(torch.nn.functional.cross_entropy(model(X).permute(0, 2, 1), y))
    result = training.lr_range_test(model, optim.SGD(model.parameters()), (X, y), 1e-3, 1.0, 5, batch_size=None,
                                    loss="cross_entropy", device="cpu")
    assert len(result.losses) == 5 and result.losses[0] == pytest.approx(start, rel=1e-6)


# ------------------------------------------------------------------------------------------
# resuming after an interrupt (issue 28): scheduler objects, early stopping, Ctrl-C
# ------------------------------------------------------------------------------------------
class _Interrupting(torch.nn.CrossEntropyLoss):
    """Cross-entropy that raises KeyboardInterrupt (what Ctrl-C raises) on its ``at``-th training call."""

    def __init__(self, at=None):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, logits, targets):
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
        return super().forward(logits, targets)


def _one_cycle(optimizer, epochs, steps_per_epoch):
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=epochs, steps_per_epoch=steps_per_epoch)


def test_a_run_with_one_cycle_lr_interrupted_and_resumed_equals_the_uninterrupted_run(tmp_path):
    X, y = _classes()
    epochs, batch = 6, 16                                          # 8 steps an epoch, 48 in all

    def fresh():
        model = _mlp()
        optimizer = optim.Adam(model.parameters(), lr=0.01)        # OneCycleLR cycles Adam's β₁ too
        return model, optimizer, _one_cycle(optimizer, epochs, 8)

    model, optimizer, scheduler = fresh()
    whole = training.fit(model, optimizer, (X, y), (X[:40], y[:40]), loss=_Interrupting(), epochs=epochs,
                         batch_size=batch, schedule=scheduler, device="cpu", progress=False, seed=3)
    expected = _params(model)
    # Ctrl-C at step 29 (epoch 4): the checkpoint holds epoch 3's end
    model, optimizer, scheduler = fresh()
    with pytest.raises(KeyboardInterrupt) as interrupt:
        training.fit(model, optimizer, (X, y), (X[:40], y[:40]), loss=_Interrupting(at=29), epochs=epochs,
                     batch_size=batch, schedule=scheduler, device="cpu", progress=False, seed=3,
                     checkpoint=tmp_path / "run.pt")
    assert interrupt.value.history.epochs == 3 and interrupt.value.history.val_loss == whole.val_loss[:3]
    model, optimizer, scheduler = fresh()
    with pytest.raises(ValueError, match="scheduler's state: pass scheduler="):
        training.load_checkpoint(tmp_path / "run.pt", model, optimizer)
    history = training.load_checkpoint(tmp_path / "run.pt", model, optimizer, scheduler)
    resumed = training.fit(model, optimizer, (X, y), (X[:40], y[:40]), loss=_Interrupting(),
                           epochs=epochs - history.epochs, batch_size=batch, schedule=scheduler, device="cpu",
                           progress=False, history=history)
    assert _same(_params(model), expected)
    assert resumed.step_lr == whole.step_lr and resumed.step_loss == whole.step_loss
    assert resumed.val_loss == whole.val_loss
    assert whole.step_lr[-1] < 1e-5 < max(whole.step_lr) == pytest.approx(0.05, rel=1e-2)  # the cycle ran


def test_early_stopping_interrupted_and_resumed_stops_at_the_same_epoch_with_the_same_weights(tmp_path):
    """As in the early-stopping test above: the validation loss rises after its first epochs."""
    X, y = _classes(n=200)
    val = (X[:100], (y[:100] + 1) % 4)

    def run(model, loss, **arguments):
        return training.fit(model, optim.Adam(model.parameters(), lr=0.01), (X, y), val, loss=loss, batch_size=20,
                            device="cpu", progress=False, seed=0, early_stopping=3, **arguments)

    whole_model = _mlp()
    whole = run(whole_model, _Interrupting(), epochs=12)
    assert whole.stopped_early and whole.best_epoch < whole.epochs < 12
    # interrupted after the best epoch, inside the patience: step 5 of the epoch after best + 1
    at = (whole.best_epoch + 1) * 10 + 5
    model = _mlp()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    with pytest.raises(KeyboardInterrupt):
        training.fit(model, optimizer, (X, y), val, loss=_Interrupting(at), batch_size=20, device="cpu",
                     progress=False, seed=0, early_stopping=3, epochs=12, checkpoint=tmp_path / "run.pt")
    model = _mlp(seed=1)                                           # other weights: everything must come from disk
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    history = training.load_checkpoint(tmp_path / "run.pt", model, optimizer)
    assert history.epochs == whole.best_epoch + 1 and history.epochs_since_best == 1
    resumed = training.fit(model, optimizer, (X, y), val, loss=_Interrupting(), batch_size=20, device="cpu",
                           progress=False, early_stopping=3, epochs=12 - history.epochs, history=history)
    assert resumed.stopped_early and resumed.epochs == whole.epochs and resumed.best_epoch == whole.best_epoch
    assert resumed.val_loss == whole.val_loss and _same(_params(model), _params(whole_model))


def test_ctrl_c_keeps_the_history_and_leaves_schedule_free_in_eval_mode():
    X, y = _classes()
    model = _mlp()
    optimizer = optim.AdamWScheduleFree(model.parameters(), lr=0.01)
    with pytest.raises(KeyboardInterrupt) as interrupt:
        training.fit(model, optimizer, (X, y), loss=_Interrupting(at=20), epochs=5, batch_size=16, device="cpu",
                     progress=False, seed=0)
    history = interrupt.value.history
    assert isinstance(history, training.History) and history.epochs == 2 and len(history.step_loss) == 16
    assert not optimizer.param_groups[0]["train_mode"]
    # eval mode is the average x: switching to train mode moves the weights (to y), and back restores them
    at_x = _params(model)
    optimizer.train()
    assert not _same(at_x, _params(model))
    optimizer.eval()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(at_x, _params(model)))
