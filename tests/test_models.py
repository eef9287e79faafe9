"""course_lib.models: the seed classifier (moved from training) and the MNIST-1D CNN against the authors'
ConvBase (a transcription of the mnist1d repository's notebooks/models.py) and closed-form parameter counts."""

import pytest
import torch

from course_lib import data, models, optim, training

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")

pytestmark = pytest.mark.usefixtures("one_thread")


class _AuthorsConvBase(torch.nn.Module):
    """The mnist1d authors' ConvBase (greydanus/mnist1d, notebooks/models.py), transcribed without its print."""

    def __init__(self, output_size, channels=25, linear_in=125):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = torch.nn.Linear(linear_in, output_size)

    def forward(self, x):
        x = x.view(-1, 1, x.shape[-1])
        h1 = self.conv1(x).relu()
        h2 = self.conv2(h1).relu()
        h3 = self.conv3(h2).relu()
        h3 = h3.view(h3.shape[0], -1)
        return self.linear(h3)


@pytest.fixture(scope="module")
def mnist():
    return data.mnist1d(cache=False)  # generated here, not read from (or written to) the user's cache


def test_seed_classifier_lives_in_models_and_is_still_reached_through_training():
    assert training.seed_classifier is models.seed_classifier
    model = models.seed_classifier(8)
    assert models.parameter_count(model) == 8 * 32 + 32 + 32 + 1 == 321
    with pytest.raises(ValueError, match="positive"):
        models.seed_classifier(0)


@pytest.mark.parametrize("channels", [25, 32])
def test_cnn_parameter_count_closed_form(channels):
    """6c (conv 1×5) + 2(3c² + c) (two c×c×3 convs) + 50c + 10 (5c features → 10 classes) = 6c² + 58c + 10."""
    model = models.ConvNet1d(channels=channels)
    assert models.parameter_count(model) == 6 * channels**2 + 58 * channels + 10
    assert models.parameter_count(models.ConvNet1d()) == 5210  # the count the authors' ConvBase prints


def test_cnn_equals_the_authors_convbase():
    torch.manual_seed(0)
    ours = models.ConvNet1d()
    theirs = _AuthorsConvBase(10)
    theirs.load_state_dict(ours.state_dict())  # same parameter names and shapes
    X = torch.randn(7, 40)
    assert torch.equal(ours(X), theirs(X))
    assert ours(X).shape == (7, 10) and torch.equal(ours(X[:, None, :]), ours(X))


def test_cnn_feature_lengths_are_19_10_5():
    model = models.ConvNet1d()
    lengths = []
    for layer in (model.conv1, model.conv2, model.conv3):
        layer.register_forward_hook(lambda module, inputs, output: lengths.append(output.shape[-1]))
    model(torch.zeros(2, 40))
    assert lengths == [19, 10, 5] and model.linear.in_features == 125
    assert models.ConvNet1d(length=64).linear.in_features == 25 * 8


def test_cnn_rejects_bad_arguments():
    for arguments, words in [(dict(channels=0), "channels"), (dict(classes=2.0), "classes"),
                             (dict(length=2), "too short"), (dict(length=True), "length")]:
        with pytest.raises(ValueError, match=words):
            models.ConvNet1d(**arguments)


def test_cnn_learns_mnist1d_through_fit(mnist):
    """300 Adam steps (the authors' lr 1e-2, batch 100): far above chance (10 %) on held-out signals."""
    training.seed_everything(0)
    model = models.ConvNet1d()
    history = training.fit(model, optim.Adam(model.parameters(), lr=1e-2), mnist.train, mnist.val,
                           loss="cross_entropy", batch_size=100, max_steps=300, device="cpu", progress=False, seed=0)
    assert history.steps[-1] == 300 and history.val_accuracy[-1] > 0.6
    assert history.val_loss[-1] < 0.5 * history.step_loss[0]
    loss, accuracy = training.evaluate(model, mnist.test, loss="cross_entropy")
    assert accuracy > 0.6


@needs_cuda
def test_cnn_trains_the_same_on_cuda(mnist):
    histories = []
    for device in ("cpu", "cuda"):
        training.seed_everything(0)
        model = models.ConvNet1d()
        histories.append(training.fit(model, optim.AdamW(model.parameters(), lr=1e-2), mnist.train, mnist.val,
                                      loss="cross_entropy", batch_size=100, max_steps=80, device=device,
                                      progress=False, seed=0))
    cpu, gpu = histories
    assert cpu.steps == gpu.steps and gpu.val_loss[-1] == pytest.approx(cpu.val_loss[-1], rel=0.05)
    assert abs(gpu.val_accuracy[-1] - cpu.val_accuracy[-1]) <= 0.03
