"""course_lib.optim's NAdam, RAdam, Adafactor, Muon, Lion and AdamWScheduleFree against their references.

Beyond the registry's tests (tests/test_optim_conformance.py: numbers on every path, state dicts, signatures):
torch's own error inputs for NAdam / RAdam / Adafactor / Muon (``optim_db`` in
torch/testing/_internal/common_optimizers.py), the same errors (``ValueError`` where ``lion_pytorch`` and
``schedulefree`` only assert), schedules from lr zero, Schedule-Free's modes and ``fit``.
"""

import copy
import sys
import types
import unittest
import warnings

import lion_pytorch
import pytest
import schedulefree
import torch
from optim_db import OPTIM_DB

from course_lib import data, optim, training

TOLERANCE = 1e-10

pytestmark = pytest.mark.usefixtures("one_thread")

BEYOND = ("NAdam", "RAdam", "Adafactor", "Muon", "Lion", "AdamWScheduleFree")
REFERENCES = {name: OPTIM_DB[name].reference_class for name in BEYOND}
GRIDS = {name: list(OPTIM_DB[name].grid) for name in BEYOND}


def _network(name, seed=0):
    """A small float64 network; for Muon, matrices only (no biases), both wide so torch's bfloat16 products are fast."""
    torch.manual_seed(seed)
    bias = name != "Muon"
    return torch.nn.Sequential(torch.nn.Linear(8, 6, bias=bias), torch.nn.Tanh(),
                               torch.nn.Linear(6, 1, bias=bias)).double()


def _data(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(64, 8, dtype=torch.float64, generator=generator),
            torch.randn(64, 1, dtype=torch.float64, generator=generator))


def _groups(model, kwargs):
    """Two param groups; the second halves lr (per-group hyperparameters)."""
    return [{"params": list(model[0].parameters())},
            {"params": list(model[2].parameters()), "lr": kwargs.get("lr", 1e-3) * 0.5}]


def _train(model, optimizer, steps, start=0):
    inputs, targets = _data()
    if hasattr(optimizer, "train"):
        optimizer.train()
    for step in range(start, start + steps):
        optimizer.zero_grad()
        rows = slice((step * 16) % 64, (step * 16) % 64 + 16)
        ((model(inputs[rows]) - targets[rows]) ** 2).mean().backward()
        optimizer.step()
    return model


def _max_difference(model_a, model_b):
    return max((a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters()))


def _reference(name, params, kwargs, path):
    reference_kwargs = dict(kwargs)
    if name == "AdamWScheduleFree":
        reference_kwargs["foreach"] = path.get("foreach", True)
    return REFERENCES[name](params, **reference_kwargs)


LAST = [(name, grid[-1]) for name, grid in GRIDS.items()]


# ---- errors ---------------------------------------------------------------------------------------------------------
def _optim_db():
    """torch's OptimizerInfo list (it imports expecttest, a test-only package torch does not ship: stub it)."""
    sys.modules.setdefault("expecttest", types.SimpleNamespace(TestCase=unittest.TestCase))
    from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db

    return optim_db, OptimizerErrorEnum


def _torch_error_inputs():
    optim_db, _ = _optim_db()
    cases = []
    for info in optim_db:
        name = info.optim_cls.__name__
        if name in ("NAdam", "RAdam", "Adafactor", "Muon"):
            for error_input in info.optim_error_inputs_func(device="cpu", dtype=torch.float32):
                cases.append((name, error_input))
    return cases


def test_optim_db_lists_error_inputs_for_the_four_torch_classes():
    assert {name for name, _ in _torch_error_inputs()} == {"NAdam", "RAdam", "Adafactor", "Muon"}
    assert 30 <= len(_torch_error_inputs()) <= 40  # all of them fit in the 40 cases below


@pytest.mark.parametrize("which", range(40))
def test_torchs_error_inputs_raise_the_same_errors(which):
    """Every error input of optim_db for NAdam, RAdam, Adafactor and Muon, against ours (construction or step)."""
    cases = _torch_error_inputs()
    if which >= len(cases):
        pytest.skip("fewer error inputs in this torch version")
    name, error_input = cases[which]
    _, OptimizerErrorEnum = _optim_db()
    torch.manual_seed(which)
    inputs = error_input.optimizer_error_input
    params = inputs.params if inputs.params is not None else [torch.nn.Parameter(torch.randn(2, 2))]
    for cls in (getattr(optim, name), REFERENCES[name]):
        if error_input.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR:
            if issubclass(error_input.error_type, Warning):
                with pytest.warns(error_input.error_type, match=error_input.error_regex):
                    cls(copy.copy(params), **inputs.kwargs)
            else:
                with pytest.raises(error_input.error_type, match=error_input.error_regex):
                    cls(copy.copy(params), **inputs.kwargs)
        else:
            optimizer = cls(params, **inputs.kwargs)
            with pytest.raises(error_input.error_type, match=error_input.error_regex):
                optimizer.step()


@pytest.mark.parametrize("name", list(REFERENCES))
def test_a_schedule_that_starts_at_lr_zero_runs_as_in_the_reference(name):
    """Linear warm-up from 0 (LambdaLR), the recipe of notebook 12: a scheduler may set lr = 0 after the
    optimizer was built, which every reference accepts (lion-pytorch refuses 0 only when it is built)."""
    kwargs = GRIDS[name][-1]
    ours, theirs = _network(name), _network(name)
    ours_opt = getattr(optim, name)(_groups(ours, kwargs), **kwargs)
    theirs_opt = _reference(name, _groups(theirs, kwargs), kwargs, {})
    warm_up = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: min(step / 5, 1.0)) for o in (ours_opt, theirs_opt)]
    assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"] == 0.0
    for step in range(12):
        _train(ours, ours_opt, 1, start=step)
        _train(theirs, theirs_opt, 1, start=step)
        for scheduler in warm_up:
            scheduler.step()
    assert _max_difference(ours, theirs) < TOLERANCE
    assert _max_difference(ours, _network(name)) > 1e-3


@pytest.mark.parametrize("kwargs, words", [
    (dict(lr=0.0), "learning rate"),
    (dict(lr=-1e-4), "learning rate"),
    (dict(betas=(1.5, 0.99)), "beta parameter at index 0"),
    (dict(betas=(0.9, -0.1)), "beta parameter at index 1"),
])
def test_lion_raises_value_error_where_lion_pytorch_asserts(kwargs, words):
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(AssertionError):
        lion_pytorch.Lion(params, **kwargs)
    with pytest.raises(ValueError, match=words):
        optim.Lion(params, **kwargs)


def test_lion_refuses_use_triton_clearly():
    with pytest.raises(ValueError, match="use_triton=True is not supported"):
        optim.Lion([torch.nn.Parameter(torch.zeros(2))], use_triton=True)


@pytest.mark.parametrize("name", ["NAdam", "RAdam", "Adafactor", "Muon", "AdamWScheduleFree"])
def test_fused_is_refused_where_the_rule_cannot_run_on_a_flat_buffer(name):
    params = [torch.nn.Parameter(torch.zeros(3, 2))]
    with pytest.raises(ValueError, match="does not support fused=True"):
        getattr(optim, name)(params, fused=True)
    optimizer = getattr(optim, name)([torch.nn.Parameter(torch.zeros(3, 2))])
    with pytest.raises(ValueError, match="does not support fused=True"):
        optimizer.add_param_group({"params": params, "fused": True})


def test_muon_refuses_a_vector_in_a_later_param_group():
    optimizer = optim.Muon([torch.nn.Parameter(torch.zeros(3, 2))])
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))]})
    assert len(optimizer.param_groups) == 1


# ---- Schedule-Free's two modes ------------------------------------------------------------------------------------
def test_schedule_free_steps_only_in_train_mode_like_the_package():
    for cls in (schedulefree.AdamWScheduleFree, optim.AdamWScheduleFree):
        param = torch.nn.Parameter(torch.ones(2))
        optimizer = cls([param])
        param.grad = torch.ones(2)
        with pytest.raises(Exception, match="not in train mode"):  # a new optimizer starts in eval mode
            optimizer.step()
        optimizer.train()
        optimizer.step()
        optimizer.eval()
        with pytest.raises(Exception, match="not in train mode"):
            optimizer.step()
    with pytest.raises(RuntimeError, match=r"call optimizer.train\(\) before training"):
        optimizer.step()


def test_schedule_free_train_and_eval_are_idempotent_and_inverse():
    model = _network("AdamWScheduleFree")
    optimizer = optim.AdamWScheduleFree(model.parameters(), lr=0.05)
    _train(model, optimizer, 20)
    y = [p.detach().clone() for p in model.parameters()]
    optimizer.eval()
    x = [p.detach().clone() for p in model.parameters()]
    optimizer.eval()  # twice: still x
    assert all(torch.equal(a, p) for a, p in zip(x, model.parameters()))
    assert max((a - b).abs().max().item() for a, b in zip(x, y)) > 1e-3
    optimizer.train()
    assert max((a - p).abs().max().item() for a, p in zip(y, model.parameters())) < 1e-14


# ---- fit and evaluate switch the modes ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return data.synthetic_binary(160, 8, seed=0)


def test_fit_trains_at_y_and_evaluates_at_x_with_schedule_free(small):
    torch.manual_seed(0)
    model = training.seed_classifier(8)
    optimizer = optim.AdamWScheduleFree(model.parameters(), lr=0.05)
    history = training.fit(model, optimizer, small.train, small.val, epochs=3, batch_size=32, progress=False,
                           seed=0, device="cpu")  # a new optimizer is in eval mode: fit must call train()
    assert optimizer.param_groups[0]["train_mode"] is False  # fit ends in eval mode: the model holds x
    x_loss, _ = training.evaluate(model, small.val)
    assert x_loss == history.val_loss[-1]  # validation saw x
    optimizer.train()  # y: a different model, a different loss
    y_loss, _ = training.evaluate(model, small.val)
    assert abs(y_loss - x_loss) > 1e-4
    # evaluate(optimizer=...) switches to x first
    assert training.evaluate(model, small.val, optimizer=optimizer)[0] == x_loss
    assert optimizer.param_groups[0]["train_mode"] is False


def test_fit_with_schedule_free_equals_the_package_driven_by_hand(small):
    """fit with our optimizer = a hand loop with schedulefree's calling train() and eval() as its docs ask."""
    torch.manual_seed(0)
    model = training.seed_classifier(8).double()
    reference = copy.deepcopy(model)
    train_x, train_y = (t.double() for t in small.train)
    optimizer = optim.AdamWScheduleFree(model.parameters(), lr=0.05, warmup_steps=3)
    training.fit(model, optimizer, (train_x, train_y), epochs=2, batch_size=None, progress=False, seed=0,
                 device="cpu")
    package = schedulefree.AdamWScheduleFree(reference.parameters(), lr=0.05, warmup_steps=3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(2):
        package.train()
        package.zero_grad()
        loss_fn(reference(train_x).reshape(train_y.shape), train_y.double()).backward()
        package.step()
        package.eval()
    assert _max_difference(model, reference) < TOLERANCE
    assert _max_difference(model, training.seed_classifier(8)) > 1e-3


def test_fit_leaves_optimizers_without_modes_alone(small):
    torch.manual_seed(0)
    model = training.seed_classifier(8)
    optimizer = optim.Lion(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        training.fit(model, optimizer, small.train, small.val, epochs=1, progress=False, seed=0, device="cpu")
    assert not hasattr(optimizer, "train")
