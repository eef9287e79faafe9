"""course_lib.labs.seed_classifier (notebook 08): one training run as a figure, and the playground over it."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import data
from course_lib.labs import seed_classifier as S


@pytest.fixture(scope="module")
def small():
    return data.synthetic_binary(160, 8, seed=0)


def test_show_training_run_draws_curves_or_the_divergence(small):
    fig = S.show_training_run("sgd", 0.1, 3, dataset=small, device="cpu")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    assert "validation accuracy" in fig._suptitle.get_text()
    fig = S.show_training_run("sgd", 1e20, 3, dataset=small, device="cpu")
    assert "diverged" in fig._suptitle.get_text()
    _, history = S.train_classifier(small, "adam", 1e-3, epochs=3, device="cpu")
    fig = S.show_training_run("adam", 1e-3, 3, history=history)  # draws the given run, no training
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), history.train_loss)
    plt.close("all")


def test_training_playground_builds_and_redraws(small):
    controls = S.training_playground(small, device="cpu")
    method, lr, epochs = controls.children[:3]
    assert (method.value, lr.value, epochs.value) == ("adam", 1e-3, 50)
    epochs.value = 2  # triggers the callback, which must not raise
    assert controls.kwargs == {"method": "adam", "lr": 1e-3, "epochs": 2}
    plt.close("all")


def test_training_playground_draws_a_given_history_without_training(small, monkeypatch):
    _, history = S.train_classifier(small, "adam", 1e-3, epochs=3, device="cpu")
    calls, real = [], S.train_classifier

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(S, "train_classifier", counting)
    controls = S.training_playground(small, device="cpu", history=history)
    assert calls == []                      # the first setting (Adam, 10⁻³, 50 epochs) is drawn from `history`
    controls.children[2].value = 2          # any other setting trains
    assert len(calls) == 1
    plt.close("all")


def test_make_optimizer_options_override_the_methods_fixed_options():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert S.make_optimizer("adamw", params, 1e-3).param_groups[0]["weight_decay"] == 1e-2
    group = S.make_optimizer("adamw", params, 1e-3, options={"weight_decay": 1.0}).param_groups[0]
    assert group["weight_decay"] == 1.0 and group["lr"] == 1e-3
    group = S.make_optimizer("momentum", params, 0.1, options={"nesterov": True},
                             library="torch").param_groups[0]
    assert group["momentum"] == 0.9 and group["nesterov"] is True


def test_train_classifier_passes_options_to_the_optimizer():
    dataset = data.synthetic_binary(80, 4, seed=1)
    strong = S.train_classifier(dataset, "adamw", 1e-2, epochs=3, options={"weight_decay": 30.0})[0]
    default = S.train_classifier(dataset, "adamw", 1e-2, epochs=3)[0]
    norm = [torch.cat([p.detach().flatten() for p in m.parameters()]).norm().item() for m in (strong, default)]
    assert norm[0] < 0.5 * norm[1]      # (1 − 0.3)^(3 · 2) ≈ 0.12 from the decay alone


def test_update_ratios_are_the_steps_over_the_weights_and_leave_the_run_unchanged():
    from course_lib.devices import epoch_generator

    cancer = data.breast_cancer()
    model, history, ratios = S.update_ratios(cancer, "sgd", 0.1, epochs=2)
    plain_model, plain_history = S.train_classifier(cancer, "sgd", 0.1, epochs=2)
    assert history.same_metrics(plain_history, tolerance=0)                       # the hooks change nothing
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), plain_model.parameters()))
    assert set(ratios) == {name for name, _ in model.named_parameters()}
    assert all(len(r) == 2 * 11 for r in ratios.values())                       # 11 minibatches an epoch
    # SGD's first step is η g on the first minibatch of fit's order: rebuild it by hand
    features, labels = cancer.train
    batch = torch.randperm(len(features), generator=epoch_generator(0, 0))[:32]
    S.seed_everything(0)
    fresh = S.seed_classifier(cancer.n_features)
    torch.nn.functional.binary_cross_entropy_with_logits(fresh(features[batch]).squeeze(-1),
                                                         labels[batch].float()).backward()
    for name, p in fresh.named_parameters():
        assert ratios[name][0] == pytest.approx((0.1 * p.grad.norm() / p.detach().norm()).item(), rel=1e-4)
