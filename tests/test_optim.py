"""course_lib.optim against torch.optim: same numbers, same state dicts, same errors."""

import copy
import itertools

import pytest
import torch

from course_lib import optim

STEPS = 120
TOLERANCE = 1e-10

# Every option of every optimizer is flipped somewhere in these grids.
GRIDS = {
    "SGD": [
        dict(lr=0.05),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.5),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.5, weight_decay=0.1, nesterov=True, maximize=False),
        dict(lr=0.01, weight_decay=0.01, maximize=True),
    ],
    "Adagrad": [
        dict(lr=0.05),
        dict(lr=0.05, lr_decay=0.01),
        dict(lr=0.05, initial_accumulator_value=0.1, eps=1e-6),
        dict(lr=0.05, weight_decay=0.1, maximize=True),
    ],
    "RMSprop": [
        dict(lr=0.01),
        dict(lr=0.01, alpha=0.9, eps=1e-6),
        dict(lr=0.01, centered=True),
        dict(lr=0.005, momentum=0.9),
        dict(lr=0.005, momentum=0.9, centered=True, weight_decay=0.1),
        dict(lr=0.01, maximize=True),
    ],
    "Adam": [
        dict(lr=0.01),
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
        dict(lr=0.01, amsgrad=True),
        dict(lr=0.01, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True),
    ],
    "AdamW": [
        dict(lr=0.01),
        dict(lr=0.01, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, amsgrad=True),
        dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4, maximize=True),
    ],
}
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


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for n, g in GRIDS.items() for i in range(len(g))])
def test_equals_torch_optim_in_float64(name, kwargs):
    inputs, targets = _data()
    ours, theirs = _network(), _network()
    ours_opt = getattr(optim, name)(_groups(ours, kwargs), **kwargs)
    theirs_opt = getattr(torch.optim, name)(_groups(theirs, kwargs), **kwargs)
    _train(ours, ours_opt, STEPS, inputs, targets)
    _train(theirs, theirs_opt, STEPS, inputs, targets)
    assert _max_difference(ours, theirs) < TOLERANCE
    # The models really moved (a test of equality between two frozen models would prove nothing).
    assert _max_difference(ours, _network()) > 1e-3
    _assert_same_state(ours_opt, theirs_opt, ours, theirs)


@pytest.mark.parametrize("name", list(GRIDS))
def test_same_signature_and_defaults_as_torch(name):
    ours, theirs = getattr(optim, name), getattr(torch.optim, name)
    param = [torch.nn.Parameter(torch.zeros(3))]
    defaults_ours = ours(param).defaults
    defaults_theirs = theirs(param).defaults
    for key, value in defaults_ours.items():
        assert defaults_theirs[key] == value, key


@pytest.mark.parametrize("name, kwargs", [(n, g[-1]) for n, g in GRIDS.items()])
def test_torch_state_dict_loads_and_training_continues_identically(name, kwargs):
    inputs, targets = _data()
    reference = _network()
    reference_opt = getattr(torch.optim, name)(_groups(reference, kwargs), **kwargs)
    _train(reference, reference_opt, 10, inputs, targets)
    saved_model = copy.deepcopy(reference.state_dict())
    saved_opt = copy.deepcopy(reference_opt.state_dict())
    _train(reference, reference_opt, 10, inputs, targets, start=10)

    for resumed_class in (getattr(optim, name),):
        resumed = _network(seed=99)
        resumed.load_state_dict(saved_model)
        resumed_opt = resumed_class(_groups(resumed, kwargs), **kwargs)
        resumed_opt.load_state_dict(saved_opt)
        _train(resumed, resumed_opt, 10, inputs, targets, start=10)
        assert _max_difference(resumed, reference) < TOLERANCE


@pytest.mark.parametrize("name, kwargs", [(n, g[-1]) for n, g in GRIDS.items()])
def test_own_state_dict_round_trip(name, kwargs):
    inputs, targets = _data()
    uninterrupted = _network()
    opt = getattr(optim, name)(_groups(uninterrupted, kwargs), **kwargs)
    _train(uninterrupted, opt, 10, inputs, targets)
    saved_model, saved_opt = copy.deepcopy(uninterrupted.state_dict()), copy.deepcopy(opt.state_dict())
    _train(uninterrupted, opt, 10, inputs, targets, start=10)

    resumed = _network(seed=5)
    resumed.load_state_dict(saved_model)
    resumed_opt = getattr(optim, name)(_groups(resumed, kwargs), **kwargs)
    resumed_opt.load_state_dict(saved_opt)
    _train(resumed, resumed_opt, 10, inputs, targets, start=10)
    assert _max_difference(resumed, uninterrupted) == 0.0
    # and the saved dict has torch.optim's structure: step counters are tensors
    for state in saved_opt["state"].values():
        if "step" in state:
            assert isinstance(state["step"], torch.Tensor)


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
