"""course_lib.methods: the one table of the course's optimizers, checked row by row against what it names.

Every row is run: its rule factory must build a rule of its name, its course_lib.optim class must give its reference's
numbers (torch.optim, lion-pytorch, schedulefree, pytorch_optimizer) in float64, and its state size must be what the
reference keeps.
A row added to the table is tested here without a line added to this file.
"""

import numpy as np
import pytest
import torch

from course_lib import methods, optim, plotting, rules

pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = list(methods.METHODS.values())
STEPS = 8


# The NumPy runs of SOAP (shapes, options), whose eigenbases come from NumPy's LAPACK, the reference's from torch's.
# Its first eigenbases are those of g gᵀ and gᵀg: for a matrix that is not square one of them has a repeated zero
# eigenvalue, whose eigenvectors are any basis of its null space, the one the LAPACK in use picks, and the next steps
# depend on that pick (by 1e-3 here): square matrices, where every eigenvector is determined (up to a sign, which
# SOAP's step does not see). And step 2 (step 1 only sets up the bases, so g_2 = g_1 here) divides the rounding noise
# of the off-diagonal entries of Q_Lᵀ g Q_R (a diagonal matrix, exactly) by ε: ε = 1e-6 keeps that below 1e-10
# (1e-11 measured; with the default 1e-8, 1e-9).
NUMPY_CASES = {"soap": ([(4, 4), (3, 3)], {"eps": 1e-6})}
# ScalableShampoo keeps its factors, roots and graft buffers in objects that its state dict does not show as
# tensors: the size of that state is measured on course_lib's class, which keeps the same numbers as tensors (its
# steps equal the reference's: tests/test_optim_shampoo.py).
STATE_HIDDEN_BY_THE_REFERENCE = {"shampoo"}


def _params(seed=0, shapes=((4, 3), (3, 5))):
    """Two float64 matrices (Muon takes matrices only; Adafactor factors them), of different shapes."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, dtype=torch.float64, generator=generator).requires_grad_() for shape in shapes]


def _run(optimizer, params, steps=STEPS):
    """``steps`` steps on a fixed smooth loss; the parameters after each."""
    if hasattr(optimizer, "train"):
        optimizer.train()
    path = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = sum((p.sin() * p + 0.1 * p**4).sum() for p in params)
        loss.backward()
        optimizer.step()
        path.append([p.detach().clone() for p in params])
    return path


def test_names_aliases_and_families():
    assert set(methods.names()) == set(methods.METHODS)
    assert sorted(n for f in methods.FAMILIES for n in methods.names(f)) == sorted(methods.METHODS)
    assert methods.get("sgd") is methods.get("gd") and methods.label("sgd") == "SGD"
    assert methods.label("gd") == "gradient descent" and methods.color("sgd") == methods.color("gd")
    for alias, name in methods.ALIASES.items():
        assert alias not in methods.METHODS and methods.get(alias).name == name
    with pytest.raises(KeyError, match="unknown method 'kfac'"):
        methods.get("kfac")
    with pytest.raises(ValueError, match="Invalid family"):
        methods.names("second order")
    with pytest.raises(ValueError, match="Invalid family"):
        methods.Method("x", "X", "#000000", "second order", "sgd", "SGD", "torch.optim.SGD")


def test_what_is_derived_from_the_table():
    assert plotting.METHOD_COLORS == {name: m.color for name, m in methods.METHODS.items()}
    assert plotting.METHOD_LABELS == {name: m.label for name, m in methods.METHODS.items()}
    assert set(rules.RULES) == {m.rule for m in ROWS} and all(rules.RULES[m.rule] is getattr(rules, m.rule)
                                                               for m in ROWS)
    assert set(optim.OPTIMIZERS) == {n for n in methods.names(with_aliases=True) if not methods.get(n).options}
    assert optim.OPTIMIZERS["sgd"] is optim.SGD and optim.OPTIMIZERS["schedule_free"] is optim.AdamWScheduleFree
    assert methods.load("torch.optim.SGD") is torch.optim.SGD
    with pytest.raises(ValueError, match="Invalid path"):
        methods.load("SGD")


@pytest.mark.parametrize("method", ROWS, ids=lambda m: m.name)
def test_the_rule_factory_builds_the_method(method):
    rule = method.make_rule(lr=0.01)
    assert rule.name == method.name and rule.color_key == method.name
    assert all(rule.hyperparams[key] == value for key, value in method.options.items())
    assert method.name in rules.__all__ or method.rule in rules.__all__
    toy = method.toy_rule(0.5)
    assert toy.hyperparams["lr"] == 0.5 and all(toy.hyperparams[k] == v for k, v in method.toy.items())


@pytest.mark.parametrize("method", ROWS, ids=lambda m: m.name)
def test_the_optimizer_equals_its_reference(method):
    """course_lib.optim's class with the row's options against the reference's, float64, from the same start."""
    ours, theirs = _params(), _params()
    mine = method.make_optimizer(ours, lr=0.01)
    reference = method.make_optimizer(theirs, lr=0.01, reference=True)
    assert type(mine).__module__ == "course_lib.optim" and type(mine).__name__ == method.optimizer
    assert type(reference) is methods.load(method.reference)
    for step, (a, b) in enumerate(zip(_run(mine, ours), _run(reference, theirs)), start=1):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=f"{method.name}, step {step}")
    assert not torch.equal(ours[0], _params()[0])  # it moved


@pytest.mark.parametrize("method", ROWS, ids=lambda m: m.name)
def test_the_rule_on_numpy_arrays_equals_the_reference(method):
    """The pure rule on NumPy float64 arrays (the toy problems' backend) against the reference on torch tensors."""
    shapes, options = NUMPY_CASES.get(method.name, (((4, 3), (3, 5)), {}))
    start = _params(shapes=shapes)
    reference = _run(method.make_optimizer(start, lr=0.01, reference=True, **options), start)
    rule = method.make_rule(lr=0.01, **options)
    for index, param in enumerate(_params(shapes=shapes)):
        x = param.detach().numpy().copy()
        state = rule.init(x)
        for step in range(STEPS):
            x, state = rule.update(x, np.sin(x) + x * np.cos(x) + 0.4 * x**3, state)
            assert isinstance(x, np.ndarray)
            np.testing.assert_allclose(x, reference[step][index].numpy(), rtol=1e-10, atol=1e-10,
                                       err_msg=f"{method.name}, step {step + 1}")


@pytest.mark.parametrize("method", ROWS, ids=lambda m: m.name)
def test_the_state_size_is_the_references(method):
    """``state_arrays``, ``state_size`` and ``counters``: what the reference keeps per parameter after a step."""
    params = _params(shapes=((4, 3), (3, 5), (5,))) if method.name != "muon" else _params()
    reference = method.name not in STATE_HIDDEN_BY_THE_REFERENCE
    optimizer = method.make_optimizer(params, lr=0.01, reference=reference)
    _run(optimizer, params, steps=1)
    state = optimizer.state_dict()["state"]
    for index, p in enumerate(params):
        values = list(state.get(index, {}).values())
        kept = [v for value in values for v in (value if isinstance(value, (list, tuple)) else [value])  # SOAP's lists
                if isinstance(v, torch.Tensor)]
        counters = [v for v in kept if v.ndim == 0]
        arrays = [v for v in kept if v.ndim > 0]
        assert len(counters) == method.counters, method.name
        assert sum(v.numel() for v in arrays) == method.state_numbers(p.shape), (method.name, tuple(p.shape))
        if method.state_arrays is not None:
            assert [v.shape for v in arrays if v.shape == p.shape] == [p.shape] * method.state_arrays, method.name
            factors = [v for v in arrays if v.shape != p.shape]
            assert sum(v.numel() for v in factors) == method.factor_numbers(p.shape), method.name
            assert all(v.ndim == 2 and v.shape[0] == v.shape[1] for v in factors), method.name


def test_state_numbers_by_shape():
    assert methods.get("adam").state_numbers((4, 3)) == 24 and methods.get("gd").state_numbers((7,)) == 0
    assert methods.get("adafactor").state_numbers((4, 3)) == 7 and methods.get("adafactor").state_numbers((5,)) == 5
    assert methods.get("adafactor").state_numbers((2, 4, 3)) == 14
    assert methods.get("soap").state_numbers((4, 3)) == 2 * 12 + 2 * (16 + 9)
    assert methods.get("soap").state_numbers((5,)) == 10 and methods.get("soap").factor_numbers((5,)) == 0
    assert methods.get("shampoo").state_numbers((4, 3)) == 3 * 12 + 2 * (16 + 9)
    assert methods.get("shampoo").factor_numbers((2, 3, 4)) == 2 * (4 + 9 + 16)
    with pytest.raises(ValueError, match="state_size exactly when"):
        methods.Method("x", "X", "#000001", "adam", "adam", "Adam", "torch.optim.Adam", state_arrays=None)


