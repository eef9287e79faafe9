"""The per-tensor path computes as torch.optim's for-loop does: float32 bit for bit, and compiles without host syncs.

References: torch.optim's own classes with ``foreach=False`` (their for-loop implementation), and
``torch._dynamo.explain`` for the graphs a compiled training step is cut into.
"""

import pytest
import torch

from course_lib import optim, rules

# (name, torch class, course class, hyperparameters): every class whose per-tensor path follows torch's operations
CASES = [
    ("sgd", torch.optim.SGD, optim.SGD, dict(lr=0.1)),
    ("sgd-momentum", torch.optim.SGD, optim.SGD, dict(lr=0.1, momentum=0.9)),
    ("sgd-nesterov-decay", torch.optim.SGD, optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgd-dampening-maximize", torch.optim.SGD, optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1,
                                                                  maximize=True)),
    ("adam", torch.optim.Adam, optim.Adam, dict(lr=0.01)),
    ("adam-l2-amsgrad", torch.optim.Adam, optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("adamw", torch.optim.AdamW, optim.AdamW, dict(lr=0.01)),
    ("adagrad", torch.optim.Adagrad, optim.Adagrad, dict(lr=0.1, weight_decay=0.1, lr_decay=0.01)),
    ("rmsprop", torch.optim.RMSprop, optim.RMSprop, dict(lr=0.01)),
    ("rmsprop-centered-momentum", torch.optim.RMSprop, optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.9,
                                                                           weight_decay=0.1)),
    ("nadam", torch.optim.NAdam, optim.NAdam, dict(lr=0.01)),
    ("nadam-decoupled", torch.optim.NAdam, optim.NAdam, dict(lr=0.01, weight_decay=0.1,
                                                             decoupled_weight_decay=True)),
    ("radam", torch.optim.RAdam, optim.RAdam, dict(lr=0.01, weight_decay=0.1)),
]


def _seed_parameters():
    """The seed network's parameters (8 -> 32 -> 1), float32, twice: one copy for each optimizer."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    return ([p.detach().clone().requires_grad_() for p in net.parameters()] for _ in range(2))


def _steps(pairs, count, generator):
    """``count`` steps of every optimizer in ``pairs`` (optimizer, its parameters), all on the same gradients."""
    for _ in range(count):
        grads = None
        for optimizer, params in pairs:
            if grads is None:
                grads = [torch.randn(p.shape, generator=generator) for p in params]
            for param, grad in zip(params, grads):
                param.grad = grad.clone()
            optimizer.step()


def _assert_identical(torch_opt, torch_params, course_opt, course_params):
    for a, b in zip(torch_params, course_params):
        assert torch.equal(a, b)
        state_a, state_b = torch_opt.state[a], course_opt.state[b]
        assert state_a.keys() == state_b.keys()
        for name in state_a:
            assert torch.equal(torch.as_tensor(state_a[name]), torch.as_tensor(state_b[name])), name


@pytest.mark.parametrize("name, torch_class, course_class, kwargs", CASES, ids=[case[0] for case in CASES])
def test_float32_per_tensor_path_equals_torchs_for_loop_bit_for_bit(name, torch_class, course_class, kwargs):
    torch_params, course_params = _seed_parameters()
    torch_opt = torch_class(torch_params, foreach=False, **kwargs)
    course_opt = course_class(course_params, **kwargs)  # the default on the CPU: per tensor
    assert course_opt.paths == ["group 0: per-tensor"]
    _steps([(torch_opt, torch_params), (course_opt, course_params)], 8, torch.Generator().manual_seed(1))
    _assert_identical(torch_opt, torch_params, course_opt, course_params)


@pytest.mark.parametrize("name, torch_class, course_class, kwargs",
                         [case for case in CASES if case[0] in ("sgd-momentum", "adam", "adamw", "rmsprop")],
                         ids=["sgd-momentum", "adam", "adamw", "rmsprop"])
def test_a_float32_state_dict_moves_both_ways_and_training_continues_bit_for_bit(name, torch_class, course_class,
                                                                                  kwargs):
    torch_params, course_params = _seed_parameters()
    generator = torch.Generator().manual_seed(2)
    torch_opt = torch_class(torch_params, foreach=False, **kwargs)
    course_opt = course_class(course_params, **kwargs)
    _steps([(torch_opt, torch_params), (course_opt, course_params)], 3, generator)
    # swap: each optimizer continues from the other's checkpoint
    moved_course = course_class(torch_params, **kwargs)
    moved_course.load_state_dict(torch_opt.state_dict())
    moved_torch = torch_class(course_params, foreach=False, **kwargs)
    moved_torch.load_state_dict(course_opt.state_dict())
    _steps([(moved_course, torch_params), (moved_torch, course_params)], 3, generator)
    _assert_identical(moved_torch, course_params, moved_course, torch_params)


def test_donating_changes_where_the_numbers_go_not_the_numbers():
    torch.manual_seed(3)
    param, grad = torch.randn(50), torch.randn(50)
    rule = rules.rmsprop(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1)
    state = rule.init(param)
    state["square_avg"] += 1.0
    pure_param, pure_state = rule.update(param, grad, dict(state, step=0))
    donated = {name: value.clone() if isinstance(value, torch.Tensor) else value for name, value in state.items()}
    donated_param = param.clone()
    with rules.donating([donated_param, *(v for v in donated.values() if isinstance(v, torch.Tensor))]):
        new_param, new_state = rule.update(donated_param, grad, dict(donated, step=0))
    assert new_param is donated_param and torch.equal(new_param, pure_param)  # written in place, same numbers
    for name in ("square_avg", "grad_avg", "momentum_buffer"):
        assert new_state[name] is donated[name] and torch.equal(new_state[name], pure_state[name]), name
    # outside the block nothing is handed over: the rule is pure again
    again, _ = rule.update(donated_param, grad, dict(donated, step=0))
    assert again is not donated_param


def _graphs_and_breaks(make_optimizer):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = make_optimizer(model.parameters())
    inputs, targets = torch.randn(32, 8), torch.randn(32, 1)

    def train_step():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss

    train_step()  # the state exists: the compiled steps are the steady ones
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(train_step)()
    torch._dynamo.reset()
    return explanation.graph_count, [str(reason.reason) for reason in explanation.break_reasons]


@pytest.mark.parametrize("name, torch_class, course_class, kwargs",
                         [case for case in CASES if case[0] in ("sgd-momentum", "adam", "adamw")],
                         ids=["sgd-momentum", "adam", "adamw"])
def test_a_compiled_training_step_has_no_more_graphs_than_torchs_and_no_item(name, torch_class, course_class,
                                                                              kwargs):
    torch_graphs, _ = _graphs_and_breaks(lambda params: torch_class(params, foreach=False, **kwargs))
    graphs, reasons = _graphs_and_breaks(lambda params: course_class(params, **kwargs))
    assert not [reason for reason in reasons if "item" in reason], reasons
    assert graphs <= torch_graphs, (graphs, torch_graphs, reasons)
