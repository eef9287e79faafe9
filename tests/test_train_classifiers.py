"""course_lib.lab.train_classifiers (notebook 08's grids, many runs as one batched network) against
train_classifier run by run: the same histories and weights up to float rounding, the same divergences."""

import numpy as np
import pytest
import torch

from course_lib import data, training
from course_lib.labs import seed_classifier as lab

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return data.synthetic_binary(160, 8, seed=0)


def _single(dataset, method, lr, seed, **options):
    try:
        return lab.train_classifier(dataset, method, lr, seed=seed, device="cpu", **options)
    except training.DivergenceError:
        return None


@pytest.mark.parametrize("method", list(lab.METHODS))
def test_each_run_equals_train_classifier(small, method):
    lrs, seeds = [1e-3, 3e-2, 3e-2], [0, 0, 1]           # two rates on one seed, one rate on two seeds
    batched = lab.train_classifiers(small, method, lrs, seeds, epochs=4, device="cpu")
    for lr, seed, result in zip(lrs, seeds, batched):
        model, history = _single(small, method, lr, seed, epochs=4)
        assert result is not None
        batched_model, batched_history = result
        assert batched_history.seed == seed and batched_history.steps == history.steps
        assert batched_history.lr == history.lr and batched_history.label == history.label
        assert batched_history.same_metrics(history, tolerance=1e-6)
        for ours, theirs in zip(batched_model.parameters(), model.parameters()):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_weight_decay_options_reach_the_rule(small):
    (_, history), = lab.train_classifiers(small, "adamw", [1e-2], [0], epochs=3, options={"weight_decay": 5.0})
    _, reference = _single(small, "adamw", 1e-2, 0, epochs=3, options={"weight_decay": 5.0})
    _, undecayed = _single(small, "adamw", 1e-2, 0, epochs=3)
    assert history.same_metrics(reference, tolerance=1e-6) and not history.same_metrics(undecayed, tolerance=1e-4)


def test_a_diverging_run_is_none_and_leaves_the_others_alone(small):
    lrs = [1e-2, 1e4, 1e-1]
    batched = lab.train_classifiers(small, "sgd", lrs, [0, 0, 0], epochs=3)
    assert _single(small, "sgd", 1e4, 0, epochs=3) is None and batched[1] is None
    for lr, result in zip((1e-2, 1e-1), (batched[0], batched[2])):
        assert result[1].same_metrics(_single(small, "sgd", lr, 0, epochs=3)[1], tolerance=1e-6)
        assert all(np.isfinite(result[1].metric(name)).all() for name in ("train_loss", "val_loss"))


def test_bad_input(small):
    with pytest.raises(ValueError, match="unknown method"):
        lab.train_classifiers(small, "lbfgs", [1e-3], [0])
    with pytest.raises(ValueError, match="equal length"):
        lab.train_classifiers(small, "adam", [1e-3, 1e-2], [0])
    with pytest.raises(ValueError, match="equal length"):
        lab.train_classifiers(small, "adam", [], [])


def test_several_methods_and_options_in_one_call(small):
    # interleaved, so that runs of one method are not neighbours (the rule updates rows picked by index)
    methods = ["adam", "sgd", "adamw", "momentum", "adam", "rmsprop", "adamw"]
    lrs = [1e-2, 3e-2, 1e-2, 3e-2, 3e-3, 1e-3, 1e-2]
    seeds = [0, 1, 0, 0, 1, 2, 1]
    options = [None, None, {"weight_decay": 5.0}, None, None, None, None]
    batched = lab.train_classifiers(small, methods, lrs, seeds, epochs=3, options=options)
    for method, lr, seed, extra, result in zip(methods, lrs, seeds, options, batched):
        _, history = _single(small, method, lr, seed, epochs=3, options=extra)
        assert result[1].label == history.label
        assert result[1].same_metrics(history, tolerance=1e-6), (method, lr, seed, extra)


def test_one_method_list_equals_the_shared_method(small):
    lrs, seeds = [1e-2, 1e-1], [0, 1]
    shared = lab.train_classifiers(small, "momentum", lrs, seeds, epochs=2)
    listed = lab.train_classifiers(small, ["momentum", "momentum"], lrs, seeds, epochs=2, options=[None, {}])
    for (_, a), (_, b) in zip(shared, listed):
        assert a.same_metrics(b)


def test_bad_method_lists(small):
    with pytest.raises(ValueError, match="cannot train in one call"):
        lab.train_classifiers(small, ["gd", "sgd"], [1e-2, 1e-2], [0, 0])
    with pytest.raises(ValueError, match="one method and one options dict per run"):
        lab.train_classifiers(small, ["sgd"], [1e-2, 1e-2], [0, 0])
    with pytest.raises(ValueError, match="one method and one options dict per run"):
        lab.train_classifiers(small, "sgd", [1e-2, 1e-2], [0, 0], options=[None])
    with pytest.raises(ValueError, match="unknown method"):
        lab.train_classifiers(small, ["sgd", "lbfgs"], [1e-2, 1e-2], [0, 0])


def test_each_method_names_its_rule_and_its_optimizer_runs_that_rule():
    """The rule a batched run applies is named in METHODS (not guessed from the class name) and is the rule the
    method's course_lib.optim class runs: same name, same hyperparameters."""
    from course_lib import rules
    for name, spec in lab.METHODS.items():
        rule = rules.RULES[spec.rule](**spec.options)
        optimizer = lab.make_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], 0.1)
        assert type(optimizer).__name__ == spec.optimizer and type(optimizer).rule_factory is rules.RULES[spec.rule]
        assert {key: optimizer.defaults[key] for key in spec.options} == {key: rule.hyperparams[key]
                                                                          for key in spec.options}
