"""course_lib.optim's three execution paths against torch.optim: the machinery beyond the registry's tests.

tests/test_optim_conformance.py proves every path equal to the reference and its state dicts interchangeable; here,
missing gradients, schedulers, compilation and its fallbacks, buffers, pickling, low precision. Every optimizer of
the grid in test_optim.py runs per tensor (foreach=False), multi-tensor (foreach=True), flat
and eager (fused=True with compilation switched off: the autouse fixture below) and flat and compiled
(fused=True). torch.compile is slow to compile on a small CPU, so the compiled runs share kernels: one
compilation per distinct structure of a rule (its booleans, and which hyperparameters are zero), whatever the
buffer length or the values of the hyperparameters.
"""

import ast
import contextlib
import importlib.util
import inspect
import math
import pathlib
import warnings

import pytest
import torch
from test_optim import (
    CASES,
    GRIDS,
    TOLERANCE,
    _assert_same_state,
    _data,
    _groups,
    _max_difference,
    _network,
    _train,
)
from torch.optim.adam import adam as functional_adam  # torch's functional forms: lists of tensors in, updated
from torch.optim.sgd import sgd as functional_sgd

from course_lib import fast_paths, optim, rules

PATHS = {
    "per-tensor": dict(foreach=False),
    "multi-tensor": dict(foreach=True),
    "flat-eager": dict(fused=True),  # with COMPILE_MIN_ELEMENTS = inf (the fixture below)
    "flat-compiled": dict(fused=True),
}
REPORTED = {"per-tensor": "per-tensor", "multi-tensor": "multi-tensor", "flat-eager": "flat, eager",
            "flat-compiled": "flat, compiled"}
CASE_IDS = [f"{n}-{i}" for n, g in GRIDS.items() for i in range(len(g))]
LAST = [(n, g[-1]) for n, g in GRIDS.items()]


@pytest.fixture(autouse=True)
def _flat_eager_never_compiles(request, monkeypatch):
    """A test run with ``path="flat-eager"`` keeps the flat path (fused=True) eager."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("path") == "flat-eager":
        monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", list(GRIDS))
def test_parameters_without_gradient_are_skipped_on_every_path(name, path):
    used = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    unused = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = getattr(optim, name)([used, unused], lr=0.1, **PATHS[path])
    for _ in range(3):
        opt.zero_grad()
        (used**2).sum().backward()
        opt.step()
    assert unused.grad is None
    assert torch.equal(unused, torch.ones(3, dtype=torch.float64))
    assert len(opt.state[unused]) == 0
    assert not torch.equal(used, torch.ones(3, dtype=torch.float64))


class _TwoBranches(torch.nn.Module):
    """A network whose second branch is used on even steps only: its parameters skip every other step."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.trunk = torch.nn.Linear(8, 4).double()
        self.branch = torch.nn.Linear(4, 1).double()
        self.other = torch.nn.Linear(4, 1).double()

    def forward(self, x, step):
        hidden = torch.tanh(self.trunk(x))
        return self.branch(hidden) + (self.other(hidden) if step % 2 == 0 else 0.0)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name, kwargs", LAST, ids=list(GRIDS))
def test_parameters_that_skip_some_steps_match_torch(name, kwargs, path):
    inputs, targets = _data()
    runs = []
    for opt_class, extra in ((getattr(torch.optim, name), {}), (getattr(optim, name), PATHS[path])):
        model = _TwoBranches()
        opt = opt_class(model.parameters(), **kwargs, **extra)
        for step in range(12):
            opt.zero_grad()
            ((model(inputs, step) - targets) ** 2).mean().backward()
            opt.step()
        runs.append((model, opt))
    (theirs, theirs_opt), (ours, ours_opt) = runs
    assert _max_difference(ours, theirs) < TOLERANCE
    _assert_same_state(ours_opt, theirs_opt, ours, theirs)


SCHEDULERS = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30),
    "lambda": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda epoch: 1 / (1 + epoch)),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_path_follows_lr_schedulers(scheduler, path):
    inputs, targets = _data()
    runs = []
    for module, extra in ((torch.optim, {}), (optim, PATHS[path])):
        model = _network()
        opt = module.Adam(model.parameters(), lr=0.01, **extra)
        sched = SCHEDULERS[scheduler](opt)
        for step in range(30):
            _train(model, opt, 1, inputs, targets, start=step)
            sched.step()
        runs.append(model)
    assert _max_difference(*runs) < TOLERANCE


def test_a_scheduler_does_not_recompile_and_compile_time_is_paid_once():
    from torch._dynamo.utils import counters

    inputs, targets = _data()
    model = _network()
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99), fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=25)
    _train(model, opt, 1, inputs, targets)  # the first step compiles (or finds the kernel compiled already)
    kernels, graphs = fast_paths.cache_info().kernels, counters["stats"]["unique_graphs"]
    frames = counters["frames"]["total"]
    learning_rates = set()
    for step in range(1, 25):
        _train(model, opt, 1, inputs, targets, start=step)
        sched.step()
        learning_rates.add(opt.param_groups[0]["lr"])
    assert len(learning_rates) == 24  # the learning rate changed at every step ...
    assert fast_paths.cache_info().kernels == kernels  # ... and no new kernel was traced,
    assert counters["stats"]["unique_graphs"] == graphs  # nor a new graph compiled by torch.compile,
    assert counters["frames"]["total"] == frames  # nor a frame handed to dynamo again
    assert opt.paths == ["group 0: flat, compiled (4 tensors, 161 float64 numbers on cpu)"]
    # the kernel serves every buffer length: a second network of another size reuses it
    other = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1)).double()
    other_opt = optim.Adam(other.parameters(), lr=0.02, betas=(0.8, 0.99), fused=True)
    other(inputs[:, :5]).square().mean().backward()
    other_opt.step()
    other_opt.step()
    assert fast_paths.cache_info().kernels == kernels
    assert counters["stats"]["unique_graphs"] == graphs


def test_several_dtypes_in_one_group_get_one_buffer_each(monkeypatch):
    monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)), torch.nn.Parameter(torch.randn(5)),
              torch.nn.Parameter(torch.randn(3, dtype=torch.float64)), torch.nn.Parameter(torch.randn(2, 2))]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    ours, theirs = optim.Adam(params, lr=0.05, fused=True), torch.optim.Adam(twins, lr=0.05)
    for step in range(20):
        for group in (params, twins):
            for i, p in enumerate(group):
                p.grad = torch.cos(p.detach() * (i + 1) + step)
        ours.step()
        theirs.step()
    assert len(ours.paths) == 2 and "float64" in ours.paths[0] and "float32" in ours.paths[1]
    for a, b in zip(params, twins):
        assert a.dtype == b.dtype
        assert torch.allclose(a, b, rtol=0, atol=1e-10 if a.dtype == torch.float64 else 1e-5)


def test_flat_path_puts_parameters_gradients_and_state_in_one_buffer(monkeypatch):
    monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)
    inputs, targets = _data()
    model = _network()
    opt = optim.Adam(model.parameters(), lr=0.01, fused=True)
    _train(model, opt, 2, inputs, targets)
    params = list(model.parameters())

    def one_buffer(tensors):  # views of one buffer, in order, end to end
        storages = {t.untyped_storage().data_ptr() for t in tensors}
        offsets = [t.storage_offset() for t in tensors]
        return len(storages) == 1 and offsets == [sum(p.numel() for p in params[:i]) for i in range(len(params))]

    assert sum(p.numel() for p in params) == 161 and params[0].untyped_storage().nbytes() == 161 * 8
    assert one_buffer(params) and one_buffer([p.grad for p in params])
    for name in ("exp_avg", "exp_avg_sq"):
        assert one_buffer([opt.state[p][name] for p in params])
    # zero_grad(set_to_none=False) keeps the views: autograd then accumulates straight into the flat buffer
    grads = [p.grad for p in params]
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and g.abs().max() == 0 for p, g in zip(params, grads))
    ((model(inputs) - targets) ** 2).mean().backward()
    assert all(p.grad is g for p, g in zip(params, grads)) and one_buffer(grads)
    assert max(g.abs().max() for g in grads) > 0
    # zero_grad() sets them to None, as torch does; the next step gathers autograd's fresh gradients
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_rebinding_parameters_rebuilds_the_buffers(monkeypatch):
    monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)
    inputs, targets = _data()
    ours, theirs = _network(), _network()
    ours_opt = optim.Adam(ours.parameters(), lr=0.01, fused=True)
    theirs_opt = torch.optim.Adam(theirs.parameters(), lr=0.01)
    for step in range(10):
        if step == 4:
            for param in ours.parameters():
                param.data = param.data.clone()  # the parameters no longer live in the flat buffer
        _train(ours, ours_opt, 1, inputs, targets, start=step)
        _train(theirs, theirs_opt, 1, inputs, targets, start=step)
    assert _max_difference(ours, theirs) < TOLERANCE


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
                                          ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05))])
def test_eager_flat_path_in_cache_sized_chunks_is_exact(name, kwargs, monkeypatch):
    monkeypatch.setattr(fast_paths, "EAGER_CHUNK_ELEMENTS", 7)  # 161 numbers in 23 chunks
    monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)
    inputs, targets = _data()
    runs = []
    for extra in (dict(foreach=False), dict(fused=True)):
        model = _network()
        _train(model, getattr(optim, name)(model.parameters(), **kwargs, **extra), 30, inputs, targets)
        runs.append(model)
    assert _max_difference(*runs) == 0.0  # the same operations on the same numbers: bit for bit


def test_fused_compiles_buffers_from_compile_min_elements_on(monkeypatch, caplog):
    inputs, targets = _data()
    model = _network()
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99), fused=True)
    with fast_paths.compile_min_elements(1000):  # 161 numbers are "small": eager
        _train(model, opt, 1, inputs, targets)
    assert "flat, eager" in opt.paths[0]
    monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", 100)  # 161 numbers are now "large"
    with caplog.at_level("INFO", logger="course_lib.optim"):
        _train(model, opt, 1, inputs, targets, start=1)
    assert "flat, compiled" in opt.paths[0]
    assert "Adam, param group 0: flat, compiled" in caplog.text


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(foreach=True, fused=True), RuntimeError, "`fused` and `foreach` cannot be `True` together"),
    (dict(foreach="yes"), ValueError, "Invalid foreach value"),
    (dict(fused=1.5), ValueError, "Invalid fused value"),
])
def test_bad_foreach_and_fused_raise_clear_errors(kwargs, error, words):
    param = [torch.nn.Parameter(torch.zeros(2))]
    for name in GRIDS:
        with pytest.raises(error, match=words):
            getattr(optim, name)(param, **kwargs)
    if kwargs.get("foreach") is True:
        with pytest.raises(RuntimeError, match=words):  # torch.optim refuses the combination with these words
            torch.optim.Adam(param, **kwargs)


def test_bad_combination_in_a_param_group_raises():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(RuntimeError, match="in param group 1"):
        optim.Adam([{"params": params[:1]}, {"params": params[1:], "foreach": True, "fused": True}])


def test_param_groups_may_choose_different_paths():
    inputs, targets = _data()
    ours, theirs = _network(), _network()
    groups = [{"params": ours[0].parameters(), "foreach": True}, {"params": ours[2].parameters(), "lr": 0.005}]
    ours_opt = optim.RMSprop(groups, lr=0.01, momentum=0.5, foreach=False)
    theirs_opt = torch.optim.RMSprop(_groups(theirs, dict(lr=0.01)), lr=0.01, momentum=0.5)
    _train(ours, ours_opt, 30, inputs, targets)
    _train(theirs, theirs_opt, 30, inputs, targets)
    assert ours_opt.paths == ["group 0: multi-tensor", "group 1: per-tensor"]
    assert _max_difference(ours, theirs) < TOLERANCE


def test_without_compilation_the_flat_path_runs_eagerly_and_says_so_once(monkeypatch, fresh_compile_caches):
    monkeypatch.setattr(fast_paths, "compile_unavailable_reason", lambda device="cpu": "no C++ compiler (simulated)")
    inputs, targets = _data()
    ours, theirs = _network(), _network()
    with pytest.warns(fast_paths.CompileFallbackWarning, match="unavailable for cpu .no C.. compiler"):
        ours_opt = optim.Adam(ours.parameters(), lr=0.01, fused=True)
        _train(ours, ours_opt, 1, inputs, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        _train(ours, ours_opt, 19, inputs, targets, start=1)
    _train(theirs, torch.optim.Adam(theirs.parameters(), lr=0.01), 20, inputs, targets)
    assert ours_opt.paths[0].startswith("group 0: flat, eager")
    assert _max_difference(ours, theirs) < TOLERANCE


def test_a_failing_compilation_falls_back_with_a_warning(monkeypatch, fresh_compile_caches):
    def broken(*args, **kwargs):
        raise RuntimeError("inductor exploded (simulated)")

    monkeypatch.setattr(fast_paths, "_trace_and_compile", broken)
    inputs, targets = _data()
    ours, theirs = _network(), _network()
    with pytest.warns(fast_paths.CompileFallbackWarning, match="inductor exploded"):
        _train(ours, optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, fused=True), 10, inputs, targets)
    _train(theirs, torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9), 10, inputs, targets)
    assert _max_difference(ours, theirs) < TOLERANCE


def test_compiled_rule_is_one_kernel_and_shows_its_graph():
    compiled = fast_paths.compile_rule(rules.adam(lr=0.01, betas=(0.8, 0.99)), torch.float64, "cpu")
    assert compiled.kernel_count() == 1
    assert compiled.operation_count() >= 20  # about two dozen operations, one kernel
    code = compiled.graph.code
    assert "aten.sqrt" in code and "aten.copy_" in code
    assert "if " not in code  # the rule's Python branches were decided when it was traced
    assert compiled.state_names == ("step", "exp_avg", "exp_avg_sq")
    assert compiled.hyper_layout == (("lr", None), ("betas", 2), ("eps", None))
    # only the switches are part of what was compiled: another learning rate gets the same kernel
    assert fast_paths.compile_rule(rules.adam(lr=0.5, betas=(0.5, 0.9), eps=1e-3), torch.float64, "cpu") is compiled


def test_tensor_list_does_the_arithmetic_of_each_tensor():
    import numpy as np

    torch.manual_seed(0)
    a = [torch.randn(3), torch.randn(2, 2)]
    b = [torch.rand(3) + 1, torch.rand(2, 2) + 1]
    A, B = fast_paths.TensorList(a), fast_paths.TensorList(b)
    cases = [
        (A + B, [x + y for x, y in zip(a, b)]), (A - B, [x - y for x, y in zip(a, b)]),
        (A * B, [x * y for x, y in zip(a, b)]), (A / B, [x / y for x, y in zip(a, b)]),
        (0.5 * A, [0.5 * x for x in a]), (A + 1, [x + 1 for x in a]), (1 - A, [1 - x for x in a]),
        (2 / B, [2 / y for y in b]), (-A, [-x for x in a]), (B.sqrt(), [y.sqrt() for y in b]),
        (A.maximum(B), [x.maximum(y) for x, y in zip(a, b)]), (A**2, [x**2 for x in a]),
        (np.float64(0.25) * A, [0.25 * x for x in a]), (A * torch.tensor(3.0), [x * 3 for x in a]),
    ]
    for result, expected in cases:
        assert isinstance(result, fast_paths.TensorList) and len(result) == 2
        for got, want in zip(result, expected):
            torch.testing.assert_close(got, want)


def test_the_same_rule_runs_on_a_tensor_list():
    torch.manual_seed(1)
    params = [torch.randn(3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    grads = [torch.randn_like(p) for p in params]
    rule = rules.rmsprop(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)
    one_by_one = [rule.update(p, g, rule.init(p))[0] for p, g in zip(params, grads)]
    states = [rule.init(p) for p in params]
    together_state = {"step": 0, **{k: fast_paths.TensorList([s[k] for s in states]) for k in states[0] if k != "step"}}
    together, _ = rule.update(fast_paths.TensorList(params), fast_paths.TensorList(grads), together_state)
    for got, want in zip(together, one_by_one):
        assert torch.equal(got, want)


@pytest.mark.parametrize("name, kwargs", list(CASES)[::12])
def test_float32_compiled_matches_torch_closely(name, kwargs):
    inputs, targets = (t.float() for t in _data())
    ours, theirs = _network().float(), _network().float()
    _train(ours, getattr(optim, name)(ours.parameters(), **kwargs, fused=True), 40, inputs, targets)
    _train(theirs, getattr(torch.optim, name)(theirs.parameters(), **kwargs), 40, inputs, targets)
    assert _max_difference(ours, theirs) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on the course's CI machines)")
@pytest.mark.parametrize("path", list(PATHS))
def test_every_path_on_a_gpu_matches_torch(path):
    inputs, targets = (t.cuda() for t in _data())
    ours, theirs = _network().cuda(), _network().cuda()
    _train(ours, optim.Adam(ours.parameters(), lr=0.01, **PATHS[path]), 30, inputs, targets)
    _train(theirs, torch.optim.Adam(theirs.parameters(), lr=0.01), 30, inputs, targets)
    assert _max_difference(ours, theirs) < TOLERANCE


def test_benchmark_runs_and_prints_its_table(capsys):
    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "optimizer_step.py"
    spec = importlib.util.spec_from_file_location("optimizer_step", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    threads = torch.get_num_threads()
    try:
        rows = benchmark.main(["--device", "cpu", "--sizes", "seed", "--optimizers", "Adam", "--steps", "2",
                               "--repeats", "1"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out and "1 thread(s) per step" in out
    assert "321 parameters in 4 tensors" in out and "course/torch" in out and "course × floor" in out
    assert [(row["pair"], row["course_path"]) for row in rows] == [
        ("default", "per-tensor"), ("foreach", "multi-tensor"), ("fused", "flat, compiled")]


@pytest.mark.parametrize("path", list(PATHS))
def test_pickled_optimizer_steps_on_exactly_as_the_uninterrupted_one(path):
    import pickle

    inputs, targets = _data()
    model = _network()
    opt = optim.RMSprop(model.parameters(), lr=0.01, momentum=0.5, **PATHS[path])  # torch's RMSprop has no fused
    _train(model, opt, 3, inputs, targets)
    # one pickle for both, as torch.save of a checkpoint: the restored optimizer holds the restored model's parameters
    restored_model, restored = pickle.loads(pickle.dumps((model, opt)))
    assert restored.defaults == opt.defaults
    assert restored.paths == [opt.paths[0].split(" (")[0].replace(", eager", "").replace(", compiled", "")]
    assert all(p is q for p, q in zip(restored.param_groups[0]["params"], restored_model.parameters()))
    _train(model, opt, 5, inputs, targets, start=3)
    _train(restored_model, restored, 5, inputs, targets, start=3)
    assert restored.paths == opt.paths and REPORTED[path] in opt.paths[0]
    assert _max_difference(model, restored_model) == 0.0  # the same path on the same numbers: bit for bit
    assert _max_difference(model, _network()) > 1e-3
    _assert_same_state(restored, opt, restored_model, model)


# (class, keywords, scheduler): schedulers that change momentum or β₁ at every step, and one that does not
SCHEDULED = {
    "OneCycleLR-SGD": ("SGD", dict(lr=0.05, momentum=0.9),
                       lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=100)),
    "OneCycleLR-Adam": ("Adam", dict(lr=0.01),
                        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.02, total_steps=100)),
    "CyclicLR-SGD": ("SGD", dict(lr=0.05, momentum=0.9), lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=10, cycle_momentum=True)),
    "CyclicLR-Adam": ("Adam", dict(lr=0.01), lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.001, max_lr=0.02, step_size_up=10, cycle_momentum=True)),
    "LambdaLR-AdamW": ("AdamW", dict(lr=0.01, weight_decay=0.1),
                       lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda epoch: 1 / (1 + 0.1 * epoch))),
}


@pytest.mark.parametrize("case", list(SCHEDULED))
def test_schedulers_never_recompile_the_kernel(case):
    """100 steps on the compiled path: at most one compilation (this structure's), torch.optim's numbers."""
    from torch._dynamo.utils import counters

    name, kwargs, make_scheduler = SCHEDULED[case]
    inputs, targets = _data()
    compiled_before, kernels_before = fast_paths.compilations(), fast_paths.cache_info().kernels
    runs, momenta, learning_rates = [], set(), set()
    for module, extra in ((torch.optim, {}), (optim, dict(fused=True))):
        model = _network()
        opt = getattr(module, name)(model.parameters(), **kwargs, **extra)
        scheduler = make_scheduler(opt)
        for step in range(100):
            _train(model, opt, 1, inputs, targets, start=step)
            scheduler.step()
            if step == 2:  # the kernel is built (SGD's first step runs eagerly: its momentum buffer is None)
                frames = counters["frames"]["total"]
            if module is optim:
                group = opt.param_groups[0]
                momenta.add(group["momentum"] if "momentum" in group else group["betas"][0])
                learning_rates.add(group["lr"])
        runs.append((model, opt))
    (theirs, theirs_opt), (ours, ours_opt) = runs
    assert fast_paths.compilations() - compiled_before <= 1  # one structure, one compilation (or none: cached)
    assert fast_paths.cache_info().kernels <= kernels_before + 1
    assert counters["frames"]["total"] == frames  # nothing handed to torch.compile after the third step
    assert ours_opt.paths[0].startswith("group 0: flat, compiled")
    assert len(learning_rates) > 10  # the scheduler changed lr ...
    assert len(momenta) == 1 if case.startswith("LambdaLR") else len(momenta) > 10  # ... and momentum or β₁
    assert _max_difference(ours, theirs) < TOLERANCE
    _assert_same_state(ours_opt, theirs_opt, ours, theirs)


def test_the_kernel_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(fast_paths, "KERNEL_CACHE_SIZE", 3)
    cache = fast_paths._KernelCache()
    stored = fast_paths.compilations()
    for key in range(5):
        cache[key] = key
        cache[0]  # used again: the least recently used go first
    assert list(cache) == [3, 4, 0] and fast_paths.compilations() == stored + 5


LOW_PRECISION = {  # torch's own low-precision configurations raise eps (1e-8 vanishes in float16)
    "SGD": dict(lr=0.05, momentum=0.9),
    "Adagrad": dict(lr=0.05, eps=1e-3),
    "RMSprop": dict(lr=0.01, momentum=0.5, centered=True, eps=1e-3),
    "Adam": dict(lr=0.05, eps=1e-3),
    "AdamW": dict(lr=0.05, amsgrad=True, eps=1e-3),
}
#: The compiled kernel computes in float32 and rounds once, as torch's fused kernels do: it is compared with torch's
#: fused Adam. torch's fused SGD is not a reference (with momentum it is hundreds of ulps from torch's own for-loop
#: after 5 steps in bfloat16), so the compiled SGD is compared with torch's for-loop.
COMPILED_LOW_PRECISION = {("Adam", torch.bfloat16): dict(fused=True), ("Adam", torch.float16): dict(fused=True),
                          ("SGD", torch.bfloat16): dict(foreach=False)}
ULPS = 16


def _ulps(model_a, model_b):
    """The largest difference in units in the last place of model_b's values (taken as at least 1/16 in size)."""
    worst = 0.0
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        scale = b.detach().abs().clamp_min(2**-4)
        ulp = torch.nextafter(scale, torch.full_like(scale, math.inf)) - scale
        worst = max(worst, ((a.double() - b.double()).abs() / ulp.double()).max().item())
    return worst


LOW_PRECISION_CASES = [(name, path, dtype) for dtype in (torch.bfloat16, torch.float16) for name in LOW_PRECISION
                       for path in PATHS if path != "flat-compiled" or (name, dtype) in COMPILED_LOW_PRECISION]


@pytest.mark.parametrize("name, path, dtype", LOW_PRECISION_CASES,
                         ids=[f"{n}-{p}-{str(d)[6:]}" for n, p, d in LOW_PRECISION_CASES])
def test_low_precision_matches_torch_to_the_dtype_precision(name, path, dtype):
    """bfloat16 and float16: torch's numbers within 16 ulps after 5 steps, and torch's state dtypes.

    torch's own for-loop and foreach implementations are up to 11 ulps apart on these runs (they round at
    different places), so a few ulps is what "the same" can mean here; the steps move θ by hundreds of ulps.
    """
    inputs, targets = (t.to(dtype) for t in _data())
    reference = COMPILED_LOW_PRECISION.get((name, dtype), {}) if path == "flat-compiled" else dict(foreach=False)
    kwargs = dict(LOW_PRECISION[name])
    if dtype == torch.float16 and name.startswith("Adam"):
        # torch's own float16 configurations take eps = 0.1: with eps = 1e-3, g² underflows float16 (below 6e-8)
        # in some places and not in others, depending on where each implementation rounds (torch's addcmul rounds
        # once, the rule rounds (1 − β₂)·g and then ·g), and the two runs are 2,000 ulps apart after 5 steps
        kwargs["eps"] = 0.1
    runs = []
    for opt_class, extra in ((getattr(torch.optim, name), reference), (getattr(optim, name), PATHS[path])):
        model = _network().to(dtype)
        opt = opt_class(model.parameters(), **kwargs, **extra)
        _train(model, opt, 5, inputs, targets)
        runs.append((model, opt))
    (theirs, theirs_opt), (ours, ours_opt) = runs
    assert REPORTED[path] in ours_opt.paths[0]
    assert _ulps(ours, theirs) <= ULPS
    assert _ulps(ours, _network().to(dtype)) > 4 * ULPS  # the steps moved θ far more than the tolerance
    for p_ours, p_theirs in zip(ours.parameters(), theirs.parameters()):
        assert p_ours.dtype == dtype
        state_ours, state_theirs = ours_opt.state[p_ours], theirs_opt.state[p_theirs]
        assert {k: (v.dtype, v.shape) for k, v in state_ours.items()} == \
            {k: (v.dtype, v.shape) for k, v in state_theirs.items()}
        if "step" in state_ours:
            assert state_ours["step"].dtype == torch.float32 and state_ours["step"].ndim == 0


def test_compile_min_elements_is_restored():
    before = fast_paths.COMPILE_MIN_ELEMENTS
    with fast_paths.compile_min_elements(float("inf")):
        assert fast_paths.COMPILE_MIN_ELEMENTS == float("inf")
    assert fast_paths.COMPILE_MIN_ELEMENTS == before


def test_cache_info_counts_what_compile_rule_keeps_and_clear_caches_forgets_it(monkeypatch, fresh_compile_caches):
    monkeypatch.setattr(fast_paths, "compile_unavailable_reason", lambda device="cpu": "no compiler (simulated)")
    assert fast_paths.cache_info()[:1] + fast_paths.cache_info()[3:] == (0, 0, 0, {}, 0)
    for lr in (0.1, 0.2):  # one structure: one fallback, one warning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast_paths.compile_rule(rules.adam(lr=lr), torch.float64)
        assert len(caught) == (1 if lr == 0.1 else 0)
    fast_paths.compile_rule(rules.sgd(lr=0.1), torch.float64)
    info = fast_paths.cache_info()
    assert (info.kernels, info.fallbacks, info.failed, info.warned) == (0, 2, 0, 1)
    assert info.maxsize == fast_paths.KERNEL_CACHE_SIZE and info.compilations == fast_paths.compilations()
    fast_paths.clear_caches()
    assert fast_paths.cache_info()[3:] == (0, 0, {}, 0)
    with pytest.warns(fast_paths.CompileFallbackWarning, match="simulated"):  # decided afresh: it warns again
        fast_paths.compile_rule(rules.adam(lr=0.1), torch.float64)


# ---- the fast paths are functions of tensors: no optimizer, no state dict -------------------------------------
def _adam_tensors(seed=5):
    torch.manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 2, 2)]
    params = [torch.randn(shape, dtype=torch.float64) for shape in shapes]
    grads = [[torch.randn(shape, dtype=torch.float64) for shape in shapes] for _ in range(4)]
    return params, grads


def test_multi_tensor_update_is_torchs_functional_multi_tensor_adam():
    """Lists in, lists updated in place, as functional_adam(foreach=True) updates them: the same numbers."""
    ours, grads = _adam_tensors()
    theirs = [p.clone() for p in ours]
    m, v = [torch.zeros_like(p) for p in ours], [torch.zeros_like(p) for p in ours]
    m_t, v_t = [torch.zeros_like(p) for p in ours], [torch.zeros_like(p) for p in ours]
    steps = [torch.tensor(0.0, dtype=torch.float64) for _ in ours]
    steps_t = [torch.tensor(0.0, dtype=torch.float64) for _ in ours]
    rule = rules.adam(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)
    state = {"step": steps, "exp_avg": m, "exp_avg_sq": v}
    for g in grads:
        new_state = fast_paths.multi_tensor_update(rule, ours, g, state)
        functional_adam(theirs, g, m_t, v_t, [], steps_t, foreach=True, amsgrad=False, beta1=0.8, beta2=0.99,
                              lr=0.01, weight_decay=0.1, eps=1e-8, maximize=False)
        assert all(new_state[name] is state[name] for name in state)  # written in place, handed back
    assert all(torch.allclose(a, b, rtol=0, atol=1e-14) for a, b in zip(ours + m + v, theirs + m_t + v_t))
    assert [s.item() for s in steps] == [s.item() for s in steps_t] == [4.0, 4.0, 4.0]
    assert max((a - b).abs().max().item() for a, b in zip(ours, _adam_tensors()[0])) > 1e-3


def test_multi_tensor_update_makes_the_entries_that_start_as_none():
    """SGD's momentum buffers: None in, new tensors out (the caller stores them); θ written in place."""
    params, grads = _adam_tensors()
    theirs = [p.clone() for p in params]
    buffers_t = [None] * len(params)
    state = {"momentum_buffer": None}
    for g in grads:
        state = fast_paths.multi_tensor_update(rules.sgd(lr=0.1, momentum=0.9), params, g, state)
        functional_sgd(theirs, g, buffers_t, foreach=True, weight_decay=0.0, momentum=0.9, lr=0.1,
                            dampening=0.0, nesterov=False, maximize=False)
    assert all(torch.equal(a, b) for a, b in zip(params + state["momentum_buffer"], theirs + buffers_t))


@pytest.mark.parametrize("path", ["flat-eager", "flat-compiled"])
def test_flat_buffers_update_is_torchs_functional_fused_adam(path):
    """One flat buffer per dtype, the rule run over it in place, against functional_adam(fused=True)."""
    params, grads = _adam_tensors()
    theirs = [p.clone() for p in params]
    m_t, v_t = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    steps_t = [torch.tensor(0.0) for _ in params]
    rule = rules.adam(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)
    buffers = fast_paths.FlatBuffers([torch.nn.Parameter(p) for p in params], rule)
    views = buffers.views(buffers.param)
    with contextlib.nullcontext() if path == "flat-compiled" else fast_paths.compile_min_elements(math.inf):
        for step, g in enumerate(grads):
            buffers.grad.copy_(torch.cat([x.reshape(-1) for x in g]))
            ran = buffers.update(rule, step, (), fast_paths.split_hyperparams(rule.hyperparams))
            functional_adam(theirs, g, m_t, v_t, [], steps_t, fused=True, amsgrad=False, beta1=0.8,
                                  beta2=0.99, lr=0.01, weight_decay=0.1, eps=1e-8, maximize=False)
    assert ran == REPORTED[path] or (path == "flat-compiled" and fast_paths.compile_unavailable_reason())
    ours = views + [buffers.entries(i)[name] for name in ("exp_avg", "exp_avg_sq") for i in range(3)]
    assert all(torch.allclose(a, b, rtol=0, atol=1e-14) for a, b in zip(ours, theirs + m_t + v_t))
    assert buffers.steps.tolist() == [4.0, 4.0, 4.0]


def test_the_fast_paths_never_see_an_optimizer():
    """One owner for the state: fast_paths takes tensors and rules, and nothing of it reads an optimizer's state or
    param groups (only course_lib.optim's classes do)."""
    tree = ast.parse(pathlib.Path(fast_paths.__file__).read_text(encoding="utf-8"))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert "optimizer" not in names and "param_groups" not in attributes and "optim" not in names
    for name in fast_paths.__all__:
        value = getattr(fast_paths, name)
        if callable(value) and not isinstance(value, type):
            assert "optimizer" not in inspect.signature(value).parameters, name
    assert not hasattr(optim, "TensorList") and not hasattr(optim, "compile_rule")  # no re-export: one home


@pytest.mark.skipif(fast_paths.compile_unavailable_reason("cpu") is not None, reason="needs torch.compile on the CPU")
def test_the_compiled_step_calls_the_generated_code_directly(monkeypatch):
    """On the CPU the flat step calls inductor's generated code itself: no torch.compile wrapper runs at a step
    (they cost about 25 µs a call), and the numbers stay torch.optim's."""
    from torch._dynamo.utils import counters
    from torch._inductor.output_code import CompiledFxGraph

    compiled = fast_paths.compile_rule(rules.adam(lr=0.01, betas=(0.8, 0.99)), torch.float64, "cpu")
    assert compiled.direct is not None and compiled.kernel_count() == 1 and "cpp_pybinding" in compiled.prologue_source
    inputs, targets = _data()
    ours, theirs = _network(), _network()
    ours_opt = optim.Adam(ours.parameters(), lr=0.01, betas=(0.8, 0.99), fused=True)
    _train(ours, ours_opt, 1, inputs, targets)

    def refuse(self, inputs):
        raise AssertionError("a flat step went through torch.compile's wrappers")

    monkeypatch.setattr(CompiledFxGraph, "__call__", refuse)
    frames = counters["frames"]["total"]
    _train(ours, ours_opt, 19, inputs, targets, start=1)
    assert counters["frames"]["total"] == frames and "flat, compiled" in ours_opt.paths[0]
    _train(theirs, torch.optim.Adam(theirs.parameters(), lr=0.01, betas=(0.8, 0.99)), 20, inputs, targets)
    assert _max_difference(ours, theirs) < TOLERANCE
