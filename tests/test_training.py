"""course_lib.training: fit against a hand-written loop and scikit-learn's metrics, bad input, divergence,
checkpoints, the lr range test, devices (CUDA tests run only where a GPU is present)."""

import copy
import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss

from course_lib import data, devices, optim, plotting, training
from course_lib.labs import seed_classifier as lab

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return data.synthetic_binary(160, 8, seed=0)


def _model(features=8, seed=0):
    torch.manual_seed(seed)
    return training.seed_classifier(features)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------
# device and seeds
# ------------------------------------------------------------------------------------------
def test_pick_device_default_order(monkeypatch):
    monkeypatch.delenv(training.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if devices.mps_available() else "cpu")
    assert training.pick_device().type == expected


def test_pick_device_environment_variable_forces_a_device(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert training.pick_device() == torch.device("cpu")
    assert training.pick_device("cpu") == torch.device("cpu")  # an explicit argument wins
    monkeypatch.setenv("COURSE_DEVICE", "toaster")
    with pytest.raises(ValueError, match="COURSE_DEVICE='toaster' is not a device name"):
        training.pick_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for a GPU that is absent")
def test_pick_device_refuses_a_missing_gpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="not available"):
        training.pick_device()


def test_seed_everything_same_seed_same_numbers():
    import random

    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    training.seed_everything(7)
    first = draw()
    training.seed_everything(7)
    assert draw() == first
    training.seed_everything(8)
    assert draw() != first
    with pytest.raises(ValueError, match="seed"):
        training.seed_everything(-1)


def test_seed_classifier_is_the_seed_network():
    model = training.seed_classifier(8)
    assert sum(p.numel() for p in model.parameters()) == 8 * 32 + 32 + 32 + 1 == 321
    assert [type(layer).__name__ for layer in model] == ["Linear", "ReLU", "Linear"]
    assert model(torch.zeros(5, 8)).shape == (5, 1)
    with pytest.raises(ValueError, match="positive"):
        training.seed_classifier(0)


# ------------------------------------------------------------------------------------------
# fit: equal to a hand-written loop, metrics equal to scikit-learn's
# ------------------------------------------------------------------------------------------
def _hand_loop(model, optimizer, X, y, epochs, batch_size, seed):
    """The textbook PyTorch loop, with fit's shuffles."""
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for epoch in range(epochs):
        order = torch.randperm(len(X), generator=training.epoch_generator(seed, epoch))
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size]
            loss = loss_fn(model(X[rows]).squeeze(1), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@pytest.mark.parametrize("optimizer_name", ["Adam", "SGD"])
@pytest.mark.parametrize("batch_size", [32, 7, None])
def test_fit_equals_a_hand_written_loop(small, optimizer_name, batch_size):
    ours, theirs = _model(), _model()
    fit_history = training.fit(ours, getattr(optim, optimizer_name)(ours.parameters(), lr=0.01), small.train,
                               epochs=4, batch_size=batch_size, device="cpu", progress=False, seed=3)
    X, y = small.train
    _hand_loop(theirs, getattr(optim, optimizer_name)(theirs.parameters(), lr=0.01), X, y, 4,
               batch_size or len(X), seed=3)
    assert _same(_params(ours), _params(theirs))
    assert not _same(_params(ours), _params(_model()))  # it trained
    steps_per_epoch = 1 if batch_size is None else math.ceil(len(X) / batch_size)
    assert fit_history.steps == [steps_per_epoch * (e + 1) for e in range(4)]


def test_history_metrics_equal_scikit_learn(small):
    """Full-batch epoch 1: the training loss is measured at the starting weights; validation after the step."""
    model = _model()
    start = _model()
    history = training.fit(model, optim.SGD(model.parameters(), lr=0.5), small.train, small.val, epochs=1,
                           batch_size=None, device="cpu", progress=False, seed=0)
    X, y = small.train
    with torch.no_grad():
        p_start = torch.sigmoid(start(X)).squeeze(1).double().numpy()
        p_val = torch.sigmoid(model(small.val[0])).squeeze(1).double().numpy()
    assert history.train_loss[0] == pytest.approx(log_loss(y.numpy(), p_start), abs=1e-6)
    assert history.train_accuracy[0] == pytest.approx(accuracy_score(y.numpy(), p_start > 0.5))
    assert history.val_loss[0] == pytest.approx(log_loss(small.val[1].numpy(), p_val), abs=1e-6)
    assert history.val_accuracy[0] == pytest.approx(accuracy_score(small.val[1].numpy(), p_val > 0.5))
    assert history.lr == [0.5] and history.steps == [1] and history.seconds[0] > 0


def test_minibatch_training_loss_is_the_size_weighted_mean(small):
    """With batches of 40, 40 and 16 rows the epoch loss weighs each batch loss by its size."""
    model = _model()
    recorded = []

    def loss(logits, targets):
        value = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        recorded.append((value.item(), len(targets)))
        return value

    history = training.fit(model, optim.SGD(model.parameters(), lr=0.1), small.train, epochs=1, batch_size=40,
                           loss=loss, device="cpu", progress=False, seed=0)
    sizes = [n for _, n in recorded]
    assert sizes == [40, 40, 16] and sum(sizes) == small.sizes["train"]
    expected = sum(v * n for v, n in recorded) / sum(sizes)
    assert history.train_loss[0] == pytest.approx(expected, rel=1e-6)
    assert math.isnan(history.val_loss[0])


def test_fit_learns_the_breast_cancer_data():
    cancer = data.breast_cancer()
    model, history = lab.train_classifier(cancer, "adam", 1e-3, device="cpu")
    assert history.epochs == 50 and history.steps[-1] == 50 * 11
    assert history.train_loss[-1] < 0.1 < history.train_loss[0]
    assert history.val_accuracy[-1] > 0.95
    assert training.evaluate(model, cancer.test)[1] > 0.95


def test_same_seed_same_history(small):
    runs = []
    for _ in range(2):
        training.seed_everything(11)
        model = training.seed_classifier(8)
        runs.append(training.fit(model, optim.Adam(model.parameters(), lr=0.01), small.train, small.val,
                                 epochs=3, device="cpu", progress=False))
    assert runs[0].same_metrics(runs[1]) and runs[0].seed == runs[1].seed
    training.seed_everything(12)
    model = training.seed_classifier(8)
    other = training.fit(model, optim.Adam(model.parameters(), lr=0.01), small.train, small.val, epochs=3,
                         device="cpu", progress=False)
    assert not other.same_metrics(runs[0], tolerance=1e-6)


def test_course_and_torch_adam_give_the_same_history():
    cancer = data.breast_cancer()
    _, ours = lab.train_classifier(cancer, "adam", 1e-3, epochs=10, device="cpu", library="course")
    _, theirs = lab.train_classifier(cancer, "adam", 1e-3, epochs=10, device="cpu", library="torch")
    assert ours.same_metrics(theirs, tolerance=1e-5)


def test_dataloader_is_accepted_and_matches_the_hand_loop(small):
    X, y = small.train
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16, shuffle=False)
    ours, theirs = _model(), _model()
    history = training.fit(ours, optim.SGD(ours.parameters(), lr=0.05), loader, loader, epochs=2, device="cpu",
                           progress=False)
    opt = optim.SGD(theirs.parameters(), lr=0.05)
    for _ in range(2):
        for start in range(0, len(X), 16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(theirs(X[start:start + 16]).squeeze(1),
                                                                        y[start:start + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert _same(_params(ours), _params(theirs))
    assert history.val_loss[-1] == pytest.approx(training.evaluate(ours, (X, y))[0], rel=1e-6)
    bad = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y * 2), batch_size=16)
    with pytest.raises(ValueError, match="labels 0 and 1"):
        training.fit(ours, optim.SGD(ours.parameters(), lr=0.1), bad, epochs=1, device="cpu",
                     progress=False)


class _Recorder(torch.nn.Module):
    """A linear model whose input column 0 is the row number: it records which rows each training step sees,
    and whether it was in training mode then."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)
        self.rows, self.modes = [], []

    def forward(self, X):
        if torch.is_grad_enabled():  # training steps, not evaluation
            self.rows.append(X[:, 0].long().tolist())
            self.modes.append(self.training)
        return self.linear(X)


def test_every_epoch_is_a_fresh_permutation_of_the_training_rows():
    """Reshuffling each epoch is what makes the epochs differ (notebook 03's point); one fixed order would pass
    every test that builds its expected order from fit's own generator."""
    n, batch, epochs = 40, 8, 4
    X, y = torch.arange(n, dtype=torch.float32)[:, None], (torch.arange(n) % 2).float()
    model = _Recorder()
    training.fit(model, optim.SGD(model.parameters(), lr=0.0), (X, y), epochs=epochs, batch_size=batch,
                 device="cpu", progress=False, seed=0)
    orders = [sum(model.rows[e * n // batch:(e + 1) * n // batch], []) for e in range(epochs)]
    assert len(model.rows) == epochs * n // batch
    for order in orders:
        assert sorted(order) == list(range(n))  # every row once per epoch
    assert len({tuple(order) for order in orders}) == epochs  # a new order every epoch
    assert all(order != list(range(n)) for order in orders)  # shuffled, not the stored order
    # another shuffle seed, other orders
    other = _Recorder()
    training.fit(other, optim.SGD(other.parameters(), lr=0.0), (X, y), epochs=1, batch_size=batch, device="cpu",
                 progress=False, seed=1)
    assert sum(other.rows, []) != orders[0]


def test_fit_trains_in_training_mode_and_evaluates_in_eval_mode(small):
    """A model left in eval mode by the user still trains in training mode (dropout on), and validation runs in
    eval mode (dropout off, batch norm on its running statistics), after which the model's mode is restored."""
    recorder = _Recorder().eval()
    X = torch.arange(16, dtype=torch.float32)[:, None]
    training.fit(recorder, optim.SGD(recorder.parameters(), lr=0.0), (X, (X[:, 0] % 2)), epochs=2, batch_size=8,
                 device="cpu", progress=False, seed=0)
    assert recorder.modes == [True] * 4

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                                torch.nn.Dropout(0.5), torch.nn.Linear(32, 1))
    history = training.fit(model, optim.Adam(model.parameters(), lr=0.01), small.train, small.val, epochs=2,
                           batch_size=16, device="cpu", progress=False, seed=0)
    assert model.training  # fit leaves the model as it trained it
    X_val, y_val = small.val
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(X_val)).squeeze(1).double().numpy()
    model.train()
    assert history.val_loss[-1] == pytest.approx(log_loss(y_val.numpy(), p), abs=1e-6)
    assert training.evaluate(model, small.val)[0] == pytest.approx(log_loss(y_val.numpy(), p), abs=1e-6)
    assert training.evaluate(model, small.val) == training.evaluate(model, small.val)  # no dropout noise
    assert model.training  # evaluate restores the mode it found
    model.eval()
    training.evaluate(model, small.val)
    assert not model.training


def test_y_of_shape_n_by_1_and_float64_inputs_work(small):
    X, y = small.train
    model = _model()
    history = training.fit(model, optim.Adam(model.parameters()), (X.double(), y[:, None]), epochs=1,
                           device="cpu", progress=False)
    assert history.epochs == 1 and next(model.parameters()).dtype == torch.float32


def test_progress_bar_shows_epochs_loss_and_accuracy(small, capsys):
    model = _model()
    training.fit(model, optim.Adam(model.parameters()), small.train, small.val, epochs=2, device="cpu",
                 progress=True)
    shown = capsys.readouterr().err
    assert "2/2" in shown and "loss=" in shown and "acc=" in shown and "val_acc=" in shown
    training.fit(model, optim.Adam(model.parameters()), small.train, epochs=2, device="cpu", progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------
# bad input: ValueError before any step
# ------------------------------------------------------------------------------------------
def _bad_inputs(small):
    X, y = small.train
    nan_X = X.clone()
    nan_X[3, 2] = float("nan")
    inf_X = X.clone()
    inf_X[0, 0] = float("inf")
    return [
        ((X, y[:-1]), "different lengths: 96 samples but 95 labels"),
        ((X, y * 2), "labels 0 and 1 only; found \\[2.0\\]"),
        ((X, y - 0.5), "labels 0 and 1 only"),
        ((nan_X, y), "NaN or infinite values \\(first at row 3, column 2\\)"),
        ((inf_X, y), "NaN or infinite"),
        ((X[:, 0], y), "must be 2-D"),
        ((X, torch.stack([y, y], 1)), "shape \\(n,\\) or \\(n, 1\\)"),
        ((X[:, :5], y), "cannot take train X of shape \\(96, 5\\)"),
        ((X, y, y), "pair \\(X, y\\)"),
        ((X[:0], y[:0]), "empty"),
    ]


def test_bad_input_raises_value_error_before_training(small):
    for train, words in _bad_inputs(small):
        model = _model()
        before = _params(model)
        with pytest.raises(ValueError, match=words):
            training.fit(model, optim.SGD(model.parameters(), lr=0.1), train, epochs=1, device="cpu",
                         progress=False)
        assert _same(before, _params(model))


def test_bad_validation_data_and_arguments(small):
    model = _model()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    X_val, y_val = small.val
    with pytest.raises(ValueError, match="val y must hold labels 0 and 1"):
        training.fit(model, optimizer, small.train, (X_val, y_val + 1), device="cpu", progress=False)
    for arguments, words in [(dict(epochs=-1), "epochs"), (dict(epochs=2.5), "epochs"),
                             (dict(batch_size=0), "batch_size"), (dict(batch_size=True), "batch_size")]:
        with pytest.raises(ValueError, match=words):
            training.fit(model, optimizer, small.train, device="cpu", progress=False, **arguments)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer"):
        training.fit(model, "adam", small.train, device="cpu", progress=False)
    wide = torch.nn.Linear(8, 3)
    with pytest.raises(ValueError, match="one logit per sample"):
        training.fit(wide, optim.SGD(wide.parameters(), lr=0.1), small.train, device="cpu", progress=False)


def test_missing_training_data_is_named(small):
    model = _model()
    with pytest.raises(ValueError, match="train is None: fit needs training data"):
        training.fit(model, optim.SGD(model.parameters(), lr=0.1), None, small.val, device="cpu", progress=False)
    with pytest.raises(ValueError, match="data is None"):
        training.evaluate(model, None)


def test_a_model_with_two_outputs_is_refused_on_the_dataloader_path_before_any_step(small):
    """A (B, 2) output used to die inside reshape with torch's 'shape [16] is invalid for input of size 32'."""
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*small.train), batch_size=16)
    wide = torch.nn.Linear(8, 2)
    before = _params(wide)
    with pytest.raises(ValueError, match=r"returns shape \(16, 2\) for 16 samples of train batch 1; expected one "
                                         r"logit per sample, shape \(16,\) or \(16, 1\)"):
        training.fit(wide, optim.SGD(wide.parameters(), lr=0.1), loader, device="cpu", progress=False)
    assert _same(before, _params(wide))
    with pytest.raises(ValueError, match="returns shape \\(16, 2\\) for 16 samples of evaluation batch 1"):
        training.evaluate(wide, loader)
    narrow = torch.nn.Linear(5, 1)
    with pytest.raises(ValueError, match=r"cannot take train batch 1 X of shape \(16, 8\)"):
        training.fit(narrow, optim.SGD(narrow.parameters(), lr=0.1), loader, device="cpu", progress=False)
    dicts = torch.utils.data.DataLoader([{"x": X, "y": y} for X, y in zip(*small.train)], batch_size=16)
    with pytest.raises(ValueError, match=r"train batch 1: a DataLoader must yield pairs \(X, y\) of tensors; got dict"):
        training.fit(narrow, optim.SGD(narrow.parameters(), lr=0.1), dicts, device="cpu", progress=False)


def test_an_optimizer_of_another_model_is_refused(small):
    """It would train nothing, silently: the loss would stay where it started."""
    model, other = _model(), _model(seed=1)
    with pytest.raises(ValueError, match="the optimizer holds none of the model's parameters"):
        training.fit(model, optim.Adam(other.parameters()), small.train, device="cpu", progress=False)
    with pytest.raises(ValueError, match="the optimizer holds none of the model's parameters"):
        training.lr_range_test(model, optim.Adam(other.parameters()), small.train, device="cpu")
    with pytest.raises(ValueError, match="model must be a torch.nn.Module; got function"):
        training.fit(lambda X: X, optim.Adam(other.parameters()), small.train, device="cpu", progress=False)


def test_text_labels_or_features_get_fits_value_error_naming_them(small):
    X, y = small.train
    words = np.where(y.numpy() > 0, "yes", "no")
    model = _model()
    before = _params(model)
    for train, named in [((X, words), r"train y must hold numbers; got dtype <U3 such as '(yes|no)'"),
                         ((X, list(words)), r"train y must hold numbers; got dtype <U3"),
                         ((X.numpy().astype(str), y), r"train X must hold numbers; got dtype <U\d+"),
                         ((X, np.array(list(words), dtype=object)), r"train y must hold numbers; got dtype object")]:
        with pytest.raises(ValueError, match=named + r".*encode text as numbers first"):
            training.fit(model, optim.SGD(model.parameters(), lr=0.1), train, epochs=1, device="cpu",
                         progress=False)
    with pytest.raises(ValueError, match=r"val y must hold numbers"):
        training.fit(model, optim.SGD(model.parameters(), lr=0.1), small.train, (X, words), epochs=1,
                     device="cpu", progress=False)
    assert _same(before, _params(model))


def test_a_dict_as_train_is_told_what_train_accepts(small):
    X, y = small.train
    model = _model()
    with pytest.raises(ValueError, match=r"train must be a pair \(X, y\) of tensors or a DataLoader; got dict "
                                         r"\(for a dict of arrays, pass its two arrays as a pair"):
        training.fit(model, optim.SGD(model.parameters(), lr=0.1), {"X": X, "y": y}, epochs=1, device="cpu",
                     progress=False)
    with pytest.raises(ValueError, match=r"val must be a pair \(X, y\)"):
        training.fit(model, optim.SGD(model.parameters(), lr=0.1), small.train, {"X": X, "y": y}, epochs=1,
                     device="cpu", progress=False)


@pytest.mark.parametrize("make", [lambda p, lr: optim.SGD(p, lr=lr), lambda p, lr: optim.Adam(p, lr=lr),
                                  lambda p, lr: optim.AdamW(p, lr=lr)])
def test_a_learning_rate_given_as_text_is_a_type_error_naming_lr(make):
    """torch.optim raises TypeError for lr="0.01" too (its message compares str and float); ours names lr."""
    param = torch.zeros(2, requires_grad=True)
    with pytest.raises(TypeError):
        torch.optim.SGD([param], lr="0.01")
    with pytest.raises(TypeError, match=r"^lr must be a number \(or an array of numbers\); got '0.01' of type str$"):
        make([param], "0.01")
    from course_lib import rules
    with pytest.raises(TypeError, match=r"^lr must be a number"):
        rules.sgd(lr="0.01")
    with pytest.raises(TypeError, match=r"^weight_decay must be a number"):
        rules.adam(weight_decay="0")
    make([param], torch.tensor(0.01))  # a tensor lr is a number


@pytest.mark.parametrize("arguments, words", [
    (dict(seed=-1), "seed must be a non-negative integer"), (dict(seed=2.5), "seed must be"),
    (dict(loss="hinge"), "loss must be callable"), (dict(history={}), "history must be the History"),
    (dict(checkpoint="no/such/folder/run.pt"), "the folder .* does not exist"),
    (dict(device="toaster"), "device='toaster' is not a device name"),
])
def test_bad_fit_arguments_are_named_before_any_step(small, arguments, words):
    model = _model()
    before = _params(model)
    with pytest.raises(ValueError, match=words):
        training.fit(model, optim.SGD(model.parameters(), lr=0.1), small.train, epochs=1, progress=False,
                     **{"device": "cpu", **arguments})
    assert _same(before, _params(model))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for a GPU that is absent")
def test_an_explicit_missing_gpu_gets_the_same_message_as_the_environment_variable(small, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="asks for cuda, which is not available on this machine") as from_env:
        training.pick_device()
    monkeypatch.delenv("COURSE_DEVICE")
    model = _model()
    calls = [
        lambda: training.fit(model, optim.SGD(model.parameters(), lr=0.1), small.train, device="cuda",
                             progress=False),
        lambda: training.evaluate(model, small.val, device="cuda"),
        lambda: training.lr_range_test(model, optim.SGD(model.parameters(), lr=0.1), small.train, device="cuda"),
        lambda: lab.train_classifier(small, "adam", 1e-3, epochs=1, device=torch.device("cuda")),
    ]
    for call in calls:
        with pytest.raises(RuntimeError) as explicit:
            call()
        assert str(explicit.value) == str(from_env.value).replace("$COURSE_DEVICE", "device")


# ------------------------------------------------------------------------------------------
# divergence
# ------------------------------------------------------------------------------------------
def test_divergence_stops_with_epoch_step_and_lr(small):
    model = _model()
    with pytest.raises(training.DivergenceError) as caught:
        training.fit(model, optim.SGD(model.parameters(), lr=1e20), small.train, small.val, epochs=5,
                     batch_size=32, device="cpu", progress=False, seed=0)
    message = str(caught.value)
    assert "epoch 1, step 2 of 3" in message and "lr = 1e+20" in message
    assert "smaller" in message and "1e+19" in message
    assert isinstance(caught.value, FloatingPointError) and caught.value.history.epochs == 0


def test_divergence_in_a_later_epoch_keeps_the_completed_history():
    table = data.synthetic_binary(200, 8)
    model = _model()
    with pytest.raises(training.DivergenceError, match=r"lr = 100\b") as caught:
        training.fit(model, optim.SGD(model.parameters(), lr=100), table.train, epochs=20, batch_size=32,
                     device="cpu", progress=False, seed=1)
    epoch, step = (int(n) for n in re.search(r"at epoch (\d+), step (\d+) of 4", str(caught.value)).groups())
    assert epoch >= 2 and 1 <= step <= 4
    assert caught.value.history.epochs == epoch - 1  # the epochs before the failure are kept
    assert f"optimizer step {4 * (epoch - 1) + step})" in str(caught.value)


def test_weights_blown_up_by_the_last_step_are_caught_on_validation(small):
    model = _model()
    with pytest.raises(training.DivergenceError, match="validation loss became nan after epoch 1"):
        training.fit(model, optim.SGD(model.parameters(), lr=1e6), data.synthetic_binary(200, 8).train,
                     data.synthetic_binary(200, 8).val, epochs=3, batch_size=32, device="cpu", progress=False,
                     seed=0)


# ------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["adam", "momentum", "rmsprop"])
def test_resumed_run_continues_exactly_like_an_uninterrupted_one(small, tmp_path, method):
    def fresh(seed=0):
        model = _model(seed=seed)
        return model, lab.make_optimizer(method, model.parameters(), 0.01)

    model, optimizer = fresh()
    uninterrupted = training.fit(model, optimizer, small.train, small.val, epochs=6, batch_size=16, device="cpu",
                                 progress=False, seed=5)
    expected = _params(model)

    model, optimizer = fresh()
    training.fit(model, optimizer, small.train, small.val, epochs=3, batch_size=16, device="cpu", progress=False,
                 seed=5, checkpoint=tmp_path / "run.pt")
    del model, optimizer  # the process "dies" here

    model, optimizer = fresh(seed=99)  # different starting weights: everything must come from the file
    history = training.load_checkpoint(tmp_path / "run.pt", model, optimizer)
    assert history.epochs == 3 and history.seed == 5
    resumed = training.fit(model, optimizer, small.train, small.val, epochs=3, batch_size=16, device="cpu",
                           progress=False, history=history)
    assert _same(_params(model), expected)
    assert resumed.same_metrics(uninterrupted)


def test_load_checkpoint_restores_torchs_random_state(small, tmp_path):
    """Dropout masks and any other torch draw after a resume are those of the uninterrupted run."""
    model = _model()
    optimizer = optim.Adam(model.parameters())
    history = training.fit(model, optimizer, small.train, epochs=1, device="cpu", progress=False, seed=0)
    training.save_checkpoint(tmp_path / "c.pt", model, optimizer, history)
    expected = torch.rand(5)
    torch.rand(7)
    training.load_checkpoint(tmp_path / "c.pt", model, optimizer)
    assert torch.equal(torch.rand(5), expected)
    torch.rand(7)
    training.load_checkpoint(tmp_path / "c.pt", model, optimizer, restore_rng=False)
    assert not torch.equal(torch.rand(5), expected)


def test_checkpoint_loads_with_weights_only_and_rejects_other_files(small, tmp_path):
    model = _model()
    optimizer = optim.Adam(model.parameters())
    history = training.fit(model, optimizer, small.train, epochs=1, device="cpu", progress=False)
    training.save_checkpoint(tmp_path / "c.pt", model, optimizer, history)
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    assert set(payload) >= {"model", "optimizer", "history", "torch_rng"}
    assert payload["history"]["train_loss"] == history.train_loss
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a course_lib.training checkpoint"):
        training.load_checkpoint(tmp_path / "other.pt", model)
    with pytest.raises(ValueError, match="differs from the resumed history"):
        training.fit(model, optimizer, small.train, epochs=1, device="cpu", progress=False, history=history,
                     seed=history.seed + 1)


# ------------------------------------------------------------------------------------------
# History, evaluate
# ------------------------------------------------------------------------------------------
def test_history_round_trip_plot_and_repr(small):
    model = _model()
    history = training.fit(model, optim.Adam(model.parameters()), small.train, small.val, epochs=3, device="cpu",
                           progress=False, label="demo")
    again = training.History.from_dict(history.to_dict())
    assert again.same_metrics(history) and again.label == "demo" and len(again) == 3
    assert "demo: 3 epochs" in repr(history) and repr(training.History()) == "History(0 epochs)"
    assert history.total_seconds == pytest.approx(sum(history.seconds))
    axes = plotting.plot_history(history, method="adam")
    assert len(axes) == 2 and len(axes[0].lines) == 2 and axes[0].get_yscale() == "log"
    assert axes[0].get_xlabel() == "epochs"
    other = _model()
    no_val = training.fit(other, optim.Adam(other.parameters()), small.train, epochs=1, device="cpu",
                          progress=False)
    assert len(plotting.plot_history(no_val, metrics=("loss",))[0].lines) == 1  # NaN validation curves are not drawn
    with pytest.raises(ValueError, match="unknown metric"):
        history.metric("val_f1")
    plt.close("all")


def test_evaluate_equals_scikit_learn(small):
    model = _model()
    X, y = small.test
    loss, accuracy = training.evaluate(model, small.test)
    with torch.no_grad():
        p = torch.sigmoid(model(X)).squeeze(1).double().numpy()
    assert loss == pytest.approx(log_loss(y.numpy(), p), abs=1e-6)
    assert accuracy == pytest.approx(accuracy_score(y.numpy(), p > 0.5))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=7)
    assert training.evaluate(model, loader) == pytest.approx((loss, accuracy), abs=1e-6)
    with pytest.raises(ValueError, match="labels 0 and 1"):
        training.evaluate(model, (X, y + 3))


# ------------------------------------------------------------------------------------------
# lr range test
# ------------------------------------------------------------------------------------------
def test_lr_range_test_sweeps_exponentially_and_restores_everything(small):
    model = _model()
    optimizer = optim.Adam(model.parameters(), lr=0.003)
    training.fit(model, optimizer, small.train, epochs=1, device="cpu", progress=False)  # non-trivial state
    weights, state = _params(model), copy.deepcopy(optimizer.state_dict())  # state_dict() shares tensors
    result = training.lr_range_test(model, optimizer, small.train, 1e-5, 1e-1, 50, device="cpu")
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 50 and not result.stopped_early
    assert result.lrs[0] == pytest.approx(1e-5) and result.lrs[-1] == pytest.approx(1e-1)
    assert np.allclose(result.lrs[1:] / result.lrs[:-1], (1e4) ** (1 / 49))
    assert _same(weights, _params(model))
    after = optimizer.state_dict()
    assert after["param_groups"][0]["lr"] == 0.003
    for key, value in state["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, after["state"][key][name])
    assert result.smoothed[-1] < result.smoothed[0]  # a good range: the loss went down


def test_lr_range_test_stops_when_the_loss_explodes(small):
    model = _model()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    result = training.lr_range_test(model, optimizer, small.train, 1e-3, 1e6, 200, device="cpu")
    assert result.stopped_early and len(result.lrs) < 200
    assert result.smoothed[-1] > 4 * result.smoothed.min() or not np.isfinite(result.losses[-1])
    assert 1e-3 <= result.best_lr() < result.lrs[-1]
    assert result.suggestion() == pytest.approx(result.best_lr() / 10)
    again = training.lr_range_test(model, optimizer, small.train, 1e-3, 1e6, 200, device="cpu")
    assert np.array_equal(again.losses, result.losses)  # deterministic
    ax = plotting.plot_range_test(result, method="gd")
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate η"
    plt.close("all")


def test_range_test_rules_read_losses_lazily_and_stop_at_four_times_the_lowest_smoothed_loss():
    """fastai's rules on made-up losses: a constant loss smooths to itself (the bias correction), and the first
    smoothed loss above 4 × the lowest ends the test without reading the next loss (no further step is taken)."""
    lrs = training.range_test_lrs(1e-3, 1.0, 8)
    assert np.allclose(lrs, np.geomspace(1e-3, 1.0, 8), rtol=1e-12)
    read = []

    def losses():
        for value in [2.0, 2.0, 2.0, 100.0, 1.0, 1.0, 1.0, 1.0]:
            read.append(value)
            yield value

    result = training.LRRangeTest.from_losses(lrs, losses())
    assert result.smoothed[:3].tolist() == [2.0, 2.0, 2.0]
    expected = (0.9**3 * 0.1 * 2 + 0.9**2 * 0.1 * 2 + 0.9 * 0.1 * 2 + 0.1 * 100) / (1 - 0.9**4)   # 27.8… > 4 × 2
    assert result.smoothed[3] == pytest.approx(expected, rel=1e-12)
    assert result.stopped_early and len(result.lrs) == 4 and read == [2.0, 2.0, 2.0, 100.0]
    whole = training.LRRangeTest.from_losses(lrs[:3], [2.0, 2.0, 2.0])
    assert not whole.stopped_early and len(whole.losses) == 3


@pytest.mark.parametrize("arguments, words", [
    (dict(start_lr=0.0), "start_lr"), (dict(start_lr=1.0, end_lr=0.1), "start_lr"),
    (dict(steps=1), "steps"), (dict(smoothing=1.0), "smoothing"), (dict(diverge_factor=1.0), "diverge_factor"),
    (dict(end_lr=math.inf), "end_lr"), (dict(diverge_factor=math.nan), "diverge_factor"),
    (dict(batch_size=True), "batch_size"),
])
def test_lr_range_test_rejects_bad_arguments(small, arguments, words):
    model = _model()
    with pytest.raises(ValueError, match=words):
        training.lr_range_test(model, optim.SGD(model.parameters()), small.train, device="cpu", **arguments)


def test_lr_range_test_measures_each_loss_before_its_step_at_its_learning_rate(small):
    """Full batch: loss k is f(θ_k), and θ_{k+1} = θ_k − η_k ∇f(θ_k) (plain SGD), checked against scikit-learn's
    log loss and a hand-written step; the smoothed curve starts at the first loss (bias correction)."""
    X, y = small.train
    model = _model()
    result = training.lr_range_test(model, optim.SGD(model.parameters()), small.train, 1e-3, 1.0, 3,
                                    batch_size=None, device="cpu")
    reference = _model()
    for k in range(3):
        with torch.no_grad():
            p = torch.sigmoid(reference(X)).squeeze(1).double().numpy()
        assert result.losses[k] == pytest.approx(log_loss(y.numpy(), p), abs=1e-6)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(reference(X).squeeze(1), y)
        reference.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in reference.parameters():
                param -= result.lrs[k] * param.grad
    assert result.smoothed[0] == pytest.approx(result.losses[0], rel=1e-12)
    expected = (0.9 * 0.1 * result.losses[0] + 0.1 * result.losses[1]) / (1 - 0.9**2)
    assert result.smoothed[1] == pytest.approx(expected, rel=1e-12)


def test_lr_range_test_given_a_dataloader_says_what_it_takes_instead(small):
    """It used to say "train must be a pair (X, y) of tensors or a DataLoader; got DataLoader"."""
    model = _model()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*small.train), batch_size=16)
    with pytest.raises(ValueError, match=r"lr_range_test's train must be an in-memory pair \(X, y\) of tensors "
                                         r"here, not a DataLoader .* pass loader.dataset.tensors"):
        training.lr_range_test(model, optim.SGD(model.parameters()), loader, device="cpu")
    result = training.lr_range_test(model, optim.SGD(model.parameters()), loader.dataset.tensors, 1e-4, 1.0, 10,
                                    device="cpu")
    assert len(result.lrs) == 10


# ------------------------------------------------------------------------------------------
# the six optimizers of notebooks 08 and 13 (the figure and playground: tests/labs/test_seed_classifier.py)
# ------------------------------------------------------------------------------------------
def test_make_optimizer_methods():
    model = _model()
    assert isinstance(lab.make_optimizer("momentum", model.parameters(), 0.1), optim.SGD)
    assert lab.make_optimizer("momentum", model.parameters(), 0.1).defaults["momentum"] == 0.9
    assert isinstance(lab.make_optimizer("adamw", model.parameters(), 0.1, library="torch"), torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown method"):
        lab.make_optimizer("lion", model.parameters(), 0.1)
    with pytest.raises(ValueError, match="library"):
        lab.make_optimizer("adam", model.parameters(), 0.1, library="jax")


def test_full_batch_gd_takes_one_step_per_epoch(small):
    _, history = lab.train_classifier(small, "gd", 0.5, epochs=4, device="cpu")
    assert history.steps == [1, 2, 3, 4]


# ------------------------------------------------------------------------------------------
# CUDA (run only where a GPU is present)
# ------------------------------------------------------------------------------------------
@needs_cuda
def test_fit_runs_on_cuda_and_keeps_everything_there(small):
    model = _model().to("cuda")  # a model already on the GPU, data on the CPU
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    history = training.fit(model, optimizer, small.train, small.val, epochs=3, device="cuda", progress=False)
    assert next(model.parameters()).is_cuda and history.epochs == 3
    assert all(v.is_cuda for s in optimizer.state.values() for k, v in s.items() if k != "step")
    assert training.evaluate(model, small.val)[0] == pytest.approx(history.val_loss[-1], abs=1e-6)
    result = training.lr_range_test(model, optimizer, small.train, 1e-4, 1.0, 20, device="cuda")
    assert len(result.lrs) == 20 and next(model.parameters()).is_cuda


@needs_cuda
@pytest.mark.parametrize("method", ["adam", "momentum"])
def test_same_seed_same_metrics_on_cpu_and_gpu(method):
    cancer = data.breast_cancer()
    _, on_cpu = lab.train_classifier(cancer, method, 1e-2 if method == "momentum" else 1e-3, device="cpu")
    _, on_gpu = lab.train_classifier(cancer, method, 1e-2 if method == "momentum" else 1e-3, device="cuda")
    assert on_cpu.same_metrics(on_gpu, tolerance=1e-3)
    assert abs(on_cpu.val_accuracy[-1] - on_gpu.val_accuracy[-1]) <= 1 / 114 + 1e-9


@needs_cuda
def test_gpu_checkpoint_resumes_on_the_cpu(small, tmp_path):
    model = _model()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    history = training.fit(model, optimizer, small.train, epochs=2, device="cuda", progress=False,
                           checkpoint=tmp_path / "gpu.pt")
    cpu_model = _model(seed=3)
    cpu_optimizer = optim.Adam(cpu_model.parameters(), lr=0.01)
    loaded = training.load_checkpoint(tmp_path / "gpu.pt", cpu_model, cpu_optimizer)
    assert loaded.same_metrics(history)
    training.fit(cpu_model, cpu_optimizer, small.train, epochs=1, device="cpu", progress=False, history=loaded)
    assert not next(cpu_model.parameters()).is_cuda
