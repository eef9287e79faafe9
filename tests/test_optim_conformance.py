"""Every optimizer class against its reference, driven by the registry tests/optim_db.py (one row per class).

* equals the reference in float64 on every path the class offers (two or three param groups with their own lr,
  a closure, an lr scheduler where the row has one), with the same state under the same names;
* the path that ran is the one asked for (seen from outside: shared buffers, ``torch._foreach_*`` calls), and
  ``optimizer.paths`` says so;
* state dicts move both ways (reference → ours on every path, the flat path included, ours → reference, ours →
  ours bit for bit) and training continues identically;
* a state dict loads into an optimizer that has already stepped (its own state, flat buffers included, is replaced);
* the same constructor signature and defaults as the reference.

The flat path runs twice: eagerly (``COMPILE_MIN_ELEMENTS = inf``) and compiled (one compilation per structure of
a rule, shared by every test of the process).
"""

import copy
import inspect
import math

import pytest
import torch
from optim_db import OPTIM_DB, PATHS, train_steps

from course_lib import fast_paths, methods, optim, rules

pytestmark = pytest.mark.usefixtures("one_thread")

#: The flat path is run eagerly and compiled.
RUNS = {"per-tensor": "per-tensor", "multi-tensor": "multi-tensor", "flat-eager": "flat", "flat-compiled": "flat"}
REPORTED = {"per-tensor": "per-tensor", "multi-tensor": "multi-tensor", "flat-eager": "flat, eager",
            "flat-compiled": "flat, compiled"}
ROWS = list(OPTIM_DB.values())
CASES = [(info, i, run) for info in ROWS for i in range(len(info.grid)) for run in RUNS
         if RUNS[run] in info.paths]
LAST = [(info, run) for info in ROWS for run in RUNS if RUNS[run] in info.paths]


def _id(*parts):
    return "-".join(str(getattr(part, "name", part)) for part in parts)


@pytest.fixture(autouse=True)
def _flat_eager_never_compiles(request, monkeypatch):
    """A test run with ``run="flat-eager"`` keeps the flat path eager."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("run") == "flat-eager":
        monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)


def _train(info, model, optimizer, scheduler, steps, start=0):
    """``steps`` steps of :func:`optim_db.train_steps` (Schedule-Free's in train mode); the last step's path."""
    return train_steps(model, optimizer, steps, scheduler=scheduler, start=start, train_mode=info.train_mode)


def _max_difference(model_a, model_b):
    return max((a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters()))


def _tensors(value):
    """A state entry as a list of float64 tensors (SOAP's GG and Q are lists, with [] for an axis left alone)."""
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _tensors(item)]
    return [] if value is None else [torch.as_tensor(value, dtype=torch.float64)]


def _assert_same_state(info, ours_opt, theirs_opt, ours, theirs):
    """The same state under the same names for every parameter, and the same numbers in the param groups."""
    if info.state_visible:
        for p_ours, p_theirs in zip(ours.parameters(), theirs.parameters()):
            state_ours, state_theirs = ours_opt.state[p_ours], theirs_opt.state[p_theirs]
            assert set(state_ours) == set(state_theirs)
            for key, value in state_theirs.items():
                a, b = _tensors(state_ours[key]), _tensors(value)
                assert [x.shape for x in a] == [x.shape for x in b], key
                for x, y in zip(a, b):
                    assert (x - y).abs().max().item() < info.tolerance, key
    for group_ours, group_theirs in zip(ours_opt.param_groups, theirs_opt.param_groups):
        for key, value in group_theirs.items():  # step counts, lr, Schedule-Free's k and weight_sum, ...
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key in group_ours:
                assert group_ours[key] == pytest.approx(value, rel=1e-13, abs=1e-13), key


# ---- equal to the reference on every path ----------------------------------------------------------------------
@pytest.mark.parametrize("info, index, run", CASES, ids=[_id(*case) for case in CASES])
def test_equals_the_reference_on_every_path_it_offers(info, index, run):
    kwargs = info.grid[index]
    path = RUNS[run]
    ours, ours_opt, ours_scheduler = info.make(kwargs, path)
    theirs, theirs_opt, theirs_scheduler = info.make(kwargs, path, reference=True)
    assert _train(info, ours, ours_opt, ours_scheduler, info.steps) == path
    _train(info, theirs, theirs_opt, theirs_scheduler, info.steps)
    assert _max_difference(ours, theirs) < info.tolerance
    assert _max_difference(ours, info.network(0)) > 1e-3  # the models really moved
    _assert_same_state(info, ours_opt, theirs_opt, ours, theirs)
    assert all(REPORTED[run] in line for line in ours_opt.paths), ours_opt.paths
    if info.train_mode:  # and the same x after eval()
        ours_opt.eval()
        theirs_opt.eval()
        assert _max_difference(ours, theirs) < info.tolerance


# ---- the path that ran -----------------------------------------------------------------------------------------
ASKED = [dict(), dict(foreach=False), dict(foreach=True), dict(fused=False), dict(fused=True),
         dict(foreach=False, fused=True)]


@pytest.mark.parametrize("info", ROWS, ids=_id)
def test_the_path_that_runs_is_the_one_asked_for(info, monkeypatch):
    """Every combination of foreach and fused the class takes: the path it offers, per tensor where it offers none
    (NAdam's foreach=True), the class's default otherwise (per tensor on the CPU, as torch.optim; multi-tensor for
    Schedule-Free, as its package); ``paths`` says what ran."""
    monkeypatch.setattr(fast_paths, "COMPILE_MIN_ELEMENTS", math.inf)
    tried = 0
    for keywords in ASKED:
        if not all(info.takes(keyword) for keyword in keywords):
            continue
        model = info.network(0)
        try:
            optimizer = info.optimizer_class(info.groups(model, info.grid[0]), **info.grid[0], **keywords)
        except (ValueError, NotImplementedError):  # fused=True where the rule cannot run on a flat buffer
            assert keywords.get("fused") or keywords.get("foreach")
            continue
        asked = {**{k: p.default for k, p in inspect.signature(info.optimizer_class).parameters.items()
                    if k in ("foreach", "fused")}, **keywords}  # Schedule-Free's foreach defaults to True
        expected = "flat" if asked.get("fused") else "multi-tensor" if asked.get("foreach") else "per-tensor"
        expected = expected if expected in info.paths else "per-tensor"
        scheduler = info.scheduler(optimizer) if info.scheduler else None
        assert _train(info, model, optimizer, scheduler, 2) == expected, keywords
        assert all(expected in line for line in optimizer.paths), (keywords, optimizer.paths)
        tried += 1
    assert tried >= 1 + len(info.paths) - (not info.takes("foreach"))


def test_observed_path_sees_a_path_that_silently_runs_per_tensor(monkeypatch):
    """The observation is not the optimizer's word: with foreach=True sent to the per-tensor code, it says so."""
    info = OPTIM_DB["Adam"]
    model, optimizer, _ = info.make(info.grid[0], "multi-tensor")
    assert _train(info, model, optimizer, None, 1) == "multi-tensor"

    def per_tensor(rule, params, grads, state, step=None):  # a dispatch bug: the work done tensor by tensor
        new_state = {name: state["step"] if name == "step" else [] for name in state}
        for i, (param, grad) in enumerate(zip(params, grads)):
            new_param, new = rule.update(param, grad, {name: value[i].item() if name == "step" else value[i]
                                                       for name, value in state.items()})
            param.copy_(new_param)
            for name, value in new.items():
                if name == "step":
                    state["step"][i].fill_(value)
                else:
                    new_state[name].append(value)
        return new_state

    monkeypatch.setattr(fast_paths, "multi_tensor_update", per_tensor)
    assert _train(info, model, optimizer, None, 1) == "per-tensor"
    assert optimizer.paths == ["group 0: multi-tensor", "group 1: multi-tensor"]  # what the optimizer believes


# ---- state dicts, both ways -------------------------------------------------------------------------------------
def _checkpoint(info, cls_reference, path, steps=13, seed=0):
    """Train ``steps`` steps; the model's, optimizer's and scheduler's state dicts then (Schedule-Free in eval mode,
    as its package saves), and the run trained 12 steps further."""
    model, optimizer, scheduler = info.make(info.grid[-1], path, reference=cls_reference, seed=seed)
    _train(info, model, optimizer, scheduler, steps)
    if info.train_mode:
        optimizer.eval()
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(),
                           scheduler.state_dict() if scheduler else None))
    _train(info, model, optimizer, scheduler, 12, start=steps)
    return saved, model


def _resume(info, saved, path, *, reference=False, model=None, optimizer_scheduler=None, steps=13):
    """Load ``saved`` into a fresh run (or into ``model`` and its stepped optimizer), ask for ``path`` again (a
    loaded state dict brings its own foreach and fused, as in torch.optim), train 12 steps; the model and the path
    of its last step."""
    if optimizer_scheduler is None:
        model, optimizer, scheduler = info.make(info.grid[-1], path, reference=reference, seed=99)
    else:
        optimizer, scheduler = optimizer_scheduler
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(copy.deepcopy(saved[1]))  # torch updates loaded state in place
    if scheduler is not None:
        scheduler.load_state_dict(saved[2])
    if not reference:
        for group in optimizer.param_groups:
            group.update(info.path_keywords(path))
    ran = _train(info, model, optimizer, scheduler, 12, start=steps)
    return model, ran


@pytest.mark.parametrize("info, run", LAST, ids=[_id(*case) for case in LAST])
def test_state_dicts_move_between_the_reference_and_every_path(info, run):
    path = RUNS[run]
    if info.state_visible:
        # the reference's checkpoint resumes on this path, and training continues as the reference's does
        saved, reference = _checkpoint(info, True, path)
        resumed, ran = _resume(info, saved, path)
        assert ran == path
        assert _max_difference(resumed, reference) < info.tolerance
        assert _max_difference(resumed, info.network(99)) > 1e-3
    # ours, taken mid-run on this path (after the flat buffers exist), resumes in the reference
    saved, ours = _checkpoint(info, False, path)
    if info.state_visible:
        resumed, _ = _resume(info, saved, path, reference=True)
        assert _max_difference(resumed, ours) < info.tolerance
    # and on this path again: the same continuation, bit for bit
    again, ran = _resume(info, saved, path)
    assert ran == path
    assert _max_difference(again, ours) == 0.0 if info.resumes_exactly else _max_difference(again, ours) < 1e-13
    for state in saved[1]["state"].values():  # counters are tensors, as in torch.optim
        for key in ("step", "mu_product"):
            if key in state:
                assert isinstance(state[key], torch.Tensor), key


def test_a_loaded_state_dict_brings_its_execution_keywords_as_in_torch():
    """torch.optim's load_state_dict takes the saved groups' foreach and fused: a torch checkpoint (foreach=None)
    loaded into fused=True runs per tensor until the group asks for the flat path again (the test above does)."""
    info = OPTIM_DB["Adam"]
    saved, _ = _checkpoint(info, True, "flat")
    model, optimizer, _ = info.make(info.grid[-1], "flat", seed=99)
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    assert _train(info, model, optimizer, None, 1) == "per-tensor"
    theirs = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], fused=False, foreach=True)
    theirs.load_state_dict({"state": {}, "param_groups": [{**saved[1]["param_groups"][0], "params": [0]}]})
    assert theirs.param_groups[0]["foreach"] is None  # torch does the same


@pytest.mark.parametrize("info, run", LAST, ids=[_id(*case) for case in LAST])
def test_a_state_dict_loads_into_an_optimizer_that_has_already_stepped(info, run):
    """Its own state (and flat buffers) are replaced, not mixed with the loaded one."""
    path = RUNS[run]
    saved, straight = _checkpoint(info, False, path)
    model, optimizer, scheduler = info.make(info.grid[-1], path, seed=42)
    _train(info, model, optimizer, scheduler, 5)  # its own state, its own step counts
    resumed, ran = _resume(info, saved, path, model=model, optimizer_scheduler=(optimizer, scheduler))
    assert ran == path
    difference = _max_difference(resumed, straight)
    assert difference == 0.0 if info.resumes_exactly else difference < 1e-13
    assert _max_difference(resumed, info.network(42)) > 1e-3


# ---- signature and defaults ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("info", ROWS, ids=_id)
def test_same_signature_and_defaults_as_the_reference(info):
    def named(cls):  # without **kwargs (the pytorch_optimizer classes take, and ignore, any keyword)
        return {name: p for name, p in inspect.signature(cls).parameters.items()
                if p.kind is not inspect.Parameter.VAR_KEYWORD}

    ours, theirs = named(info.optimizer_class), named(info.reference_class)
    for name, expected in theirs.items():  # every keyword of the reference's, with its kind and default
        assert name in ours, name
        assert ours[name].kind == expected.kind, name
        assert ours[name].default == expected.default, name
        if type(expected.default) in (bool, int, float):  # 0 is not 0.0 nor False (Shampoo's graft: an enum of ours)
            assert type(ours[name].default) is type(expected.default), name

    def positional(parameters):
        return [name for name, p in parameters.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

    assert positional(ours) == positional(theirs)  # positional calls mean the same
    if info.same_order:
        assert [name for name in ours if name in theirs] == list(theirs)
    extra = set(ours) - set(theirs)
    assert extra == info.extra_keywords
    assert all(ours[name].kind is inspect.Parameter.KEYWORD_ONLY for name in extra)
    # the same defaults dictionary (the one state dicts carry in their param groups)
    param = [torch.nn.Parameter(torch.zeros(3, 2))]
    defaults_ours, defaults_theirs = info.optimizer_class(param).defaults, info.reference_class(param).defaults
    for key, value in defaults_theirs.items():
        if key in info.skip_defaults:
            continue
        assert key in defaults_ours and defaults_ours[key] == value, key
    # and the rule factory's defaults are the reference's (defaults live once)
    factory = inspect.signature(getattr(rules, methods.get(info.methods[0]).rule)).parameters
    for name, parameter in factory.items():
        if name in theirs:
            assert parameter.default == theirs[name].default, name


def test_every_class_of_the_method_table_has_a_row():
    assert set(OPTIM_DB) == {method.optimizer for method in methods.METHODS.values()}
    assert {name for name, cls in vars(optim).items() if isinstance(cls, type)
            and issubclass(cls, optim.RuleOptimizer) and not name.startswith("_")} - set(OPTIM_DB) == {"RuleOptimizer"}
    for info in ROWS:
        assert info.grid and set(info.paths) <= set(PATHS) and info.paths[0] == "per-tensor"
        assert {methods.get(name).reference for name in info.methods} == {info.reference}
