"""course_lib.optim's NAdam, RAdam, Adafactor, Muon, Lion and AdamWScheduleFree against their references.

torch.optim.NAdam / RAdam / Adafactor / Muon (and torch's own error inputs for them, ``optim_db`` in
torch/testing/_internal/common_optimizers.py), ``lion_pytorch.Lion`` and ``schedulefree.AdamWScheduleFree``:
same numbers in float64 on every path each class supports, state dicts that move both ways, same
signatures and defaults, the same errors (``ValueError`` where the packages only assert).
"""

import copy
import inspect
import sys
import types
import unittest
import warnings

import lion_pytorch
import pytest
import schedulefree
import torch

from course_lib import data, optim, training

TOLERANCE = 1e-10
STEPS = 60

pytestmark = pytest.mark.usefixtures("one_thread")

REFERENCES = {
    "NAdam": torch.optim.NAdam,
    "RAdam": torch.optim.RAdam,
    "Adafactor": torch.optim.Adafactor,
    "Muon": torch.optim.Muon,
    "Lion": lion_pytorch.Lion,
    "AdamWScheduleFree": schedulefree.AdamWScheduleFree,
}
GRIDS = {
    "NAdam": [dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.1),
              dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)],
    "RAdam": [dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1),
              dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)],
    "Adafactor": [dict(lr=0.01), dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0),
                  dict(lr=0.01, weight_decay=0.1, maximize=True)],
    "Muon": [dict(lr=0.02), dict(lr=0.02, momentum=0.9, nesterov=False, adjust_lr_fn="match_rms_adamw")],
    "Lion": [dict(lr=1e-3), dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.1),
             dict(lr=1e-3, weight_decay=0.5, decoupled_weight_decay=True)],
    "AdamWScheduleFree": [dict(lr=0.01), dict(lr=0.01, warmup_steps=10, weight_decay=0.05),
                          dict(lr=0.02, betas=(0.8, 0.99), r=0.5, weight_lr_power=1.0, warmup_steps=5)],
}
# The paths each class supports, as constructor keywords (the default path is tested too: no keyword).
PATHS = {
    "NAdam": [dict(), dict(foreach=True)],  # runs per tensor whatever foreach says
    "RAdam": [dict(), dict(foreach=True)],
    "Adafactor": [dict(), dict(foreach=True)],
    "Muon": [dict()],
    "Lion": [dict(foreach=False), dict(foreach=True), dict(), dict(fused=True)],
    "AdamWScheduleFree": [dict(foreach=False), dict(foreach=True)],
}
# torch.compile takes long on a small CPU: the compiled path runs one Lion case (decoupled decay, the most switches).
CASES = [(name, kwargs, path) for name, grid in GRIDS.items() for kwargs in grid for path in PATHS[name]
         if not path.get("fused") or kwargs is grid[-1]]


def _case_id(case):
    name, kwargs, path = case
    return f"{name}-{GRIDS[name].index(kwargs)}-" + ("-".join(f"{k}={v}" for k, v in path.items()) or "default")


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


def _assert_same_state(ours_opt, theirs_opt, ours, theirs, tolerance=TOLERANCE):
    for p_ours, p_theirs in zip(ours.parameters(), theirs.parameters()):
        state_ours, state_theirs = ours_opt.state[p_ours], theirs_opt.state[p_theirs]
        assert set(state_ours) == set(state_theirs)
        for key, value in state_theirs.items():
            difference = (torch.as_tensor(state_ours[key], dtype=torch.float64)
                          - torch.as_tensor(value, dtype=torch.float64)).abs().max().item()
            assert difference < tolerance, key


def _reference(name, params, kwargs, path):
    reference_kwargs = dict(kwargs)
    if name == "AdamWScheduleFree":
        reference_kwargs["foreach"] = path.get("foreach", True)
    return REFERENCES[name](params, **reference_kwargs)


@pytest.mark.parametrize("name, kwargs, path", CASES, ids=[_case_id(c) for c in CASES])
def test_equals_its_reference_in_float64_on_every_path(name, kwargs, path):
    ours, theirs = _network(name), _network(name)
    ours_opt = getattr(optim, name)(_groups(ours, kwargs), **kwargs, **path)
    theirs_opt = _reference(name, _groups(theirs, kwargs), kwargs, path)
    _train(ours, ours_opt, STEPS)
    _train(theirs, theirs_opt, STEPS)
    assert _max_difference(ours, theirs) < TOLERANCE
    assert _max_difference(ours, _network(name)) > 1e-3  # the models really moved
    _assert_same_state(ours_opt, theirs_opt, ours, theirs)
    if name == "AdamWScheduleFree":  # the same counters, and the same x after eval()
        for group_ours, group_theirs in zip(ours_opt.param_groups, theirs_opt.param_groups):
            for key in ("k", "train_mode", "lr_max", "scheduled_lr"):
                assert group_ours[key] == group_theirs[key], key
            assert group_ours["weight_sum"] == pytest.approx(group_theirs["weight_sum"], rel=1e-14)
        ours_opt.eval()
        theirs_opt.eval()
        assert _max_difference(ours, theirs) < TOLERANCE
    expected = {"foreach": "multi-tensor", "fused": "flat"}
    if name in ("Lion", "AdamWScheduleFree") and path:
        key = next(iter(path))
        word = expected[key] if path[key] else "per-tensor"
        assert all(word in line for line in ours_opt.paths), ours_opt.paths
    elif name not in ("Lion", "AdamWScheduleFree"):
        assert all("per-tensor" in line for line in ours_opt.paths), ours_opt.paths


LAST = [(name, grid[-1]) for name, grid in GRIDS.items()]


@pytest.mark.parametrize("name, kwargs", LAST, ids=list(GRIDS))
def test_state_dicts_move_between_the_reference_and_ours(name, kwargs):
    path = PATHS[name][0]
    # the reference's state dict loads into ours, and training continues as the reference's does
    reference = _network(name)
    reference_opt = _reference(name, _groups(reference, kwargs), kwargs, path)
    _train(reference, reference_opt, 10)
    if name == "AdamWScheduleFree":
        reference_opt.eval()  # the package saves checkpoints in eval mode
    saved_model, saved_opt = copy.deepcopy(reference.state_dict()), copy.deepcopy(reference_opt.state_dict())
    _train(reference, reference_opt, 10, start=10)

    resumed = _network(name, seed=99)
    resumed.load_state_dict(saved_model)
    resumed_opt = getattr(optim, name)(_groups(resumed, kwargs), **kwargs, **path)
    resumed_opt.load_state_dict(saved_opt)
    _train(resumed, resumed_opt, 10, start=10)
    assert _max_difference(resumed, reference) < TOLERANCE
    assert _max_difference(resumed, _network(name, seed=99)) > 1e-3

    # and ours loads into the reference
    ours = _network(name)
    ours_opt = getattr(optim, name)(_groups(ours, kwargs), **kwargs, **path)
    _train(ours, ours_opt, 10)
    if name == "AdamWScheduleFree":
        ours_opt.eval()
    saved_model, saved_opt = copy.deepcopy(ours.state_dict()), copy.deepcopy(ours_opt.state_dict())
    _train(ours, ours_opt, 10, start=10)
    resumed = _network(name, seed=98)
    resumed.load_state_dict(saved_model)
    resumed_opt = _reference(name, _groups(resumed, kwargs), kwargs, path)
    resumed_opt.load_state_dict(saved_opt)
    _train(resumed, resumed_opt, 10, start=10)
    assert _max_difference(resumed, ours) < TOLERANCE
    # step counters are tensors, as torch.optim's (NAdam's mu_product too)
    for state in saved_opt["state"].values():
        for key in ("step", "mu_product"):
            if key in state:
                assert isinstance(state[key], torch.Tensor)


@pytest.mark.parametrize("name", list(GRIDS))
def test_same_signature_and_defaults_as_the_reference(name):
    ours, theirs = getattr(optim, name), REFERENCES[name]
    ours_parameters = inspect.signature(ours).parameters
    for parameter_name, parameter in inspect.signature(theirs).parameters.items():
        assert parameter_name in ours_parameters, parameter_name
        assert ours_parameters[parameter_name].default == parameter.default, parameter_name
        assert ours_parameters[parameter_name].kind == parameter.kind, parameter_name
    extra = set(ours_parameters) - set(inspect.signature(theirs).parameters)
    assert extra <= {"fused", "foreach"}, extra
    assert all(ours_parameters[e].kind == inspect.Parameter.KEYWORD_ONLY for e in extra)
    params = [torch.nn.Parameter(torch.zeros(3, 2))]
    defaults_ours, defaults_theirs = ours(params).defaults, theirs(params).defaults
    for key, value in defaults_theirs.items():
        if key in ("capturable", "differentiable"):
            continue
        assert defaults_ours[key] == value, key


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


@pytest.mark.parametrize("name, switch", [("NAdam", "capturable"), ("RAdam", "differentiable")])
def test_cuda_graph_and_autograd_switches_are_refused_clearly(name, switch):
    with pytest.raises(ValueError, match=f"{switch}=True is not supported"):
        getattr(optim, name)([torch.nn.Parameter(torch.zeros(2))], **{switch: True})


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
