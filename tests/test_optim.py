"""course_lib.optim's torch.optim twins beyond the registry's tests (tests/test_optim_conformance.py): torch's own
published configurations and error inputs, refusals, schedulers, closures, missing gradients, float32."""

import inspect
import itertools
import math
import sys

import numpy as np
import pytest
import torch
from optim_db import OPTIM_DB

from course_lib import fast_paths, optim

STEPS = 120
TOLERANCE = 1e-10

# The torch.optim classes' option grids, from the conformance registry (every option flipped somewhere).
GRIDS = {name: list(OPTIM_DB[name].grid) for name in ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW")}
CASES = [(name, kwargs) for name, grid in GRIDS.items() for kwargs in grid]


def _network(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).double()


def _data(seed=1):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(64, 8, dtype=torch.float64, generator=generator)
    targets = torch.randn(64, 1, dtype=torch.float64, generator=generator)
    return inputs, targets


def _groups(model, kwargs):
    """Two param groups; the second overrides lr (and so checks per-group hyperparameters)."""
    first, second = list(model[0].parameters()), list(model[2].parameters())
    return [{"params": first}, {"params": second, "lr": kwargs["lr"] * 0.5}]


def _train(model, optimizer, steps, inputs, targets, start=0):
    for step in range(start, start + steps):
        optimizer.zero_grad()
        rows = slice((step * 16) % 64, (step * 16) % 64 + 16)  # minibatches: gradients change every step
        loss = ((model(inputs[rows]) - targets[rows]) ** 2).mean()
        loss.backward()
        optimizer.step()
    return model


def _max_difference(model_a, model_b):
    return max((a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters()))


def _assert_same_state(ours_opt, theirs_opt, ours, theirs):
    """Same state, under the same names, for every parameter."""
    for p_ours, p_theirs in zip(ours.parameters(), theirs.parameters()):
        state_ours, state_theirs = ours_opt.state[p_ours], theirs_opt.state[p_theirs]
        assert set(state_ours) == set(state_theirs)
        for key in state_theirs:
            assert torch.allclose(torch.as_tensor(state_ours[key], dtype=torch.float64),
                                  torch.as_tensor(state_theirs[key], dtype=torch.float64), rtol=0, atol=1e-9)


#: Keywords our classes take that their torch.optim twin does not, and why.
EXTRA_KEYWORDS = {"RMSprop": {"fused"}}  # torch.optim.RMSprop has no fused; here it selects the flat path


@pytest.mark.parametrize("name", list(GRIDS))
def test_capturable_and_differentiable_true_are_refused_clearly(name):
    taken = inspect.signature(getattr(torch.optim, name)).parameters
    keywords = [keyword for keyword in ("capturable", "differentiable") if keyword in taken]
    assert "differentiable" in keywords
    for keyword in keywords:
        param = torch.nn.Parameter(torch.zeros(2))
        message = f"{name} does not support {keyword}=True"
        getattr(optim, name)([param], **{keyword: False})  # False, torch's default, is accepted
        with pytest.raises(NotImplementedError, match=message):
            getattr(optim, name)([param], **{keyword: True})
        opt = getattr(optim, name)([param])
        with pytest.raises(NotImplementedError, match=message + " in param group 1"):
            opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], keyword: True})
        saved = opt.state_dict()
        saved["param_groups"][0][keyword] = True  # a state dict saved by torch.optim with the keyword on
        opt.load_state_dict(saved)
        param.grad = torch.ones(2)
        with pytest.raises(NotImplementedError, match=message):
            opt.step()
        assert torch.equal(param, torch.zeros(2))


@pytest.mark.parametrize("name", list(GRIDS))
def test_refuses_what_torch_refuses_in_its_own_error_inputs(name, torch_optim_db):
    """torch's published error inputs for this optimizer: the same exception (or warning) type, torch's message."""
    from torch.testing._internal.common_optimizers import OptimizerErrorEnum

    cases = torch_optim_db[name].optim_error_inputs_func(device="cpu", dtype=torch.float32)
    assert len(cases) >= 7
    for case in cases:
        inputs = case.optimizer_error_input
        expect = pytest.warns if issubclass(case.error_type, Warning) else pytest.raises
        with expect(case.error_type, match=case.error_regex) as caught:
            opt = getattr(optim, name)(inputs.params, **inputs.kwargs)
            if case.error_on == OptimizerErrorEnum.STEP_ERROR:
                opt.step()
        if expect is pytest.raises:
            assert caught.type is case.error_type, (inputs.desc, caught.type)


def _run_few_steps(opt_class, kwargs, steps=5):
    inputs, targets = _data()
    model = _network()
    opt = opt_class(model.parameters(), **kwargs)
    _train(model, opt, steps, inputs, targets)
    return model, opt


@pytest.mark.parametrize("name", list(GRIDS))
def test_torch_published_configurations_give_torch_numbers(name, torch_optim_db, monkeypatch):
    """torch's own hyperparameter configurations for this optimizer (CPU's and GPU's), on three paths, in float64.

    Skipped, and counted: configurations with ``capturable=True`` (refused here, see the test above).
    The flat path runs eagerly here; test_optim_paths holds the compiled kernel to torch.
    """
    monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)
    configs = torch_optim_db[name].optim_inputs_func(device="cuda", dtype=torch.float64)
    paths = {"default": {}, "multi-tensor": dict(foreach=True), "flat": dict(fused=True)}
    compared, skipped = 0, [config.desc for config in configs if config.kwargs.get("capturable")]
    for config in configs:
        if config.kwargs.get("capturable"):
            continue
        theirs, theirs_opt = _run_few_steps(getattr(torch.optim, name), config.kwargs)
        for path, extra in paths.items():
            try:
                ours, ours_opt = _run_few_steps(getattr(optim, name), {**config.kwargs, **extra})
            except ValueError:  # a tensor lr with foreach=True: torch refuses it too
                with pytest.raises(ValueError):
                    getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], **config.kwargs, **extra)
                continue
            assert _max_difference(ours, theirs) < TOLERANCE, (config.desc, path)
            _assert_same_state(ours_opt, theirs_opt, ours, theirs)
            compared += 1
        assert _max_difference(theirs, _network()) > 0, config.desc  # the configuration moved the model
    assert compared >= 2 * len(configs) - len(skipped) and len(configs) >= 5
    assert all("capturable" in desc for desc in skipped)


def test_default_path_is_torchs(monkeypatch):
    inputs, targets = _data()
    model = _network()
    pointers = [p.data_ptr() for p in model.parameters()]
    chosen = {}
    for kwargs in (dict(), dict(fused=False), dict(foreach=False), dict(foreach=False, fused=False),
                   dict(foreach=True), dict(foreach=True, fused=False)):
        opt = optim.Adam(model.parameters(), lr=0.01, **kwargs)
        _train(model, opt, 2, inputs, targets)
        chosen[tuple(kwargs.items())] = opt.paths
    assert chosen == {(): ["group 0: per-tensor"], (("fused", False),): ["group 0: per-tensor"],
                      (("foreach", False),): ["group 0: per-tensor"],
                      (("foreach", False), ("fused", False)): ["group 0: per-tensor"],
                      (("foreach", True),): ["group 0: multi-tensor"],
                      (("foreach", True), ("fused", False)): ["group 0: multi-tensor"]}
    assert [p.data_ptr() for p in model.parameters()] == pointers  # parameters are never re-bound by these paths
    # torch agrees on the CPU: neither its fused nor its foreach implementation by default
    from torch.optim.optimizer import _default_to_fused_or_foreach

    assert _default_to_fused_or_foreach(list(model.parameters()), False, False) == (False, False)
    # where torch would use foreach (all parameters on a device with foreach kernels), so does the default
    for module in ("torch.optim.optimizer", "torch.utils._foreach_utils"):
        monkeypatch.setattr(sys.modules[module], "_get_foreach_kernels_supported_devices", lambda: ["cpu"])
    assert _default_to_fused_or_foreach(list(model.parameters()), False, False) == (False, True)
    for opt_class, lr, path in ((optim.Adam, 0.01, "multi-tensor"), (optim.SGD, torch.tensor(0.01), "multi-tensor"),
                                (optim.Adam, torch.tensor(0.01), "per-tensor")):  # torch's Adam: tensor lr, for-loop
        opt = opt_class(model.parameters(), lr=lr)
        _train(model, opt, 1, inputs, targets)
        assert opt.paths == [f"group 0: {path}"], (opt_class, lr)


@pytest.mark.parametrize("group, error, words", [
    (dict(lr=-1.0), ValueError, "Invalid learning rate"),
    (dict(lr=torch.tensor([0.1, 0.1])), ValueError, "Tensor lr must be 1-element in param group 1"),
    (dict(weight_decay=-0.5), ValueError, "Invalid weight_decay value"),
    (dict(foreach=True, fused=True), RuntimeError, "`fused` and `foreach` cannot be `True` together in param group 1"),
    (dict(fused="yes"), ValueError, "Invalid fused value in param group 1"),
    (dict(differentiable=True), NotImplementedError, "does not support differentiable=True in param group 1"),
])
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_add_param_group_checks_before_registering(name, group, error, words):
    inputs, targets = _data()
    model = _network()
    first, second = list(model[0].parameters()), list(model[2].parameters())
    opt = getattr(optim, name)(first, lr=0.01)
    with pytest.raises(error, match=words):
        opt.add_param_group({"params": second, **group})
    assert len(opt.param_groups) == 1 and {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in first}
    _train(model, opt, 2, inputs, targets)  # the optimizer still works ...
    opt.add_param_group({"params": second, "lr": 0.005})  # ... and the parameters were not kept by the bad group
    _train(model, opt, 2, inputs, targets, start=2)
    assert len(opt.param_groups) == 2


def test_arrays_of_hyperparameters_are_for_rules_not_for_these_classes():
    param = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="batched runs of course_lib.rules"):
        optim.SGD(param, lr=np.array([0.1, 0.2]))
    with pytest.raises(ValueError):  # torch refuses it too (an ambiguous truth value)
        torch.optim.SGD(param, lr=np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="Tensor eps must be 1-element"):
        optim.Adam(param, eps=torch.tensor([1e-8, 1e-8]))


@pytest.mark.parametrize("name", list(GRIDS))
def test_parameters_without_gradient_are_skipped(name):
    used = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    unused = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = getattr(optim, name)([used, unused], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (used**2).sum().backward()
        opt.step()
    assert unused.grad is None
    assert torch.equal(unused, torch.ones(3, dtype=torch.float64))
    assert len(opt.state[unused]) == 0
    assert not torch.equal(used, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("scheduler", ["step", "exponential", "cosine", "lambda"])
def test_works_with_lr_schedulers(scheduler):
    makers = {
        "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
        "exponential": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.95),
        "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30),
        "lambda": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda epoch: 1 / (1 + epoch)),
    }
    inputs, targets = _data()
    runs = []
    for module in (optim, torch.optim):
        model = _network()
        opt = module.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = makers[scheduler](opt)
        for step in range(30):
            _train(model, opt, 1, inputs, targets, start=step)
            sched.step()
        runs.append((model, opt.param_groups[0]["lr"]))
    assert _max_difference(runs[0][0], runs[1][0]) < TOLERANCE
    assert runs[0][1] == pytest.approx(runs[1][1])
    assert runs[0][1] < 0.1  # the schedule really changed the learning rate


def test_closure_returns_loss_and_steps():
    param = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = optim.SGD([param], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (param**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    assert param.item() == pytest.approx(2.0 - 0.25 * 4.0)


BAD = [
    ("SGD", dict(lr=-0.1), "learning rate"),
    ("SGD", dict(momentum=-0.5), "momentum"),
    ("SGD", dict(weight_decay=-1.0), "weight_decay"),
    ("SGD", dict(nesterov=True), "Nesterov"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov"),
    ("Adagrad", dict(lr_decay=-1.0), "lr_decay"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    ("Adagrad", dict(eps=-1e-10), "epsilon"),
    ("RMSprop", dict(alpha=-0.1), "alpha"),
    ("RMSprop", dict(momentum=-0.1), "momentum"),
    ("Adam", dict(betas=(1.0, 0.999)), "beta parameter at index 0"),
    ("Adam", dict(betas=(0.9, -0.1)), "beta parameter at index 1"),
    ("Adam", dict(eps=-1e-8), "epsilon"),
    ("Adam", dict(lr=-1e-3), "learning rate"),
    ("AdamW", dict(weight_decay=-0.01), "weight_decay"),
]


@pytest.mark.parametrize("name, kwargs, words", BAD)
def test_bad_hyperparameters_raise_value_error_naming_them(name, kwargs, words):
    param = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match=words):
        getattr(optim, name)(param, **kwargs)
    with pytest.raises(ValueError):  # torch.optim agrees that these are invalid
        getattr(torch.optim, name)(param, **kwargs)


def test_bad_hyperparameters_in_a_param_group_raise():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([{"params": params[:1]}, {"params": params[1:], "lr": -1.0}])


def test_sparse_gradients_are_refused_clearly():
    embedding = torch.nn.Embedding(5, 2, sparse=True)
    opt = optim.Adam(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


@pytest.mark.parametrize("name, kwargs", list(itertools.islice(CASES, 0, None, 5)))
def test_float32_matches_torch_closely(name, kwargs):
    inputs, targets = (t.float() for t in _data())
    ours, theirs = _network().float(), _network().float()
    _train(ours, getattr(optim, name)(ours.parameters(), **kwargs), 50, inputs, targets)
    _train(theirs, getattr(torch.optim, name)(theirs.parameters(), **kwargs), 50, inputs, targets)
    assert _max_difference(ours, theirs) < 1e-4


def _classes_taking(keyword):
    classes = {cls for cls in optim.OPTIMIZERS.values()}
    return sorted((cls for cls in classes if keyword in inspect.signature(cls.__init__).parameters),
                  key=lambda cls: cls.__name__)


@pytest.mark.parametrize("keyword", ["capturable", "differentiable", "fused"])
def test_every_class_refuses_an_execution_keyword_it_cannot_honour_with_one_error(keyword):
    """One check for every class (optim._check_execution): capturable/differentiable=True raise
    NotImplementedError, fused=True where the rule cannot run on a flat buffer a ValueError, both naming the class
    and the keyword, in the constructor and for an added param group alike."""
    refused = 0
    for cls in _classes_taking(keyword):
        if keyword == "fused" and cls._no_fused is None:
            continue
        error = ValueError if keyword == "fused" else NotImplementedError
        message = f"{cls.__name__} does not support {keyword}=True"
        with pytest.raises(error, match=message):
            cls([torch.nn.Parameter(torch.zeros(2, 2))], **{keyword: True})
        opt = cls([torch.nn.Parameter(torch.zeros(2, 2))])
        with pytest.raises(error, match=message + " in param group 1"):
            opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2, 2))], keyword: True})
        refused += 1
    assert refused >= 5, refused          # the check ran on the classes, not on none
